"""The composition root: the gunicorn app built from the environment, in embedded mode (SQLite,
in-process tasks) end to end, and a real Celery dispatcher whose broker is down; the rule
catalogue and the Flower URL it hands the admin pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from nacl.signing import SigningKey
from sqlalchemy import select

from cli import wsgi
from contracts.httpsig import HttpRequest, sign_request
from ingest.context import EXTENSION
from ingest.dispatch import CeleryDispatcher, enqueue_after_commit
from store import clusters, migrate
from store.accounts import create_account
from store.db import make_engine, make_session_factory
from store.models import Cluster, ScanRun, Snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import cluster_objects, full_envelope
from tests.web.conftest import sign_in


def _signed_post(app: Flask, key: SigningKey, key_id: str, path: str, payload: object):
    body = json.dumps(payload).encode()
    url = f"http://localhost{path}"
    headers = [("Host", "localhost"), ("Content-Type", "application/json")]
    added = sign_request(
        HttpRequest("POST", url, headers, body), key_id=key_id, sign=lambda b: key.sign(b).signature
    )
    return app.test_client().post(path, data=body, headers={**dict(headers), **added})


def test_embedded_app_from_the_environment_processes_a_push(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'k8smon.sqlite3'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    key = SigningKey.generate()
    sessions = make_session_factory(engine)
    with sessions() as session:
        make_cluster(session, "dev")
        clusters.add_cluster_key(session, "dev", key_id="dev-1", public_key=bytes(key.verify_key))
        session.commit()

    app = wsgi.build_app({"DATABASE_URL": database_url, "K8SMON_INSTANCE_PATH": str(tmp_path)})
    assert app.test_client().get("/readyz").json["checks"] == {"database": "ok"}
    envelope = full_envelope(cluster_objects(10))
    response = _signed_post(app, key, "dev-1", "/v1/clusters/dev/snapshots", envelope)
    assert response.status_code == 202, response.json
    app.extensions[EXTENSION].dispatch.shutdown()  # wait for the background task
    with sessions() as session:
        snapshot = session.get(Snapshot, response.json["snapshot_id"])
        assert snapshot is not None and snapshot.state == "processed"
        digest = session.scalar(select(Cluster.current_digest).where(Cluster.id == "dev"))
        assert digest == envelope["digest"]
    engine.dispose()


def test_unreachable_broker_fails_fast_and_is_only_logged() -> None:
    dispatcher = CeleryDispatcher("redis://127.0.0.1:1/0", timeout_s=0.2)
    assert (
        enqueue_after_commit(dispatcher, "k8smon.process_snapshot", kwargs={"snapshot_id": 1})
        is False
    )


def test_composition_root_wires_the_rule_catalogue_and_flower(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'k8smon.sqlite3'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        make_cluster(session, "dev")
        session.add(ScanRun(cluster_id="dev", state="done", task_id="0f1e2d3c-task"))
        create_account(session, "alice", password="a long enough password", role="admin")
        session.commit()
    rules_config = tmp_path / "rules.yaml"
    rules_config.write_text("severity:\n  KM-101: low\n", encoding="utf-8")

    app = wsgi.build_app(
        {
            "DATABASE_URL": database_url,
            "K8SMON_INSTANCE_PATH": str(tmp_path),
            "K8SMON_RULES_CONFIG": str(rules_config),
            "K8SMON_FLOWER_URL": "https://flower.example.com/",
        }
    )
    client = app.test_client()
    sign_in(client, "alice", "a long enough password")
    page = client.get("/admin/rules/KM-101").get_data(as_text=True)
    # The real catalogue entry (title, remediation, CIS id), at the operator's severity.
    assert "Privileged container" in page and "securityContext.privileged" in page
    assert "CIS 5.2.2" in page and "sev-low" in page and "sev-critical" not in page
    scans = client.get("/admin/scans").get_data(as_text=True)
    assert 'href="https://flower.example.com/task/0f1e2d3c-task"' in scans
    app.extensions[EXTENSION].dispatch.shutdown()
    engine.dispose()


def test_rule_catalogue_and_flower_url_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalogue = wsgi.rule_catalogue()
    assert catalogue["KM-101"]["title"] == "Privileged container"
    assert catalogue["KM-101"]["severity"] == "critical"
    assert catalogue["KM-101"]["remediation"] and catalogue["KM-101"]["summary"]
    # An unreadable rules configuration leaves the built-in severities (the workers are the
    # ones that refuse it), with a warning.
    broken = tmp_path / "broken.yaml"
    broken.write_text("severity: [not, a, mapping]\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="k8smon.ingest"):
        assert wsgi.rule_catalogue(broken)["KM-101"]["severity"] == "critical"
    assert "rules_config_unreadable" in caplog.text
    assert wsgi.flower_url({}) is None and wsgi.flower_url({"K8SMON_FLOWER_URL": " "}) is None
    assert wsgi.flower_url({"K8SMON_FLOWER_URL": "http://flower:5555"}) == "http://flower:5555"
    with pytest.raises(ValueError, match="K8SMON_FLOWER_URL"):
        wsgi.flower_url({"K8SMON_FLOWER_URL": "flower:5555"})
