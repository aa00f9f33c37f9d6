"""Points -> InfluxDB line protocol, millisecond precision, with no way out of a line.

Ours rather than influxdb-client's `Point` because it is the hot path of every
write (`bench/lineproto.py`), and because the client's escaping is not
InfluxDB's: it leaves backslashes in names as they are, and InfluxDB 1.x reads
a backslash before `,`, `=` or a space as an escape, so a device-made name
such as `a\\,` plus a newline in a string field once ended a line early and
wrote a point for another site. The rules here are the server's, checked
against InfluxDB itself (`tests/hub/storage/test_lineproto_influx.py`):

- names (measurement, tag keys and values, field keys): `,` `=` and space are
  escaped (the measurement: `,` and space). A name with a backslash or a
  control character cannot be stored exactly by InfluxDB 1.x (it reads
  `k\\=` as an escaped `=`, and has no escape for a newline), so such a name is
  refused (`Unstorable`), never rewritten; so is an empty name or a
  measurement starting with `#` (a comment line);
- string field values: `"` and `\\` escaped; newlines and every other
  character kept as they are (inside the quotes InfluxDB keeps them);
- floats as `repr` with a whole number's `.0` dropped, ints as `3i`, bools as
  `true`/`false`; NaN, infinities and None skipped (InfluxDB has no such values).

The gains in speed come from caching what repeats (the escaped series key of a
device, escaped field keys), checked once when first seen, and from one inlined
loop over the fields instead of a call per field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from devices.base import Point
from hub.storage.base import StorageRejected

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_UNSTORABLE = re.compile(r"[\\\x00-\x1f\x7f]")

CACHE_MAX = 100_000
"""Distinct series keys / field-key sets remembered; cleared when exceeded (a restart's worth of work)."""
_series: dict[tuple[object, ...], str] = {}
_field_keys: dict[tuple[str, ...], list[tuple[str, str]]] = {}


class Unstorable(StorageRejected):
    """A name InfluxDB cannot store exactly: the point goes to the dead letters (the pipeline checks every
    point first); a store given one refuses the whole batch, as a write it will never take."""


def _name(name: str, what: str, table: dict[int, str]) -> str:
    """One name, escaped; raises Unstorable for a name no line can carry exactly."""
    if not name:
        raise Unstorable(f"empty {what}")
    if _UNSTORABLE.search(name):
        raise Unstorable(f"{what} {name!r} has a backslash or a control character, which InfluxDB cannot store")
    return name.translate(table)


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """`measurement,k=v,...` escaped, tags sorted, empty ones dropped: InfluxDB's series key.

    Cached because a device sends the same tag set with every point; the
    embedded store also uses it as its series identity and tie-break order, so
    both stores refuse the same names. Raises Unstorable.
    """
    key = (measurement, *tags.items())
    head = _series.get(key)
    if head is None:
        if measurement.startswith("#"):
            raise Unstorable(f"measurement {measurement!r} would make a comment line")
        head = _name(measurement, "measurement", _ESCAPE_MEASUREMENT) + "".join(
            f",{_name(k, 'tag key', _ESCAPE_KEY)}={_name(v, f'value of tag {k!r}', _ESCAPE_KEY)}"
            for k, v in sorted(tags.items())
            if v
        )
        if len(_series) >= CACHE_MAX:
            _series.clear()
        _series[key] = head
    return head


def _sorted_keys(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(key, escaped key) in line order for one field-key set; cached since a kind's fields repeat."""
    spec = [(k, _name(k, "field key", _ESCAPE_KEY)) for k in sorted(names)]
    if len(_field_keys) >= CACHE_MAX:
        _field_keys.clear()
    _field_keys[names] = spec
    return spec


def _coerce(value: object) -> bool | int | float | str:
    """Subclasses (str enums, IntEnum, numpy-like numbers) as the plain type they stand for."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""InfluxDB's integers (and the outbox's, and SQLite's) are 64-bit; JSON's have no limit."""


def check_names(point: Point) -> None:
    """Raise Unstorable if any name of the point cannot be stored; two lookups once its names were seen."""
    measurement, tags, fields, _ = point
    if _series.get((measurement, *tags.items())) is None:
        series_key(measurement, tags)
    names = tuple(fields)
    if names not in _field_keys:
        _sorted_keys(names)


def check(point: Point) -> None:
    """`check_names`, and an integer field beyond 64 bits is Unstorable too (a contract `int` such as `floor`
    or `seq` sent as 10**30 once stopped every later outbox commit). A store given such a point refuses it
    alone ("value out of range"), as InfluxDB does; the pipeline keeps it from ever reaching the outbox."""
    check_names(point)
    for name, value in point.fields.items():
        if type(value) is int and not INT_MIN <= value <= INT_MAX:
            raise Unstorable(f"field {name!r} is an integer beyond 64 bits, which InfluxDB cannot store")


def line(point: Point, bounded: bool = True) -> str | None:
    """One point as a line, or None when it has no storable field (InfluxDB would refuse it).

    Raises Unstorable for a name InfluxDB cannot store and, when `bounded`, for an integer beyond 64 bits:
    making the line is the check (`hub.storage.batch.LineBatch`), so a point is encoded once. Unbounded,
    such an integer is written as it is, for the server to refuse that point alone (`encode`).
    """
    measurement, tags, fields, time_ms = point
    names = tuple(fields)
    parts: list[str] = []
    for k, ek in _field_keys.get(names) or _sorted_keys(names):
        v = fields[k]
        cls = type(v)
        if cls is str:
            if '"' in v or "\\" in v:  # type: ignore[operator]  # rare: skip translate's cost otherwise
                v = v.translate(_ESCAPE_STRING)  # type: ignore[union-attr]
            parts.append(f'{ek}="{v}"')
        elif cls is float:
            text = repr(v)
            last = text[-1]
            if last == "0" and text[-2] == ".":
                text = text[:-2]  # whole numbers without ".0", like the client
            elif last == "n" or last == "f":
                continue  # nan, inf: InfluxDB has no such values
            parts.append(f"{ek}={text}")
        elif cls is int:
            if bounded and not INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
                raise Unstorable(f"field {k!r} is an integer beyond 64 bits, which InfluxDB cannot store")
            parts.append(f"{ek}={v}i")
        elif cls is bool:
            parts.append(f"{ek}=true" if v else f"{ek}=false")
        elif v is not None:
            return line(Point(measurement, tags, {**fields, k: _coerce(v)}, time_ms), bounded)
    if not parts:
        return None
    return f"{_series.get((measurement, *tags.items())) or series_key(measurement, tags)} {','.join(parts)} {time_ms}"


def encode(points: Iterable[Point]) -> bytes:
    """A write body: one line per point, points without fields skipped; raises Unstorable for a name no line can
    carry (the whole batch: a write the store will never take). An integer beyond 64 bits is left for the
    server to refuse, that point alone, as it does."""
    return "\n".join(text for p in points if (text := line(p, bounded=False)) is not None).encode()


_KEY = rb"(?:[^\\= ,\n]|\\.)+"
_VALUE = rb'(?:"(?:[^"\\]|\\.)*"|[^" ,\n]+)'
_LINE = re.compile(rb"(?:[^\\ \n]|\\.)+ " + _KEY + b"=" + _VALUE + b"(?:," + _KEY + b"=" + _VALUE + rb")* -?[0-9]+",
                   re.DOTALL)
"""One line as `encode` writes it: series key (escapes only), fields, time. Only a string field value holds raw
newlines, and quoting starts only at a field value (a name may hold a plain `"`), so a line is read by its grammar,
not cut at each newline."""


def split(body: bytes) -> list[bytes]:
    """A body `encode` made, as one body per point (what `encode([point])` makes), in order.

    Raises ValueError for bytes `encode` cannot have made (a line it does not recognise)."""
    out: list[bytes] = []
    pos, end = 0, len(body)
    while pos < end:
        found = _LINE.match(body, pos)
        if found is None or (found.end() < end and body[found.end()] != 0x0A):
            raise ValueError(f"not a line of ours at byte {pos}")
        out.append(found.group())
        pos = found.end() + 1
    return out
