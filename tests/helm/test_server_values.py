"""Server chart values for a real install (issue 15 point 6) and its secure defaults (issue 13
point 16): a required https public URL (so the admin session cookie is Secure), webhooks signed
unless `security.allowPlainHttp`, extra volumes for a private CA, a web HPA, and a separate
Ingress for agent pushes. The rendered environment is loaded by the real settings and app."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ingest.app import create_app
from ingest.guards import MemoryNonceCache, MemoryRateLimiter
from reports.channels import ChannelError, check_channel
from settings import Settings, load_settings
from tests.helm.charts import (
    RELEASE,
    SERVER,
    Rendered,
    chart_dir,
    containers,
    env_of,
    load_values,
    pod_spec,
    render,
    workloads,
)
from tests.web.fleet import savepoint_sessions

FULLNAME = f"{RELEASE}-{SERVER}"
DEFAULT = load_values(chart_dir(SERVER) / "ci" / "default-values.yaml")
FULL = load_values(chart_dir(SERVER) / "ci" / "full-values.yaml")
PLAIN = {**DEFAULT, "config": {"publicUrl": "http://k8s-monitor.test:8000"}}


def pod_environment(
    container: Mapping[str, Any], secret: Mapping[str, str], **overrides: str
) -> dict[str, str]:
    """The container's environment as the kubelet sets it from `secret` (optional keys that the
    Secret lacks are left out, as Kubernetes does)."""
    resolved: dict[str, str] = {}
    for name, item in env_of(dict(container)).items():
        if "value" in item:
            resolved[name] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["key"] in secret:
            resolved[name] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{name}: required key {ref['key']} missing"
    resolved.update(overrides)
    return resolved


def _web(rendered: Rendered) -> dict[str, Any]:
    return rendered.named("Deployment", f"{FULLNAME}-web")


def _settings(rendered: Rendered, tmp_path: Path, test_settings: Settings) -> Settings:
    (container,) = pod_spec(_web(rendered))["containers"]
    secret = {
        "DATABASE_URL": test_settings.database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "SECRET_KEY": "s" * 48,
    }
    env = pod_environment(
        container, secret, K8SMON_INSTANCE_PATH=str(tmp_path), K8SMON_RULES_CONFIG=""
    )
    return load_settings(env)


def _cookie_is_secure(settings: Settings, db_session: Session) -> bool:
    app = create_app(
        settings,
        store=savepoint_sessions(db_session),
        dispatch=lambda *_a, **_k: None,
        nonces=MemoryNonceCache(),
        limiter=MemoryRateLimiter(per_minute=10),
    )
    page = app.test_client().get("/admin/login")
    assert page.status_code == 200
    cookie = next(v for k, v in page.headers.items() if k == "Set-Cookie" and "session" in v)
    return "; Secure" in cookie


def test_public_url_is_required_and_https() -> None:
    with pytest.raises(Exception, match=r"config\.publicUrl is required"):
        render(SERVER, {"existingSecret": "k8s-monitor-env"})
    with pytest.raises(Exception, match="must be https://"):
        render(SERVER, PLAIN)


def test_by_default_the_session_cookie_is_secure_and_webhooks_signed(
    tmp_path: Path, test_settings: Settings, db_session: Session
) -> None:
    settings = _settings(render(SERVER, DEFAULT), tmp_path, test_settings)
    assert settings.is_production and settings.public_url == "https://k8s-monitor.example.org"
    assert _cookie_is_secure(settings, db_session)
    assert settings.webhook_allow_unsigned is False and settings.webhook_secret is None
    with pytest.raises(ChannelError, match="always signed in production"):
        check_channel("https://hooks.example.com/k8s", settings=settings)


def test_allow_plain_http_relaxes_both_explicitly(
    tmp_path: Path, test_settings: Settings, db_session: Session
) -> None:
    rendered = render(SERVER, {**PLAIN, "security": {"allowPlainHttp": True}})
    settings = _settings(rendered, tmp_path, test_settings)
    assert settings.public_url == "http://k8s-monitor.test:8000"
    assert not _cookie_is_secure(settings, db_session)
    assert settings.webhook_allow_unsigned is True
    for doc in workloads(rendered):
        for container in containers(doc):
            env = env_of(container)
            if "K8SMON_WEBHOOK_SECRET" in env:  # web and worker
                assert env["K8SMON_WEBHOOK_ALLOW_UNSIGNED"]["value"] == "true"


def test_extra_volumes_reach_every_server_pod_and_the_migration() -> None:
    rendered = render(SERVER, FULL)
    pods = [d for d in workloads(rendered) if d["kind"] in {"Deployment", "Job"}]
    assert {d["metadata"]["name"] for d in pods} >= {
        f"{FULLNAME}-web",
        f"{FULLNAME}-worker",
        f"{FULLNAME}-beat",
        f"{FULLNAME}-flower",
        f"{FULLNAME}-migrate",
    }
    for doc in pods:
        spec = pod_spec(doc)
        assert {"name": "db-ca", "secret": {"secretName": "db-ca"}} in spec["volumes"]
        for container in spec["containers"]:
            assert {
                "name": "db-ca",
                "mountPath": "/etc/k8s-monitor/db-ca",
                "readOnly": True,
            } in container["volumeMounts"], doc["metadata"]["name"]


def test_web_autoscaling_owns_the_replica_count() -> None:
    rendered = render(SERVER, FULL)
    hpa = rendered.named("HorizontalPodAutoscaler", f"{FULLNAME}-web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{FULLNAME}-web",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert "replicas" not in _web(rendered)["spec"]
    assert "autoscaled 2-8" in rendered.notes
    assert _web(render(SERVER, DEFAULT))["spec"]["replicas"] == 2


def test_agent_pushes_have_their_own_ingress() -> None:
    rendered = render(SERVER, FULL)
    agents = rendered.named("Ingress", f"{FULLNAME}-agents")
    assert agents["spec"]["ingressClassName"] == "nginx-public"
    (rule,) = agents["spec"]["rules"]
    assert rule["host"] == "agents.k8s-monitor.example.org"
    routed = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert routed == {("/v1/clusters/", "Prefix"), ("/healthz", "Exact")}
    assert "/admin" not in str(agents)
    admin = rendered.named("Ingress", FULLNAME)
    assert admin["spec"]["ingressClassName"] == "nginx"
    assert "https://agents.k8s-monitor.example.org   (agent pushes only)" in rendered.notes
    with pytest.raises(Exception, match="agentIngress"):
        render(SERVER, {**FULL, "agentIngress": {"enabled": True, "path": "/admin/"}})
