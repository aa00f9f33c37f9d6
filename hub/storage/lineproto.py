"""Points -> InfluxDB line protocol, millisecond precision.

Ours rather than influxdb-client's `Point` because it is the hot path of every
write: `bench/lineproto.py` measures it several times faster, mostly by
caching the escaped series prefix (measurement plus tags), which repeats for
every point of a device. The escaping rules are the client's own (same
translation tables), and a property test checks the output against
`influxdb_client.Point` as the oracle, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from devices.base import Point

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})

CACHE_MAX = 100_000
"""Distinct series prefixes / field keys remembered; cleared when exceeded (a restart's worth of work)."""
_series: dict[tuple[object, ...], str] = {}
_keys: dict[str, str] = {}


def _tag_value(value: str) -> str:
    escaped = value.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator after it.
    return escaped + " " if escaped.endswith("\\") else escaped


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    key = (measurement, *tags.items())
    head = _series.get(key)
    if head is None:
        head = measurement.translate(_ESCAPE_MEASUREMENT) + "".join(
            f",{k.translate(_ESCAPE_KEY)}={_tag_value(v)}" for k, v in sorted(tags.items()) if v
        )
        if len(_series) >= CACHE_MAX:
            _series.clear()
        _series[key] = head
    return head


def _field(key: str, value: bool | int | float | str) -> str | None:
    k = _keys.get(key)
    if k is None:
        k = key.translate(_ESCAPE_KEY)
        if len(_keys) >= CACHE_MAX:
            _keys.clear()
        _keys[key] = k
    cls = type(value)
    if cls is float:
        if not math.isfinite(value):  # InfluxDB has no NaN or infinity
            return None
        text = repr(value)
        return f"{k}={text[:-2] if text.endswith('.0') else text}"
    if cls is str:
        return f'{k}="{value.translate(_ESCAPE_STRING)}"'  # type: ignore[union-attr]
    if cls is bool:
        return f"{k}={'true' if value else 'false'}"
    if cls is int:
        return f"{k}={value}i"
    # Subclasses (enums, numpy-like numbers): same rules by isinstance, slower.
    if isinstance(value, bool):
        return f"{k}={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{k}={int(value)}i"
    if isinstance(value, float):
        return _field(key, float(value))
    return _field(key, str(value))


def line(point: Point) -> str | None:
    """One point as a line, or None when it has no storable field (InfluxDB would refuse it)."""
    measurement, tags, fields, time_ms = point
    parts = [f for k in sorted(fields) if (v := fields[k]) is not None and (f := _field(k, v)) is not None]
    if not parts:
        return None
    return f"{_prefix(measurement, tags)} {','.join(parts)} {time_ms}"


def encode(points: Iterable[Point]) -> bytes:
    """A write body: one line per point, points without fields skipped."""
    return "\n".join(text for p in points if (text := line(p)) is not None).encode()
