"""Health, readiness, metrics, and the OpenAPI document kept equal to the app's URL map."""

from __future__ import annotations

import re

import requests
from flask import Flask

from contracts.wire import TELEMETRY_SCHEMA_ID
from ingest.app import create_app
from ingest.guards import MemoryNonceCache, MemoryRateLimiter
from ingest.openapi import UNDOCUMENTED_BLUEPRINTS
from settings import Settings
from tests.ingest.conftest import Server

_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".", 1)[0] in UNDOCUMENTED_BLUEPRINTS:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in _IGNORED_METHODS:
                routes.add((path, method.lower()))
    return routes


def test_openapi_document_matches_the_url_map(server: Server) -> None:
    document = requests.get(server.base_url + "/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == _routes(server.app)
    for path, item in document["paths"].items():
        for name in re.findall(r"{([a-z_]+)}", path):
            for operation in item.values():
                assert name in {
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "path"
                }, (path, name)


def test_healthz_readyz_metrics(server: Server) -> None:
    assert requests.get(server.base_url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.base_url + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

    agent = server.register_cluster()
    assert (
        agent.push("telemetry", {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1"}).status_code
        == 202
    )
    assert agent.push("telemetry", b"{", compress=False).status_code == 400
    text = requests.get(server.base_url + "/metrics", timeout=5).text
    assert 'k8smon_pushes_accepted_total{kind="telemetry"} 1.0' in text
    assert 'k8smon_pushes_refused_total{reason="invalid_json"} 1.0' in text
    assert re.search(r'k8smon_push_bytes_in_total\{kind="telemetry"\} [1-9]', text)
    assert "k8smon_request_duration_seconds_bucket" in text


def test_readyz_reports_unreachable_dependencies(tmp_path) -> None:
    import redis  # noqa: PLC0415

    settings = Settings(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        secret_key="k" * 40,
        instance_path=tmp_path,
    )
    app = create_app(
        settings,
        redis_client=redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2),
        nonces=MemoryNonceCache(),
        limiter=MemoryRateLimiter(per_minute=10),
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("unavailable")
    assert response.json["checks"]["redis"].startswith("unavailable")
    assert app.test_client().get("/healthz").status_code == 200


def test_each_app_has_its_own_metrics_registry(tmp_path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        secret_key="k" * 40,
        instance_path=tmp_path,
    )
    first, second = create_app(settings), create_app(settings)
    first.test_client().post("/v1/clusters/x/telemetry", data=b"{}")
    assert 'reason="missing_signature"' in first.test_client().get("/metrics").text
    assert 'reason="missing_signature"' not in second.test_client().get("/metrics").text


def test_database_down_is_a_503_with_retry_after(tmp_path) -> None:
    settings = Settings(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        secret_key="k" * 40,
        instance_path=tmp_path,
    )
    app = create_app(settings, nonces=MemoryNonceCache(), limiter=MemoryRateLimiter(per_minute=10))
    response = app.test_client().post(
        "/v1/clusters/c1/telemetry",
        data=b"{}",
        headers={"Signature-Input": 'sig1=("@method");keyid="k"', "Signature": "sig1=:AA==:"},
    )
    assert response.status_code == 503
    assert response.json["reason"] == "unavailable"
    assert response.headers["Retry-After"] == "10"
