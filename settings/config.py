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

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class Variable:
    env: str
    attribute: str
    default: str | None
    help: str


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
    ),
    Variable(
        "REDIS_URL",
        "redis_url",
        None,
        "Redis URL for the Celery broker, nonces and rate limits; unset: tasks run in-process",
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
    ),
    Variable(
        "K8SMON_RETENTION_DAYS",
        "retention_days",
        "30",
        "days of telemetry, snapshots and superseded manifest versions to keep",
    ),
    Variable(
        "K8SMON_SCAN_INTERVAL_HOURS",
        "scan_interval_hours",
        "4",
        "hours between batched fleet scans",
    ),
    Variable(
        "K8SMON_SWEEP_INTERVAL_MINUTES",
        "sweep_interval_minutes",
        "5",
        "minutes between sweeps that enqueue stored-but-unprocessed snapshots",
    ),
    Variable(
        "K8SMON_SCAN_ON_PUSH",
        "scan_on_push",
        "true",
        "scan a cluster as soon as a push changes its state (debounced per cluster); "
        "`false`: only the batched fleet scans and rescans",
    ),
    Variable("K8SMON_SHARD_SIZE", "shard_size", "2000", "objects per scan shard"),
    Variable(
        "K8SMON_SIGNATURE_WINDOW_SECONDS",
        "signature_window_seconds",
        "300",
        "accepted clock skew of a signature's `created` time, either way",
    ),
    Variable(
        "K8SMON_MAX_BODY_BYTES",
        "max_body_bytes",
        str(16 * 1024 * 1024),
        "largest push body accepted on the wire",
    ),
    Variable(
        "K8SMON_MAX_DECOMPRESSED_BYTES",
        "max_decompressed_bytes",
        str(16 * 1024 * 1024),
        "largest push body after gzip decompression (inflation stops there)",
    ),
    Variable(
        "K8SMON_MAX_PARSED_BYTES",
        "max_parsed_bytes",
        str(96 * 1024 * 1024),
        "largest estimated memory to parse one push; with the two caps above, one push holds "
        "at most 128 MiB, a quarter of the web pod's 512Mi limit (docs/security.md)",
    ),
    Variable(
        "K8SMON_MAX_OBJECTS_PER_PUSH",
        "max_objects_per_push",
        "20000",
        "most objects one snapshot push may carry (full or delta)",
    ),
    Variable(
        "K8SMON_RATE_LIMIT_PER_MINUTE",
        "rate_limit_per_minute",
        "120",
        "pushes accepted per cluster per minute",
    ),
    Variable(
        "K8SMON_RULES_CONFIG",
        "rules_config_path",
        None,
        "YAML file with severity overrides, disabled rules and exemptions",
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
    ),
    Variable(
        "K8SMON_WEBHOOK_ALLOWED_NETWORKS",
        "webhook_allowed_networks",
        "",
        "comma-separated CIDRs that webhooks may reach although private, loopback or "
        "link-local (refused by default)",
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
    ),
    Variable(
        "K8SMON_SLACK_RESPONSE_HOSTS",
        "slack_response_hosts",
        "hooks.slack.com",
        "comma-separated hosts chat-ops may post replies to (Slack's response_url)",
    ),
    Variable(
        "K8SMON_SEARCH_TIMEOUT_SECONDS",
        "search_timeout_seconds",
        "15",
        "time limit of every JSON-path search (admin pages and admin API)",
    ),
    Variable("K8SMON_LOG_LEVEL", "log_level", "INFO", "log level"),
)

_SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
_EMBEDDED_DB = "k8s-monitor.sqlite3"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """All configuration, validated. Build with `load_settings(os.environ)` or directly in tests."""

    environment: str = "embedded"
    database_url: str = ""
    redis_url: str | None = None
    secret_key: str = field(default="", repr=False)
    instance_path: Path = Path("instance")
    retention_days: int = 30
    scan_interval_hours: float = 4.0
    sweep_interval_minutes: float = 5.0
    scan_on_push: bool = True
    shard_size: int = 2000
    signature_window_seconds: int = 300
    max_body_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = 16 * 1024 * 1024
    max_parsed_bytes: int = 96 * 1024 * 1024
    max_objects_per_push: int = 20_000
    rate_limit_per_minute: int = 120
    rules_config_path: Path | None = None
    public_url: str = "http://localhost:8000"
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_allowed_users: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_allow_unsigned: bool = False
    webhook_allowed_networks: tuple[str, ...] = ()
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    slack_response_hosts: tuple[str, ...] = ("hooks.slack.com",)
    search_timeout_seconds: float = 15.0
    log_level: str = "INFO"

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


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "retention_days": _positive_int,
    "scan_on_push": _flag,
    "shard_size": _positive_int,
    "signature_window_seconds": _positive_int,
    "max_body_bytes": _positive_int,
    "max_decompressed_bytes": _positive_int,
    "max_parsed_bytes": _positive_int,
    "max_objects_per_push": _positive_int,
    "rate_limit_per_minute": _positive_int,
    "scan_interval_hours": _positive_float,
    "sweep_interval_minutes": _positive_float,
    "search_timeout_seconds": _positive_float,
    "database_url": _database_url,
    "redis_url": _redis_url,
    "instance_path": lambda _env, raw: Path(raw),
    "rules_config_path": lambda _env, raw: Path(raw),
    "slack_allowed_users": _comma_list,
    "slack_response_hosts": _comma_list,
    "webhook_allowed_networks": _networks,
    "webhook_allow_unsigned": _flag,
    "slack_api_url": _http_url,
}


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
        if raw is None or raw == "":
            raw = var.default
        if raw is None:
            continue
        parser = _PARSERS.get(var.attribute)
        values[var.attribute] = parser(var.env, raw) if parser else raw

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
