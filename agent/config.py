"""Agent configuration, read once from the environment (`K8SMON_AGENT_*`) into a frozen value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "K8SMON_AGENT_"
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_KEY_FILE = "/var/run/k8s-monitor/key/private-key.pem"
DEFAULT_KEY_SECRET = "k8s-monitor-agent-key"  # noqa: S105 - a Secret name, not a secret

# Churn that says nothing about security posture and would make every push a large delta.
DEFAULT_EXCLUDED_TYPES = frozenset(
    {
        "events",
        "events.events.k8s.io",
        "leases.coordination.k8s.io",
        "endpoints",
        "endpointslices.discovery.k8s.io",
        "componentstatuses",
        "pods.metrics.k8s.io",
        "nodes.metrics.k8s.io",
    }
)


# Unsent telemetry pings kept for re-sending: an hour at the default ping interval.
DEFAULT_TELEMETRY_BUFFER = 60


class ConfigError(ValueError):
    """The environment does not describe a usable agent configuration."""


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Everything the agent's behaviour depends on; tests build it directly."""

    server_url: str
    cluster_id: str
    key_file: str = DEFAULT_KEY_FILE
    key_secret_name: str = DEFAULT_KEY_SECRET
    namespace: str | None = None
    generate_key: bool = True
    key_id: str | None = None
    push_interval_s: float = 300.0
    ping_interval_s: float = 60.0
    telemetry_buffer: int = DEFAULT_TELEMETRY_BUFFER
    full_push_interval_s: float = 6 * 3600.0
    include_types: frozenset[str] = frozenset()
    exclude_types: frozenset[str] = DEFAULT_EXCLUDED_TYPES
    include_namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    request_timeout_s: float = 30.0
    push_timeout_s: float = 120.0
    page_size: int = 500
    kubeconfig: str | None = None
    ca_file: str | None = None
    max_backoff_s: float = 300.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        """Read `K8SMON_AGENT_*` variables; raise ConfigError naming the variable at fault."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        server_url = reader.text("SERVER_URL")
        cluster_id = reader.text("CLUSTER_ID")
        if not server_url:
            raise ConfigError(f"{PREFIX}SERVER_URL is required")
        if not cluster_id:
            raise ConfigError(f"{PREFIX}CLUSTER_ID is required")
        excluded = reader.names("EXCLUDE_TYPES")
        return cls(
            server_url=server_url.rstrip("/"),
            cluster_id=cluster_id,
            key_file=reader.text("KEY_FILE") or DEFAULT_KEY_FILE,
            key_secret_name=reader.text("KEY_SECRET_NAME") or DEFAULT_KEY_SECRET,
            namespace=reader.text("NAMESPACE") or _service_account_namespace(),
            generate_key=reader.flag("GENERATE_KEY", default=True),
            key_id=reader.text("KEY_ID") or None,
            push_interval_s=reader.seconds("PUSH_INTERVAL", default=300.0),
            ping_interval_s=reader.seconds("PING_INTERVAL", default=60.0),
            telemetry_buffer=reader.count("TELEMETRY_BUFFER", default=DEFAULT_TELEMETRY_BUFFER),
            full_push_interval_s=reader.seconds("FULL_PUSH_INTERVAL", default=6 * 3600.0),
            include_types=reader.names("INCLUDE_TYPES") or frozenset(),
            exclude_types=DEFAULT_EXCLUDED_TYPES if excluded is None else excluded,
            include_namespaces=reader.names("INCLUDE_NAMESPACES") or frozenset(),
            exclude_namespaces=reader.names("EXCLUDE_NAMESPACES") or frozenset(),
            request_timeout_s=reader.seconds("REQUEST_TIMEOUT", default=30.0),
            push_timeout_s=reader.seconds("PUSH_TIMEOUT", default=120.0),
            page_size=int(reader.seconds("PAGE_SIZE", default=500)),
            kubeconfig=reader.text("KUBECONFIG") or None,
            ca_file=reader.text("CA_FILE") or None,
            max_backoff_s=reader.seconds("MAX_BACKOFF", default=300.0),
            log_level=reader.text("LOG_LEVEL") or "INFO",
        )


@dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]

    def text(self, name: str) -> str:
        return self.env.get(PREFIX + name, "").strip()

    def flag(self, name: str, *, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name} must be true or false, not {raw!r}")

    def seconds(self, name: str, *, default: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}{name} must be a number, not {raw!r}") from exc
        if value <= 0:
            raise ConfigError(f"{PREFIX}{name} must be positive")
        return value

    def count(self, name: str, *, default: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{PREFIX}{name} must be a whole number of at least 1, not {raw!r}")
        return int(raw)

    def names(self, name: str) -> frozenset[str] | None:
        """Comma-separated names; None when the variable is unset (so defaults apply)."""
        if PREFIX + name not in self.env:
            return None
        return frozenset(
            part.strip().lower() for part in self.text(name).split(",") if part.strip()
        )


def _service_account_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
