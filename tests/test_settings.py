"""Settings: defaults, validation with messages that name the variable, no default secret."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from settings import ConfigError, load_settings
from settings.config import VARIABLES, Settings
from workers.celery_app import VISIBILITY_TIMEOUT_S, BrokerOptions


def test_embedded_default_uses_sqlite_and_a_generated_secret(tmp_path: Path) -> None:
    settings = load_settings({"K8SMON_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'k8s-monitor.sqlite3'}"
    assert settings.tasks_in_process
    assert len(settings.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = load_settings({"K8SMON_INSTANCE_PATH": str(tmp_path)})
    assert again.secret_key == settings.secret_key


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DATABASE_URL": "not a url at all"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"K8SMON_RETENTION_DAYS": "-3"}, "K8SMON_RETENTION_DAYS"),
        ({"K8SMON_RETENTION_DAYS": "thirty"}, "K8SMON_RETENTION_DAYS"),
        ({"K8SMON_SHARD_SIZE": "0"}, "K8SMON_SHARD_SIZE"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"K8SMON_ENV": "staging"}, "K8SMON_ENV"),
        ({"K8SMON_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,intranet"}, "K8SMON_WEBHOOK_ALLOWED"),
        ({"K8SMON_WEBHOOK_ALLOW_UNSIGNED": "maybe"}, "K8SMON_WEBHOOK_ALLOW_UNSIGNED"),
        ({"K8SMON_SLACK_API_URL": "slack.com/api"}, "K8SMON_SLACK_API_URL"),
        (
            {
                "K8SMON_ENV": "production",
                "DATABASE_URL": "postgresql://db/k",
                "REDIS_URL": "redis://r",
            },
            "SECRET_KEY",
        ),
        (
            {
                "K8SMON_ENV": "production",
                "SECRET_KEY": "short",
                "DATABASE_URL": "postgresql://d/k",
                "REDIS_URL": "redis://r",
            },
            "SECRET_KEY",
        ),
    ],
)
def test_bad_configuration_names_the_variable(
    environ: dict[str, str], variable: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"K8SMON_INSTANCE_PATH": str(tmp_path), **environ})
    message = str(error.value)
    assert variable in message
    assert "\n" not in message


def test_production_settings_are_immutable(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "K8SMON_ENV": "production",
            "SECRET_KEY": "s" * 40,
            "DATABASE_URL": "postgresql://db/k8smon",
            "REDIS_URL": "redis://cache:6379/0",
            "K8SMON_INSTANCE_PATH": str(tmp_path),
        }
    )
    assert settings.is_production and not settings.tasks_in_process
    with pytest.raises(AttributeError):
        settings.retention_days = 1  # type: ignore[misc]
    assert settings.replace(retention_days=7).retention_days == 7
    assert "s" * 40 not in repr(settings)


def test_bare_postgresql_urls_use_the_pinned_psycopg2_driver() -> None:
    from store.db import make_engine, with_pinned_driver  # noqa: PLC0415

    assert with_pinned_driver("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_pinned_driver("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_pinned_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert make_engine("postgresql://u@h/db").dialect.driver == "psycopg2"


def test_channel_settings_are_parsed(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "K8SMON_INSTANCE_PATH": str(tmp_path),
            "K8SMON_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1/32",
            "K8SMON_WEBHOOK_ALLOW_UNSIGNED": "true",
            "K8SMON_SLACK_API_URL": "http://127.0.0.1:9999/api",
            "K8SMON_SLACK_RESPONSE_HOSTS": "hooks.slack.com,127.0.0.1",
            "SLACK_BOT_TOKEN": "xoxb-1",
        }
    )
    assert settings.webhook_allowed_networks == ("10.0.0.0/8", "127.0.0.1/32")
    assert settings.webhook_allow_unsigned is True
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.slack_response_hosts == ("hooks.slack.com", "127.0.0.1")
    assert "xoxb-1" not in repr(settings)
    defaults = load_settings({"K8SMON_INSTANCE_PATH": str(tmp_path)})
    assert defaults.webhook_allowed_networks == () and defaults.webhook_allow_unsigned is False
    assert defaults.slack_response_hosts == ("hooks.slack.com",)


def test_every_setting_is_declared_once() -> None:
    """Each Settings attribute is one Variable; its default there is the dataclass default."""
    attributes = [v.attribute for v in VARIABLES]
    assert sorted(attributes) == sorted(f.name for f in fields(Settings))
    assert len(set(attributes)) == len(attributes)
    defaults = Settings()
    for var in VARIABLES:
        if var.default is not None and var.attribute not in {"database_url", "secret_key"}:
            assert getattr(defaults, var.attribute) == var.parse(var.env, var.default), var.env


def test_broker_and_flower_settings(tmp_path: Path) -> None:
    base = {"K8SMON_INSTANCE_PATH": str(tmp_path)}
    settings = load_settings(
        {
            **base,
            "K8SMON_TASK_QUEUE": "q1",
            "K8SMON_REDIS_KEY_PREFIX": "p:",
            "K8SMON_FLOWER_URL": "http://flower:5555",
        }
    )
    options = BrokerOptions.from_settings(settings)
    assert (options.queue, options.key_prefix) == ("q1", "p:")
    assert options.visibility_timeout_s == VISIBILITY_TIMEOUT_S
    assert settings.flower_url == "http://flower:5555"
    timed = load_settings({**base, "K8SMON_VISIBILITY_TIMEOUT": "60"})
    assert BrokerOptions.from_settings(timed).visibility_timeout_s == 60
    for env, value in (("K8SMON_FLOWER_URL", "flower:5555"), ("K8SMON_VISIBILITY_TIMEOUT", "0")):
        with pytest.raises(ConfigError, match=env):
            load_settings({**base, env: value})
