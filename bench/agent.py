"""Agent benchmark: collect and push an emulated 20,000-object cluster from a real agent process.

Measures, for `python -m agent` run as a subprocess against the Kubernetes API emulator and a
local receiver: wall time from process start to the acknowledged full push, the process's peak
RSS (VmHWM), and bytes on the wire for the full push and for the delta after 1% of the
objects changed.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.signing import AgentKey
from bench.harness import Figure
from tests.agent.receiver import Receiver
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator
from tests.fakes.kube_objects import populate

AREA = "agent"
REPO = Path(__file__).resolve().parent.parent
FULL_OBJECTS = 20_000
CHANGE_FRACTION = 0.01


@dataclass(frozen=True)
class RunResult:
    wall_s: float
    collection_s: float
    peak_rss_mb: float
    full_bytes: int
    full_json_bytes: int
    delta_bytes: int
    objects: int
    changed: int


def _change_one_percent(cluster: FakeCluster) -> int:
    """A real (non-volatile) change to every 100th object: a new label."""
    seen = [0]

    def pick(_obj: dict[str, Any]) -> bool:
        seen[0] += 1
        return seen[0] % round(1 / CHANGE_FRACTION) == 0

    def change(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("labels", {})["bench/changed"] = "yes"

    return cluster.edit(pick, change)


def _peak_rss_kib(pid: int) -> int:
    """The process's own peak resident set (VmHWM), in KiB.

    Not `wait4`/RUSAGE_CHILDREN: on Linux a child's ru_maxrss also counts the parent's resident
    set at fork time, and this parent holds the whole emulated cluster.
    """
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc (not Linux?)")


def _one_run(total: int, workdir: Path) -> RunResult:
    cluster = FakeCluster.standard(git_version="v1.29.3-eks-adc7111")
    populate(cluster, total=total)
    key = AgentKey.generate()
    key_file = workdir / "agent.pem"
    key_file.write_text(key.private_key_pem, encoding="ascii")
    changed = [0]
    with KubeApiEmulator(cluster) as api, Receiver(key.public_key) as receiver:
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_AGENT_")}
        env.update(
            K8SMON_AGENT_SERVER_URL=receiver.url,
            K8SMON_AGENT_CLUSTER_ID="bench",
            K8SMON_AGENT_KEY_FILE=str(key_file),
            K8SMON_AGENT_KUBECONFIG=str(kubeconfig),
            K8SMON_AGENT_NAMESPACE="monitoring",
            K8SMON_AGENT_PUSH_INTERVAL="2",
            K8SMON_AGENT_PING_INTERVAL="3600",
            K8SMON_AGENT_LOG_LEVEL="INFO",
            PYTHONPATH=str(REPO),
        )
        log_path = workdir / "agent.log"
        started = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "agent"],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            if not receiver.wait_for(lambda r: r.snapshots(), timeout=300):
                raise RuntimeError("the agent never pushed a full snapshot")
            wall = time.perf_counter() - started
            changed[0] = _change_one_percent(cluster)
            if not receiver.wait_for(lambda r: len(r.snapshots()) >= 2, timeout=300):
                raise RuntimeError("the agent never pushed the delta")
            peak_kib = _peak_rss_kib(process.pid)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                process.wait()
        full, delta = receiver.snapshots()[:2]
        if full.verdict != "verified" or full.document["type"] != "full":
            raise RuntimeError(f"unexpected first push: {full.verdict}")
        if delta.document["type"] != "delta":
            raise RuntimeError("second push was not a delta")
        events = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        first_collection = next(e for e in events if e["event"] == "collection.done")
        return RunResult(
            wall_s=wall,
            collection_s=float(first_collection["duration_s"]),
            peak_rss_mb=peak_kib / 1024,
            full_bytes=len(full.raw),
            full_json_bytes=len(gzip.decompress(full.raw)),
            delta_bytes=len(delta.raw),
            objects=len(full.document["objects"]),
            changed=len(delta.document["objects"]),
        )


def run(*, quick: bool, out: Path) -> list[Figure]:
    runs = 1 if quick else 3
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            results.append(_one_run(FULL_OBJECTS, workdir))
    walls = tuple(r.wall_s for r in results)
    rss = tuple(r.peak_rss_mb for r in results)
    ratios = tuple(100 * r.delta_bytes / r.full_bytes for r in results)
    last = results[-1]
    return [
        Figure(
            AREA,
            f"collect + full push, {last.objects:,} objects (process start to 202)",
            "s",
            walls,
            target="< 20 s",
            met=statistics.median(walls) < 20,
        ),
        Figure(
            AREA,
            "of which collection, as the agent measures it",
            "s",
            tuple(r.collection_s for r in results),
            note="discovery and paged lists of every type",
        ),
        Figure(
            AREA,
            "agent peak RSS (full push, then delta)",
            "MB",
            rss,
            target="< 200 MB",
            met=statistics.median(rss) < 200,
        ),
        Figure(
            AREA,
            "full push on the wire (gzip)",
            "KB",
            tuple(r.full_bytes / 1024 for r in results),
            note=f"{last.objects:,} objects, {last.full_json_bytes / 2**20:.1f} MB of JSON",
        ),
        Figure(
            AREA,
            "delta push on the wire after 1% change",
            "KB",
            tuple(r.delta_bytes / 1024 for r in results),
            note=f"{last.changed} changed objects",
        ),
        Figure(
            AREA,
            "delta size as share of full push",
            "%",
            ratios,
            target="< 2 %",
            met=statistics.median(ratios) < 2,
        ),
    ]
