"""Fixtures for agent tests: an emulated cluster behind a real HTTP server, a key, a receiver."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.collect import CollectOptions
from agent.config import DEFAULT_EXCLUDED_TYPES, AgentConfig
from agent.kube import KubeClient
from agent.loop import Agent
from agent.signing import AgentKey
from agent.transport import Sender
from tests.agent.receiver import Receiver
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator
from tests.fakes.kube_objects import small_cluster


@pytest.fixture
def cluster() -> FakeCluster:
    return small_cluster()


@pytest.fixture
def emulator(cluster: FakeCluster) -> Iterator[KubeApiEmulator]:
    with KubeApiEmulator(cluster) as api:
        yield api


@pytest.fixture
def kubeconfig(emulator: KubeApiEmulator, tmp_path: Path) -> Path:
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube(kubeconfig: Path) -> Iterator[KubeClient]:
    # Retries of throttled or failed requests never really sleep in tests.
    client = KubeClient.connect(kubeconfig=str(kubeconfig), timeout_s=10, sleep=lambda _s: None)
    yield client
    client.close()


@pytest.fixture
def options() -> CollectOptions:
    return CollectOptions(exclude_types=DEFAULT_EXCLUDED_TYPES, page_size=2)


@pytest.fixture
def agent_key() -> AgentKey:
    return AgentKey.generate()


@pytest.fixture
def key_file(agent_key: AgentKey, tmp_path: Path) -> Path:
    path = tmp_path / "private-key.pem"
    path.write_text(agent_key.private_key_pem, encoding="ascii")
    return path


@pytest.fixture
def receiver(agent_key: AgentKey) -> Iterator[Receiver]:
    with Receiver(agent_key.public_key) as server:
        yield server


@pytest.fixture
def config(receiver: Receiver, key_file: Path, kubeconfig: Path) -> AgentConfig:
    return AgentConfig(
        server_url=receiver.url,
        cluster_id="prod-eu",
        key_file=str(key_file),
        namespace="monitoring",
        kubeconfig=str(kubeconfig),
        page_size=2,
        push_interval_s=30,
        ping_interval_s=30,
        max_backoff_s=5,
    )


class FakeTime:
    def __init__(self) -> None:
        self.now = 5000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return False


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def agent(config: AgentConfig, kube: KubeClient, agent_key: AgentKey, fake_time: FakeTime) -> Agent:
    sender = Sender(
        server_url=config.server_url,
        cluster_id=config.cluster_id,
        key=agent_key,
        key_id=agent_key.fingerprint,
        timeout_s=10,
    )
    return Agent(
        config=config,
        kube=kube,
        sender=sender,
        key_fingerprint=agent_key.fingerprint,
        clock=fake_time.clock,
        wait=fake_time.wait,
        rng=random.Random(0),
    )
