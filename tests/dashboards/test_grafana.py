"""Grafana: the dashboards' structure, the provisioning files, and every panel query run on a real InfluxDB.

The queries are InfluxQL over the contract's storage schema. They are checked three ways:
every name they use exists in the schema the device models produce (so dashboards and
devices cannot drift), they keep to the InfluxQL subset InfluxDB 3 serves, and each one,
with Grafana's macros filled in, runs against InfluxDB 1.6 after a real hub has stored
messages of every kind, returning the numbers those messages imply.
"""

from __future__ import annotations

import json
import re
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices import REGISTRY
from devices.base import COMMON_FIELDS, Severity, StatePayload
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.processes import IN_CI

pytestmark = [pytest.mark.integration, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
UID = "smarthub-influxdb"
SITE = "sunshine"

ALLOWED_FUNCTIONS = {"count", "sum", "mean", "max", "min", "last", "first", "percentile", "time", "fill"}
"""What shared STACK-NOTES section 1 lists as working on InfluxDB 3 (plus GROUP BY time() and fill())."""
FORBIDDEN = re.compile(r"\b(SLIMIT|SOFFSET|INTEGRAL|SAMPLE|INTO|SHOW\s+SERIES|SHOW\s+DATABASES|CARDINALITY)\b", re.I)


def yaml_module() -> Any:
    try:
        import yaml
    except ImportError:  # a test dependency: fail under CI, skip on a machine without it
        message = "PyYAML is not installed (pip install pyyaml)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return yaml


def leaves(node: Any) -> Iterator[Any]:
    """Every scalar of parsed YAML (Grafana expands environment variables in values, not in comments)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from leaves(value)
    else:
        yield node


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_FILES}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())  # collapsed rows keep theirs inside


def all_queries(dashboards: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(dashboard uid, panel, target) of every panel query."""
    for dashboard in dashboards.values():
        for panel in all_panels(dashboard):
            for t in panel.get("targets", ()):
                yield dashboard["uid"], panel, t


def grafana_expand(query: str, site_regex: str) -> str:
    """What Grafana sends InfluxDB for a query; an unknown variable fails the test."""
    values = {"timeFilter": "time > now() - 6h", "__interval": "1m", "interval": "1m", "site": site_regex}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown Grafana variable ${name} in {query!r}"
        return values[name]

    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", one, query)
    assert not re.search(r"\$[\w{]", expanded), expanded
    return expanded


# --- the storage schema the device models produce (docs/CONTRACT.md section 5) -----------------------------


def contract_tags() -> set[str]:
    text = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    section = text.split("## 5.", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("|")]
    tags = {name for row in rows[2:] for name in re.findall(r"`(\w+)`", row[3])}
    assert {"site", "device", "type", "code", "label", "kind"} <= tags, tags
    return tags


def literal_values(annotation: Any) -> set[str] | None:
    """The allowed values of a Literal field (also inside Optional), else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return {str(v) for v in typing.get_args(annotation)}
    for arg in typing.get_args(annotation):
        found = literal_values(arg)
        if found is not None:
            return found
    return None


class Measurement:
    def __init__(self, tags: set[str]) -> None:
        self.tags = tags
        self.fields: dict[str, set[str] | None] = {"lag_ms": None, "seq": None}
        self.tag_values: dict[str, set[str]] = {}

    def add_model(self, model: Any, skip: set[str]) -> None:
        for name, info in model.model_fields.items():
            if name in skip:
                continue
            values = literal_values(info.annotation)
            if name in self.tags:
                self.tag_values.setdefault(name, set()).update(values or ())
            else:
                self.fields[name] = (self.fields.get(name) or set()) | values if values else None


def storage_schema() -> dict[str, Measurement]:
    """measurement -> its tags, fields and (where the models say) allowed values, from devices/."""
    registry_tags = {"building"}
    schema: dict[str, Measurement] = {}
    state = Measurement({"site", "kind", "device"})
    state.add_model(StatePayload, set(COMMON_FIELDS))
    state.tag_values["kind"] = set(REGISTRY)
    schema["device_state"] = state
    for kind in REGISTRY.values():
        telemetry = Measurement({"site", "device"} | registry_tags)
        telemetry.add_model(kind.telemetry, set(COMMON_FIELDS))
        schema[kind.name] = telemetry
        events = Measurement({"site", "device", "type", "code", *(t for ts in kind.event_tags.values() for t in ts)})
        for model in (*kind.events, kind.fault):  # type: ignore[attr-defined]
            events.add_model(model, {"ts", "seq", "id"})
        events.fields["id"] = None
        events.tag_values["type"] = set(kind.event_types)
        events.tag_values["code"] = set(kind.faults)
        schema[f"{kind.name}_event"] = events
    return schema


def strip_aliases(query: str) -> str:
    return re.sub(r'\s+AS\s+"[^"]*"', "", query, flags=re.I)


# --- structure ----------------------------------------------------------------------------------------------


def test_every_dashboard_is_complete_and_its_panels_do_not_overlap() -> None:
    dashboards = load_dashboards()
    assert {p.stem for p in DASHBOARD_FILES} >= {"traffic", "elevators", "chargers", "alerts", "hub"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids) and all(uids)
    for name, d in dashboards.items():
        assert 39 <= d["schemaVersion"] <= 41, name  # Grafana 11.0 .. 12.x
        assert re.search(r"[\u4e00-\u9fff]", d["title"]) and re.search(r"[A-Za-z]{3}", d["title"]), d["title"]
        (site,) = [v for v in d["templating"]["list"] if v["name"] == "site"]
        assert site["type"] == "query" and site["datasource"]["uid"] == UID
        assert site["query"] == 'SHOW TAG VALUES WITH KEY = "site"'
        ids = [p["id"] for p in all_panels(d)]
        assert len(set(ids)) == len(ids), name
        cells: dict[tuple[int, int], str] = {}
        for panel in all_panels(d):
            where = f"{name}: {panel['title']}"
            assert panel["datasource"]["uid"] == UID, where
            assert panel["targets"], where
            assert re.search(r"[\u4e00-\u9fff]", panel["title"]) and re.search(r"[A-Za-z]", panel["title"]), where
            for t in panel["targets"]:
                assert t.get("datasource", {"uid": UID})["uid"] == UID, where
                assert t["rawQuery"] is True and t["query"].strip(), where
            pos = panel["gridPos"]
            assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h")), where
            assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{where} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = where


def test_provisioning_names_the_data_source_the_dashboards_use_and_compose_passes_its_variables() -> None:
    yaml = yaml_module()
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "influxdb.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["uid"] == UID and ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"]
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"].startswith("Token ")
    used = {uid for d in load_dashboards().values() for uid in
            [p["datasource"]["uid"] for p in all_panels(d)] + [v["datasource"]["uid"] for v in d["templating"]["list"]]}
    assert used == {ds["uid"]}

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    values = [v for p in (GRAFANA / "provisioning").rglob("*.yml") for v in leaves(yaml.safe_load(p.read_text()))]
    variables = {m for v in values if isinstance(v, str) for m in re.findall(r"\$\{?(\w+)\}?", v)}
    assert variables >= {"INFLUX_BUCKET", "INFLUX_TOKEN"}
    missing = variables - set(env)
    assert not missing, f"docker-compose.yml does not pass {missing} to grafana"
    assert env["INFLUX_URL"] == "http://influxdb:8086" and "influxdb" in compose["services"]

    mounts = dict(reversed(v.split(":")[:2]) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/grafana/provisioning"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "smarthub.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert mounts[provider["options"]["path"]] == "./dashboards/grafana/dashboards"
    volume_paths = [v.split(":")[1] for v in grafana["volumes"] if not v.startswith("./")]
    assert not [p for p in volume_paths if provider["options"]["path"].startswith(p + "/")], "nested in a volume"


def test_every_name_a_query_uses_is_in_the_storage_schema() -> None:
    schema, tags = storage_schema(), contract_tags()
    for uid, panel, t in all_queries(load_dashboards()):
        query, where = t["query"], f"{uid}: {panel['title']}: {t['query']}"
        assert not FORBIDDEN.search(query), where
        functions = {f.lower() for f in re.findall(r"\b(\w+)\s*\(", query)}
        assert functions <= ALLOWED_FUNCTIONS, f"{functions - ALLOWED_FUNCTIONS} in {where}"
        assert "$timeFilter" in query and '"site" =~ /^$site$/' in query, where
        (measurement,) = re.findall(r'\bFROM\s+"(\w+)"', query)
        m = schema[measurement]
        body = strip_aliases(query).split(" FROM ", 1)
        names = set(re.findall(r'"(\w+)"', body[0]))
        assert names and names <= set(m.fields), f"{names - set(m.fields)} not fields of {measurement}: {where}"
        rest = body[1].replace(f'"{measurement}"', "", 1)
        for name, _op, value in re.findall(r'"(\w+)"\s*(=~|!=|=)\s*(\'[^\']*\'|/[^/]*/|true|false|[\d.]+)', rest):
            assert name in m.tags or name in m.fields, f"{name} not in {measurement}: {where}"
            allowed = m.tag_values.get(name) if name in m.tags else m.fields.get(name)
            if name in m.tags:
                assert name in tags, f"tag {name} is not in the contract: {where}"
            if allowed and value.startswith("'"):
                assert value.strip("'") in allowed, f"{name} = {value}: not one of {sorted(allowed)}: {where}"
            if allowed and value.startswith("/^(") and name != "site":
                codes = set(value[3:-3].split("|"))
                assert codes <= allowed, f"{codes - allowed} in {where}"
        group = rest.split("GROUP BY", 1)[1] if "GROUP BY" in rest else ""
        for name in re.findall(r'"(\w+)"', group):
            assert name in m.tags and name in tags, f"GROUP BY {name}: not a tag of {measurement}: {where}"


def critical_codes(kind: str) -> list[str]:
    return [code for code, spec in REGISTRY[kind].faults.items() if spec.severity is Severity.CRITICAL]


def test_critical_fault_panels_list_exactly_the_critical_codes() -> None:
    """The severity of a code is not stored; the panels spell the critical codes out, so they must follow devices/."""
    found: dict[str, set[str]] = {}
    for _, panel, t in all_queries(load_dashboards()):
        if "Critical" in panel["title"]:
            (measurement,) = re.findall(r'FROM "(\w+)_event"', t["query"])
            (codes,) = re.findall(r'"code" =~ /\^\(([^)]*)\)\$/', t["query"])
            found.setdefault(measurement, set()).update(codes.split("|"))
            assert set(codes.split("|")) == set(critical_codes(measurement)), t["query"]
    assert set(found) == {k for k in REGISTRY if critical_codes(k)}


# --- every query on a real InfluxDB ---------------------------------------------------------------------------


def community_messages(run: HubRun, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """Every kind's examples (telemetry, events, state) from two devices, with distinct recent times.

    Distinct `ts` matter: two points of one series at the same millisecond are one point in InfluxDB.
    """
    messages: list[tuple[str, dict[str, Any]]] = []
    for kind in REGISTRY.values():
        one, two = f"{kind.name}-1", f"{kind.name}-2"
        for device in (one, two):
            messages.append((run.topic(kind.name, device, "state"), {"online": True, "fw": "1.0"}))
        for example in kind.examples.get("telemetry", ()):
            messages.append((run.topic(kind.name, one, "telemetry"), dict(example)))
        for example in kind.examples.get("telemetry", ())[:1]:
            messages.append((run.topic(kind.name, two, "telemetry"), dict(example)))
        for i, example in enumerate(kind.examples["event"]):
            messages.append((run.topic(kind.name, one, "event"), dict(example, id=f"{kind.name}-{i}")))
        messages.append((run.topic(kind.name, two, "state"), {"online": False}))
    start = now_ms - 10 * 60_000
    for i, (_, payload) in enumerate(messages):
        payload.pop("seq", None)
        payload["ts"] = start + i * 100
    return messages


async def influxql(client: httpx.AsyncClient, db: str, query: str) -> list[dict[str, Any]]:
    response = await client.get("/query", params={"db": db, "q": query, "epoch": "ms"})
    assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
    series: list[dict[str, Any]] = []
    for result in response.json()["results"]:
        assert "error" not in result, f"{query}: {result['error']}"
        series.extend(result.get("series", ()))
    return series


def numbers(series: list[dict[str, Any]]) -> list[float]:
    return [v for s in series for row in s["values"] for v in row[1:] if isinstance(v, int | float)
            and not isinstance(v, bool)]


def data(series: list[dict[str, Any]]) -> list[Any]:
    """The values that say something: not null, and not the zeros of fill(0)."""
    return [v for s in series for row in s["values"] for v in row[1:] if v is not None and (v is True or v is False
            or not isinstance(v, int | float) or v != 0)]


def panel(dashboards: dict[str, dict[str, Any]], uid: str, title: str) -> dict[str, Any]:
    (dashboard,) = [d for d in dashboards.values() if d["uid"] == uid]
    (found,) = [p for p in all_panels(dashboard) if title in p["title"]]
    return found


async def test_every_query_runs_on_influxdb_and_the_key_panels_show_what_was_published(
    settings_for: Any, mosquitto: Any, influxd: str
) -> None:
    settings = settings_for("influx")
    async with running_hub(settings, mosquitto) as run:
        messages = community_messages(run, int(time.time() * 1000))
        await run.publish_many(messages)
        await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == len(messages), timeout=15,
                         what="every message accepted")
        assert not run.hub.pipeline.stats.rejected
        await run.stored()

    dashboards = load_dashboards()
    results: dict[int, list[dict[str, Any]]] = {}
    async with httpx.AsyncClient(base_url=influxd, timeout=10) as client:
        sites = await influxql(client, settings.influx_db, 'SHOW TAG VALUES WITH KEY = "site"')
        assert {row[1] for s in sites for row in s["values"]} == {SITE}
        for _, _, t in all_queries(dashboards):
            results[id(t)] = await influxql(client, settings.influx_db, grafana_expand(t["query"], f"({SITE})"))
            await influxql(client, settings.influx_db, grafana_expand(t["query"], ".*"))  # "All" sites
            # Every panel has data for the site (the community sent every kind's examples) ...
            assert data(results[id(t)]), t["query"]
            # ... and nothing for another site: the $site filter is really applied.
            other = await influxql(client, settings.influx_db, grafana_expand(t["query"], "(elsewhere)"))
            assert not data(other), t["query"]

    def expected_passages(**match: str) -> int:
        return sum(1 for topic, p in messages if topic.endswith("/gate/gate-1/event") and p["type"] == "passage"
                   and all(p[k] == v for k, v in match.items()))

    traffic = panel(dashboards, "smarthub-traffic", "Passages in / out per hour")
    got_in, got_out = (sum(numbers(results[id(t)])) for t in traffic["targets"])
    assert (got_in, got_out) == (expected_passages(direction="in"), expected_passages(direction="out"))
    assert got_in > 0 and got_out > 0
    denied = panel(dashboards, "smarthub-traffic", "Denials per hour")["targets"][0]
    assert sum(numbers(results[id(denied)])) == expected_passages(decision="denied") > 0

    by_code: dict[str, int] = {}
    for topic, p in messages:
        if "/elevator/" in topic and topic.endswith("/event") and p["type"] == "fault" and p["active"]:
            by_code[p["code"]] = by_code.get(p["code"], 0) + 1
    (faults,) = panel(dashboards, "smarthub-elevators", "Faults by code")["targets"]
    got = {s["tags"]["code"]: sum(numbers([s])) for s in results[id(faults)]}
    assert {c: n for c, n in got.items() if n} == by_code and by_code

    (power,) = panel(dashboards, "smarthub-chargers", "Power per charger")["targets"]
    peak = {s["tags"]["device"]: max(numbers([s])) for s in results[id(power)]}
    sent = {}
    for topic, p in messages:
        if "/charger/" in topic and topic.endswith("/telemetry") and "power_kw" in p:
            device = topic.split("/")[-2]
            sent[device] = max(sent.get(device, 0.0), p["power_kw"])
    assert set(peak) == set(sent) and len(sent) == 2
    assert all(0 < peak[d] <= sent[d] for d in sent)

    (online,) = panel(dashboards, "smarthub-hub", "Devices online")["targets"]
    table = {(s["tags"]["kind"], s["tags"]["device"]): s["values"][0][1] for s in results[id(online)]}
    last_state: dict[tuple[str, str], bool] = {}
    for topic, p in messages:
        if topic.endswith("/state"):
            _, _, kind, device, _ = topic.split("/")
            last_state[(kind, device)] = p["online"]
    assert table == last_state and set(table.values()) == {True, False}
