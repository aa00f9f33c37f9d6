"""Times as the API and alerts show them: epoch ms in, ISO 8601 UTC out, and back."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ms: int | None) -> str | None:
    """Epoch ms -> ISO 8601 UTC with milliseconds, as the API shows every time."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None, name: str) -> int | None:
    """A query bound in ISO 8601 (with offset; UTC if none) or epoch ms -> epoch ms."""
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be ISO 8601 or epoch milliseconds, not {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
