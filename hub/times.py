"""Times as the API and alerts show them: epoch ms in, ISO 8601 UTC out, and back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the last time ISO 8601 (and Python's datetime) can write."""
_EPOCH_MS = re.compile(r"-?[0-9]{1,20}")


def iso(ms: int | None) -> str | None:
    """Epoch ms -> ISO 8601 UTC with milliseconds, as the API shows every time."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None, name: str) -> int | None:
    """A query bound in ISO 8601 (with offset; UTC if none) or epoch ms -> epoch ms, from 1970 to year 9999.

    Times outside that range raise ValueError: no store holds them, and InfluxDB or SQLite would fail on them."""
    if value is None or value == "":
        return None
    if _EPOCH_MS.fullmatch(value):
        ms = int(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be ISO 8601 or epoch milliseconds, not {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = int(parsed.timestamp() * 1000)
    if not 0 <= ms <= MAX_MS:
        raise ValueError(f"{name} must be between 1970 and the year 9999 (0 to {MAX_MS} epoch ms)")
    return ms
