"""Prometheus metrics of one app instance (its own CollectorRegistry: no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


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
