"""The fault rig: a private PostgreSQL and Redis, real gunicorn/worker/beat processes, faults
injected into them, and load through the real signed HTTP ingest.

Everything runs as production runs it (the Procfile's gunicorn line, `celery worker`, `celery
beat`) against servers only this rig uses, so a test may stop, restart or break them:

    with FaultRig.start(tmp_path, K8SMON_SHARD_SIZE="50") as rig:
        rig.start_web(); rig.start_worker()
        feeds = rig.register_clusters(10, objects=400)
        assert all(o.status == 202 for o in rig.push_full(feeds))
        rig.scan_fleet()
        rig.restart_redis(persistent=False)
        elapsed = rig.wait_until(lambda: rig.all_scans_final(), timeout=300)

Intervals are shortened only through documented settings (settings/config.py), given as
environment variables to `FaultRig.start`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
import requests
import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from agent.signing import AgentKey, default_key_id
from agent.transport import Outcome, Sender
from contracts import tasks as names
from contracts.states import ScanState, SnapshotState
from store import clusters, migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import ScanRun, Snapshot
from store.scans import unfinished_steps
from tests.support.manifests import cluster_objects, full_envelope
from tests.support.services import ThrowawayDatabase, port_open
from tests.support.throwaway_postgres import ThrowawayPostgres
from tests.workers.celery_rig import REPO_ROOT, CeleryRig, free_port

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
PROCFILE = REPO_ROOT / "Procfile"
SECRET = "fault-rig-secret-" + "k" * 40
# What a predicate may meet while a fault is on: the database or Redis is away.
UNAVAILABLE = (sqlalchemy.exc.DBAPIError, redis.exceptions.RedisError, requests.RequestException)


@dataclass
class PrivateRedis:
    """A `redis-server` on its own port and folder: in memory only, or with an append-only
    file (`persistent`) so that a restart keeps what was acknowledged."""

    port: int
    directory: Path
    persistent: bool
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        argv = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            *persistence,
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(argv, start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis shuts down as an orchestrator stops it (flushing the append-only
        file when persistent)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@dataclass
class ClusterFeed:
    """One registered cluster with its real Ed25519 agent key, pushing through the agent's
    own transport (signed, gzip) into the rig's ingest."""

    cluster_id: str
    key: AgentKey
    sender: Sender
    objects: list[dict[str, Any]]

    def push_full(self) -> Outcome:
        body = gzip.compress(json.dumps(full_envelope(self.objects)).encode())
        return self.sender.snapshot(body)


@dataclass
class FaultRig:
    """Private servers, real processes and the faults to inject into them (see module doc)."""

    tmp: Path
    pg_base: Path
    postgres: ThrowawayPostgres
    database: ThrowawayDatabase
    redis_server: PrivateRedis
    celery: CeleryRig
    engine: Engine
    web_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, tmp_path: Path, *, persistent: bool = False, **settings_env: str) -> FaultRig:
        """Start a private PostgreSQL (migrated database) and Redis; `settings_env` are
        documented settings (K8SMON_*) given to every process the rig starts."""
        # PostgreSQL runs as `postgres` when we are root: not under pytest's private tmp tree.
        pg_base = Path(tempfile.mkdtemp(prefix="k8smon-faults-pg-"))
        pg_base.chmod(0o755)
        postgres: ThrowawayPostgres | None = None
        private_redis = PrivateRedis(
            port=free_port(), directory=tmp_path / "redis", persistent=persistent
        )
        try:
            postgres = ThrowawayPostgres.start(pg_base)
            database = ThrowawayDatabase.create(postgres.url)
            engine = make_engine(database.url)
            migrate.upgrade(engine)
            private_redis.start()
            celery = CeleryRig.create(
                database_url=database.url,
                redis_url=private_redis.url,
                tmp=tmp_path,
                K8SMON_ENV="production",
                SECRET_KEY=SECRET,
                K8SMON_RATE_LIMIT_PER_MINUTE="100000",
                **settings_env,
            )
        except BaseException:
            private_redis.stop()
            if postgres is not None:
                postgres.stop(mode="immediate")
            shutil.rmtree(pg_base, ignore_errors=True)
            raise
        return cls(
            tmp=tmp_path,
            pg_base=pg_base,
            postgres=postgres,
            database=database,
            redis_server=private_redis,
            celery=celery,
            engine=engine,
        )

    def __enter__(self) -> FaultRig:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, then the servers; remove the PostgreSQL folder."""
        self.celery.stop_all()
        self.engine.dispose()
        self.redis_server.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
            self.postgres.stop(mode="immediate")
        shutil.rmtree(self.pg_base, ignore_errors=True)

    # ---- what tests read -----------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.database.url

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every process the rig starts gets."""
        return self.celery.env

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work on the rig's database (committed at the end)."""
        with unit_of_work(make_session_factory(self.engine)) as session:
            yield session

    # ---- processes -------------------------------------------------------------------------

    def start_web(self, name: str = "web") -> subprocess.Popen[bytes]:
        """gunicorn with the Procfile's own arguments (`cli.wsgi:app`) on the rig's port,
        which stays the same across restarts; returns once /readyz answers 200."""
        argv = procfile_web_argv(host="127.0.0.1", port=self.web_port)
        self._name_free(name)
        process = self.processes[name] = self.celery.spawn(name, argv)
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return process
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not become ready:\n{self.logs(name)}")
            time.sleep(0.2)

    def start_worker(
        self,
        name: str = "worker",
        *,
        queues: Sequence[str] | None = None,
        lanes: Sequence[str] = (),
        concurrency: int = 1,
    ) -> subprocess.Popen[bytes]:
        """A `celery worker` (every queue of the task table unless `queues` says which, or
        `lanes` which task table queues: `lanes=["snapshots"]` is the Procfile's snapshots)."""
        self._name_free(name)
        process = self.celery.start_worker(
            concurrency=concurrency, queues=queues, lanes=lanes, name=name
        )
        self.processes[name] = process
        return process

    def start_beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        """A `celery beat` with a schedule file of its own."""
        self._name_free(name)
        process = self.celery.start_beat(self.tmp / name / "celerybeat-schedule")
        self.processes[name] = process
        return process

    def start_agent(
        self, feed: ClusterFeed, *, kubeconfig: Path, name: str = "agent", **agent_env: str
    ) -> subprocess.Popen[bytes]:
        """The real agent (`python -m agent`, as its image runs it) for a registered cluster,
        pushing to the rig's ingest with the cluster's key; `agent_env` are K8SMON_AGENT_*
        settings (docs/agent.md). Its JSON log lines are in `logs(name)`."""
        self._name_free(name)
        key_file = self.tmp / f"{name}-key.pem"
        key_file.write_text(feed.key.private_key_pem, encoding="ascii")
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_")}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            K8SMON_AGENT_SERVER_URL=self.base_url,
            K8SMON_AGENT_CLUSTER_ID=feed.cluster_id,
            K8SMON_AGENT_KEY_FILE=str(key_file),
            K8SMON_AGENT_KUBECONFIG=str(kubeconfig),
            K8SMON_AGENT_NAMESPACE="monitoring",
            **agent_env,
        )
        process = self.celery.spawn(name, [sys.executable, "-m", "agent"], env=env)
        self.processes[name] = process
        return process

    def _name_free(self, name: str) -> None:
        running = self.processes.get(name)
        if running is not None and running.poll() is None:
            raise ValueError(f"a process named {name!r} is already running")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process's whole group (gunicorn's or the worker's children too), wait."""
        self.celery.kill(self.processes[name], sig)

    def stop(self, name: str) -> None:
        """Stop a process as an orchestrator does (SIGTERM, SIGKILL after 20 s)."""
        self.kill(name, signal.SIGTERM)

    def logs(self, name: str) -> str:
        """Everything the named process wrote (its latest incarnation)."""
        return self.celery.log_file(self.processes[name]).read_text(errors="replace")

    def all_logs(self) -> str:
        """The tail of every process log, for an assertion message."""
        return self.celery.logs()

    # ---- faults ----------------------------------------------------------------------------

    def restart_redis(self, *, persistent: bool, down_s: float = 0.0) -> None:
        """Stop Redis and start it again on the same port after `down_s`: empty, or with what
        it had acknowledged (`persistent`, only for a rig started with `persistent=True`)."""
        if persistent and not self.redis_server.persistent:
            raise ValueError("start the rig with persistent=True to restart Redis with its data")
        self.redis_server.stop()
        if not persistent:
            for leftover in ("appendonlydir", "dump.rdb"):
                path = self.redis_server.directory / leftover
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        time.sleep(down_s)
        self.redis_server.start()

    def stop_postgres(self) -> None:
        """Stop PostgreSQL (fast shutdown: sessions are ended, new ones refused)."""
        self.postgres.stop(mode="fast")

    def start_postgres(self) -> None:
        self.postgres.start_again()

    def postgres_read_only(self, on: bool) -> None:
        """Make every new transaction read-only (as a standby or a failed-over primary
        answers: `cannot execute ... in a read-only transaction`), and end the sessions open
        now so none keeps writing; `on=False` makes the server writable again."""
        admin = create_engine(self.postgres.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as conn:
                conn.execute(text("SET default_transaction_read_only = off"))
                if on:
                    conn.execute(text("ALTER SYSTEM SET default_transaction_read_only = on"))
                else:
                    conn.execute(text("ALTER SYSTEM RESET default_transaction_read_only"))
                conn.execute(text("SELECT pg_reload_conf()"))
                # The postmaster reloads asynchronously: wait until a new session sees it.
                expected = "on" if on else "off"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with admin.connect() as probe:
                        shown = probe.execute(text("SHOW default_transaction_read_only"))
                        if shown.scalar() == expected:
                            break
                    time.sleep(0.05)
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    )
                )
        finally:
            admin.dispose()

    # ---- load ------------------------------------------------------------------------------

    def register_clusters(
        self, count: int, *, objects: int, prefix: str = "fault"
    ) -> list[ClusterFeed]:
        """`count` registered clusters, each with its own Ed25519 agent key (key id derived
        as the agent derives it) and `objects` distinct manifests to push."""
        feeds = []
        with self.session() as session:
            for n in range(count):
                cluster_id = f"{prefix}-{n:02d}-{uuid.uuid4().hex[:6]}"
                key = AgentKey.generate()
                key_id = default_key_id(cluster_id, key.public_key)
                clusters.create_cluster(session, cluster_id)
                clusters.add_cluster_key(
                    session, cluster_id, key_id=key_id, public_key=key.public_key
                )
                sender = Sender(
                    server_url=self.base_url,
                    cluster_id=cluster_id,
                    key=key,
                    key_id=key_id,
                    timeout_s=60,
                )
                feeds.append(ClusterFeed(cluster_id, key, sender, cluster_objects(objects)))
        return feeds

    def push_full(self, feeds: Sequence[ClusterFeed]) -> list[Outcome]:
        """One signed full snapshot per cluster through the real HTTP ingest."""
        return [feed.push_full() for feed in feeds]

    def snapshots_processed(self, feeds: Sequence[ClusterFeed]) -> bool:
        """Every snapshot pushed by these clusters has been applied by a worker."""
        with self.session() as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(Snapshot)
                .where(
                    Snapshot.cluster_id.in_([f.cluster_id for f in feeds]),
                    Snapshot.state != SnapshotState.PROCESSED,
                )
            )
        return waiting == 0

    def load_fleet(self, count: int, *, objects: int) -> list[ClusterFeed]:
        """Register `count` clusters, push each a full snapshot of `objects` manifests (every
        push must be answered 202) and wait until a worker has applied them all."""
        feeds = self.register_clusters(count, objects=objects)
        outcomes = self.push_full(feeds)
        refused = [o.summary() for o in outcomes if o.status != 202]
        if refused:
            raise AssertionError(f"pushes refused: {refused}\n{self.all_logs()}")
        self.wait_until(
            lambda: self.snapshots_processed(feeds), timeout=300, what="the pushes to be applied"
        )
        return feeds

    def scans_in_flight(self, count: int, *, timeout: float = 120) -> list[ScanRun]:
        """Wait until `count` scan runs exist (every cluster's scan planned, its steps queued),
        then return those still running."""
        self.wait_until(
            lambda: len(self.scan_runs()) >= count, timeout=timeout, what=f"{count} scan runs"
        )
        return [r for r in self.scan_runs() if r.state == ScanState.RUNNING]

    def scans_recovered(self, cluster_ids: Sequence[str], *, since: datetime) -> bool:
        """No scan run is still running, and each cluster has a scan that finished `done`
        after `since` (it was rescanned, or its scan re-driven to the end, after the fault)."""
        runs = self.scan_runs()
        if any(r.state == ScanState.RUNNING for r in runs):
            return False
        rescanned = {
            r.cluster_id
            for r in runs
            if r.state == ScanState.DONE and r.finished_at is not None and r.finished_at > since
        }
        return rescanned >= set(cluster_ids)

    def send_task(self, task_name: str, **kwargs: Any) -> None:
        """Send a task by name, as ingest and beat do (the rig's queue and key prefix)."""
        client = self.celery.client()
        try:
            client.send_task(task_name, kwargs=kwargs)
        finally:
            client.close()

    def scan_fleet(self, trigger: str = "schedule") -> None:
        """Start a fleet scan as beat does: the scan_fleet task, by name."""
        self.send_task(names.SCAN_FLEET, trigger=trigger)

    def scan_runs(self) -> list[ScanRun]:
        """Every scan run, oldest first (detached, read-only)."""
        with self.session() as session:
            runs = list(session.scalars(select(ScanRun).order_by(ScanRun.id)))
            session.expunge_all()
        return runs

    def describe_scans(self) -> str:
        """Every scan run, one line each (state, trigger, re-drives, times, unfinished steps,
        errors), for an assertion message when a scan did not recover."""
        lines = []
        with self.session() as session:
            for run in session.scalars(select(ScanRun).order_by(ScanRun.id)):
                unfinished = [(s.step, s.task_id) for s in unfinished_steps(session, run.id)]
                lines.append(
                    f"scan {run.id} {run.cluster_id} {run.state} trigger={run.trigger} "
                    f"redrives={run.redrives} started={run.started_at:%H:%M:%S} "
                    f"heartbeat={run.heartbeat_at and f'{run.heartbeat_at:%H:%M:%S}'} "
                    f"finished={run.finished_at and f'{run.finished_at:%H:%M:%S}'} "
                    f"task={run.task_id} finalize={run.finalize_task_id} "
                    f"unfinished={unfinished} errors={run.errors}"
                )
        return "\n".join(lines)

    def wait_until(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float,
        what: str = "the condition",
        interval: float = 0.5,
    ) -> float:
        """Poll `predicate` until it is true; returns the seconds it took. A predicate that
        meets the database or Redis unavailable counts as not yet true."""
        started = time.monotonic()
        deadline = started + timeout
        last_error = ""
        while True:
            try:
                if predicate():
                    return time.monotonic() - started
            except UNAVAILABLE as problem:
                last_error = f" (last error: {type(problem).__name__}: {problem})"[:400]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}{last_error}")
            time.sleep(interval)


def procfile_web_argv(*, host: str, port: int) -> list[str]:
    """The Procfile's `web:` gunicorn command (after its migration step) for this host and
    port, run by this interpreter's gunicorn."""
    line = next(
        entry.split(":", 1)[1]
        for entry in PROCFILE.read_text().splitlines()
        if entry.startswith("web:")
    )
    command = line.split("exec ", 1)[1] if "exec " in line else line
    argv = shlex.split(
        command.replace("${K8SMON_WEB_HOST:-0.0.0.0}", host).replace("$PORT", str(port))
    )
    if argv[0] != "gunicorn":
        raise ValueError(f"the Procfile's web process is not gunicorn: {line!r}")
    return [sys.executable, "-m", "gunicorn", *argv[1:]]


def final(run: ScanRun) -> bool:
    return run.state in (ScanState.DONE, ScanState.FAILED)
