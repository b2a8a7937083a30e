"""The composition root: the gunicorn app built from the environment, in embedded mode (SQLite,
in-process tasks) end to end, and a real Celery dispatcher whose broker is down."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from nacl.signing import SigningKey
from sqlalchemy import select

from cli import wsgi
from contracts.httpsig import HttpRequest, sign_request
from ingest.context import EXTENSION
from ingest.dispatch import CeleryDispatcher, enqueue_after_commit
from store import clusters, migrate
from store.db import make_engine, make_session_factory
from store.models import Cluster, Snapshot
from tests.support.manifests import cluster_objects, full_envelope


def _signed_post(app: Flask, key: SigningKey, key_id: str, path: str, payload: object):
    body = json.dumps(payload).encode()
    url = f"http://localhost{path}"
    headers = [("Host", "localhost"), ("Content-Type", "application/json")]
    added = sign_request(HttpRequest("POST", url, headers, body), key_id=key_id,
                         sign=lambda b: key.sign(b).signature)
    return app.test_client().post(path, data=body, headers={**dict(headers), **added})


def test_embedded_app_from_the_environment_processes_a_push(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'k8smon.sqlite3'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    key = SigningKey.generate()
    sessions = make_session_factory(engine)
    with sessions() as session:
        clusters.create_cluster(session, "dev")
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
    assert enqueue_after_commit(dispatcher, "k8smon.process_snapshot", args=[1]) is False
