"""Topic names of the device contract: `{root}/{site}/{kind}/{device}/{channel}`.

Parsing is pure and strict: a topic that breaks a slug rule is rejected before
its payload is looked at, so a misconfigured device cannot create odd series.
"""

from __future__ import annotations

import re
from typing import NamedTuple

CHANNELS = ("telemetry", "event", "state", "cmd", "reply")
INBOUND_CHANNELS = ("telemetry", "event", "state", "reply")
"""Channels the hub subscribes to; `cmd` is what the hub itself publishes."""

SITE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ROOT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_/-]{0,63}")


class TopicError(ValueError):
    """A topic that is not of the contract's form; the message says which part."""


class TopicParts(NamedTuple):
    root: str
    site: str
    kind: str
    device: str
    channel: str

    def format(self) -> str:
        return f"{self.root}/{self.site}/{self.kind}/{self.device}/{self.channel}"


def check_root(root: str) -> str:
    """Validate a configured topic root (it may itself hold slashes, e.g. `acme/community`)."""
    if not ROOT_RE.fullmatch(root) or root.endswith("/") or "//" in root:
        raise TopicError(f"topic root {root!r} must be slugs joined by '/'")
    return root


def parse(topic: str, root: str, kinds: frozenset[str] | set[str] | dict) -> TopicParts:
    """Split and check a topic; raises TopicError naming the offending part.

    `kinds` is the set of known kind names, so an unknown kind fails here with
    its own reason instead of deeper in validation.
    """
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic does not start with root {root!r}")
    parts = topic[len(prefix):].split("/")
    if len(parts) != 4:
        raise TopicError(f"expected {root}/site/kind/device/channel, got {len(parts)} levels after the root")
    site, kind, device, channel = parts
    if not SITE_RE.fullmatch(site):
        raise TopicError(f"site {site!r} is not a slug [a-z0-9][a-z0-9_-]{{0,63}}")
    if not DEVICE_RE.fullmatch(device):
        raise TopicError(f"device {device!r} is not a slug [A-Za-z0-9][A-Za-z0-9_-]{{0,63}}")
    if channel not in CHANNELS:
        raise TopicError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if kind not in kinds:
        raise UnknownKind(f"kind {kind!r} is not one of {', '.join(sorted(kinds))}")
    return TopicParts(root, site, kind, device, channel)


class UnknownKind(TopicError):
    """The topic is well formed but names a kind the hub has no plug-in for."""


def subscriptions(root: str, share_group: str | None = None) -> list[str]:
    """Topic filters the hub subscribes to (optionally as a `$share` group for several hub copies)."""
    filters = [f"{root}/+/+/+/{channel}" for channel in INBOUND_CHANNELS]
    if share_group:
        filters = [f"$share/{share_group}/{f}" for f in filters]
    return filters


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a topic falls under an MQTT filter (`+` one level, `#` the rest, section 4.7); a `$share/group/`
    prefix is ignored, and `+`/`#` never match a `$`-topic's first level."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    want, got = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(got) or (level != "+" and level != got[i]):
            return False
    return len(want) == len(got)
