"""The Procfile under the real `honcho start`, with the `.env` docs/deploy.md shows: web,
worker, snapshots worker, beat and Flower come up on throwaway ports, stay up, and stop
cleanly; the snapshots worker consumes the snapshots queue alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cli.flower import FlowerOptions, FlowerRefused
from contracts.tasks import PROCESS_SNAPSHOT, PURGE_EXPIRED, SWEEP_UNPROCESSED
from settings import load_settings
from tests.support.services import ThrowawayDatabase
from tests.workers.celery_rig import free_port, wait_for
from workers.celery_app import BrokerOptions, create_celery
from workers.tasks import TaskQueue

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STAY_UP_S = 20


def _env_file(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


@pytest.fixture
def stack(
    tmp_path: Path, postgres_database: ThrowawayDatabase, redis_url: str, redis_key_prefix: str
) -> Iterator[dict[str, object]]:
    token = uuid.uuid4().hex[:10]
    web_port, flower_port = free_port(), free_port()
    dotenv = {
        # The .env of docs/deploy.md, with throwaway ports, database and broker namespace.
        "PORT": str(web_port),
        "K8SMON_ENV": "production",
        "DATABASE_URL": postgres_database.url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "procfile-test-" + "s" * 40,
        "K8SMON_INSTANCE_PATH": str(tmp_path / "instance"),
        "K8SMON_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": "ops:procfile-test-password",
        "K8SMON_TASK_QUEUE": f"k8smon-test-{token}",
        "K8SMON_REDIS_KEY_PREFIX": redis_key_prefix,
    }
    env_path = _env_file(tmp_path / ".env", dotenv)
    log_path = tmp_path / "honcho.log"
    before = set(os.listdir(REPO_ROOT))
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("K8SMON_", "FLOWER_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "start", "--no-colour", "-e", str(env_path)],
            cwd=REPO_ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield {
            "honcho": honcho,
            "env": {**environ, **dotenv},
            "log": log_path,
            "web": f"http://127.0.0.1:{web_port}",
            "flower": f"http://127.0.0.1:{flower_port}",
            "instance": tmp_path / "instance",
            "repo_before": before,
        }
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)


def _get(url: str, **kwargs: object) -> requests.Response | None:
    try:
        return requests.get(url, timeout=3, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException:
        return None


def _queues_by_node(celery_app: object) -> dict[str, set[str]] | None:
    """Each worker node's consumed queues, once both processes of the Procfile answer."""
    replies = celery_app.control.inspect(timeout=3).active_queues() or {}  # type: ignore[attr-defined]
    consumed = {node: {q["name"] for q in queues} for node, queues in replies.items()}
    return consumed if len(consumed) >= 2 else None


def _all_up(stack: dict[str, object], celery_app: object) -> None:
    web, flower = str(stack["web"]), str(stack["flower"])
    health = _get(f"{web}/healthz")
    assert health is not None and health.status_code == 200, "web /healthz"
    # The workers: a real task round trip through each of the stack's own queues.
    for name in (SWEEP_UNPROCESSED, PURGE_EXPIRED):
        outcome = celery_app.send_task(name).get(timeout=60)  # type: ignore[attr-defined]
        assert outcome, name
    # Two worker processes: `worker` on every queue, `snapshots` on the snapshots queue only.
    options: BrokerOptions = celery_app.broker_options  # type: ignore[attr-defined]
    snapshots_queue = options.queue_name(TaskQueue.SNAPSHOTS)
    assert options.routes()[PROCESS_SNAPSHOT] == snapshots_queue
    consumed = wait_for(
        lambda: _queues_by_node(celery_app), timeout=30, what="both workers to answer inspect"
    )
    by_role = {node.split("@", 1)[0]: queues for node, queues in consumed.items()}
    assert by_role["snapshots"] == {snapshots_queue}, consumed
    assert {options.queue, snapshots_queue} <= set().union(
        *(queues for role, queues in by_role.items() if role != "snapshots")
    ), consumed
    # Flower: behind basic auth.
    anonymous = _get(f"{flower}/")
    assert anonymous is not None and anonymous.status_code == 401
    signed_in = _get(f"{flower}/workers", auth=("ops", "procfile-test-password"))
    assert signed_in is not None and signed_in.status_code == 200


@pytest.mark.slow
def test_honcho_start_runs_the_whole_stack_and_keeps_it_up(stack: dict[str, object]) -> None:
    honcho: subprocess.Popen[bytes] = stack["honcho"]  # type: ignore[assignment]
    log: Path = stack["log"]  # type: ignore[assignment]
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]

    def logs() -> str:
        return log.read_text(errors="replace")

    def web_up() -> bool:
        assert honcho.poll() is None, logs()
        answer = _get(f"{stack['web']}/healthz")
        return answer is not None and answer.status_code == 200

    def flower_up() -> bool:
        assert honcho.poll() is None, logs()
        return _get(f"{stack['flower']}/") is not None

    wait_for(web_up, timeout=90, what="web to answer /healthz")
    wait_for(flower_up, timeout=60, what="flower to listen")
    schedule = Path(stack["instance"]) / "celerybeat-schedule"  # type: ignore[arg-type]
    wait_for(
        lambda: "beat: Starting" in logs() and list(schedule.parent.glob(schedule.name + "*")),
        timeout=60,
        what="beat to start with its schedule file in the instance folder",
    )
    celery_app = create_celery(load_settings(env), BrokerOptions.from_env(env))
    _all_up(stack, celery_app)

    time.sleep(STAY_UP_S)
    assert honcho.poll() is None, logs()
    _all_up(stack, celery_app)
    text = logs()
    assert "database at revision" in text  # the web line migrated before serving
    assert "Traceback" not in text, text[-6000:]

    os.killpg(honcho.pid, signal.SIGTERM)
    honcho.wait(timeout=60)
    assert _get(f"{stack['web']}/healthz") is None
    assert _get(f"{stack['flower']}/") is None
    # Nothing written into the repository's root (beat's schedule, pid files, ...).
    assert set(os.listdir(REPO_ROOT)) - stack["repo_before"] == set()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ["--address=127.0.0.1", "--port=5555"]),
        (
            {"FLOWER_BASIC_AUTH": "ops:pw", "FLOWER_ADDRESS": "0.0.0.0", "FLOWER_PORT": "6000"},
            ["--address=0.0.0.0", "--port=6000", "--basic-auth=ops:pw"],
        ),
        ({"FLOWER_ADDRESS": "::1"}, ["--address=::1", "--port=5555"]),
    ],
)
def test_flower_options(environ: dict[str, str], expected: list[str]) -> None:
    assert FlowerOptions.from_env(environ).argv()[4:] == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"FLOWER_ADDRESS": "0.0.0.0"},
        {"FLOWER_ADDRESS": "10.0.0.5", "FLOWER_BASIC_AUTH": ""},
        {"FLOWER_BASIC_AUTH": "nopassword"},
        {"FLOWER_PORT": "port"},
    ],
)
def test_flower_refuses_unsafe_or_invalid_settings(environ: dict[str, str]) -> None:
    with pytest.raises(FlowerRefused):
        FlowerOptions.from_env(environ)


def test_flower_line_exits_when_public_without_auth() -> None:
    env = {**os.environ, "FLOWER_ADDRESS": "0.0.0.0"}
    env.pop("FLOWER_BASIC_AUTH", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli.flower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "without FLOWER_BASIC_AUTH" in done.stderr
