"""Prometheus metrics of one app instance (its own CollectorRegistry: no global state)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("k8smon.ingest")

DELIVERIES_HELP = (
    "Report deliveries not yet acknowledged, by state: pending (awaiting an attempt or a "
    "retry) and dead (dead-lettered after the retry window: re-send from the admin pages)"
)


class DeliveriesCollector(Collector):
    """`k8smon_deliveries{state}`, read from the database at each scrape: the worker, not this
    process, dead-letters deliveries. A scrape while the database is down leaves it out."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self._count = count

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("k8smon_deliveries", DELIVERIES_HELP, labels=["state"])

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._count()
        except Exception as problem:  # the scrape still answers with the other metrics
            log.warning("k8smon_deliveries not collected: %s", problem)
            return
        family = GaugeMetricFamily("k8smon_deliveries", DELIVERIES_HELP, labels=["state"])
        for state, count in sorted(counts.items()):
            family.add_metric([state], count)
        yield family


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.accepted = Counter(
            "k8smon_pushes_accepted", "Pushes accepted (202)", ["kind"], registry=self.registry
        )
        self.refused = Counter(
            "k8smon_pushes_refused",
            "Requests refused, by reason code",
            ["reason"],
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "k8smon_push_bytes_in",
            "Request body bytes received on the wire",
            ["kind"],
            registry=self.registry,
        )
        self.enqueue_failures = Counter(
            "k8smon_enqueue_failures",
            "Tasks that could not be enqueued after commit",
            registry=self.registry,
        )
        self.latency = Histogram(
            "k8smon_request_duration_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )

    def watch_deliveries(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Export the deliveries gauge, counted by `count` at each scrape."""
        self.registry.register(DeliveriesCollector(count))
