"""Fixtures for the real-apiserver suite: etcd + kube-apiserver from KUBEBUILDER_ASSETS,
populated once per run, with the agent chart's RBAC, ServiceAccount and key Secret applied.

Without KUBEBUILDER_ASSETS the suite is skipped (so `make test` never needs the binaries);
`make test-k8s` sets K8SMON_K8S_REQUIRED=1, and then missing assets fail the run loudly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_e2e_ingest import ingest  # noqa: F401 - the real ingest server fixture
from tests.k8s.apiserver import ApiServer, assets_folder
from tests.k8s.objects import populate
from tests.k8s.rig import AgentInstall, install_agent

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if Path(str(item.path)).is_relative_to(HERE)]
    if not mine or assets_folder() is not None:
        return
    if os.environ.get("K8SMON_K8S_REQUIRED") == "1":
        raise pytest.UsageError(
            "the real-apiserver suite needs KUBEBUILDER_ASSETS (a folder holding etcd and "
            "kube-apiserver): run scripts/k8s-assets.sh, or `make test-k8s`, which does"
        )
    skip = pytest.mark.skip(reason="real-apiserver suite: run `make test-k8s` (KUBEBUILDER_ASSETS)")
    for item in mine:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServer]:
    assets = assets_folder()
    assert assets is not None
    workdir = Path(tempfile.mkdtemp(prefix="k8smon-apiserver-"))
    server = ApiServer(assets=assets, workdir=workdir)
    try:
        server.start()
        populate(server)
        yield server
    finally:
        server.stop()
        if os.environ.get("K8SMON_K8S_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def agent_install(apiserver: ApiServer) -> AgentInstall:
    return install_agent(apiserver)
