"""End to end: messages published to a real Mosquitto reach the store, live state and dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from devices import REGISTRY
from tests.support.hub_fixtures import HubRun, eventually, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.services]


def fresh(example: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An example payload with its `ts` (if any) moved to now, so stores' retention keeps it."""
    out = dict(example)
    if "ts" in out:
        out["ts"] = int(time.time() * 1000)
    out.update(changes)
    return out


def accepted(run: HubRun) -> int:
    return sum(run.hub.pipeline.stats.accepted.values())


async def test_every_kind_and_channel_is_stored(hub_run: HubRun) -> None:
    """Each kind's example telemetry, events, state and replies are accepted, stored and shown."""
    messages: list[tuple[str, Any]] = []
    expected_events: dict[tuple[str, str], int] = {}
    for kind in REGISTRY.values():
        device = f"{kind.name}-1"
        for example in kind.examples.get("telemetry", ()):
            messages.append((hub_run.topic(kind.name, device, "telemetry"), fresh(example)))
        for i, example in enumerate(kind.examples["event"]):
            messages.append((hub_run.topic(kind.name, device, "event"), fresh(example, id=f"{kind.name}-e{i}")))
            key = (kind.name, example["type"])
            expected_events[key] = expected_events.get(key, 0) + 1
        messages.append((hub_run.topic(kind.name, device, "state"), {"online": True, "fw": "2.1.0"}))
        messages.append((hub_run.topic(kind.name, device, "reply"), {"id": f"cmd-{kind.name}", "ok": True}))
        expected_events[(kind.name, "reply")] = 1
    await hub_run.publish_many(messages)
    await eventually(lambda: accepted(hub_run) == len(messages), what="all messages accepted")
    assert not hub_run.hub.pipeline.stats.rejected
    await hub_run.stored()

    events = await hub_run.events(limit=1000)
    counted: dict[tuple[str, str], int] = {}
    for event in events:
        assert event["site"] == hub_run.site
        counted[(event["kind"], event["type"])] = counted.get((event["kind"], event["type"]), 0) + 1
    assert counted == expected_events

    devices = (await hub_run.api.get("/api/devices")).json()
    assert {d["kind"] for d in devices} == set(REGISTRY)
    for d in devices:
        assert d["online"] is True, d
        assert d["registered"] is False  # heard on the wire, not in a registry file
        assert d["info"] == {"fw": "2.1.0"}
        if REGISTRY[d["kind"]].examples.get("telemetry"):
            assert d["telemetry"], d


async def test_bad_input_is_dead_lettered_and_never_blocks_good_messages(embedded_hub: HubRun) -> None:
    run = embedded_hub
    good = run.topic("elevator", "e1", "telemetry")
    cases = [
        (good, b"hello", "not_json"),
        (good, b"[1, 2]", "not_object"),
        (good, b'"just a string"', "not_object"),
        (good, b"\xff\xfe\x00binary", "not_utf8"),
        (good, b'{"floor": "seventh"}', "invalid"),
        (good, b'{"direction": "sideways"}', "invalid"),
        (good, b"{}", "invalid"),
        (good, b'{"floor": 1, "ts": "2026-11-22T08:00:00"}', "invalid"),  # no offset
        (good, b"{" + b'"pad": "' + b"x" * (70 * 1024) + b'"}', "too_large"),
        (run.topic("elevator", "e1", "event"), b'{"type": "party"}', "invalid"),
        (run.topic("elevator", "e1", "event"), b'{"code": "overspeed", "active": true}', "invalid"),
        (run.topic("elevator", "e1", "event"), b'{"type": "fault", "code": "bored", "active": true}', "invalid"),
        (run.topic("camera", "c1", "event"), b'{"type": "detection", "label": "smoke", "phase": "start", '
         b'"score": 0.9, "snapshot": "javascript:alert(1)"}', "invalid"),
        (run.topic("elevator", "e1", "telemetry"), b'{"floor": 1, "load_kg": Infinity}', "invalid"),
        (run.topic("toaster", "t1", "telemetry"), b'{"temp_c": 200}', "unknown_kind"),
        (f"{run.root}/Bad Site/elevator/e1/telemetry", b'{"floor": 1}', "bad_topic"),
        (f"{run.root}/sunshine/elevator/-e1/telemetry", b'{"floor": 1}', "bad_topic"),
    ]
    messages = [(topic, payload) for topic, payload, _ in cases] + [(good, {"floor": 9, "seq": 1})]
    await run.publish_many(messages)
    await eventually(lambda: accepted(run) == 1, what="the good message")
    await run.stored()

    expected: dict[str, int] = {}
    for _, _, reason in cases:
        expected[reason] = expected.get(reason, 0) + 1
    by_reason: dict[str, int] = {}
    for (_, reason), n in run.hub.pipeline.stats.rejected.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    assert by_reason == expected

    letters = (await run.api.get("/api/deadletters", params={"limit": 100})).json()
    assert sorted(row["reason"] for row in letters) == sorted(reason for _, _, reason in cases)
    binary = next(row for row in letters if row["reason"] == "not_utf8")
    assert binary["payload_encoding"] == "hex" and binary["payload"].startswith("fffe00")
    oversized = next(row for row in letters if row["reason"] == "too_large")
    assert "limit is 65536" in oversized["detail"] and len(oversized["payload"]) <= 8 * 1024
    unknown_type = next(row for row in letters if b"party" in row["payload"].encode())
    assert "unknown event type 'party'" in unknown_type["detail"]

    metrics = (await run.api.get("/metrics")).text
    assert 'smarthub_messages_rejected_total{kind="",reason="bad_topic"} 2.0' in metrics
    assert 'smarthub_messages_rejected_total{kind="elevator",reason="not_json"} 1.0' in metrics
    assert 'smarthub_messages_accepted_total{channel="telemetry",kind="elevator"} 1.0' in metrics

    device = next(d for d in (await run.api.get("/api/devices")).json() if d["device"] == "e1")
    assert device["telemetry"]["floor"] == 9



async def test_a_meter_register_going_backwards_is_dead_lettered_until_a_replacement(hub_run: HubRun) -> None:
    """10, 12, 11: the 11 is `register_regressed` and not stored; after `replaced` (12 -> 0.5) a 1 is stored."""
    telemetry, event = hub_run.topic("meter", "m-101", "telemetry"), hub_run.topic("meter", "m-101", "event")
    now = int(time.time() * 1000) - 60_000
    readings = [(telemetry, {"utility": "water", "reading": r, "ts": now + i * 1000})
                for i, r in enumerate((10, 12, 11))]
    await hub_run.publish_many(readings)
    await eventually(lambda: sum(hub_run.hub.pipeline.stats.rejected.values()) == 1 and accepted(hub_run) == 2,
                     what="two readings taken, one refused")
    await hub_run.publish_many([
        (event, {"type": "replaced", "id": "r-1", "old_reading": 12, "new_reading": 0.5, "ts": now + 3000}),
        (telemetry, {"utility": "water", "reading": 1, "ts": now + 4000}),
    ])
    await eventually(lambda: accepted(hub_run) == 4, what="the replacement and the new meter's reading")
    await hub_run.stored()
    assert hub_run.hub.pipeline.stats.rejected == {("meter", "register_regressed"): 1}
    [letter] = (await hub_run.api.get("/api/deadletters", params={"kind": "meter"})).json()
    assert letter["reason"] == "register_regressed" and letter["topic"] == telemetry and b'"reading":11' in \
        letter["payload"].encode()
    rows = await hub_run.hub.storage.query_points(["meter"], {"device": "m-101"})
    assert sorted(columns["reading"] for _, _, columns in rows) == [1, 10, 12]
    metrics = (await hub_run.api.get("/metrics")).text
    assert 'smarthub_messages_rejected_total{kind="meter",reason="register_regressed"} 1.0' in metrics

async def test_a_device_clearing_its_retained_state_is_counted_not_dead_lettered(
        embedded_hub: HubRun, caplog: pytest.LogCaptureFixture) -> None:
    run = embedded_hub
    state = run.topic("gate", "g-clear", "state")
    await run.publish(state, {"online": True}, retain=True)
    await eventually(lambda: accepted(run) == 1, what="the retained state")
    with caplog.at_level(logging.WARNING, logger="hub"):
        await run.publish(state, b"", retain=True)  # MQTT's way to delete the retained message
        await run.publish(run.topic("gate", "g-clear", "telemetry"), b"")  # not a clear: nothing to clear there
        await eventually(lambda: run.hub.pipeline.stats.state_cleared["gate"] == 1, what="the clear counted")
        await eventually(lambda: run.hub.pipeline.stats.rejected[("gate", "not_json")] == 1, what="the empty telemetry")
    await run.stored()
    letters = (await run.api.get("/api/deadletters")).json()
    assert [row["topic"] for row in letters] == [run.topic("gate", "g-clear", "telemetry")]
    assert 'smarthub_state_cleared_total{kind="gate"} 1.0' in (await run.api.get("/metrics")).text
    assert [r.getMessage() for r in caplog.records if "state" in r.getMessage()] == []


async def test_redelivered_events_are_stored_once(hub_run: HubRun) -> None:
    topic = hub_run.topic("camera", "cam-7", "event")
    now = int(time.time() * 1000)
    throw = {"type": "detection", "id": "det-1", "label": "high_altitude_throw", "score": 0.91}
    phases = [throw | {"phase": "start", "ts": now - 2000}, throw | {"phase": "update", "ts": now - 1000},
              throw | {"phase": "end", "ts": now}]
    await hub_run.publish_many([(topic, p) for p in phases] + [(topic, phases[0]), (topic, phases[2])])
    await eventually(lambda: sum(hub_run.hub.pipeline.stats.duplicates.values()) == 2, what="two duplicates")
    await hub_run.stored()
    stored = await hub_run.events(device="cam-7")
    assert [e["phase"] for e in stored] == ["end", "update", "start"]  # newest first, each once
    assert all(e["id"] == "det-1" and e["label"] == "high_altitude_throw" for e in stored)


async def test_point_time_comes_from_ts_when_plausible(hub_run: HubRun) -> None:
    topic = hub_run.topic("access", "door-1", "event")
    base = {"type": "access", "method": "card", "subject": "u-1", "result": "granted"}
    iso_time = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0) - timedelta(minutes=10)
    epoch_ms = int(time.time() * 1000) - 5 * 60 * 1000
    future_ms = int(time.time() * 1000) + 3600 * 1000
    before = int(time.time() * 1000)
    await hub_run.publish_many([
        (topic, base | {"id": "iso", "ts": iso_time.isoformat()}),
        (topic, base | {"id": "epoch", "ts": epoch_ms}),
        (topic, base | {"id": "none"}),
        (topic, base | {"id": "future", "ts": future_ms}),
    ])
    await eventually(lambda: accepted(hub_run) == 4, what="four events")
    await hub_run.stored()
    after = int(time.time() * 1000)
    events = {e["id"]: e for e in await hub_run.events(device="door-1")}

    def ms(event: dict[str, Any]) -> int:
        return int(datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp() * 1000)

    assert ms(events["iso"]) == int(iso_time.timestamp() * 1000)
    assert events["iso"]["lag_ms"] >= 10 * 60 * 1000
    assert ms(events["epoch"]) == epoch_ms
    assert before <= ms(events["none"]) <= after and events["none"]["lag_ms"] == 0
    assert before <= ms(events["future"]) <= after  # a clock an hour ahead is not believed
    assert hub_run.hub.pipeline.stats.clock_skew == 1


async def test_seq_gaps_and_duplicates_are_counted(embedded_hub: HubRun) -> None:
    topic = embedded_hub.topic("charger", "c1", "telemetry")
    seqs = [100, 101, 105, 105, 106, 1]
    await embedded_hub.publish_many([(topic, {"power_kw": 7.0, "seq": s}) for s in seqs])
    # The second 105 is the same bytes again: counted as a seq duplicate, stored once (issue 10).
    await eventually(lambda: accepted(embedded_hub) == len(seqs) - 1 and embedded_hub.hub.pipeline.stats.repeated == 1,
                     what="all telemetry but the repeat")
    device = next(d for d in (await embedded_hub.api.get("/api/devices")).json() if d["device"] == "c1")
    assert device["seq"] == {"last": 1, "gaps": 3, "duplicates": 1, "resets": 1}


async def test_messages_published_while_the_hub_is_down_arrive_after_restart(settings_for, mosquitto) -> None:  # type: ignore[no-untyped-def]
    """The hub's persistent session makes the broker queue QoS 1 messages while it is away."""
    settings = settings_for("embedded")
    async with running_hub(settings, mosquitto) as run:
        topic = run.topic("gate", "g1", "event")
    events = [{"type": "barrier", "state": "open", "id": f"b{i}"} for i in range(50)]
    await run.publish_many([(topic, e) for e in events])  # the hub is stopped now
    async with running_hub(settings, mosquitto) as run2:
        await eventually(lambda: accepted(run2) == 50, timeout=10, what="queued messages after restart")
        await run2.stored()
        stored = await run2.events(device="g1", limit=100)
        assert sorted(e["id"] for e in stored) == sorted(e["id"] for e in events)


async def test_api_requires_a_token_except_health_and_metrics(embedded_hub: HubRun) -> None:
    api = embedded_hub.api
    for path in ("/api/devices", "/api/events", "/api/deadletters"):
        assert (await api.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await api.get(path, headers={"Authorization": ""})).status_code == 401
    health = await api.get("/api/health", headers={"Authorization": ""})
    assert health.status_code == 200
    body = health.json()
    assert {k: body[k] for k in ("status", "broker", "store", "store_backend", "outbox_points", "receiving")} == {
        "status": "ok", "broker": True, "store": True, "store_backend": "embedded", "outbox_points": 0,
        "receiving": True}
    assert body["uptime_s"] >= 0 and body["reasons"] == []
    assert {name: c["state"] for name, c in body["components"].items()} == {
        "broker": "ok", "store": "ok", "outbox": "ok", "tasks": "ok"}
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 200
    assert (await api.get("/docs", headers={"Authorization": ""})).status_code == 200


async def test_events_api_filters(hub_run: HubRun) -> None:
    now = int(time.time() * 1000)
    fault = {"type": "fault", "code": "door_close_fault", "active": True}
    messages = [
        (hub_run.topic("elevator", "e1", "event"), fault | {"id": "a", "ts": now - 3000}),
        (hub_run.topic("elevator", "e2", "event"), fault | {"id": "b", "ts": now - 2000}),
        (hub_run.topic("elevator", "e2", "event", site="moonlight"), fault | {"id": "c", "ts": now - 1000}),
        (hub_run.topic("gate", "g1", "event"), {"type": "barrier", "state": "stuck", "id": "d", "ts": now}),
    ]
    await hub_run.publish_many(messages)
    await eventually(lambda: accepted(hub_run) == 4, what="four events")
    await hub_run.stored()
    ids = lambda rows: [r["id"] for r in rows]  # noqa: E731
    assert ids(await hub_run.events()) == ["d", "c", "b", "a"]
    assert ids(await hub_run.events(kind="elevator")) == ["c", "b", "a"]
    assert ids(await hub_run.events(site="sunshine", kind="elevator")) == ["b", "a"]
    assert ids(await hub_run.events(device="e2")) == ["c", "b"]
    assert ids(await hub_run.events(type="barrier")) == ["d"]
    assert ids(await hub_run.events(since=str(now - 2000), until=str(now - 1000))) == ["c", "b"]
    assert ids(await hub_run.events(limit=2)) == ["d", "c"]
    response = await hub_run.api.get("/api/events", params={"since": "yesterday"})
    assert response.status_code == 422 and "since" in response.text


async def test_registry_devices_are_listed_and_tag_their_telemetry(settings_for, mosquitto, tmp_path, backend) -> None:  # type: ignore[no-untyped-def]
    registry = tmp_path / "registry.toml"
    registry.write_text(
        '[sites.sunshine]\nname = "阳光花园"\n\n'
        '[[devices]]\nsite = "sunshine"\nkind = "elevator"\ndevice = "b3-e1"\nbuilding = "3"\nname = "3号楼1号梯"\n\n'
        '[[devices]]\nsite = "sunshine"\nkind = "gate"\ndevice = "east"\nbuilding = "gatehouse"\n',
        encoding="utf-8",
    )
    async with running_hub(settings_for(backend, registry=registry), mosquitto) as run:
        await run.publish(run.topic("elevator", "b3-e1", "telemetry"), {"floor": 5})
        await eventually(lambda: accepted(run) == 1, what="telemetry")
        await run.stored()
        [(_, _, columns)] = await run.hub.storage.query_points(["elevator"], {"device": "b3-e1"})
        assert columns["building"] == "3" and columns["floor"] == 5
        listed = {d["device"]: d for d in (await run.api.get("/api/devices")).json()}
        assert listed["b3-e1"]["name"] == "3号楼1号梯" and listed["b3-e1"]["online"] is True
        assert listed["east"]["registered"] is True and listed["east"]["online"] is False  # never heard
        online = (await run.api.get("/api/devices", params={"online": "false"})).json()
        assert [d["device"] for d in online] == ["east"]



async def test_a_meter_room_is_masked_below_operator_never_a_tag(settings_for, mosquitto, tmp_path, backend) -> None:  # type: ignore[no-untyped-def]
    """户号 is personal: viewers and maintenance see it masked in /api/devices, operators and admins whole."""
    registry = tmp_path / "registry.toml"
    registry.write_text('[[devices]]\nsite = "sunshine"\nkind = "meter"\ndevice = "b2-m7"\nbuilding = "2"\n'
                        'unit = "1"\nfloor = 15\nroom = "1502"\n', encoding="utf-8")
    async with running_hub(settings_for(backend, registry=registry), mosquitto) as run:
        await run.publish(run.topic("meter", "b2-m7", "telemetry"), {"utility": "water", "reading": 3.5})
        await eventually(lambda: accepted(run) == 1, what="telemetry")
        await run.stored()
        [(_, _, columns)] = await run.hub.storage.query_points(["meter"], {"device": "b2-m7"})
        assert columns["building"] == "2" and "1502" not in columns.values() and "room" not in columns
        seen = {}
        for role in ("viewer", "maintenance", "operator", "admin"):
            token = run.hub.users.add(f"u-{role}", role)  # type: ignore[arg-type]
            [meter] = (await run.api.get("/api/devices", params={"kind": "meter"},
                                         headers={"Authorization": f"Bearer {token}"})).json()
            seen[role] = (meter["unit"], meter["floor"], meter["room"])
        assert seen == {"viewer": ("1", 15, "****"), "maintenance": ("1", 15, "****"),
                        "operator": ("1", 15, "1502"), "admin": ("1", 15, "1502")}

async def test_the_hub_reconnects_after_a_broker_restart(embedded_hub: HubRun) -> None:
    run = embedded_hub
    await asyncio.to_thread(run.broker.restart)  # the test broker keeps no sessions: the hub must resubscribe
    await eventually(lambda: run.hub.mqtt.connects == 2 and run.hub.mqtt.connected, timeout=15,
                     what="the hub to reconnect")
    await run.publish(run.topic("charger", "c1", "telemetry"), {"power_kw": 3.3})
    await eventually(lambda: accepted(run) == 1, what="a message after the reconnect")
    metrics = (await run.api.get("/metrics")).text
    assert "smarthub_mqtt_connects_total 2.0" in metrics and "smarthub_mqtt_connected 1.0" in metrics


async def test_no_device_message_can_write_a_point_outside_its_own_site_and_device(hub_run: HubRun) -> None:
    """The forgeries of issue 11, as a device would send them, on both stores: refused or kept inside their line."""
    run = hub_run
    forged = 'x"\nelevator,device=forged,site=victim floor=99 1\ngate_event,device=g1,site=victim,type=passage'
    now = int(time.time() * 1000)
    attacks = [  # (topic, payload, dead-lettered as)
        (run.topic("gate", "g1", "event"), fresh(REGISTRY["gate"].examples["event"][0], id="p-x", **{"a\\,": forged}),
         "invalid"),
        (run.topic("elevator", "e1", "telemetry"), {"floor": 3, "x\\": 1, "ts": now}, "invalid"),
        (run.topic("elevator", "e1", "telemetry"), {"floor": 3, "a b,site=victim": 1, "ts": now}, "invalid"),
    ]
    fine = [  # a newline and a forged line inside a declared string: stored as it is, in its own point
        (run.topic("elevator", "e1", "event"), {"type": "fault", "code": "trapped_passenger", "active": True,
                                                "detail": forged, "id": "f-x"}),
        (run.topic("elevator", "e1", "telemetry"), {"floor": 4, "vendor_note": forged, "ts": now + 1}),
    ]
    await run.publish_many([(t, p) for t, p, _ in attacks] + fine)
    await eventually(lambda: run.hub.pipeline.stats.received == len(attacks) + len(fine), what="all messages")
    await run.stored()

    letters = (await run.api.get("/api/deadletters", params={"limit": 100})).json()
    assert sorted(letter["reason"] for letter in letters) == sorted(reason for *_, reason in attacks)
    assert all("field name" in letter["detail"] for letter in letters)
    storage = run.hub.storage
    measurements = [m for kind in REGISTRY for m in (kind, f"{kind}_event")] + ["device_state"]
    rows = await storage.query_points(measurements, {}, limit=1000)
    assert {(r[2].get("site"), r[2].get("device")) for r in rows} == {(run.site, "e1")}
    [fault] = await run.events(device="e1", type="fault")
    assert fault["detail"] == forged
    telemetry = [r[2] for r in rows if r[0] == "elevator"]
    assert [t["vendor_note"] for t in telemetry] == [forged]


async def test_a_flood_of_garbage_is_counted_and_kept_whole_but_logged_in_a_few_lines(
        embedded_hub: HubRun, caplog: pytest.LogCaptureFixture) -> None:
    run = embedded_hub
    topic = run.topic("elevator", "e-flood", "telemetry")
    with caplog.at_level(logging.WARNING, logger="hub"):
        await run.publish_many([(topic, b"garbage %d" % i) for i in range(1000)])
        await eventually(lambda: run.hub.pipeline.stats.rejected[("elevator", "not_json")] == 1000,
                         timeout=20, what="all 1,000 rejected")
    run.hub.dead_letters.flush()
    assert len(run.hub.dead_letters.recent(5000, "not_json")) == 1000
    assert 'smarthub_messages_rejected_total{kind="elevator",reason="not_json"} 1000.0' in (
        await run.api.get("/metrics")).text
    rejected_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected")]
    assert 1 <= len(rejected_lines) <= 3, rejected_lines
