"""Raw MQTT payload -> validated pydantic model, or a `Rejected` with a reason.

Decoding and validation are one step on purpose: pydantic's `model_validate_json`
on the raw bytes is about twice as fast as `json.loads` + `model_validate`. Only
when it fails do we spend time working out *why*, to give a precise reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from devices.base import MAX_PAYLOAD_BYTES, DeviceKind, Invalid, describe_error

REASONS = ("bad_topic", "unknown_kind", "too_large", "not_utf8", "not_json", "not_object", "invalid", "unstorable")
"""Every reason the core dead-letters a message for; metrics are labelled with these and with the reasons each
kind's checks give (`DeviceKind.refusals`, see `reasons`)."""


def reasons(kinds: Mapping[str, DeviceKind]) -> tuple[str, ...]:
    """Every reason a message can be dead-lettered for: the core's, then the kinds' own."""
    own = sorted({r for kind in kinds.values() for r in kind.refusals} - set(REASONS))
    return (*REASONS, *own)

PAYLOAD_KEEP_BYTES = 8 * 1024
"""How much of a rejected payload the dead-letter store keeps."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the hub could not accept, with enough context to find and fix its sender."""

    topic: str
    reason: str
    detail: str
    payload: bytes
    received_ms: int
    kind: str = ""

    @classmethod
    def of(cls, topic: str, reason: str, detail: str, payload: bytes, received_ms: int, kind: str = "") -> Rejected:
        return cls(_storable_text(topic), reason, detail, payload[:PAYLOAD_KEEP_BYTES], received_ms, kind)


def _storable_text(topic: str) -> str:
    """The topic as text UTF-8 can carry, undecodable bytes written as `\\udcXX`. The MQTT edge decodes a topic
    with `surrogateescape` (it never fails on a peer's bytes); a lone surrogate in a dead letter failed the flush
    (SQLite takes UTF-8 only), so the edge acknowledged nothing and the broker sent the message again, and again."""
    if topic.isascii():
        return topic
    return topic.encode("utf-8", "backslashreplace").decode("utf-8")


class DecodeError(Exception):
    """Carries a reason from `REASONS` and a detail for a person."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(kind: DeviceKind, channel: str, raw: bytes) -> BaseModel:
    """Validate a raw payload against its kind and channel; raises DecodeError."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"payload is {len(raw)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    try:
        return kind.validate(channel, raw)
    except ValidationError as exc:
        raise classify(exc, raw) from None
    except Invalid as exc:
        raise DecodeError("invalid", exc.detail) from None


def classify(exc: ValidationError, raw: bytes) -> DecodeError:
    """Turn pydantic's error into one of our reasons (only on the slow, failing path)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return DecodeError("not_utf8", f"not UTF-8 at byte {err.start}")
        return DecodeError("not_json", first["msg"].removeprefix("Invalid JSON: "))
    if not first["loc"] and first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return DecodeError("not_object", "payload must be a JSON object")
    for err in errors:
        detail = _event_type_detail(err)
        if detail:
            return DecodeError("invalid", detail)
    return DecodeError("invalid", describe_error(exc))


def _event_type_detail(err: Any) -> str | None:
    """A clear sentence when the problem is the event's `type` itself, else None."""
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_not_found" or (err["loc"] == ("type",) and err["type"] == "missing"):
        return "event has no 'type'"
    if err["type"] == "union_tag_invalid":
        return f"unknown event type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if err["loc"] == ("type",) and err["type"] == "literal_error":
        return f"unknown event type {err['input']!r}; expected {ctx.get('expected')}"
    return None
