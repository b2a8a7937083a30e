"""Pipeline benchmark: fleet scans on real Celery workers, incremental rescans, purge under load.

Everything real: a throwaway PostgreSQL database migrated with the project's migrations, the
local Redis (its own key prefix and queue), `celery worker` subprocesses running the Procfile's
app, clusters populated through the store's snapshot staging and materialisation with
`bench.corpus` manifests (a realistic mix, a different seed per cluster).

1. Full fleet scan (cold rule-result cache, no findings yet) with one and with two worker
   processes: wall time from `scan_fleet` being sent until every cluster's scan run is done
   and the fleet-rule evaluation the fleet scan started (`EVALUATE_FLEET`) has finished too: a
   fleet scan is over when its fleet-rule findings are current as well (`fleet_scan`). Every
   fleet scan below is timed that way (before 2026-12-07 the evaluation, which runs beside
   the cluster scans, was not waited for and could finish after the figure was taken).
2. Incremental rescan after 1% of the objects changed (in 10% of the clusters, 10% of each):
   the same fleet scan with a warm cache, as a share of the full scan's time; measured after a
   first rescan that settles the cold scan's new findings (reported on its own), three rounds
   per run, plus a rescan with nothing changed. The rounds change a label no cluster rule
   reads, which a rescan answers without running the cluster rules again (label-only reuse);
   one more round per run changes the objects' specs instead (a container image, else an
   annotation), the general case, and is reported beside it.
3. Purge of 1,000,000 expired manifest versions while an ingest loop, in a process of its
   own as the real ingest is (`measure_ingest`), stages and applies snapshots and records
   telemetry: purge rate and the longest ingest operation (stall), compared with the longest
   one without purge.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bench.corpus import generate
from bench.harness import Figure, process_cpu_seconds
from store import migrate
from store.clusters import create_cluster
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import ManifestVersion, ScanRun
from store.snapshots import apply_pending, stage_snapshot
from store.telemetry import record_telemetry
from store.types import utcnow
from tests.support.manifests import full_envelope
from tests.support.services import ThrowawayDatabase, configured_postgres_url, redis_db_url
from workers.celery_app import BrokerOptions, create_celery
from workers.services.purge import purge_expired
from workers.tasks import TaskQueue

AREA = "pipeline"
REPO_ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_DB = 14
TARGET_RATE = 6_000  # objects/s of a full fleet scan per worker process (issue 21)
TARGET_SHARE = 0.02  # incremental rescan after 1% changed / full scan (issue 21)
WORKER_APP = "k8smon-bench-worker"  # application_name of the workers' database connections


@dataclass
class Env:
    database: ThrowawayDatabase
    engine: Engine
    sessions: sessionmaker[Session]
    environ: dict[str, str]
    workdir: Path

    def client(self) -> Any:
        from settings import load_settings  # noqa: PLC0415

        return create_celery(load_settings(self.environ), BrokerOptions.from_env(self.environ))


@contextmanager
def bench_env(tmp: Path) -> Iterator[Env]:
    server = configured_postgres_url() or "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    database = ThrowawayDatabase.create(server)
    engine = make_engine(database.url, pool_size=4)
    migrate.upgrade(engine)
    token = uuid.uuid4().hex[:8]
    redis_url = redis_db_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0", REDIS_DB)
    environ = {
        **os.environ,
        "K8SMON_ENV": "embedded",
        "DATABASE_URL": database.url,
        "REDIS_URL": redis_url,
        "K8SMON_INSTANCE_PATH": str(tmp),
        "K8SMON_TASK_QUEUE": f"k8smon-bench-{token}",
        "K8SMON_REDIS_KEY_PREFIX": f"k8smon-bench:{token}:",
        "PYTHONPATH": str(REPO_ROOT),
        "PGAPPNAME": WORKER_APP,  # libpq: the workers' backends, told apart from the bench's
        "K8SMON_LOG_LEVEL": "WARNING",
    }
    try:
        yield Env(database, engine, make_session_factory(engine), environ, tmp)
    finally:
        engine.dispose()
        database.drop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"k8smon-bench:{token}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _populate_one(database_url: str, n: int, objects: int) -> tuple[str, list[dict[str, Any]]]:
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    cluster_id = f"bench-{n:03d}"
    state = generate(objects, seed=1000 + n)
    with unit_of_work(sessions) as session:
        create_cluster(session, cluster_id)
        stage_snapshot(session, cluster_id, envelope=full_envelope(state))
    with unit_of_work(sessions) as session:
        apply_pending(session, cluster_id)
    engine.dispose()
    return cluster_id, state


def populate(env: Env, *, clusters: int, objects: int) -> dict[str, list[dict[str, Any]]]:
    """Stage and materialise every cluster's snapshot (two processes, as two ingests would)."""
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = pool.map(
            _populate_one, [env.database.url] * clusters, range(clusters), [objects] * clusters
        )
        states = dict(done)
    with env.engine.connect() as conn:
        conn.execute(text("COMMIT"))
        conn.execute(text("VACUUM ANALYZE"))
    return states


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants, plus
    its reaped children (Linux /proc): a Celery worker's main process and its pool."""
    parents: dict[int, int] = {}
    times: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        # after the command: state, ppid, ... utime (14th field), stime, cutime, cstime
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (
            int(fields[11]) + int(fields[12]),
            int(fields[13]) + int(fields[14]),
        )
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    ticks = sum(times[p][0] for p in tree if p in times) + times.get(pid, (0, 0))[1]
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def worker(env: Env, *, concurrency: int) -> Iterator[int]:
    log = (env.workdir / f"worker-{concurrency}-{uuid.uuid4().hex[:4]}.log").open("wb")
    process = subprocess.Popen(  # our celery binary, fixed arguments
        [
            CELERY,
            "-A",
            "workers.celery_app:app",
            "worker",  # every queue of the task table (K8SMON_TASK_QUEUE and its lanes)
            "-c",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench{uuid.uuid4().hex[:4]}@%h",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO_ROOT,
        env=env.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = env.client()
        deadline = time.monotonic() + 60
        while not client.control.ping(timeout=0.5):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the benchmark worker did not start")
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown of the main process
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def reset_scans(env: Env, *, cache: bool) -> None:
    """Forget every scan and finding (with `cache`, every cached result too), and the fleet
    evaluation's record of what it judged: findings deleted behind its back would otherwise
    be taken as still those it left (`store.fleet_state`)."""
    with env.engine.begin() as conn:
        tables = (
            "finding_events, findings, scan_steps, scan_runs, deliveries, fleet_evaluations"
            + (", rule_result_cache" if cache else "")
        )
        conn.execute(text(f"TRUNCATE {tables}"))


def backend_cpu_seconds(env: Env) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving the workers (Linux /proc;
    empty when the server runs elsewhere): with one worker process, a scan's wall time on an
    idle machine is about the worker's CPU time plus theirs, since the worker waits on them."""
    with env.engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = :app"
            ),
            {"app": WORKER_APP},
        ).scalars()
        found = {pid: process_cpu_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in found.items() if seconds is not None}


def fleet_scan(
    env: Env,
    *,
    clusters: int,
    cpu: list[float] | None = None,
    pid: int = 0,
    database_cpu: list[float] | None = None,
) -> float:
    """Seconds from sending scan_fleet until every cluster has one more finished scan run
    (on the worker that is running) and every task the scan_fleet task sent has finished: its
    batches of cluster scans and its fleet evaluation (`EVALUATE_FLEET`), read from the Celery
    result backend as the scan_fleet task's children (`fleet_tasks_done`; report deliveries
    are sent by the scans' finalize tasks, not by it, and are not waited for). With `cpu`, the
    CPU seconds the worker `pid` (with its pool processes) used meanwhile are appended to it,
    with `database_cpu` those of the PostgreSQL backends serving the workers (backends that
    ended meanwhile are missed)."""
    cpu_before = tree_cpu_seconds(pid) if cpu is not None else 0.0
    backends_before = backend_cpu_seconds(env) if database_cpu is not None else {}
    with unit_of_work(env.sessions) as session:
        before = (
            session.scalar(
                select(func.count())
                .select_from(ScanRun)
                .where(ScanRun.state.in_(("done", "failed")))
            )
            or 0
        )
    started = time.perf_counter()
    sent = env.client().send_task("k8smon.scan_fleet", args=["bench"])
    scans_done = False
    while True:
        with unit_of_work(env.sessions) as session:
            done = (
                session.scalar(
                    select(func.count())
                    .select_from(ScanRun)
                    .where(ScanRun.state.in_(("done", "failed")))
                )
                or 0
            )
        scans_done = scans_done or done >= before + clusters
        if scans_done and fleet_tasks_done(sent):
            elapsed = time.perf_counter() - started
            if cpu is not None:
                cpu.append(tree_cpu_seconds(pid) - cpu_before)
            if database_cpu is not None:
                database_cpu.append(
                    sum(
                        seconds - backends_before.get(backend, 0.0)
                        for backend, seconds in backend_cpu_seconds(env).items()
                    )
                )
            return elapsed
        time.sleep(0.05)


def fleet_tasks_done(sent: Any) -> bool:
    """Whether a scan_fleet task (its `AsyncResult`) and every task it sent have finished,
    from the result backend: the task records the ids of what it sent (its children: the
    group of cluster-scan batches and the fleet evaluation). A failed one raises."""
    if not sent.ready():
        return False
    if sent.failed():
        raise RuntimeError(f"scan_fleet failed: {sent.result!r}")
    children = list(sent.children or [])
    if not children:
        raise RuntimeError("scan_fleet recorded no tasks it sent (no fleet evaluation?)")
    for child in children:
        if not child.ready():
            return False
        if child.failed():
            raise RuntimeError(f"a task scan_fleet sent failed: {child.result!r}")
    return True


def drain(env: Env) -> None:
    """Wait until the worker has nothing queued or running (report deliveries included)."""
    client = env.client()
    prefix, options = env.environ["K8SMON_REDIS_KEY_PREFIX"], client.broker_options
    queues = [prefix + options.queue_name(queue) for queue in TaskQueue]
    broker = redis.Redis.from_url(env.environ["REDIS_URL"])
    try:
        while True:
            active = client.control.inspect(timeout=1).active() or {}
            if not any(broker.llen(q) for q in queues) and not any(active.values()):
                return
            time.sleep(0.5)
    finally:
        broker.close()


def last_scans_were(env: Env, *, clusters: int, key: str) -> int:
    """How many of the latest fleet scan's runs have counts[key] set (incremental, unchanged)."""
    with env.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM "
                    "(SELECT counts FROM scan_runs ORDER BY id DESC LIMIT :n) s "
                    "WHERE (s.counts::jsonb ->> :key)::int = 1"
                ),
                {"n": clusters, "key": key},
            ).scalar()
            or 0
        )


def fleet_evaluated_at(env: Env) -> Any:
    """When the fleet rules were last evaluated in full (`store.fleet_state`: a skipped
    evaluation leaves it as it was)."""
    with env.engine.connect() as conn:
        return conn.execute(text("SELECT max(evaluated_at) FROM fleet_evaluations")).scalar()


def change_one_percent(
    env: Env, states: dict[str, list[dict[str, Any]]], *, seed: int, spec: bool = False
) -> int:
    """Change 1% of all objects: 10% of the objects in 10% of the clusters (a label; with
    `spec`, the first container's image of an object with a pod template, else an
    annotation: a change the cluster rules must see)."""
    rng = random.Random(seed)
    chosen = rng.sample(sorted(states), max(1, len(states) // 10))
    changed = 0
    for cluster_id in chosen:
        state = states[cluster_id]
        for index in rng.sample(range(len(state)), max(1, len(state) // 10)):
            state[index] = (
                _changed_spec(state[index], seed) if spec else _relabelled(state[index], seed)
            )
            changed += 1
        with unit_of_work(env.sessions) as session:
            stage_snapshot(session, cluster_id, envelope=full_envelope(state))
        with unit_of_work(env.sessions) as session:
            apply_pending(session, cluster_id)
    return changed


def insert_expired_versions(env: Env, count: int) -> None:
    """`count` manifest versions superseded 60 days ago, spread over the existing objects."""
    with env.engine.begin() as conn:
        objects = conn.execute(text("SELECT count(*) FROM objects")).scalar() or 1
        rounds = -(-count // objects)
        conn.execute(
            text(
                "INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen, "
                "superseded_at) SELECT o.id, o.current_hash, now() - interval '90 days', "
                "now() - interval '60 days', now() - interval '60 days' "
                "FROM generate_series(1, :rounds) AS r CROSS JOIN objects AS o LIMIT :count"
            ),
            {"rounds": rounds, "count": count},
        )
    with env.engine.connect() as conn:
        conn.execute(text("COMMIT"))
        conn.execute(text("VACUUM ANALYZE manifest_versions"))


def ingest_loop(sessions: sessionmaker[Session], stop: Any, latencies: list[float]) -> None:
    """What the ingest and process_snapshot do all day: stage, materialise, record pings."""
    cluster_id = f"ingest-{uuid.uuid4().hex[:6]}"
    state = generate(300, seed=7)
    with unit_of_work(sessions) as session:
        create_cluster(session, cluster_id)
    revision = 0
    while revision == 0 or not stop.is_set():  # one round at least
        revision += 1
        for index in range(0, len(state), 30):
            meta = dict(state[index]["metadata"])
            meta["labels"] = {**(meta.get("labels") or {}), "rev": str(revision)}
            state[index] = {**state[index], "metadata": meta}
        started = time.perf_counter()
        with unit_of_work(sessions) as session:
            stage_snapshot(session, cluster_id, envelope=full_envelope(state))
            record_telemetry(session, cluster_id, payload={"agent_version": "bench"})
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        with unit_of_work(sessions) as session:
            apply_pending(session, cluster_id)
        latencies.append(time.perf_counter() - started)


def _ingest_process(database_url: str, ready: Any, stop: Any, out: Any) -> None:
    """`ingest_loop` in a process of its own, as the ingest runs apart from the workers: its
    latencies are sent to `out` when `stop` is set."""
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    latencies: list[float] = []
    try:
        with unit_of_work(sessions) as session:
            session.execute(text("SELECT 1"))  # connected: the caller's clock may start
        ready.set()
        ingest_loop(sessions, stop, latencies)
    finally:
        engine.dispose()
        out.send(latencies)


def measure_ingest(
    database_url: str, during: Callable[[], Any] | None, *, seconds: float
) -> tuple[list[float], float, Any]:
    """The ingest loop's operation latencies while `during()` runs (else for `seconds`), the
    seconds it ran and what it returned. The loop runs in its own process (spawned, so it
    shares no interpreter lock and no connection with the caller), as the real ingest
    does: a stall it measures is the database's, not this process's."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_ingest_process, args=(database_url, ready, stop, sender), daemon=True
    )
    process.start()
    try:
        while not ready.wait(timeout=0.5):
            if not process.is_alive():
                raise RuntimeError(f"the ingest process ended (exit code {process.exitcode})")
        started = time.perf_counter()
        result: Any = None
        if during is None:
            time.sleep(seconds)
        else:
            result = during()
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
    latencies: list[float] = receiver.recv() if receiver.poll(120) else []
    process.join(timeout=60)
    if not latencies:
        raise RuntimeError("the ingest process measured nothing")
    return latencies, elapsed, result


def one_worker_figures(
    one: list[float],
    one_cpu: list[float],
    one_database_cpu: list[float],
    *,
    total: int,
    quick: bool,
    size: str,
) -> list[Figure]:
    """The 1-worker full scan's wall time, the worker's CPU time and PostgreSQL's."""
    cpu_rate = total / statistics.median(one_cpu)
    both = [a + b for a, b in zip(one_cpu, one_database_cpu, strict=True)]
    return [
        Figure(
            AREA,
            f"full fleet scan, 1 worker process ({size})",
            "s",
            tuple(one),
            target="" if quick else f"<= {total / TARGET_RATE:,.0f} s",
            met=None if quick else total / statistics.median(one) >= TARGET_RATE,
            note=f"{total / statistics.median(one):,.0f} objects/s"
            + ("" if quick else f" (target: >= {TARGET_RATE:,} objects/s per worker)"),
        ),
        Figure(
            AREA,
            f"full fleet scan, 1 worker process: its CPU time ({size})",
            "s",
            tuple(one_cpu),
            note=f"{cpu_rate:,.0f} objects per worker CPU-second (the worker's main and "
            "pool process; PostgreSQL's own time not included)",
        ),
        Figure(
            AREA,
            f"full fleet scan, 1 worker process: PostgreSQL's CPU time ({size})",
            "s",
            tuple(one_database_cpu),
            note=f"{total / statistics.median(one_database_cpu):,.0f} objects per CPU-second "
            "of the backends serving the worker; worker and PostgreSQL together "
            f"{total / statistics.median(both):,.0f} objects per CPU-second (about the "
            "1-worker scan's rate on an idle machine: the worker waits on its queries)"
            if one_database_cpu and min(one_database_cpu) > 0
            else "PostgreSQL runs elsewhere: not measured",
        ),
    ]


def _relabelled(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    meta = dict(obj["metadata"])
    meta["labels"] = {**(meta.get("labels") or {}), "bench-rev": str(seed)}
    return {**obj, "metadata": meta}


def _changed_spec(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    template = (changed.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    if containers and isinstance(containers[0].get("image"), str):
        image = containers[0]["image"].rsplit(":", 1)[0]
        containers[0]["image"] = f"{image}:bench-{seed}"
        return changed
    meta = changed["metadata"]
    meta["annotations"] = {**(meta.get("annotations") or {}), "bench-rev": str(seed)}
    return changed


def run(*, quick: bool, out: Path) -> list[Figure]:
    clusters, objects = (12, 500) if quick else (200, 2000)
    # K8SMON_BENCH_CLUSTERS / _OBJECTS / _RUNS: a smaller fleet or fewer runs for a re-run
    # when the shared machine is busy.
    clusters = int(os.environ.get("K8SMON_BENCH_CLUSTERS") or clusters)
    objects = int(os.environ.get("K8SMON_BENCH_OBJECTS") or objects)
    expired = 50_000 if quick else 1_000_000
    runs = 2 if quick else 3  # medians (each full-size fleet scan takes 1-4 minutes)
    runs = int(os.environ.get("K8SMON_BENCH_RUNS") or runs)
    # K8SMON_BENCH_PIPELINE_ONLY (A/B probes): `one-worker`, only the 1-worker full scans;
    # `rescans`, only the 2-worker full scan and the rescans after it (no 1-worker scan, no
    # purge).
    only = os.environ.get("K8SMON_BENCH_PIPELINE_ONLY", "")
    one_worker_only = only == "one-worker"
    rescans_only = only == "rescans"
    rounds = 1 if quick else 3  # incremental rescans per run, each after its own 1% change
    total = clusters * objects
    size = f"{clusters} clusters x {objects:,} objects"
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"k8smon-bench-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    figures: list[Figure] = []
    with bench_env(workdir) as env:
        states = populate(env, clusters=clusters, objects=objects)
        one, two, settle, incremental, still = [], [], [], [], []
        spec_changed: list[float] = []  # the general case: a change the cluster rules see
        # CPU seconds of the worker (its main process and pool) during the same scans
        one_cpu: list[float] = []
        one_database_cpu: list[float] = []
        two_cpu: list[float] = []
        incremental_cpu: list[float] = []
        incremental_database_cpu: list[float] = []
        changed = reused = 0
        skipped = 0  # incremental rounds whose fleet evaluation was skipped
        for attempt in range(runs):
            if not rescans_only:
                reset_scans(env, cache=True)
                with worker(env, concurrency=1) as pid:
                    one.append(
                        fleet_scan(
                            env,
                            clusters=clusters,
                            cpu=one_cpu,
                            pid=pid,
                            database_cpu=one_database_cpu,
                        )
                    )
            if one_worker_only:
                continue
            reset_scans(env, cache=True)
            # The same worker processes go on to the rescans, so the rules they loaded (the
            # catalogue version) are the same as for the full scan.
            with worker(env, concurrency=2) as pid:
                two.append(fleet_scan(env, clusters=clusters, cpu=two_cpu, pid=pid))
                drain(env)  # the full scan's report deliveries finish first
                # The first rescan after a cold scan turns each of its new findings to open.
                settle.append(fleet_scan(env, clusters=clusters))
                drain(env)
                for round_ in range(rounds):
                    changed = change_one_percent(env, states, seed=attempt * rounds + round_ + 1)
                    evaluated = fleet_evaluated_at(env)
                    incremental.append(
                        fleet_scan(
                            env,
                            clusters=clusters,
                            cpu=incremental_cpu,
                            pid=pid,
                            database_cpu=incremental_database_cpu,
                        )
                    )
                    reused = last_scans_were(
                        env, clusters=clusters, key="unchanged"
                    ) + last_scans_were(env, clusters=clusters, key="incremental")
                    skipped += fleet_evaluated_at(env) == evaluated
                    drain(env)
                change_one_percent(env, states, seed=1000 + attempt, spec=True)
                spec_changed.append(fleet_scan(env, clusters=clusters))
                drain(env)
                still.append(fleet_scan(env, clusters=clusters))
        if one_worker_only:
            return one_worker_figures(
                one, one_cpu, one_database_cpu, total=total, quick=quick, size=size
            )
        speedups = () if rescans_only else tuple(a / b for a, b in zip(one, two, strict=True))
        shares = tuple(100 * seconds / statistics.median(two) for seconds in incremental)
        share = statistics.median(shares) / 100
        cpu_shares = tuple(100 * s / statistics.median(two_cpu) for s in incremental_cpu)
        changed_clusters = max(1, clusters // 10)  # change_one_percent's share of the clusters
        if not rescans_only:
            figures += one_worker_figures(
                one, one_cpu, one_database_cpu, total=total, quick=quick, size=size
            )
        figures.append(
            Figure(
                AREA,
                f"full fleet scan, 2 worker processes ({size})",
                "s",
                tuple(two),
                note=f"{total / statistics.median(two):,.0f} objects/s",
            )
        )
        if not rescans_only:
            figures.append(
                Figure(
                    AREA,
                    "speed-up with 2 worker processes",
                    "x",
                    speedups,
                    target="" if quick else ">= 1.7x",
                    met=None if quick else statistics.median(speedups) >= 1.7,
                    note="per run; 2-core machine shared with PostgreSQL",
                )
            )
        figures += [
            Figure(
                AREA,
                "first fleet rescan after the cold scan, nothing changed",
                "s",
                tuple(settle),
                note="turns every new finding of the full scan to open, one UPDATE per cluster",
            ),
            Figure(
                AREA,
                f"incremental fleet rescan after 1% changed ({changed:,} objects)",
                "s",
                tuple(incremental),
                note=f"10% of the objects in 10% of the clusters, {rounds} rounds a run; "
                f"{reused} of {clusters} scans no-op or incremental; the fleet evaluation "
                f"skipped in {skipped} of {len(incremental)} rounds (its inputs unchanged)",
            ),
            Figure(
                AREA,
                "incremental rescan as a share of the full scan, a label change",
                "%",
                shares,
                target="" if quick else f"<= {TARGET_SHARE:.0%}",
                met=None if quick else share <= TARGET_SHARE,
                note="median incremental rescan / median full scan (2 workers)"
                + ("; the target is for the full-size fleet" if quick else ""),
            ),
            Figure(
                AREA,
                "incremental rescan as a share of the full scan, a spec change",
                "%",
                tuple(100 * seconds / statistics.median(two) for seconds in spec_changed),
                target="" if quick else f"<= {TARGET_SHARE:.0%}",
                met=None
                if quick
                else statistics.median(spec_changed) / statistics.median(two) <= TARGET_SHARE,
                note="1% changed as above, a container image (else an annotation) instead of a "
                "label: the cluster rules run again (the label rounds reuse them); one a run",
            ),
            Figure(
                AREA,
                "incremental rescan as a share of the full scan, worker CPU time",
                "%",
                cpu_shares,
                note="the 2-worker scans' CPU seconds (main and pool processes), medians",
            ),
            Figure(
                AREA,
                "incremental rescan after 1% changed, CPU per changed cluster",
                "ms",
                tuple(
                    1000 * (worker + database) / changed_clusters
                    for worker, database in zip(
                        incremental_cpu, incremental_database_cpu, strict=True
                    )
                ),
                note="worker and PostgreSQL CPU of the rescan over its "
                f"{changed_clusters} changed clusters (the no-op runs of the others included): "
                f"worker {1000 * statistics.median(incremental_cpu) / changed_clusters:,.0f} ms, "
                "PostgreSQL "
                f"{1000 * statistics.median(incremental_database_cpu) / changed_clusters:,.0f} ms",
            ),
            Figure(
                AREA,
                "fleet rescan with nothing changed",
                "s",
                tuple(still),
                note=f"{clusters} no-op scan runs recorded by the scan_fleet task",
            ),
        ]

        if rescans_only:
            return figures
        cutoff_days = 30
        insert_expired_versions(env, expired)
        baseline, _elapsed, _ = measure_ingest(env.database.url, None, seconds=2 if quick else 15)
        purge_s: list[float] = []
        stalls_ms: list[float] = []
        during: list[float] = []
        rates: list[float] = []
        left = 0
        for attempt in range(runs):
            if attempt:
                insert_expired_versions(env, expired)
            loaded, seconds, deleted = measure_ingest(
                env.database.url,
                lambda: purge_expired(env.sessions, retention_days=cutoff_days),
                seconds=0,
            )
            purge_s.append(seconds)
            stalls_ms.append(max(loaded) * 1000)
            during.extend(loaded)
            rates.append(deleted["manifest_versions"] / seconds)
            with unit_of_work(env.sessions) as session:
                left += (
                    session.scalar(
                        select(func.count())
                        .select_from(ManifestVersion)
                        .where(
                            ManifestVersion.superseded_at < utcnow() - timedelta(days=cutoff_days)
                        )
                    )
                    or 0
                )
        figures += [
            Figure(
                AREA,
                f"purge of {expired:,} expired manifest versions",
                "s",
                tuple(purge_s),
                note=f"{statistics.median(rates):,.0f} versions/s; {left} expired left",
            ),
            Figure(
                AREA,
                "longest ingest operation during purge",
                "ms",
                tuple(stalls_ms),
                note=f"without purge: {max(baseline) * 1000:.0f} ms; median during purge "
                f"{statistics.median(during) * 1000:.0f} ms, "
                f"{len(during)} operations",
            ),
        ]
    return figures
