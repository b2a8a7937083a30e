"""Unsent telemetry is buffered (bounded) and re-sent oldest first; an outage slips no cadence."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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
    agent_key: AgentKey,
    key_file: Path,
    kubeconfig: Path,
    *,
    buffer: int,
    down_until: Callable[[list[dict]], bool],
) -> tuple[Receiver, list[dict], int]:
    """Run the real agent against a server that is down until the agent's log lines satisfy
    `down_until`, then comes back on the same port. Returns the receiver, every log line and
    how many pings had failed (been made) before the server came back."""
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[dict] = []
    changed = threading.Condition()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with changed:
                events.extend(_events(line))
                changed.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    receiver = Receiver(agent_key.public_key, port=port)
    try:
        with changed:
            assert changed.wait_for(lambda: down_until(events), timeout=120), events
            failed_before = _count(events, "telemetry.failed")
        receiver.start()
        # Two pings later than the last failed one: the buffer was flushed before them.
        assert receiver.wait_for(
            lambda r: any(s >= failed_before + 3 for s in _seqs(r)), timeout=60
        ), "the agent never sent telemetry after the recovery"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        receiver.stop()
    assert process.returncode == 0, events
    return receiver, events, failed_before


def _count(events: list[dict], name: str) -> int:
    return sum(1 for e in events if e["event"] == name)


def test_the_real_agent_resends_every_ping_of_a_short_outage(
    agent_key: AgentKey, key_file: Path, kubeconfig: Path
) -> None:
    receiver, events, failed_before = _run_outage(
        agent_key,
        key_file,
        kubeconfig,
        buffer=100,
        down_until=lambda ev: _count(ev, "telemetry.failed") >= 6,
    )
    seqs = _seqs(receiver)
    assert failed_before >= 6
    assert seqs == list(range(1, len(seqs) + 1))  # none lost, oldest first
    assert len(seqs) > failed_before  # the ones made during the outage, then fresh ones
    assert all(p.verdict == "verified" for p in receiver.telemetry())
    # Each kept the time it was made: non-decreasing, and the outage's are older than the rest.
    sent_at = [p.document["sent_at"] for p in receiver.telemetry() if p.status == 202]
    assert sent_at == sorted(sent_at)
    assert sent_at[0] < sent_at[-1]
    assert _count(events, "telemetry.dropped") == 0
    assert [p.status for p in receiver.snapshots()][:1] == [202]


def test_the_real_agent_keeps_only_the_newest_pings_of_a_long_outage(
    agent_key: AgentKey, key_file: Path, kubeconfig: Path
) -> None:
    receiver, events, failed_before = _run_outage(
        agent_key,
        key_file,
        kubeconfig,
        buffer=3,
        down_until=lambda ev: _count(ev, "telemetry.dropped") >= 3,
    )
    seqs = _seqs(receiver)
    first = seqs[0]
    assert first > 1  # the oldest went
    assert seqs == list(range(first, first + len(seqs)))  # the rest arrived, oldest first
    # Of the pings made while the server was down, never more than the bound arrived.
    assert 1 <= len([s for s in seqs if s <= failed_before]) <= 3
    dropped = [e for e in events if e["event"] == "telemetry.dropped"]
    assert sum(e["dropped"] for e in dropped) == first - 1
    assert receiver.telemetry()[-1].document["details"]["pings_dropped"] == first - 1
