"""Issue 13 points 1 and 2 against the real server process: gunicorn serving the production
app. Hostile bodies are refused (exact status and reason) and the serving worker's peak RSS
(`VmHWM`) stays within the stated budget: one push holds at most 128 MiB, a quarter of the
web pod's 512 MiB limit (docs/security.md). A test of a bound, with a margin, not a benchmark.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from nacl.signing import SigningKey
from sqlalchemy import Engine

from contracts.httpsig import HttpRequest, sign_request
from store import clusters
from store.db import make_session_factory
from tests.security.conftest import raw_exchange
from tests.support.factories import make_cluster
from tests.support.manifests import cluster_objects, full_envelope

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
BUDGET = 128 * MiB  # one request's stated share of the web pod's memory
MARGIN = 32 * MiB


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gunicorn:
    base_url: str
    worker: psutil.Process
    cluster_id: str
    key: SigningKey

    def peak_rss(self) -> int:
        """The worker's peak resident set size so far (VmHWM), in bytes."""
        status = Path(f"/proc/{self.worker.pid}/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024

    def push(self, kind: str, body: bytes, *, encoding: str = "gzip") -> requests.Response:
        url = f"{self.base_url}/v1/clusters/{self.cluster_id}/{kind}"
        headers = [("Host", self.base_url.split("://")[1]), ("Content-Type", "application/json")]
        added = sign_request(
            HttpRequest("POST", url, headers, body),
            key_id=f"{self.cluster_id}-k",
            sign=lambda b: self.key.sign(b).signature,
        )
        return requests.post(
            url,
            data=body,
            timeout=120,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding, **added},
        )


@pytest.fixture
def gunicorn(
    pg_engine: Engine, postgres_database, redis_url: str, redis_key_prefix: str, tmp_path: Path
) -> Iterator[Gunicorn]:
    sessions = make_session_factory(pg_engine)
    key = SigningKey.generate()
    cluster_id = f"m-{uuid.uuid4().hex[:8]}"
    with sessions() as session:
        make_cluster(session, cluster_id)
        clusters.add_cluster_key(
            session, cluster_id, key_id=f"{cluster_id}-k", public_key=bytes(key.verify_key)
        )
        session.commit()
    port = _free_port()
    env = {
        **os.environ,
        "K8SMON_ENV": "production",
        "DATABASE_URL": postgres_database.url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "s" * 48,
        "K8SMON_INSTANCE_PATH": str(tmp_path),
        "K8SMON_TASK_QUEUE": f"memory-test-{uuid.uuid4().hex[:6]}",
        "K8SMON_REDIS_KEY_PREFIX": redis_key_prefix,
        "PYTHONPATH": str(REPO),
    }
    for name in (
        "K8SMON_MAX_BODY_BYTES",
        "K8SMON_MAX_DECOMPRESSED_BYTES",
        "K8SMON_MAX_PARSED_BYTES",
    ):
        env.pop(name, None)  # the defaults are what is measured
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread"]
    command += ["--threads", "2", "--bind", f"127.0.0.1:{port}", "cli.wsgi:app"]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, "gunicorn exited"
            time.sleep(0.2)
        (worker,) = psutil.Process(process.pid).children()
        yield Gunicorn(base_url, worker, cluster_id, key)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _problem(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["reason"]


def _gzip_stream(size: int) -> bytes:
    """gzip of `size` zero bytes, built without holding them (about size/1000 bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    return b"".join(parts) + compressor.flush()


@pytest.mark.slow
def test_hostile_bodies_stay_within_the_memory_budget(gunicorn: Gunicorn) -> None:
    # Warm up: a real push loads everything a push needs (schemas, parsers, the ORM).
    warm = gunicorn.push(
        "snapshots", gzip.compress(json.dumps(full_envelope(cluster_objects(200))).encode())
    )
    assert warm.status_code == 202, warm.text
    baseline = gunicorn.peak_rss()
    figures: dict[str, int] = {}

    # Point 1: a 200 MiB sign-in form, sent in full, is refused before it is read.
    head = (
        "POST /admin/login HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {200 * MiB}\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b"a=" + b"b" * (MiB - 2)
    assert _problem(raw_exchange(gunicorn.base_url, head, [chunk] * 200)) == (413, "body_too_large")
    figures["200 MiB sign-in form"] = gunicorn.peak_rss() - baseline

    # Point 1: the same without Content-Length (chunked): cut off at the form cap.
    head = (
        b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    piece = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    assert _problem(raw_exchange(gunicorn.base_url, head, [piece] * 200 + [b"0\r\n\r\n"])) == (
        413,
        "body_too_large",
    )
    figures["200 MiB chunked sign-in form"] = gunicorn.peak_rss() - baseline

    # Point 2: a gzip bomb (1 GiB of zeros in about 1 MB) stops at the inflation cap.
    bomb = gunicorn.push("snapshots", _gzip_stream(1024 * MiB))
    assert (bomb.status_code, bomb.json()["reason"]) == (413, "decompressed_too_large")
    figures["gzip bomb, 1 GiB"] = gunicorn.peak_rss() - baseline

    # Point 2: 15 MiB of empty objects would take ~400 MiB parsed: refused before parsing.
    tiny = b'{"objects": [' + b"{}," * (5 * MiB) + b"{}]}"
    refused = gunicorn.push("snapshots", gzip.compress(tiny))
    assert (refused.status_code, refused.json()["reason"]) == (413, "too_complex")
    figures["15 MiB of empty objects"] = gunicorn.peak_rss() - baseline

    # Point 2: the worst body the parse budget lets through (short strings, ~14x their text
    # once parsed) is parsed, then refused for its object count: the budget's high mark.
    strings = b'{"objects": [' + b'"ab",' * (1_300_000) + b'"ab"]}'
    counted = gunicorn.push("snapshots", gzip.compress(strings))
    assert (counted.status_code, counted.json()["reason"]) == (413, "too_many_objects")
    figures["worst body within the parse budget"] = gunicorn.peak_rss() - baseline

    print("peak RSS growth of the gunicorn worker over", baseline // MiB, "MiB:")
    for name, growth in figures.items():
        print(f"  {name}: {growth / MiB:.1f} MiB")
    for name, growth in figures.items():
        assert growth <= BUDGET + MARGIN, (name, growth // MiB)
