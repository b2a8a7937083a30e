"""Ingest benchmark: signed pushes into a production-shaped server (gunicorn, 2 workers, real
PostgreSQL and Redis, Celery send_task after commit).

Figures: a 5,000-object full snapshot (~15 MB of JSON, gzip on the wire) verified, stored and
acknowledged; the same snapshot re-pushed unchanged; signature verification of small pushes per
second on one core (no database); and sustained delta pushes at 50/s from 25 clusters with
their p99 latency (measured from each request's scheduled send time, so a slow server cannot
hide its queueing).

Floors, measured in the same run: Ed25519 verification alone of the same signature bases (for
the verification rate, per CPU-second), and gunzip + Content-Digest + Ed25519 verify +
orjson.loads of the same snapshot body + the canonical JSON SHA-256 of each object, plus storing
the compressed body as one row of a table like `snapshot_documents` on the same database,
committed (for the full snapshot, wall time): what a push stores before its 202. Splitting the
document into bodies, image index rows and versions is the snapshot worker's (`apply_pending`),
timed after each full push in this process and reported beside the figure.

Everything it creates is its own: a throwaway database (dropped afterwards), Redis keys and a
Celery queue under a unique prefix (deleted afterwards), and the gunicorn process it starts.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests
from nacl.signing import SigningKey

from bench.corpus import generate
from bench.harness import Figure, process_cpu_seconds
from contracts import httpsig
from contracts.hashing import content_hash, hash_of_canonical, state_digest, strip_server_noise
from contracts.httpsig import HttpRequest, Policy, sign_request
from contracts.resources import ResourceRef
from contracts.wire import SNAPSHOT_SCHEMA_ID, TELEMETRY_SCHEMA_ID

AREA = "ingest"
REPO = Path(__file__).resolve().parent.parent
FULL_OBJECTS = 5_000
TARGET_JSON_BYTES = 15 * 10**6
DELTA_RATE = 50  # pushes per second
DELTA_CLUSTERS = 25
DELTA_BASE_OBJECTS = 200


# ---- workload ------------------------------------------------------------------------------


def _padded_objects(count: int, *, target_bytes: int, seed: int = 7) -> list[dict[str, Any]]:
    """The benchmark corpus, with a status-sized annotation so the JSON totals ~target_bytes.

    The padding is text drawn at random from a vocabulary of identifiers and short hashes, so
    it compresses like real annotations and status do (a few times, not the 25x of the bare
    corpus), and no two objects carry the same text.
    """
    objects = [o for o in generate(count) if o.get("kind") != "Secret"][:count]
    current = len(json.dumps(objects))
    per_object = max(0, (target_bytes - current) // max(1, len(objects)) - 60)
    rng = random.Random(seed)
    vocabulary = [base64.b32encode(rng.randbytes(5)).decode().lower() for _ in range(4096)]
    for obj in objects:
        words: list[str] = []
        size = 0
        while size < per_object:
            word = rng.choice(vocabulary)
            words.append(word)
            size += len(word) + 1
        obj.setdefault("metadata", {}).setdefault("annotations", {})[
            "bench.k8s-monitor.dev/notes"
        ] = " ".join(words)
    return objects


def _digest(objects: list[dict[str, Any]]) -> str:
    return state_digest(
        (ResourceRef.of(o).key, content_hash(strip_server_noise(o))) for o in objects
    )


def _full(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": SNAPSHOT_SCHEMA_ID,
        "type": "full",
        "digest": _digest(objects),
        "agent_version": "bench",
        "objects": objects,
    }


@dataclass
class Pusher:
    base_url: str
    cluster_id: str
    key_id: str
    key: SigningKey

    def push(
        self, session: requests.Session, kind: str, document: dict[str, Any] | bytes
    ) -> tuple[float, requests.Response]:
        """Gzip and sign (not timed), then send; returns (seconds to the answer, response)."""
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        body = gzip.compress(raw, compresslevel=6)
        url = f"{self.base_url}/v1/clusters/{self.cluster_id}/{kind}"
        headers = [("Host", self.base_url.split("://", 1)[1]), ("Content-Type", "application/json")]
        added = sign_request(
            HttpRequest("POST", url, headers, body),
            key_id=self.key_id,
            sign=lambda b: self.key.sign(b).signature,
        )
        final = {"Content-Type": "application/json", "Content-Encoding": "gzip", **added}
        started = time.perf_counter()
        response = session.post(url, data=body, headers=final, timeout=60)
        return time.perf_counter() - started, response


# ---- the server under test -------------------------------------------------------------------


def bench_app() -> Any:
    """gunicorn factory (`bench.ingest:bench_app()`): the ingest app on the bench database."""
    from ingest.app import create_app  # noqa: PLC0415
    from ingest.dispatch import CeleryDispatcher  # noqa: PLC0415
    from settings import Settings  # noqa: PLC0415
    from store.db import make_engine, make_session_factory  # noqa: PLC0415

    prefix = os.environ["BENCH_PREFIX"]
    settings = Settings(
        environment="production",
        database_url=os.environ["BENCH_DATABASE_URL"],
        redis_url=os.environ["BENCH_REDIS_URL"],
        secret_key="bench-" + "s" * 40,
        instance_path=Path(os.environ.get("BENCH_INSTANCE", "/tmp")),
        rate_limit_per_minute=1_000_000,
        max_body_bytes=64 * 2**20,
    )
    sessions = make_session_factory(make_engine(settings.database_url))
    dispatch = CeleryDispatcher(settings.redis_url or "", queue=f"{prefix}queue", key_prefix=prefix)
    import logging  # noqa: PLC0415

    logging.getLogger("k8smon.ingest").setLevel(logging.ERROR)
    return create_app(settings, store=sessions, dispatch=dispatch, redis_prefix=prefix)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_url() -> str:
    return (
        os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("BENCH_POSTGRES_URL")
        or "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )


def _redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/14"


def _cpu_seconds(pids: Iterable[int | str]) -> float:
    """CPU time used so far by these processes (user + system), from /proc; a process that
    has gone counts nothing."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


@dataclass
class BenchServer:
    base_url: str
    database_url: str
    sessions: Any
    pid: int = 0

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn workers (user + system), from /proc."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return 0.0
        return _cpu_seconds(children)

    def database_cpu_seconds(self) -> float:
        """CPU time used so far by the PostgreSQL backends connected to the bench database
        (user + system, from /proc: PostgreSQL must run on this machine, else 0)."""
        from sqlalchemy import text  # noqa: PLC0415

        others = "datname = current_database() AND pid <> pg_backend_pid()"
        with self.sessions() as session:
            pids = session.scalars(text(f"SELECT pid FROM pg_stat_activity WHERE {others}"))
            return _cpu_seconds(pids.all())

    def cluster(self, name: str) -> Pusher:
        from store import clusters  # noqa: PLC0415

        key = SigningKey.generate()
        cluster_id = f"{name}-{uuid.uuid4().hex[:8]}"
        with self.sessions() as session:
            clusters.create_cluster(session, cluster_id)
            clusters.add_cluster_key(
                session, cluster_id, key_id=f"{cluster_id}-k", public_key=bytes(key.verify_key)
            )
            session.commit()
        return Pusher(self.base_url, cluster_id, f"{cluster_id}-k", key)


@contextmanager
def bench_server(*, workers: int = 2, threads: int = 8) -> Iterator[BenchServer]:
    import redis  # noqa: PLC0415
    from sqlalchemy import create_engine, text  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    from store import migrate  # noqa: PLC0415
    from store.db import make_engine, make_session_factory  # noqa: PLC0415

    name = f"k8smon_bench_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(_server_url()).set(drivername="postgresql+psycopg2")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = admin_url.set(database=name).render_as_string(hide_password=False)
    prefix = f"k8smon-bench:{uuid.uuid4().hex[:8]}:"
    engine = make_engine(database_url)
    process: subprocess.Popen[bytes] | None = None
    try:
        migrate.upgrade(engine)
        port = _free_port()
        env = {
            **os.environ,
            "BENCH_DATABASE_URL": database_url,
            "BENCH_REDIS_URL": _redis_url(),
            "BENCH_PREFIX": prefix,
            "PYTHONPATH": str(REPO),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "bench.ingest:bench_app()",
            ],
            cwd=REPO,
            env=env,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the bench server did not start")
            time.sleep(0.2)
        yield BenchServer(base_url, database_url, make_session_factory(engine), process.pid)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(_redis_url())
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# ---- figures ---------------------------------------------------------------------------------


def warm_up(server: BenchServer, *, concurrent: int = 8) -> None:
    """Small pushes, several at once, so that each gunicorn worker has served one (its first
    enqueue connects to Redis: a one-off cost per worker, not what a push costs)."""
    base = [o for o in generate(20) if o.get("kind") != "Secret"]
    pushers = [server.cluster("warm") for _ in range(concurrent)]

    def push(pusher: Pusher) -> None:
        with requests.Session() as session:
            _, response = pusher.push(session, "snapshots", _full(base))
            if response.status_code != 202:
                raise RuntimeError(f"warm-up push refused: {response.text}")

    for _ in range(2):
        threads = [threading.Thread(target=push, args=(p,)) for p in pushers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        base = [{**o, "metadata": {**o["metadata"], "uid": str(uuid.uuid4())}} for o in base]


def apply_seconds(server: BenchServer, cluster_id: str) -> float:
    """Wall seconds the snapshot worker's unit of work takes to apply the cluster's pending
    snapshot (split the document: bodies, image index, objects, versions), committed."""
    from store.snapshots import apply_pending  # noqa: PLC0415

    started = time.perf_counter()
    with server.sessions() as session:
        if not apply_pending(session, cluster_id).applied:
            raise RuntimeError("the full push was not applied")
        session.commit()
    return time.perf_counter() - started


def measure_full_snapshot(
    server: BenchServer, *, runs: int
) -> tuple[list[float], list[float], int, int, list[float], list[float], list[float], list[float]]:
    objects = _padded_objects(FULL_OBJECTS, target_bytes=TARGET_JSON_BYTES)
    from store.db import make_engine  # noqa: PLC0415

    warm_up(server)
    full_times, repush_times, full_cpu, database_cpu, floors = [], [], [], [], []
    apply_times: list[float] = []
    floor_engine = make_engine(server.database_url)
    with requests.Session() as session:
        for _ in range(runs):
            # Each run's objects get uids of their own, as another cluster's objects have:
            # bodies are stored once per content, so without this only the first run would
            # store any (the floor COPYs all 5,000 every run).
            for obj in objects:
                obj["metadata"]["uid"] = str(uuid.uuid4())
            raw = json.dumps(_full(objects)).encode()
            wire = len(gzip.compress(raw, compresslevel=6))
            pusher = server.cluster("full")
            floors.append(
                snapshot_floor_seconds(pusher, raw)
                + document_floor_seconds(floor_engine, gzip.compress(raw, compresslevel=6))
            )
            cpu_before, database_before = server.cpu_seconds(), server.database_cpu_seconds()
            elapsed, response = pusher.push(session, "snapshots", raw)
            full_cpu.append(server.cpu_seconds() - cpu_before)
            database_cpu.append(server.database_cpu_seconds() - database_before)
            if response.status_code != 202 or response.json()["duplicate"]:
                raise RuntimeError(f"full push refused: {response.status_code} {response.text}")
            full_times.append(elapsed)
            apply_times.append(apply_seconds(server, pusher.cluster_id))
            elapsed, response = pusher.push(session, "snapshots", raw)
            if response.status_code != 202 or not response.json()["duplicate"]:
                raise RuntimeError(f"re-push not a duplicate: {response.text}")
            repush_times.append(elapsed)
    floor_engine.dispose()
    return full_times, repush_times, len(raw), wire, full_cpu, database_cpu, floors, apply_times


def measure_verification_rate(*, count: int) -> tuple[float, float]:
    """Verified small pushes per second on this core: parse, Ed25519, policy, digest.

    Also returns the floor: Ed25519 verifications per second of the same signature bases alone.
    """
    from ingest.keys import ed25519_verifier  # noqa: PLC0415
    from settings import Settings  # noqa: PLC0415

    key = SigningKey.generate()
    verify = ed25519_verifier(bytes(key.verify_key))
    body = gzip.compress(
        json.dumps(
            {
                "schema": TELEMETRY_SCHEMA_ID,
                "agent_version": "1.0",
                "node_count": 3,
                "object_counts": {"Pod": 40},
            }
        ).encode()
    )
    now = int(time.time())
    messages = []
    signed: list[tuple[bytes, bytes]] = []

    def sign(base: bytes) -> bytes:
        signature = key.sign(base).signature
        signed.append((base, signature))
        return signature

    for _ in range(count):
        request = HttpRequest(
            "POST",
            "https://ingest.example/v1/clusters/c1/telemetry",
            [
                ("Host", "ingest.example"),
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            body,
        )
        added = sign_request(request, key_id="c1-k", sign=sign, created=now)
        messages.append(
            HttpRequest(request.method, request.url, [*request.headers, *added.items()], body)
        )
    policy = Policy(window_seconds=Settings().signature_window_seconds)
    # CPU time of this thread: "per core", and not inflated by other processes on the machine.
    started = time.thread_time()
    for message in messages:
        httpsig.verify_request(message, verify=verify, policy=policy, now=now)
    rate = count / (time.thread_time() - started)
    started = time.thread_time()
    for base, signature in signed:
        verify(base, signature)
    return rate, count / (time.thread_time() - started)


def document_floor_seconds(engine: Any, document: bytes) -> float:
    """Wall seconds to store a compressed snapshot document as one row, committed.

    The table is a regular one shaped like `snapshot_documents` (`LIKE ... INCLUDING ALL`: its
    storage setting, its key), so the row is TOASTed and WAL-logged and the commit waits for
    the flush, as staging a push does; the bytes go in by COPY's binary format (no escaping).
    It is dropped afterwards. `engine` is a SQLAlchemy engine on PostgreSQL.
    """
    from sqlalchemy import MetaData  # noqa: PLC0415

    from store.bulk import binary_copy, table_of  # noqa: PLC0415
    from store.models import SnapshotDocument  # noqa: PLC0415

    table = f"bench_floor_documents_{uuid.uuid4().hex[:8]}"
    like = table_of(SnapshotDocument).to_metadata(MetaData(), name=table)
    statement, payload = binary_copy(
        like, {"snapshot_id": 1, "floats": False, "document": document}
    )
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(f"CREATE TABLE {table} (LIKE snapshot_documents INCLUDING ALL)")
        connection.commit()
        started = time.perf_counter()
        cursor.copy_expert(statement, io.BytesIO(payload))
        connection.commit()
        elapsed = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {table}")
        connection.commit()
        return elapsed
    finally:
        connection.close()


def snapshot_floor_seconds(pusher: Pusher, raw: bytes) -> float:
    """Wall seconds to gunzip, digest, Ed25519-verify and orjson-parse one snapshot body, and
    hash each object's canonical JSON (sorted keys, SHA-256: the snapshot's digest is checked
    against them).

    The decoding part of what receiving the full snapshot costs at the limit (no HTTP, no
    store; `document_floor_seconds` is the store part).
    """
    body = gzip.compress(raw, compresslevel=6)
    digest_header = httpsig.content_digest(body)
    base = b"bench signature base " + digest_header.encode()  # as large as a real base
    signature = pusher.key.sign(base).signature
    verify_key = pusher.key.verify_key
    started = time.perf_counter()
    plain = gzip.decompress(body)
    httpsig.check_content_digest(digest_header, body)
    verify_key.verify(base, signature)
    for obj in orjson.loads(plain)["objects"]:
        hash_of_canonical(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    return time.perf_counter() - started


def measure_sustained_deltas(
    server: BenchServer, *, seconds: float
) -> tuple[list[float], int, int]:
    """Open-loop delta pushes at DELTA_RATE/s over DELTA_CLUSTERS clusters; latencies (s)."""
    rng = random.Random(11)
    base = [o for o in generate(DELTA_BASE_OBJECTS) if o.get("kind") != "Secret"]
    pushers = [server.cluster("delta") for _ in range(DELTA_CLUSTERS)]
    with requests.Session() as session:
        for pusher in pushers:
            _, response = pusher.push(session, "snapshots", _full(base))
            if response.status_code != 202:
                raise RuntimeError(f"base push refused: {response.text}")
    per_cluster = max(1, round(seconds * DELTA_RATE / DELTA_CLUSTERS))
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start_at = time.perf_counter() + 0.5

    def drive(index: int, pusher: Pusher) -> None:
        state = {ResourceRef.of(o).key: o for o in json.loads(json.dumps(base))}
        digest = _digest(list(state.values()))
        local_rng = random.Random(rng.random() + index)
        with requests.Session() as session:
            for step in range(per_cluster):
                changed = []
                for key in local_rng.sample(sorted(state), 2):
                    obj = json.loads(json.dumps(state[key]))
                    obj["metadata"].setdefault("labels", {})["bench/step"] = str(step)
                    state[key] = obj
                    changed.append(obj)
                new_digest = _digest(list(state.values()))
                envelope = {
                    "schema": SNAPSHOT_SCHEMA_ID,
                    "type": "delta",
                    "base_digest": digest,
                    "digest": new_digest,
                    "agent_version": "bench",
                    "objects": changed,
                    "removed": [],
                }
                scheduled = start_at + (index + step * DELTA_CLUSTERS) / DELTA_RATE
                pause = scheduled - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                _, response = pusher.push(session, "snapshots", envelope)
                latency = time.perf_counter() - scheduled
                with lock:
                    latencies.append(latency)
                    if response.status_code != 202:
                        failures[0] += 1
                digest = new_digest

    threads = [threading.Thread(target=drive, args=(i, p)) for i, p in enumerate(pushers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0], per_cluster * DELTA_CLUSTERS


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(*, quick: bool, out: Path) -> list[Figure]:
    runs = 2 if quick else 5
    load = os.getloadavg()[0]
    measured = [
        measure_verification_rate(count=2000 if quick else 5000) for _ in range(3 if quick else 5)
    ]
    rates = tuple(rate for rate, _floor in measured)
    figures = [
        Figure(
            AREA,
            "signature verification of small pushes (1 core, no DB)",
            "pushes/s",
            rates,
            target="> 5,000/s",
            met=min(rates) > 5000,
            note="parse + Ed25519 + policy + Content-Digest; per CPU-second",
            floor=statistics.median(floor for _rate, floor in measured),
            floor_of="Ed25519 verify alone of the same signature bases",
        )
    ]
    with bench_server() as server:
        full, repush, json_bytes, wire_bytes, cpu, db_cpu, floors, applied = measure_full_snapshot(
            server, runs=runs
        )
        figures.append(
            Figure(
                AREA,
                f"full snapshot, {FULL_OBJECTS:,} objects: verified, stored, 202",
                "s",
                tuple(full),
                target="< 0.5 s",
                met=statistics.median(full) < 0.5,
                note=f"{json_bytes / 1e6:.1f} MB JSON, {wire_bytes / 1e6:.1f} MB gzip; "
                f"server worker CPU {statistics.median(cpu):.2f} s, PostgreSQL backends' CPU "
                f"{statistics.median(db_cpu):.2f} s; then applied by the snapshot worker's "
                f"unit of work (bodies, image index, versions) in "
                f"{statistics.median(applied):.2f} s; load average {load:.1f} at start",
                extra={
                    "server_cpu_s": statistics.median(cpu),
                    "database_cpu_s": statistics.median(db_cpu),
                    "apply_s": statistics.median(applied),
                },
                floor=statistics.median(floors),
                floor_of="gunzip + Content-Digest + Ed25519 verify + orjson.loads + canonical "
                "JSON SHA-256 of each object + the compressed document stored as one row of a "
                "table like snapshot_documents, committed; wall time",
            )
        )
        figures.append(
            Figure(
                AREA,
                "same snapshot re-pushed unchanged (stored once, 202)",
                "s",
                tuple(repush),
                target="< 0.5 s",
                met=statistics.median(repush) < 0.5,
            )
        )
        p99s, medians, notes = [], [], []
        for _ in range(1 if quick else 3):
            latencies, failures, sent = measure_sustained_deltas(server, seconds=6 if quick else 20)
            p99s.append(_p99(latencies))
            medians.append(statistics.median(latencies))
            notes.append(f"{sent} pushes, {failures} not 202")
        figures.append(
            Figure(
                AREA,
                f"sustained delta pushes at {DELTA_RATE}/s ({DELTA_CLUSTERS} clusters): p99",
                "s",
                tuple(p99s),
                target="< 0.5 s",
                met=statistics.median(p99s) < 0.5,
                note="; ".join(notes)
                + f"; median latency {statistics.median(medians) * 1000:.0f} ms",
            )
        )
    return figures
