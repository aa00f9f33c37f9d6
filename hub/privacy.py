"""Personal data (plates, access subjects, charger id tags) as each role may see it.

Operators and admins see values whole; viewers and maintenance staff see them
masked (琼A·1***5), enough to recognise a car they are looking at, not to track one.
"""

from __future__ import annotations

from typing import Any

from devices import REGISTRY


def mask(value: str) -> str:
    """琼A12345 -> 琼A·1***5 (a plate: province and office, then the ends); p-0fa3cd85 -> p-******85."""
    if len(value) >= 7 and not value[0].isascii():
        return value[:2] + "·" + value[2] + "*" * (len(value) - 4) + value[-1]
    if len(value) >= 6:
        return value[:2] + "*" * (len(value) - 4) + value[-2:]
    return "*" * len(value)


def masked(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of an event or telemetry row with the kind's personal fields masked."""
    spec = REGISTRY.get(kind)
    if spec is None or not spec.personal:
        return row
    out = dict(row)
    for name in spec.personal:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = None if _link(value) else mask(value)
    return out


def _link(value: str) -> bool:
    """A picture or clip link (a gate's `image`, a camera's `snapshot`): masked it would be no use, so it goes."""
    return value[:8].lower().startswith(("http://", "https://"))
