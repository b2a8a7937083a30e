"""Unsent telemetry is buffered (bounded) and re-sent oldest first; an outage slips no cadence."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError
from agent.kube import KubeClient
from agent.loop import Agent
from agent.signing import AgentKey
from agent.telemetry import PingBuffer
from agent.transport import Sender
from tests.agent.receiver import Receiver, Reply
from tests.agent.test_process import REPO, _env, _events


def _seqs(receiver: Receiver) -> list[int]:
    return [p.document["details"]["seq"] for p in receiver.telemetry() if p.status == 202]


def test_the_buffer_keeps_the_newest_and_counts_what_it_dropped() -> None:
    buffer = PingBuffer(3)
    assert [buffer.add(bytes([n])) for n in range(5)] == [0, 0, 0, 1, 1]
    assert list(buffer.pending) == [b"\x02", b"\x03", b"\x04"] and buffer.dropped == 2
    assert buffer.oldest() == b"\x02"
    buffer.sent()
    assert buffer.oldest() == b"\x03" and len(buffer) == 2
    with pytest.raises(ValueError):
        PingBuffer(0)


def test_the_buffer_size_is_configurable() -> None:
    base = {"K8SMON_AGENT_SERVER_URL": "https://m", "K8SMON_AGENT_CLUSTER_ID": "c"}
    assert AgentConfig.from_env(base).telemetry_buffer == 60
    assert (
        AgentConfig.from_env({**base, "K8SMON_AGENT_TELEMETRY_BUFFER": "5"}).telemetry_buffer == 5
    )
    for bad in ("0", "-1", "2.5", "x"):
        with pytest.raises(ConfigError, match="K8SMON_AGENT_TELEMETRY_BUFFER"):
            AgentConfig.from_env({**base, "K8SMON_AGENT_TELEMETRY_BUFFER": bad})


def test_an_outage_slips_neither_cycles_nor_pings_and_pings_are_resent_in_order(
    config: AgentConfig, kube: KubeClient, agent_key: AgentKey, receiver: Receiver
) -> None:
    """The server answers 503 for 60 s: cycles still start every 30 s and pings every 10 s
    (the measured defect: a push retried for a whole interval, then a full interval more, so
    cycles came every ~2 intervals and the pings made meanwhile were lost)."""
    receiver.default = Reply(503)
    now = [5000.0]
    start = now[0]

    def wait(seconds: float) -> bool:
        now[0] += seconds
        if now[0] >= start + 60:
            receiver.default = Reply(202)
        return now[0] >= start + 95

    sender = Sender(
        server_url=config.server_url,
        cluster_id=config.cluster_id,
        key=agent_key,
        key_id="k",
        timeout_s=10,
    )
    agent = Agent(
        config=replace(config, push_interval_s=30, ping_interval_s=10, max_backoff_s=4),
        kube=kube,
        sender=sender,
        key_fingerprint="f",
        clock=lambda: now[0],
        wall=lambda: now[0] + 1_700_000_000,
        wait=wait,
        rng=random.Random(0),
    )
    cycles: list[float] = []
    pings: list[float] = []
    push_cycle, ping = agent.push_cycle, agent.ping
    agent.push_cycle = lambda **kw: (cycles.append(now[0]), push_cycle(**kw))[1]  # type: ignore[method-assign]
    agent.ping = lambda **kw: (pings.append(now[0]), ping(**kw))[1]  # type: ignore[method-assign]
    agent.run()

    assert [c - start for c in cycles] == pytest.approx([0, 30, 60, 90])
    assert [p - start for p in pings] == pytest.approx([0, 10, 20, 30, 40, 50, 60, 70, 80, 90])
    # Every ping made during the outage arrived after it, oldest first, with its own time.
    assert _seqs(receiver) == list(range(1, 11))
    accepted = [p.document for p in receiver.telemetry() if p.status == 202]
    made_at = [time.mktime(time.strptime(d["sent_at"], "%Y-%m-%dT%H:%M:%SZ")) for d in accepted]
    assert [t - made_at[0] for t in made_at] == pytest.approx(range(0, 100, 10))
    assert len(agent.unsent) == 0


def _run_outage(
    tmp_path: Path,
    agent_key: AgentKey,
    key_file: Path,
    kubeconfig: Path,
    *,
    buffer: int,
    outage_s: float,
) -> tuple[Receiver, list[dict], float]:
    """Run the real agent against a server that is down for `outage_s`, then comes back."""
    probe = Receiver(agent_key.public_key).start()
    port = int(probe.url.rsplit(":", 1)[1])
    probe.stop()  # nothing listens there now: connection refused
    env = _env(probe, key_file, kubeconfig)
    env.update(
        K8SMON_AGENT_PUSH_INTERVAL="2",
        K8SMON_AGENT_PING_INTERVAL="0.5",
        K8SMON_AGENT_MAX_BACKOFF="0.5",
        K8SMON_AGENT_PUSH_TIMEOUT="2",
        K8SMON_AGENT_TELEMETRY_BUFFER=str(buffer),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "agent"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    receiver = Receiver(agent_key.public_key, port=port)
    try:
        time.sleep(outage_s)
        recovered_at = time.time()
        receiver.start()
        # A ping made well after the recovery arrives after the buffer was flushed.
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(recovered_at + 2))
        assert receiver.wait_for(
            lambda r: any(
                p.status == 202 and p.document["sent_at"] >= later for p in r.telemetry()
            ),
            timeout=60,
        ), "the agent never sent telemetry after the recovery"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        receiver.stop()
    assert process.returncode == 0, stderr
    return receiver, _events(stderr), recovered_at


def _made_before(receiver: Receiver, moment: float) -> list[int]:
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
    return [
        p.document["details"]["seq"]
        for p in receiver.telemetry()
        if p.status == 202 and p.document["sent_at"] < cutoff
    ]


def test_the_real_agent_resends_every_ping_of_a_short_outage(
    tmp_path: Path, agent_key: AgentKey, key_file: Path, kubeconfig: Path
) -> None:
    receiver, events, recovered_at = _run_outage(
        tmp_path, agent_key, key_file, kubeconfig, buffer=100, outage_s=4
    )
    seqs = _seqs(receiver)
    assert seqs == list(range(1, len(seqs) + 1))  # none lost, oldest first
    assert all(p.verdict == "verified" for p in receiver.telemetry())
    assert len(_made_before(receiver, recovered_at)) >= 2  # made while the server was down
    assert not [e for e in events if e["event"] == "telemetry.dropped"]
    assert any(e["event"] == "telemetry.failed" for e in events)
    assert [p.status for p in receiver.snapshots()][:1] == [202]


def test_the_real_agent_keeps_only_the_newest_pings_of_a_long_outage(
    tmp_path: Path, agent_key: AgentKey, key_file: Path, kubeconfig: Path
) -> None:
    receiver, events, recovered_at = _run_outage(
        tmp_path, agent_key, key_file, kubeconfig, buffer=3, outage_s=5
    )
    seqs = _seqs(receiver)
    first = seqs[0]
    assert first > 1  # the oldest went
    assert seqs == list(range(first, first + len(seqs)))  # the rest arrived, oldest first
    assert len(_made_before(receiver, recovered_at)) <= 3  # never more than the bound
    dropped = [e for e in events if e["event"] == "telemetry.dropped"]
    assert sum(e["dropped"] for e in dropped) == first - 1
    assert receiver.telemetry()[-1].document["details"]["pings_dropped"] == first - 1
