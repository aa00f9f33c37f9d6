"""Tell the world about alert changes without ever blocking ingest.

Each change goes (0) to the second line's webhooks too when it is an
escalation, (1) to MQTT as `{root}/{site}/alerts/{id}`, retained while the
alert is active and cleared with an empty retained message once resolved, and
(2) as a JSON POST to every webhook (a markdown message for WeCom and DingTalk
group robots, recognised by their URLs), each hook with its own queue, retries with
backoff and a failure counter, so one dead endpoint delays nobody else.
Incident changes go to the incident webhooks of their own (`Notifier.incident`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import orjson

from hub.alerts.models import Alert
from hub.incidents.merge import Incident

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = 5
WEBHOOK_BACKOFF_S = (0.5, 1, 2, 4)
QUEUE_MAX = 10_000

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]
SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "一般", "info": "提示"}
STATE_ZH = {"open": "新告警", "acknowledged": "已确认", "resolved": "已恢复"}


def robot_text(alert: Alert) -> str:
    """A markdown line for a group robot: what, where, how bad, and what happened to it."""
    data = alert.to_json()
    lines = [f"**【{SEVERITY_ZH[data['severity']]}】{alert.title}** {STATE_ZH[alert.state]}",
             f"> 设备 {alert.site} / {alert.device}（{alert.kind}）",
             f"> 发生 {data['opened_at']}"]
    if alert.detail:
        lines.append(f"> 详情 {alert.detail}")
    if alert.acknowledged_by:
        lines.append(f"> 确认 {alert.acknowledged_by}")
    if alert.escalated_ms:
        lines.append("> ⚠ 超时未确认，已升级")
    return "\n".join(lines)


def _body(url: str, title: str, robot: Callable[[], str], plain: Callable[[], object]) -> bytes:
    """`plain()` as JSON, or a WeCom / DingTalk group-robot markdown message (`robot()`) for their robot URLs."""
    host = urlsplit(url).hostname or ""
    if host == "qyapi.weixin.qq.com":
        return orjson.dumps({"msgtype": "markdown", "markdown": {"content": robot()}})
    if host == "oapi.dingtalk.com":
        return orjson.dumps({"msgtype": "markdown", "markdown": {"title": title, "text": robot()}})
    return orjson.dumps(plain())


def webhook_body(url: str, alert: Alert) -> bytes:
    """The contract's JSON, or a WeCom / DingTalk group-robot markdown message for their robot URLs."""
    return _body(url, alert.title, lambda: robot_text(alert), alert.to_json)


def incident_json(incident: Incident) -> dict[str, object]:
    """An incident for a webhook: what, where, how bad and its parts' ids, without event fields (personal data
    such as plates stays in the hub; the parts' ids lead back to it)."""
    data = incident.to_json()
    data["parts"] = [{k: v for k, v in p.items() if k != "fields"} for p in data["parts"]]
    return {"type": "incident", **data}


def incident_robot_text(incident: Incident) -> str:
    data = incident.to_json()
    lines = [f"**【{SEVERITY_ZH[data['severity']]}】事件：{incident.title}** {STATE_ZH[incident.state]}",
             f"> 地点 {incident.site} / {'、'.join(data['places'])}",
             f"> 发生 {data['opened_at']}，{len(data['alerts'])} 条告警、{len(data['events'])} 条记录"]
    if incident.people:
        lines.append(f"> 处理人 {'、'.join(incident.people)}")
    return "\n".join(lines)


def incident_body(url: str, incident: Incident) -> bytes:
    return _body(url, incident.title, lambda: incident_robot_text(incident), lambda: incident_json(incident))


class Notifier:
    def __init__(self, root: str, publish: Publish, webhooks: list[str], escalation_webhooks: list[str] | None = None,
                 timeout_s: float = 5.0, incident_webhooks: list[str] | None = None) -> None:
        """`incident_webhooks` hear of incidents; a list of its own, because `webhooks` receivers take every POST
        for the contract's alert payload."""
        self.root = root
        self.publish = publish
        self.webhooks = webhooks
        self.escalation_webhooks = escalation_webhooks or []
        self.incident_webhooks = incident_webhooks or []
        self.timeout_s = timeout_s
        self._mqtt_pending: dict[str, Alert] = {}
        """alert id -> its latest version not yet published (a newer one replaces an older)"""
        self._mqtt_ready = asyncio.Event()
        self._hooks: dict[str, asyncio.Queue[bytes]] = {
            url: asyncio.Queue(QUEUE_MAX) for url in [*webhooks, *self.escalation_webhooks, *self.incident_webhooks]}
        self.delivered: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        """per webhook URL: deliveries that failed after every retry (or were dropped, queue full)"""
        self._incidents: dict[str, tuple[str, str, int]] = {}
        """active incident id -> (state, severity, alerts) last posted"""

    def __call__(self, alert: Alert) -> None:
        """Called by the engine on every change; only queues."""
        self._mqtt_pending[alert.id] = alert
        self._mqtt_ready.set()
        escalated = alert.notes[-1].action == "escalated"
        for url in [*self.webhooks, *(self.escalation_webhooks if escalated else ())]:
            queue = self._hooks[url]
            try:
                queue.put_nowait(webhook_body(url, alert))
            except asyncio.QueueFull:
                self.failures[url] += 1
                log.error("webhook %s is %d changes behind; dropping one", url, QUEUE_MAX)

    def incident(self, incident: Incident) -> None:
        """Called on every incident change; posts only what a reader must hear of (opened, a new alert in it,
        worse, acknowledged, resolved), not each event that joined it."""
        seen = (incident.state, incident.severity.value, len(incident.alerts))
        if not self.incident_webhooks or self._incidents.get(incident.id) == seen:
            return
        if incident.active:
            self._incidents[incident.id] = seen
        else:
            self._incidents.pop(incident.id, None)
        for url in self.incident_webhooks:
            try:
                self._hooks[url].put_nowait(incident_body(url, incident))
            except asyncio.QueueFull:
                self.failures[url] += 1
                log.error("webhook %s is %d changes behind; dropping one", url, QUEUE_MAX)

    def topic(self, alert: Alert) -> str:
        return f"{self.root}/{alert.site}/alerts/{alert.id}"

    async def run(self) -> None:
        """The MQTT publisher plus one worker per webhook, until cancelled."""
        async with httpx.AsyncClient(timeout=self.timeout_s) as http, asyncio.TaskGroup() as tasks:
            tasks.create_task(self._publish_mqtt())
            for url, queue in self._hooks.items():
                tasks.create_task(self._post(http, url, queue))

    async def _publish_mqtt(self) -> None:
        while True:
            await self._mqtt_ready.wait()
            self._mqtt_ready.clear()
            for alert_id, alert in list(self._mqtt_pending.items()):
                payload = orjson.dumps(alert.to_json()) if alert.active else b""
                try:
                    await self.publish(self.topic(alert), payload, 1, True)
                except Exception as exc:  # noqa: BLE001 - broker away: keep it, try again shortly
                    log.warning("cannot publish alert %s yet: %s", alert_id, exc)
                    await asyncio.sleep(1)
                    self._mqtt_ready.set()
                    break
                if self._mqtt_pending.get(alert_id) is alert:
                    del self._mqtt_pending[alert_id]

    async def _post(self, http: httpx.AsyncClient, url: str, queue: asyncio.Queue[bytes]) -> None:
        while True:
            body = await queue.get()
            for attempt in range(WEBHOOK_ATTEMPTS):
                try:
                    response = await http.post(url, content=body, headers={"Content-Type": "application/json"})
                    if response.status_code < 300:
                        self.delivered[url] += 1
                        break
                    reason = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    reason = repr(exc)
                if attempt + 1 == WEBHOOK_ATTEMPTS:
                    self.failures[url] += 1
                    log.error("webhook %s failed %d times (%s); giving up on one change", url, WEBHOOK_ATTEMPTS,
                              reason)
                else:
                    await asyncio.sleep(WEBHOOK_BACKOFF_S[attempt])
