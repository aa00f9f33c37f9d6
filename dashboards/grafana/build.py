"""Writes the Grafana dashboards in dashboards/grafana/dashboards/ (run: python -m dashboards.grafana.build).

The JSON files are what Grafana provisions; this module is their source, so the five
dashboards share one layout, one data source and one way of writing queries. A test
checks the committed files are what this writes, and runs every query against a real
InfluxDB. Queries are raw InfluxQL over the contract's storage schema (docs/CONTRACT.md
section 5), kept to what InfluxDB 1.x, 2.x and 3.x all answer (shared STACK-NOTES
section 1): count, sum, mean, max, min, last, percentile, GROUP BY time() and fill().
Counters (trips, door cycles, the energy meter) are turned into amounts by Grafana's
`delta` reducer, not by DIFFERENCE(), and the total charging power by Grafana
transformations, not by a subquery.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devices import REGISTRY
from devices.base import Severity

DATASOURCE = {"type": "influxdb", "uid": "smarthub-influxdb"}
SCHEMA_VERSION = 39
"""Grafana 11.0's; 11.x and 12.x load it and migrate it in memory."""
OUT = Path(__file__).resolve().parent / "dashboards"

SITE = '"site" =~ /^$site$/'
WHERE = f"{SITE} AND $timeFilter"
KINDS = sorted(REGISTRY)
CHARGER_MAX_C = 70
"""SMARTHUB_CHARGER_MAX_C's default: the temperature at which the hub raises high_temperature."""


def critical_codes(kind: str) -> list[str]:
    return [code for code, spec in REGISTRY[kind].faults.items() if spec.severity is Severity.CRITICAL]


def target(query: str, alias: str = "", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "rawQuery": True, "query": query,
                         "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def targets(*pairs: tuple[str, str], fmt: str = "time_series") -> list[dict[str, Any]]:
    """(query, alias) pairs as targets A, B, C..."""
    return [target(q, a, chr(ord("A") + i), fmt) for i, (q, a) in enumerate(pairs)]


class Layout:
    """Places panels left to right in rows of Grafana's 24 columns; a panel too wide starts a new row."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {"id": self.next_id, "datasource": DATASOURCE, **panel, "gridPos": {"x": self.x, "y": self.y,
                                                                                   "w": w, "h": h}}
        self.next_id += 1
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def timeseries(title: str, tgts: list[dict[str, Any]], *, unit: str = "short", bars: bool = False,
               stack: bool = False, interval: str | None = None, description: str = "",
               thresholds: list[dict[str, Any]] | None = None, decimals: int | None = None) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "bars" if bars else "line", "fillOpacity": 80 if bars else 10,
                              "lineWidth": 1, "showPoints": "never", "spanNulls": True,
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults: dict[str, Any] = {"unit": unit, "custom": custom}
    if decimals is not None:
        defaults["decimals"] = decimals
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        custom["thresholdsStyle"] = {"mode": "line"}
    panel: dict[str, Any] = {"type": "timeseries", "title": title, "description": description, "targets": tgts,
                             "fieldConfig": {"defaults": defaults, "overrides": []},
                             "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                         "tooltip": {"mode": "multi", "sort": "desc"}}}
    if interval:
        panel["interval"] = interval
    return panel


def reduced(kind: str, title: str, tgts: list[dict[str, Any]], *, calc: str = "lastNotNull", unit: str = "short",
            description: str = "", thresholds: list[dict[str, Any]] | None = None,
            transformations: list[dict[str, Any]] | None = None, interval: str | None = None) -> dict[str, Any]:
    """A stat or bar gauge: one number per series, reduced by `calc` over the time range."""
    defaults: dict[str, Any] = {"unit": unit, "min": 0}
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    options: dict[str, Any] = {"reduceOptions": {"calcs": [calc], "fields": "", "values": False},
                               "orientation": "horizontal"}
    if kind == "stat":
        options |= {"colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto"}
    else:
        options |= {"displayMode": "gradient", "showUnfilled": True}
    panel: dict[str, Any] = {"type": kind, "title": title, "description": description, "targets": tgts,
                             "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options}
    if transformations:
        panel["transformations"] = transformations
    if interval:
        panel["interval"] = interval
    return panel


def table(title: str, tgts: list[dict[str, Any]], description: str = "", merge: bool = False) -> dict[str, Any]:
    panel: dict[str, Any] = {"type": "table", "title": title, "description": description, "targets": tgts,
                             "fieldConfig": {"defaults": {}, "overrides": []},
                             "options": {"showHeader": True, "cellHeight": "sm"}}
    if merge:
        panel["transformations"] = [{"id": "merge", "options": {}}]
    return panel


def state_timeline(title: str, tgts: list[dict[str, Any]], description: str = "",
                   interval: str = "1m") -> dict[str, Any]:
    return {"type": "state-timeline", "title": title, "description": description, "targets": tgts,
            "interval": interval,
            "fieldConfig": {"defaults": {"color": {"mode": "palette-classic"}}, "overrides": []},
            "options": {"showValue": "auto", "mergeValues": True, "rowHeight": 0.8,
                        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}}


GREEN_RED = [{"color": "green", "value": None}, {"color": "red", "value": 1}]


def dashboard(uid: str, title: str, description: str, layout: Layout, tags: list[str]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["smarthub", *tags],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "links": [{"type": "dashboards", "tags": ["smarthub"], "asDropdown": True, "title": "smarthub",
                   "includeVars": True, "keepTime": True}],
        "annotations": {"list": []},
        "templating": {"list": [{
            "name": "site",
            "label": "小区 Site",
            "type": "query",
            "datasource": DATASOURCE,
            "query": 'SHOW TAG VALUES WITH KEY = "site"',
            "definition": 'SHOW TAG VALUES WITH KEY = "site"',
            "refresh": 2,
            "sort": 1,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {},
            "options": [],
        }]},
        "panels": layout.panels,
    }


def passages(condition: str = "", group: str = "time(1h)", fill: str = " fill(0)") -> str:
    extra = f" AND {condition}" if condition else ""
    by = f" GROUP BY {group}{fill}" if group else ""
    return f"""SELECT count("plate") FROM "gate_event" WHERE "type" = 'passage'{extra} AND {WHERE}{by}"""


def faults(kind: str, group: str, active: bool = True, codes: list[str] | None = None) -> str:
    extra = f" AND \"code\" =~ /^({'|'.join(codes)})$/" if codes else ""
    by = f" GROUP BY {group}" if group else ""
    return (f"""SELECT count("active") FROM "{kind}_event" WHERE "type" = 'fault' AND "active" = """
            f"""{'true' if active else 'false'}{extra} AND {WHERE}{by}""")


def traffic() -> dict[str, Any]:
    lay = Layout()
    for title, cond in (("驶入 Vehicles in", "\"direction\" = 'in'"), ("驶出 Vehicles out", "\"direction\" = 'out'"),
                        ("拒绝放行 Denied", "\"decision\" = 'denied'"), ("人工放行 Manual", "\"decision\" = 'manual'")):
        lay.add(reduced("stat", title, [target(passages(cond, group=""))], description="In the time range."), 6, 4)
    lay.add(timeseries("每小时通行 Passages in / out per hour", targets(
        (passages("\"direction\" = 'in'"), "驶入 in"), (passages("\"direction\" = 'out'"), "驶出 out")),
        bars=True, decimals=0), 16, 9)
    lay.add(reduced("bargauge", "按类别 Passages by category", targets(
        *((passages(f"\"category\" = '{c}'", group=""), label) for c, label in (
            ("resident", "居民 resident"), ("visitor", "访客 visitor"), ("unknown", "未知 unknown"),
            ("blacklisted", "黑名单 blacklisted")))), description="In the time range."), 8, 9)
    lay.add(timeseries("每小时拒绝放行 Denials per hour", targets(
        (passages("\"decision\" = 'denied'"), "拒绝 denied"), (passages("\"decision\" = 'manual'"), "人工 manual")),
        bars=True, decimals=0), 12, 8)
    lay.add(timeseries("各道闸每小时通行 Passages per hour by gate",
                       [target(passages(group='time(1h), "device"'), "$tag_device")], bars=True, stack=True,
                       decimals=0), 12, 8)
    lay.add(reduced("bargauge", "各道闸通行 Passages by gate (in / out)", targets(
        (passages("\"direction\" = 'in'", group='"device"', fill=""), "$tag_device 驶入 in"),
        (passages("\"direction\" = 'out'", group='"device"', fill=""), "$tag_device 驶出 out")),
        description="In the time range."), 8, 9)
    lay.add(reduced("bargauge", "各道闸拒绝 Denials by gate",
                    [target(passages("\"decision\" = 'denied'", group='"device"', fill=""), "$tag_device")],
                    description="In the time range."), 8, 9)
    lay.add(reduced("bargauge", "道闸故障 Gate faults by code",
                    [target(faults("gate", '"code"'), "$tag_code")], thresholds=GREEN_RED,
                    description="Faults raised (active=true) in the time range."), 8, 9)
    lay.add(table("道闸状态 Barrier of each gate",
                  [target(f'SELECT last("barrier") AS "barrier", last("cycles") AS "cycles" FROM "gate" '
                          f'WHERE {WHERE} GROUP BY "device"', fmt="table")],
                  description="Last barrier state and cycle counter each gate reported in the time range.",
                  merge=True), 24, 7)
    return dashboard("smarthub-traffic", "车辆通行 Vehicle traffic",
                     "Plate-reading gates (车道闸): measurement gate_event, type=passage (direction, decision and "
                     "category are fields), and gate telemetry.", lay, ["gate"])


def elevators() -> dict[str, Any]:
    lay = Layout()
    crit = critical_codes("elevator")
    lay.add(reduced("stat", "严重故障 Critical faults", [target(faults("elevator", "", codes=crit))],
                    thresholds=GREEN_RED, description="Critical fault codes raised in the time range: "
                    + ", ".join(crit)), 6, 5)
    lay.add(reduced("stat", "故障合计 All faults", [target(faults("elevator", ""))],
                    description="Faults raised (active=true) in the time range."), 6, 5)
    lay.add(reduced("stat", "困人 Passengers trapped",
                    [target(faults("elevator", "", codes=["trapped_passenger"]))], thresholds=GREEN_RED,
                    description="trapped_passenger faults reported by the cars (the hub's suspected-trapping "
                    "rule raises alerts only, see the hub's API)."), 6, 5)
    lay.add(reduced("stat", "最大载重 Max load", [target(f'SELECT max("load_kg") FROM "elevator" WHERE {WHERE}')],
                    unit="masskg", calc="max"), 6, 5)
    lay.add(timeseries("故障 (按代码) Faults by code",
                       [target(faults("elevator", 'time($__interval), "code" fill(none)'), "$tag_code")],
                       bars=True, stack=True, interval="1m", decimals=0), 16, 9)
    lay.add(reduced("bargauge", "故障排行 Faults in range by code",
                    [target(faults("elevator", '"code"'), "$tag_code")], thresholds=GREEN_RED), 8, 9)
    counter = ('SELECT max("{f}") FROM "elevator" WHERE ' + WHERE + ' GROUP BY time($__interval), "device" fill(none)')
    lay.add(reduced("bargauge", "运行次数 Trips by car", [target(counter.format(f="trips"), "$tag_device")],
                    calc="delta", interval="1m",
                    description="Increase of each car's trip counter in the time range (Grafana's delta)."), 8, 8)
    lay.add(reduced("bargauge", "开关门次数 Door cycles by car",
                    [target(counter.format(f="door_cycles"), "$tag_device")], calc="delta", interval="1m",
                    description="Increase of each car's door-cycle counter in the time range."), 8, 8)
    lay.add(timeseries("载重 Load by car", [target(
        f'SELECT mean("load_kg") FROM "elevator" WHERE {WHERE} GROUP BY time($__interval), "device" fill(none)',
        "$tag_device")], unit="masskg", interval="1m"), 8, 8)
    lay.add(timeseries("楼层 Floor of each car", [target(
        f'SELECT last("floor") FROM "elevator" WHERE {WHERE} GROUP BY time($__interval), "device" fill(previous)',
        "$tag_device")], interval="1m", decimals=0), 12, 8)
    lay.add(state_timeline("运行模式 Mode of each car", [target(
        f'SELECT last("mode") FROM "elevator" WHERE {WHERE} GROUP BY time($__interval), "device" fill(previous)',
        "$tag_device")]), 12, 8)
    fields = ("mode", "floor", "direction", "door", "running", "occupied", "load_kg", "trips")
    select = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
    lay.add(table("各梯当前状态 Each car now", [target(
        f'SELECT {select} FROM "elevator" WHERE {WHERE} GROUP BY "device"', fmt="table")],
        description="The last value of each field each car reported in the time range.", merge=True), 24, 8)
    return dashboard("smarthub-elevators", "电梯运行 Elevators",
                     "IoT elevators (电梯): telemetry in measurement elevator, faults in elevator_event "
                     "(type=fault, tag code, field active).", lay, ["elevator"])


def chargers() -> dict[str, Any]:
    lay = Layout()
    power = f'SELECT mean("power_kw") FROM "charger" WHERE {WHERE} GROUP BY time($__interval), "device" fill(previous)'
    total = [{"id": "joinByField", "options": {"mode": "outer", "byField": "Time"}},
             {"id": "calculateField", "options": {"mode": "reduceRow", "reduce": {"reducer": "sum"},
                                                  "alias": "总功率 total kW", "replaceFields": True}}]
    lay.add(reduced("stat", "当前总功率 Total power now", [target(power, "$tag_device")], unit="kwatt",
                    transformations=total, interval="1m",
                    description="Sum over chargers of each one's mean power in the last interval."), 6, 5)
    stop = f"""FROM "charger_event" WHERE "type" = 'session_stop' AND {WHERE}"""
    start = f"""FROM "charger_event" WHERE "type" = 'session_start' AND {WHERE}"""
    lay.add(reduced("stat", "充电量 Energy delivered", [target(f'SELECT sum("energy_kwh") {stop}')],
                    unit="kwatth", description="Energy of the sessions that ended in the time range."), 6, 5)
    lay.add(reduced("stat", "充电次数 Sessions started", [target(f'SELECT count("session") {start}')]), 6, 5)
    lay.add(reduced("stat", "平均时长 Mean session duration", [target(f'SELECT mean("duration_s") {stop}')],
                    unit="s", description="Of the sessions that ended in the time range."), 6, 5)
    lay.add(timeseries("各桩功率 Power per charger", [target(power, "$tag_device")], unit="kwatt", interval="1m",
                       description="Mean power_kw of each charge point per interval (its connectors averaged)."),
            12, 9)
    lay.add(timeseries("总功率 Total power (stacked by charger)", [target(power, "$tag_device")], unit="kwatt",
                       stack=True, interval="1m",
                       description="The top of the stack is the community's charging load on the transformer."),
            12, 9)
    lay.add(timeseries("每小时充电量 Energy per hour", [target(
        f'SELECT sum("energy_kwh") {stop} GROUP BY time(1h) fill(0)', "kWh")], unit="kwatth", bars=True,
        description="Energy of sessions, counted in the hour they ended."), 8, 8)
    lay.add(reduced("bargauge", "电表增量 Energy by charger (meter)", [target(
        f'SELECT max("energy_kwh") FROM "charger" WHERE {WHERE} GROUP BY time($__interval), "device" fill(none)',
        "$tag_device")], calc="delta", unit="kwatth", interval="1m",
        description="Increase of each charger's cumulative meter in the time range."), 8, 8)
    lay.add(timeseries("每小时充电次数 Sessions per hour", targets(
        (f'SELECT count("session") {start} GROUP BY time(1h) fill(0)', "开始 started"),
        (f'SELECT count("session") {stop} GROUP BY time(1h) fill(0)', "结束 ended")), bars=True, decimals=0), 8, 8)
    lay.add(timeseries("温度 Temperature", [target(
        f'SELECT max("temperature_c") FROM "charger" WHERE {WHERE} GROUP BY time($__interval), "device" fill(none)',
        "$tag_device")], unit="celsius", interval="1m",
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": CHARGER_MAX_C}],
        description=f"Hottest reading per interval; the hub raises high_temperature above {CHARGER_MAX_C} °C "
        "(SMARTHUB_CHARGER_MAX_C)."), 12, 8)
    lay.add(reduced("bargauge", "充电桩故障 Charger faults by code",
                    [target(faults("charger", '"code"'), "$tag_code")], thresholds=GREEN_RED,
                    description="Faults raised (active=true) in the time range."), 12, 8)
    fields = ("status", "power_kw", "limit_kw", "energy_kwh", "temperature_c", "voltage_v", "current_a")
    select = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
    lay.add(table("各桩当前状态 Each charger now", [target(
        f'SELECT {select} FROM "charger" WHERE {WHERE} GROUP BY "device"', fmt="table")],
        description="The last value of each field each charger reported in the time range.", merge=True), 24, 8)
    return dashboard("smarthub-chargers", "充电桩 EV chargers",
                     "EV chargers (充电桩): telemetry in measurement charger, sessions and faults in charger_event.",
                     lay, ["charger"])


def alerts() -> dict[str, Any]:
    lay = Layout()
    names = {k: f"{REGISTRY[k].zh} {k}" for k in KINDS}
    with_critical = [k for k in KINDS if critical_codes(k)]
    lay.add(reduced("stat", "严重故障 Critical faults", targets(
        *((faults(k, "", codes=critical_codes(k)), names[k]) for k in with_critical)), thresholds=GREEN_RED,
        description="Critical fault codes (per the devices' fault tables) raised in the time range."), 12, 5)
    lay.add(reduced("stat", "故障合计 All faults raised", targets(*((faults(k, ""), names[k]) for k in KINDS)),
                    description="Faults raised (active=true) in the time range, per kind."), 12, 5)
    lay.add(timeseries("故障发生 Faults raised per kind", targets(
        *((faults(k, "time($__interval) fill(0)"), names[k]) for k in KINDS)), bars=True, stack=True,
        interval="5m", decimals=0), 16, 9)
    lay.add(reduced("bargauge", "故障排行 Faults by code", targets(
        *((faults(k, '"code"'), f"{k} $tag_code") for k in KINDS)), thresholds=GREEN_RED), 8, 9)
    lay.add(timeseries("故障清除 Faults cleared per kind", targets(
        *((faults(k, "time($__interval) fill(0)", active=False), names[k]) for k in KINDS)), bars=True,
        stack=True, interval="5m", decimals=0), 12, 8)
    lay.add(timeseries("摄像头事件 Camera detections by label", [target(
        f"""SELECT count("score") FROM "camera_event" WHERE "type" = 'detection' AND "phase" = 'start' """
        f'AND {WHERE} GROUP BY time($__interval), "label" fill(none)', "$tag_label")], bars=True, stack=True,
        interval="5m", decimals=0, description="Detections that started (高空抛物, smoke, fire...)."), 12, 8)
    lay.add(table("最近故障 Latest fault events", targets(*((
        f"""SELECT "active", "detail" FROM "{k}_event" WHERE "type" = 'fault' AND {WHERE} """
        f'GROUP BY "device", "code" ORDER BY time DESC LIMIT 20', "") for k in KINDS), fmt="table"),
        description="The newest fault events of each device and code (active=false clears).", merge=True), 16, 10)
    lay.add(timeseries("门禁拒绝 Access denied", [target(
        f"""SELECT count("subject") FROM "access_event" WHERE "type" = 'access' AND "result" = 'denied' """
        f"AND {WHERE} GROUP BY time($__interval) fill(0)", "拒绝 denied")], bars=True, interval="5m",
        decimals=0), 8, 10)
    return dashboard("smarthub-alerts", "告警 Alerts (device faults)",
                     "The hub keeps its alerts (with acknowledgements, escalations and work orders) in its own "
                     "SQLite store, not in InfluxDB: see the hub's /api/alerts. This dashboard shows what InfluxDB "
                     "holds: the fault events the devices reported ({kind}_event, type=fault; active=true raises, "
                     "active=false clears) and camera detections. Alerts the hub derives itself (offline, suspected "
                     "trapping, door held open, overheating) are not here.", lay, ["alerts"])


def hub_health() -> dict[str, Any]:
    lay = Layout()
    state = f'FROM "device_state" WHERE {WHERE}'
    lay.add(table("设备在线 Devices online (last state)", [target(
        f'SELECT last("online") AS "online" {state} GROUP BY "kind", "device"', fmt="table")],
        description="The last retained state (online / last will) each device published in the time range. "
        "The hub's heartbeat check (silence past SMARTHUB_HEARTBEAT_S) is live state only: see /api/devices.",
        merge=True), 8, 10)
    lay.add(state_timeline("在线状态 Online over time", [target(
        f'SELECT last("online") {state} GROUP BY time($__interval), "kind", "device" fill(previous)',
        "$tag_kind/$tag_device")]), 16, 10)
    lay.add(timeseries("掉线 Went offline per kind", [target(
        f'SELECT count("online") FROM "device_state" WHERE "online" = false AND {WHERE} '
        f'GROUP BY time($__interval), "kind" fill(0)', "$tag_kind")], bars=True, interval="5m", decimals=0,
        description="state messages with online=false (a device's last will or clean disconnect)."), 8, 8)
    lay.add(timeseries("事件延迟 Event lag p95", targets(*((
        f'SELECT percentile("lag_ms", 95) FROM "{k}_event" WHERE {WHERE} GROUP BY time($__interval) fill(none)',
        k) for k in KINDS)), unit="ms", interval="1m",
        description="Field lag_ms: receive time minus the device's ts."), 8, 8)
    lay.add(timeseries("遥测延迟 Telemetry lag p95", targets(*((
        f'SELECT percentile("lag_ms", 95) FROM "{k}" WHERE {WHERE} GROUP BY time($__interval) fill(none)',
        k) for k in KINDS)), unit="ms", interval="1m"), 8, 8)
    lay.add(timeseries("消息速率 Messages per minute by kind", targets(*(
        (f'SELECT count("lag_ms") FROM "{m}" WHERE {WHERE} GROUP BY time(1m) fill(0)', m)
        for k in KINDS for m in (k, f"{k}_event"))), unit="short", stack=True,
        description="Points stored per minute: telemetry ({kind}) and events ({kind}_event). Rejected "
        "messages are not stored: see the hub's /metrics (smarthub_messages_rejected)."), 16, 9)
    lay.add(reduced("stat", "最大延迟 Max event lag", targets(*((
        f'SELECT max("lag_ms") FROM "{k}_event" WHERE {WHERE}', k) for k in KINDS)), unit="ms", calc="max"),
        8, 9)
    return dashboard("smarthub-hub", "平台健康 Hub health",
                     "What the hub stored: device_state (online), receive lag (field lag_ms of every point) and "
                     "points per kind. The hub's own counters (rejections, outbox, MQTT) are on /metrics.",
                     lay, ["hub"])


DASHBOARDS = {"traffic": traffic, "elevators": elevators, "chargers": chargers, "alerts": alerts, "hub": hub_health}


def render(build: Any) -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / f"{name}.json").write_text(render(build), encoding="utf-8")
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
