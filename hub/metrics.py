"""Prometheus metrics, read from the hub's plain counters at scrape time.

The hot path only bumps Python ints and Counters; turning them into metric
families happens here, once per scrape, so ingest pays nothing for metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.storage.outbox import WRITE_BUCKETS_S, WriterStats

if TYPE_CHECKING:
    from hub.app import Hub



class HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.pipeline.stats
        yield CounterMetricFamily("smarthub_messages_received", "MQTT messages received", value=stats.received)

        accepted = CounterMetricFamily("smarthub_messages_accepted", "Messages accepted", labels=["kind", "channel"])
        for (kind, channel), n in sorted(stats.accepted.items()):
            accepted.add_metric([kind, channel], n)
        yield accepted

        rejected = CounterMetricFamily("smarthub_messages_rejected", "Messages dead-lettered",
                                       labels=["kind", "reason"])
        for (kind, reason), n in sorted(stats.rejected.items()):
            rejected.add_metric([kind, reason], n)
        yield rejected

        dupes = CounterMetricFamily("smarthub_events_duplicate", "Redelivered events dropped", labels=["kind"])
        for kind, n in sorted(stats.duplicates.items()):
            dupes.add_metric([kind], n)
        yield dupes

        seq = CounterMetricFamily("smarthub_seq_anomalies", "seq gaps (messages missed), duplicates, resets",
                                  labels=["type"])
        for what, n in sorted(stats.seq.items()):
            if what != "ok":
                seq.add_metric([what], n)
        yield seq

        cleared = CounterMetricFamily("smarthub_state_cleared", "Empty state messages (a retained state cleared)",
                                      labels=["kind"])
        for kind, n in sorted(stats.state_cleared.items()):
            cleared.add_metric([kind], n)
        yield cleared

        yield CounterMetricFamily("smarthub_clock_skew", "Messages whose ts was implausible", value=stats.clock_skew)
        yield CounterMetricFamily("smarthub_listener_errors", "Listener exceptions", value=stats.listener_errors)
        handler_errors = CounterMetricFamily("smarthub_handler_errors", "Exceptions raised by an event handler "
                                             "(logged by name; the other handlers still ran)",
                                             labels=["event", "handler"])
        for (event, handler), n in sorted(hub.events.errors.items()):
            handler_errors.add_metric([event, handler], n)
        yield handler_errors

        writer = hub.writer.stats
        yield CounterMetricFamily("smarthub_write_batches", "Batches written to the store", value=writer.batches)
        yield CounterMetricFamily("smarthub_write_points", "Points written to the store", value=writer.points)
        yield CounterMetricFamily("smarthub_write_failures", "Store writes that failed", value=writer.failures)
        yield CounterMetricFamily("smarthub_write_rejected_points", "Points the store refused",
                                  value=writer.rejected_points)
        yield CounterMetricFamily("smarthub_write_split_requests", "Writes made to cut refused batches down to the "
                                  "points the store refuses", value=writer.split_writes)
        yield self._latency(writer)

        yield GaugeMetricFamily("smarthub_outbox_points", "Points waiting in the outbox", value=hub.outbox.depth)
        yield GaugeMetricFamily("smarthub_outbox_bytes", "Bytes of the batches waiting in the outbox",
                                value=hub.outbox.size_bytes)
        yield GaugeMetricFamily("smarthub_outbox_fill", "Outbox bytes as a share of its cap (1: full, MQTT held)",
                                value=hub.outbox.fill)
        dead = hub.dead_letters
        yield CounterMetricFamily("smarthub_deadletters_dropped", "Dead letters dropped, oldest first, to keep within "
                                  "the row or byte cap (since the hub started)", value=dead.dropped)
        yield GaugeMetricFamily("smarthub_deadletters_rows", "Dead letters kept", value=dead.rows)
        yield GaugeMetricFamily("smarthub_deadletters_bytes", "Bytes of the dead letters kept (text and payload)",
                                value=dead.size_bytes)
        yield GaugeMetricFamily("smarthub_pending_points", "Points not yet in the outbox", value=hub.pipeline.pending)
        yield GaugeMetricFamily("smarthub_mqtt_connected", "1 when connected to the broker",
                                value=int(hub.mqtt.connected))
        yield CounterMetricFamily("smarthub_mqtt_connects", "Successful connections to the broker",
                                  value=hub.mqtt.connects)
        yield CounterMetricFamily("smarthub_mqtt_connection_losses", "Connections to the broker that ended",
                                  value=hub.mqtt.losses)
        yield CounterMetricFamily("smarthub_mqtt_acks", "QoS 1 messages acknowledged (each after its commit)",
                                  value=hub.mqtt.acked)
        yield GaugeMetricFamily("smarthub_mqtt_held", "1 while the hub stops reading MQTT (outbox full)",
                                value=int(hub.mqtt.held is not None))
        yield CounterMetricFamily("smarthub_messages_redelivered", "DUP redeliveries of committed messages dropped",
                                  value=stats.redelivered)
        yield CounterMetricFamily("smarthub_messages_repeated", "Messages with ts or seq sent again, dropped",
                                  value=stats.repeated)
        yield GaugeMetricFamily("smarthub_store_up", "1 when the last store write succeeded",
                                value=int(writer.store_up))
        yield GaugeMetricFamily("smarthub_devices", "Devices known (registered or heard)", value=len(hub.registry))

        active = GaugeMetricFamily("smarthub_alerts_active", "Open or acknowledged alerts", labels=["severity"])
        by_severity: dict[str, int] = {}
        for alert in hub.alerts.active.values():
            by_severity[alert.severity.value] = by_severity.get(alert.severity.value, 0) + 1
        for severity, n in sorted(by_severity.items()):
            active.add_metric([severity], n)
        yield active
        hooks = CounterMetricFamily("smarthub_webhook_deliveries", "Alert changes POSTed to webhooks",
                                    labels=["url", "outcome"])
        for url in [*hub.notifier.webhooks, *hub.notifier.escalation_webhooks]:
            hooks.add_metric([url, "ok"], hub.notifier.delivered[url])
            hooks.add_metric([url, "failed"], hub.notifier.failures[url])
        yield hooks
        yield from self._tasks()

    def _tasks(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily("smarthub_task_restarts", "Background task restarts after a failure",
                                       labels=["task"])
        up = GaugeMetricFamily("smarthub_task_up", "1 while the background task runs", labels=["task"])
        for name, status in self.hub.supervisor.status().items():
            restarts.add_metric([name], status.restarts)
            up.add_metric([name], int(status.state == "running"))
        yield restarts
        yield up
        yield CounterMetricFamily("smarthub_screen_refresh_failures", "Big-screen answers whose computation raised",
                                  value=self.hub.screen_cache.failures)

    @staticmethod
    def _latency(writer: WriterStats) -> Metric:
        buckets, running = [], 0
        for bound, count in zip((*map(str, WRITE_BUCKETS_S), "+Inf"), writer.latency_counts, strict=True):
            running += count
            buckets.append((bound, running))
        return HistogramMetricFamily("smarthub_write_seconds", "Store write latency", buckets=buckets,
                                     sum_value=writer.latency_sum_s)


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
