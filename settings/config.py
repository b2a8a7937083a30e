"""Parse and validate k8s-monitor settings from environment variables.

Every variable, its default and meaning is listed in `VARIABLES` (the README's configuration
table is generated from it). Invalid values raise `ConfigError` whose message names the
variable, so start-up stops with one clear line.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def _text(_env: str, raw: str) -> str:
    return raw


def _path(_env: str, raw: str) -> Path:
    return Path(raw)


def _flower_url(env: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{env}: must be an http(s) URL such as https://flower.example.com/, not {raw!r}"
        )
    return raw.strip()


def _positive_int(env: str, raw: str, *, allow_zero: bool = False) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{env} must be a whole number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{env} must be positive, got {raw!r}")
    return value


def _positive_float(env: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{env} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{env} must be positive, got {raw!r}")
    return value


def _comma_list(_env: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _flag(env: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"{env} must be true or false, got {raw!r}")
    return value in {"true", "1", "yes"}


def _networks(env: str, raw: str) -> tuple[str, ...]:
    networks = _comma_list(env, raw)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"{env} must list CIDRs such as 10.0.0.0/8, got {network!r}"
            ) from None
    return networks


def _http_url(env: str, raw: str) -> str:
    if not raw.startswith(("https://", "http://")):
        raise ConfigError(f"{env} must be an http(s) URL, got {raw!r}")
    return raw if raw.endswith("/") else raw + "/"


def _database_url(env: str, raw: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"{env} is not a valid database URL: {raw!r}") from None
    if url.get_backend_name() not in {"postgresql", "postgres", "sqlite"}:
        raise ConfigError(f"{env} must be a postgresql:// or sqlite:// URL, got {raw!r}")
    return raw


def _redis_url(env: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{env} must start with redis://, rediss:// or unix://, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Variable:
    """One setting, declared once: its environment variable, `Settings` attribute, default
    (as written in the environment; None: unset), help, and the parser that turns text into
    the attribute's type (raising ConfigError naming the variable). The attribute's type is
    its annotation on `Settings`, whose defaults are these, parsed."""

    env: str
    attribute: str
    default: str | None
    help: str
    parse: Callable[[str, str], Any] = _text


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "K8SMON_ENV",
        "environment",
        "embedded",
        "`production` (PostgreSQL, Redis, secret required) or `embedded` "
        "(SQLite, in-process tasks)",
    ),
    Variable(
        "DATABASE_URL",
        "database_url",
        None,
        "SQLAlchemy URL; embedded default: SQLite file in the instance folder",
        parse=_database_url,
    ),
    Variable(
        "REDIS_URL",
        "redis_url",
        None,
        "Redis URL for the Celery broker, nonces and rate limits; unset: tasks run in-process",
        parse=_redis_url,
    ),
    Variable(
        "SECRET_KEY",
        "secret_key",
        None,
        "signs sessions and links; required in production, generated once in embedded mode",
    ),
    Variable(
        "K8SMON_INSTANCE_PATH",
        "instance_path",
        "instance",
        "folder for the embedded database, generated secret and HTML reports",
        parse=_path,
    ),
    Variable(
        "K8SMON_RETENTION_DAYS",
        "retention_days",
        "30",
        "days of telemetry, snapshots and superseded manifest versions to keep",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_SCAN_INTERVAL_HOURS",
        "scan_interval_hours",
        "4",
        "hours between batched fleet scans",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_SWEEP_INTERVAL_MINUTES",
        "sweep_interval_minutes",
        "5",
        "minutes between sweeps that enqueue stored-but-unprocessed snapshots",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_WATCHDOG_INTERVAL_SECONDS",
        "watchdog_interval_seconds",
        "60",
        "seconds between runs of the scan watchdog, which re-drives or fails scans whose steps "
        "were lost (docs/pipeline.md#scan-watchdog)",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_SCAN_STALE_SECONDS",
        "scan_stale_seconds",
        "90",
        "a running scan none of whose steps finished for this long is checked for lost steps "
        "(queued or running ones are left alone); with the interval above, a lost step is "
        "re-driven within 2.5 minutes",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_SCAN_MAX_REDRIVES",
        "scan_max_redrives",
        "3",
        "times the watchdog re-sends a scan's lost steps before it fails the scan (with the "
        "reason) and rescans the cluster",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_SCAN_DEADLINE_MINUTES",
        "scan_deadline_minutes",
        "60",
        "a scan still running this long after it started, plus one minute per shard, is "
        "failed by the watchdog (with the reason) and the cluster rescanned",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_SCAN_ON_PUSH",
        "scan_on_push",
        "true",
        "scan a cluster as soon as a push changes its state (debounced per cluster); "
        "`false`: only the batched fleet scans and rescans",
        parse=_flag,
    ),
    Variable(
        "K8SMON_SHARD_SIZE", "shard_size", "2000", "objects per scan shard", parse=_positive_int
    ),
    Variable(
        "K8SMON_SCAN_BATCH_SIZE",
        "scan_batch_size",
        "8",
        "most clusters per task of a fleet scan (`k8smon.scan_clusters`; the batches shrink "
        "toward the scan's end): a worker writes one cluster's findings while it evaluates "
        "the next; 1 sends a task per cluster",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_SIGNATURE_WINDOW_SECONDS",
        "signature_window_seconds",
        "300",
        "accepted clock skew of a signature's `created` time, either way",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_MAX_BODY_BYTES",
        "max_body_bytes",
        str(16 * 1024 * 1024),
        "largest push body accepted on the wire",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_MAX_DECOMPRESSED_BYTES",
        "max_decompressed_bytes",
        str(16 * 1024 * 1024),
        "largest push body after gzip decompression (inflation stops there)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_MAX_PARSED_BYTES",
        "max_parsed_bytes",
        str(96 * 1024 * 1024),
        "largest estimated memory to parse one push; with the two caps above, one push holds "
        "at most 128 MiB, a quarter of the web pod's 512Mi limit (docs/security.md)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_MAX_OBJECTS_PER_PUSH",
        "max_objects_per_push",
        "20000",
        "most objects one snapshot push may carry (full or delta)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_RATE_LIMIT_PER_MINUTE",
        "rate_limit_per_minute",
        "120",
        "pushes accepted per cluster per minute",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_RULES_CONFIG",
        "rules_config_path",
        None,
        "YAML file with severity overrides, disabled rules and exemptions",
        parse=_path,
    ),
    Variable(
        "K8SMON_PUBLIC_URL",
        "public_url",
        "http://localhost:8000",
        "base URL of the admin pages, used in report links",
    ),
    Variable(
        "SLACK_SIGNING_SECRET",
        "slack_signing_secret",
        None,
        "verifies Slack slash-command requests; unset: chat-ops disabled",
    ),
    Variable(
        "SLACK_ALLOWED_USERS",
        "slack_allowed_users",
        "",
        "comma-separated Slack user ids allowed to run chat-ops commands",
        parse=_comma_list,
    ),
    Variable(
        "K8SMON_WEBHOOK_SECRET",
        "webhook_secret",
        None,
        "HMAC-SHA256 key signing generic webhook deliveries; required in production for "
        "generic webhook channels unless K8SMON_WEBHOOK_ALLOW_UNSIGNED is true",
    ),
    Variable(
        "K8SMON_WEBHOOK_ALLOW_UNSIGNED",
        "webhook_allow_unsigned",
        "false",
        "`true` lets production send generic webhooks unsigned (plain test installs only)",
        parse=_flag,
    ),
    Variable(
        "K8SMON_WEBHOOK_ALLOWED_NETWORKS",
        "webhook_allowed_networks",
        "",
        "comma-separated CIDRs that webhooks may reach although private, loopback or "
        "link-local (refused by default)",
        parse=_networks,
    ),
    Variable(
        "SLACK_BOT_TOKEN",
        "slack_bot_token",
        None,
        "Slack bot token (`xoxb-…`) for `#channel` deliveries through chat.postMessage; "
        "unset: only incoming-webhook URLs reach Slack",
    ),
    Variable(
        "K8SMON_SLACK_API_URL",
        "slack_api_url",
        "https://slack.com/api/",
        "base URL of the Slack Web API (tests point it at a local fake)",
        parse=_http_url,
    ),
    Variable(
        "K8SMON_SLACK_RESPONSE_HOSTS",
        "slack_response_hosts",
        "hooks.slack.com",
        "comma-separated hosts chat-ops may post replies to (Slack's response_url)",
        parse=_comma_list,
    ),
    Variable(
        "K8SMON_DELIVERY_RETRY_HOURS",
        "delivery_retry_hours",
        "24",
        "hours a report delivery is retried (capped exponential backoff) before it is "
        "dead-lettered: logged at error level, counted in /metrics, listed on the admin pages",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_DELIVERY_BACKOFF_SECONDS",
        "delivery_backoff_seconds",
        "30",
        "wait after a delivery's first failed attempt; doubled after each further failure",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_DELIVERY_BACKOFF_CAP_SECONDS",
        "delivery_backoff_cap_seconds",
        "3600",
        "longest wait between two attempts of a delivery",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_DELIVERY_INTERVAL_SECONDS",
        "delivery_interval_seconds",
        "60",
        "seconds between the beat's runs of the delivery task, which sends the deliveries due",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_SEARCH_TIMEOUT_SECONDS",
        "search_timeout_seconds",
        "15",
        "time limit of every JSON-path search (admin pages and admin API)",
        parse=_positive_float,
    ),
    Variable(
        "K8SMON_TASK_QUEUE",
        "task_queue",
        "celery",
        "the Celery queue ingest sends to and workers consume (a test or bench run uses its own)",
    ),
    Variable(
        "K8SMON_REDIS_KEY_PREFIX",
        "redis_key_prefix",
        "",
        "prefix of every broker and result key in Redis (isolates runs sharing one Redis)",
    ),
    Variable(
        "K8SMON_VISIBILITY_TIMEOUT",
        "visibility_timeout_seconds",
        None,
        "seconds before an unacknowledged task is delivered again; unset: the longest task's "
        "hard time limit plus 600 (3900, docs/pipeline.md)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_TASK_RETRY_WINDOW_SECONDS",
        "task_retry_window_seconds",
        "900",
        "how long a task keeps retrying a transient or unavailable database/broker error (a "
        "failover, a restart, a read-only spell) before it gives up with the reason "
        "(docs/operations.md)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_TASK_RETRY_BACKOFF_CAP_SECONDS",
        "task_retry_backoff_cap_seconds",
        "60",
        "longest wait between two such retries (the wait doubles from 1 s up to this)",
        parse=_positive_int,
    ),
    Variable(
        "K8SMON_FLOWER_URL",
        "flower_url",
        None,
        "Flower's base URL; the admin pages link each scan run to its task there",
        parse=_flower_url,
    ),
    Variable("K8SMON_LOG_LEVEL", "log_level", "INFO", "log level"),
)


def _default(attribute: str, unset: Any = None) -> Any:
    """A Settings attribute's default: its variable's default text, parsed (one place)."""
    for var in VARIABLES:
        if var.attribute == attribute:
            return unset if var.default is None else var.parse(var.env, var.default)
    raise KeyError(attribute)


def read_variable(env: str, environ: Mapping[str, str]) -> Any:
    """One variable's value from `environ` (blank: its default), parsed by its declaration."""
    for var in VARIABLES:
        if var.env == env:
            raw = (environ.get(env) or "").strip() or var.default
            return None if raw is None else var.parse(env, raw)
    raise KeyError(env)


def readme_table() -> str:
    """The README's configuration table, generated from VARIABLES (a test keeps them equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default else "—"
        rows.append(f"| `{var.env}` | {default} | {var.help} |")
    return "\n".join(rows) + "\n"


_SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
_EMBEDDED_DB = "k8s-monitor.sqlite3"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """All configuration, validated. Build with `load_settings(os.environ)` or directly in tests."""

    environment: str = _default("environment")
    database_url: str = ""
    redis_url: str | None = _default("redis_url")
    secret_key: str = field(default="", repr=False)
    instance_path: Path = _default("instance_path")  # noqa: RUF009 - immutable, parsed once
    retention_days: int = _default("retention_days")
    scan_interval_hours: float = _default("scan_interval_hours")
    sweep_interval_minutes: float = _default("sweep_interval_minutes")
    scan_on_push: bool = _default("scan_on_push")
    watchdog_interval_seconds: float = _default("watchdog_interval_seconds")
    scan_stale_seconds: float = _default("scan_stale_seconds")
    scan_max_redrives: int = _default("scan_max_redrives")
    scan_deadline_minutes: float = _default("scan_deadline_minutes")
    shard_size: int = _default("shard_size")
    scan_batch_size: int = _default("scan_batch_size")
    signature_window_seconds: int = _default("signature_window_seconds")
    max_body_bytes: int = _default("max_body_bytes")
    max_decompressed_bytes: int = _default("max_decompressed_bytes")
    max_parsed_bytes: int = _default("max_parsed_bytes")
    max_objects_per_push: int = _default("max_objects_per_push")
    rate_limit_per_minute: int = _default("rate_limit_per_minute")
    rules_config_path: Path | None = _default("rules_config_path")  # noqa: RUF009
    public_url: str = _default("public_url")
    slack_signing_secret: str | None = field(default=_default("slack_signing_secret"), repr=False)
    slack_allowed_users: tuple[str, ...] = _default("slack_allowed_users")
    webhook_secret: str | None = field(default=_default("webhook_secret"), repr=False)
    webhook_allow_unsigned: bool = _default("webhook_allow_unsigned")
    webhook_allowed_networks: tuple[str, ...] = _default("webhook_allowed_networks")
    slack_bot_token: str | None = field(default=_default("slack_bot_token"), repr=False)
    slack_api_url: str = _default("slack_api_url")
    slack_response_hosts: tuple[str, ...] = _default("slack_response_hosts")
    delivery_retry_hours: float = _default("delivery_retry_hours")
    delivery_backoff_seconds: float = _default("delivery_backoff_seconds")
    delivery_backoff_cap_seconds: float = _default("delivery_backoff_cap_seconds")
    delivery_interval_seconds: float = _default("delivery_interval_seconds")
    search_timeout_seconds: float = _default("search_timeout_seconds")
    task_queue: str = _default("task_queue")
    redis_key_prefix: str = _default("redis_key_prefix")
    visibility_timeout_seconds: int | None = _default("visibility_timeout_seconds")
    task_retry_window_seconds: int = _default("task_retry_window_seconds")
    task_retry_backoff_cap_seconds: int = _default("task_retry_backoff_cap_seconds")
    flower_url: str | None = _default("flower_url")
    log_level: str = _default("log_level")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def tasks_in_process(self) -> bool:
        """Without Redis, tasks run in the calling process (the embedded default)."""
        return not self.redis_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (settings are immutable)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _embedded_secret(instance_path: Path) -> str:
    """The embedded mode's secret: generated once, kept (mode 0600) in the instance folder."""
    path = instance_path / _SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    return secret


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables; raises ConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = env.get(var.env)
        if raw is None or not raw.strip():
            raw = var.default
        if raw is None:
            continue
        values[var.attribute] = var.parse(var.env, raw)

    environment = values.get("environment", "embedded")
    if environment not in {"production", "embedded"}:
        raise ConfigError(f"K8SMON_ENV must be 'production' or 'embedded', got {environment!r}")
    if values.get("log_level", "INFO").upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("K8SMON_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    values["log_level"] = values.get("log_level", "INFO").upper()
    instance_path = values["instance_path"].resolve()
    values["instance_path"] = instance_path

    if environment == "production":
        if not values.get("secret_key"):
            raise ConfigError("SECRET_KEY is required in production (there is no default secret)")
        if len(values["secret_key"]) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters")
        if not values.get("database_url"):
            raise ConfigError("DATABASE_URL is required in production")
        if not values.get("redis_url"):
            raise ConfigError("REDIS_URL is required in production")
    else:
        if not values.get("database_url"):
            instance_path.mkdir(parents=True, exist_ok=True)
            values["database_url"] = f"sqlite:///{instance_path / _EMBEDDED_DB}"
        if not values.get("secret_key"):
            values["secret_key"] = _embedded_secret(instance_path)
    return Settings(**values)
