"""The Procfile's web process for real: gunicorn serving `cli.wsgi:app` in production mode
(PostgreSQL, Redis, Celery send_task); a signed push is committed, then its task is queued."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from nacl.signing import SigningKey
from sqlalchemy import Engine

from contracts.httpsig import HttpRequest, sign_request
from store import clusters
from store.db import make_session_factory
from store.models import Snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import cluster_objects, full_envelope

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_serves_the_production_app(
    pg_engine: Engine, postgres_database, redis_url, redis_key_prefix: str, tmp_path: Path
) -> None:
    sessions = make_session_factory(pg_engine)
    key = SigningKey.generate()
    cluster_id = f"g-{uuid.uuid4().hex[:8]}"
    with sessions() as session:
        make_cluster(session, cluster_id)
        clusters.add_cluster_key(
            session, cluster_id, key_id=f"{cluster_id}-k", public_key=bytes(key.verify_key)
        )
        session.commit()
    port = _free_port()
    queue = f"ingest-test-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "K8SMON_ENV": "production",
        "DATABASE_URL": postgres_database.url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "s" * 48,
        "K8SMON_INSTANCE_PATH": str(tmp_path),
        "K8SMON_TASK_QUEUE": queue,
        "K8SMON_REDIS_KEY_PREFIX": redis_key_prefix,
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "cli.wsgi:app",
        ],
        cwd=REPO,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, "gunicorn exited"
            time.sleep(0.2)
        body = gzip.compress(json.dumps(full_envelope(cluster_objects(5))).encode())
        url = f"{base_url}/v1/clusters/{cluster_id}/snapshots"
        headers = [("Host", f"127.0.0.1:{port}"), ("Content-Type", "application/json")]
        added = sign_request(
            HttpRequest("POST", url, headers, body),
            key_id=f"{cluster_id}-k",
            sign=lambda b: key.sign(b).signature,
        )
        response = requests.post(
            url,
            data=body,
            timeout=30,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **added},
        )
        assert response.status_code == 202, response.text
        assert response.json()["enqueued"] is True
        with sessions() as session:
            assert session.get(Snapshot, response.json()["snapshot_id"]) is not None
        client = redis.Redis.from_url(redis_url)
        # Snapshot processing has a queue of its own (workers.tasks.TaskQueue.SNAPSHOTS).
        messages = client.lrange(f"{redis_key_prefix}{queue}.snapshots", 0, -1)
        assert client.llen(f"{redis_key_prefix}{queue}") == 0
        client.close()
        assert len(messages) == 1
        message = json.loads(messages[0])
        assert message["headers"]["task"] == "k8smon.process_snapshot"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert (args, kwargs) == ([], {"snapshot_id": response.json()["snapshot_id"]})
    finally:
        process.terminate()
        process.wait(timeout=20)
