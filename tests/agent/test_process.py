"""`python -m agent` as a real process: SIGTERM lets the push in flight finish, then it exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from agent.signing import AgentKey, default_key_id
from tests.agent.receiver import Receiver, Reply
from tests.fakes.kube_api import KubeApiEmulator

REPO = Path(__file__).resolve().parents[2]


def _env(receiver: Receiver, key_file: Path, kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_AGENT_")}
    env.update(
        K8SMON_AGENT_SERVER_URL=receiver.url,
        K8SMON_AGENT_CLUSTER_ID="prod-eu",
        K8SMON_AGENT_KEY_FILE=str(key_file),
        K8SMON_AGENT_KUBECONFIG=str(kubeconfig),
        K8SMON_AGENT_NAMESPACE="monitoring",
        K8SMON_AGENT_PUSH_INTERVAL="3600",
        K8SMON_AGENT_PING_INTERVAL="3600",
        PYTHONPATH=str(REPO),
    )
    return env


def _events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_sigterm_finishes_the_push_in_flight_and_exits(
    receiver: Receiver, key_file: Path, kubeconfig: Path, emulator: KubeApiEmulator
) -> None:
    receiver.script.append(Reply(202, delay_s=2.0))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent"],
        env=_env(receiver, key_file, kubeconfig),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.snapshot_started.wait(timeout=60), "the agent never pushed"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    events = _events(stderr)
    names = [e["event"] for e in events]
    assert names.index("agent.stopping") < names.index("push.done") < names.index("agent.stopped")
    done = next(e for e in events if e["event"] == "push.done")
    assert done["status"] == 202 and done["type"] == "full"
    assert [p.status for p in receiver.snapshots()] == [202]
    assert receiver.snapshots()[0].verdict == "verified"
    assert receiver.telemetry() == []  # stopped before anything else was started
    key_event = next(e for e in events if e["event"] == "agent.key")
    assert key_event["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert key_event["source"] == "file"
    assert all(e["level"] in {"info", "warning", "error"} for e in events)
    assert not [r for r in emulator.requests if "secrets" in r.path.split("/")]


def test_missing_configuration_exits_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_AGENT_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "agent"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "K8SMON_AGENT_SERVER_URL is required" in result.stderr


def test_once_pushes_one_full_snapshot_and_one_ping(
    receiver: Receiver, key_file: Path, kubeconfig: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "once"],
        env=_env(receiver, key_file, kubeconfig),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [p.document["type"] for p in receiver.snapshots()] == ["full"]
    assert len(receiver.telemetry()) == 1
    assert all(p.verdict == "verified" for p in receiver.pushes)
    expected_key_id = default_key_id("prod-eu", AgentKey.load(key_file.read_bytes()).public_key)
    assert f'keyid="{expected_key_id}"' in receiver.snapshots()[0].headers["Signature-Input"]


def test_no_kubernetes_configuration_exits_with_a_clear_error(
    receiver: Receiver, key_file: Path, tmp_path: Path
) -> None:
    env = _env(receiver, key_file, tmp_path / "missing-kubeconfig")
    result = subprocess.run(
        [sys.executable, "-m", "agent"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert [e["event"] for e in _events(result.stderr)][-1] == "kube.unconfigured"
