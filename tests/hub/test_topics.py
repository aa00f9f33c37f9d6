import pytest

from hub import topics

pytestmark = pytest.mark.unit

KINDS = {"elevator", "gate"}


def test_parse_accepts_contract_topics() -> None:
    parts = topics.parse("community/sunshine-2/elevator/B3-e_1/telemetry", "community", KINDS)
    assert parts == topics.TopicParts("community", "sunshine-2", "elevator", "B3-e_1", "telemetry")
    assert parts.format() == "community/sunshine-2/elevator/B3-e_1/telemetry"


def test_parse_with_a_root_of_several_levels() -> None:
    parts = topics.parse("acme/community/s1/gate/g1/event", "acme/community", KINDS)
    assert parts.site == "s1" and parts.channel == "event"


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("other/s1/gate/g1/event", "root"),
        ("community/s1/gate/g1", "levels"),
        ("community/s1/gate/g1/event/extra", "levels"),
        ("community/S1/gate/g1/event", "site"),
        ("community/-s1/gate/g1/event", "site"),
        ("community/" + "s" * 65 + "/gate/g1/event", "site"),
        ("community/s1/gate/g 1/event", "device"),
        ("community/s1/gate/_g1/event", "device"),
        ("community/s1/gate/g1/events", "channel"),
        ("community/s1/toaster/g1/event", "kind"),
    ],
)
def test_parse_rejects_and_names_the_part(topic: str, message: str) -> None:
    with pytest.raises(topics.TopicError, match=message):
        topics.parse(topic, "community", KINDS)


def test_unknown_kind_is_its_own_error() -> None:
    with pytest.raises(topics.UnknownKind):
        topics.parse("community/s1/toaster/t1/event", "community", KINDS)


def test_subscriptions_cover_inbound_channels_and_share_groups() -> None:
    assert topics.subscriptions("c") == ["c/+/+/+/telemetry", "c/+/+/+/event", "c/+/+/+/state", "c/+/+/+/reply"]
    assert topics.subscriptions("c", "hubs")[0] == "$share/hubs/c/+/+/+/telemetry"


@pytest.mark.parametrize("root", ["", "/c", "c/", "c//d", "c/+", "c/#"])
def test_bad_roots_are_refused(root: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.check_root(root)


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("frigate/events", "frigate/events", True),
    ("frigate/events", "frigate/events/x", False),
    ("frigate/+/status/+", "frigate/lane_north/status/detect", True),
    ("frigate/+/status/+", "frigate/lane_north/status", False),
    ("frigate/+/status/+", "frigate//status/detect", True),  # an empty level is a level (MQTT 4.7.1.3)
    ("frigate/#", "frigate", True),
    ("frigate/#", "frigate/a/b/c", True),
    ("frigate/#", "frigatex/a", False),
    ("#", "$SYS/broker/uptime", False),
    ("+/events", "$frigate/events", False),
    ("$share/hubs/frigate/events", "frigate/events", True),
])
def test_matches_follows_mqtt_wildcards(topic_filter: str, topic: str, expected: bool) -> None:
    assert topics.matches(topic_filter, topic) is expected
