"""Literal-secret detection (rules.catalogue.secrets): edge cases, and values never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import Engine, load_paths
from rules.catalogue.secrets import classify, name_strength, scan_text

FIXTURES = Path(__file__).parent / "fixtures"
# Every fake credential the KM-40x fail fixtures carry.
FAKE_VALUES = (
    "correct-horse-battery",
    "AKIAIOSFODNN7EXAMPLE",
    "Sup3rS3cret",
    "q8Zt2LkP9xVw4RmN7bYc1JdH",
    "Tr0ub4dor-and-3",
    "s3cr3t-t0k3n-value",
    "Pa55-w0rd-in-git",
    "xoxb-0000000000-FAKEFAKEFAKE",
    "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAfakefakefakefake",
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "hunter2"),
        ("dbPassword", "hunter2"),
        ("STRIPE_API_KEY", "abc123"),
        ("clientSecret", "abc123"),
        ("ANYTHING", "ghp_" + "a1" * 18),
        ("ANYTHING", "-----BEGIN OPENSSH PRIVATE KEY-----\nxx"),
        ("REDIS_URL", "redis://:pa55word@redis:6379/0".replace("//:", "//user:")),
        ("SIGNING_KEY", "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4"),
        (
            "JWT",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
    ],
)
def test_literal_secrets_are_recognised(name: str, value: str) -> None:
    why = classify(name, value)
    assert why is not None
    assert value not in why


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD_FILE", "/run/secrets/db"),
        ("TOKEN_TTL", "3600"),
        ("PASSWORD", "$(FROM_SECRET)"),
        ("PASSWORD", "${FROM_ENV}"),
        ("PASSWORD", "{{ .Values.password }}"),
        ("PASSWORD", ""),
        ("TLS_SECRET", "ingress-tls"),
        ("AUTH_ENABLED", "true"),
        ("CACHE_KEY", "user-profile"),
        ("PARTITION_KEY", "customerId"),
        ("AWS_ACCESS_KEY_ID", "not-an-aws-key"),
        ("IMAGE", "registry.example/app@sha256:" + "ab" * 32),
        ("BUILD_SHA", "3f786850e387550fdab836ed7e6dc881de23001b"),
        ("DATABASE_URL", "postgres://db:5432/x"),
        ("PWD", "/home/app"),
        (None, "hunter2"),
    ],
)
def test_non_secrets_are_not_reported(name: str | None, value: str) -> None:
    assert classify(name or "", value) is None


def test_name_strength() -> None:
    assert name_strength("MYSQL_ROOT_PASSWORD") == "strong"
    assert name_strength("apiKey") == "strong"
    assert name_strength("HMAC_KEY") == "weak"
    assert name_strength("SECRET_NAME") is None
    assert name_strength("LOG_LEVEL") is None


def test_config_file_lines() -> None:
    # Commented-out example lines are documentation, not configuration.
    assert scan_text("app.conf", "a=1\n# password = your-password-here\nb: 2\n") is None
    found = scan_text("app.conf", "a=1\nb: 2\nadmin_password = fake-Value-42\n")
    assert found is not None and found[1] == 3
    assert scan_text("app.conf", "password: ${DB_PASSWORD}\nuser: app\n") is None
    assert scan_text("app.json", '{\n  "password": "",\n  "port": 80\n}\n') is None
    found = scan_text("app.json", '{\n  "apiKey": "live-key-value",\n  "port": 80\n}\n')
    assert found is not None and found[1] == 2


def test_messages_never_echo_secret_values() -> None:
    engine = Engine.from_config(None)
    paths = sorted(FIXTURES.glob("KM-40*/fail-*.yaml"))
    assert paths
    outcome = engine.scan(load_paths(paths).documents)
    secret_hits = [r for r in outcome.results if r.rule_id.startswith("KM-40")]
    assert len(secret_hits) >= 8
    for result in outcome.results:
        for value in FAKE_VALUES:
            assert value not in result.message, (result.rule_id, result.message)
