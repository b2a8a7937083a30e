"""`make demo`: the whole system on a bare machine in one process, end to end.

Starts the server on the embedded default (SQLite in a fresh folder, tasks in-process),
registers a demo cluster with a freshly generated agent key, pushes the bundled example
cluster (`examples/demo-cluster`) through the real signed push protocol with the agent's
one-shot push, waits for the scan the push starts, prints the report per cluster and per rule
(with CIS ids) and the path of the HTML report, and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from agent.__main__ import main as agent_main
from agent.signing import AgentKey, default_key_id
from cli.embedded import EmbeddedServer
from reports.build import build_cluster_report
from reports.text import render_text
from store.clusters import add_cluster_key, create_cluster
from store.db import unit_of_work
from store.models import Cluster, ScanRun, Snapshot
from workers.services.delivery import html_report_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo-cluster"
CLUSTER_ID = "demo"
# Variables of a real deployment that must not leak into the demo's embedded world.
_DROPPED = (
    "DATABASE_URL",
    "REDIS_URL",
    "K8SMON_ENV",
    "K8SMON_INSTANCE_PATH",
    "K8SMON_RULES_CONFIG",
    "K8SMON_SCAN_ON_PUSH",
    "SECRET_KEY",
)


def demo_environ(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(
        {
            "K8SMON_ENV": "embedded",
            "K8SMON_INSTANCE_PATH": str(instance),
            "K8SMON_LOG_LEVEL": "WARNING",
        }
    )
    return env


def _wait_scanned(server: EmbeddedServer, *, timeout_s: float = 120.0) -> int:
    """Wait until the pushed snapshot is processed and the scan the push started is done."""
    sessions = server.runner.ctx.sessions
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with unit_of_work(sessions) as session:
            cluster = session.get(Cluster, CLUSTER_ID)
            pending = (
                session.query(Snapshot).filter_by(cluster_id=CLUSTER_ID, state="pending").count()
            )
            scan_id = session.scalar(
                select(ScanRun.id)
                .where(
                    ScanRun.cluster_id == CLUSTER_ID,
                    ScanRun.state == "done",
                    ScanRun.snapshot_digest == Cluster.current_digest,
                    Cluster.id == CLUSTER_ID,
                )
                .order_by(ScanRun.id.desc())
                .limit(1)
            )
            if cluster is not None and cluster.current_digest and not pending and scan_id:
                return int(scan_id)
        time.sleep(0.1)
    raise RuntimeError("the pushed snapshot was not processed and scanned in time")


def run_demo(*, instance: Path, examples: Path = EXAMPLES, out=sys.stdout) -> Path:
    """Run the demo; returns the HTML report's path."""
    instance.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(environ=demo_environ(instance), port=0)
    server.start()
    try:
        key = AgentKey.generate()
        key_file = instance / "demo-agent.key"
        key_file.write_text(key.private_key_pem, encoding="utf-8")
        key_file.chmod(0o600)
        key_id = default_key_id(CLUSTER_ID, key.public_key)
        with unit_of_work(server.runner.ctx.sessions) as session:
            create_cluster(
                session,
                CLUSTER_ID,
                display_name="Demo shop cluster",
                team="platform",
                labels={"env": "demo"},
            )
            add_cluster_key(session, CLUSTER_ID, key_id=key_id, public_key=key.public_key)
        print(
            f"server on {server.url}; cluster '{CLUSTER_ID}' registered with key {key_id}", file=out
        )

        code = agent_main(
            [
                "push",
                "--from-dir",
                str(examples),
                "--server",
                server.url,
                "--cluster-id",
                CLUSTER_ID,
                "--key-file",
                str(key_file),
                "--key-id",
                key_id,
            ]
        )
        if code != 0:
            raise RuntimeError(f"the signed push failed (agent exit code {code})")
        scan_id = _wait_scanned(server)  # the push starts the scan (K8SMON_SCAN_ON_PUSH)
        with unit_of_work(server.runner.ctx.sessions) as session:
            report = build_cluster_report(
                session,
                CLUSTER_ID,
                public_url=server.settings.public_url,
                scan_id=scan_id,
            )
        print("", file=out)
        print(render_text([report]), file=out)
        html = html_report_dir(server.settings) / f"{CLUSTER_ID}.html"
        print(f"HTML report: {html}", file=out)
        return html
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.demo", description=__doc__)
    parser.add_argument(
        "--instance",
        type=Path,
        help="folder for the demo's database and reports (default: a new one)",
    )
    args = parser.parse_args(argv)
    instance = args.instance or Path(tempfile.mkdtemp(prefix="k8smon-demo-"))
    html = run_demo(instance=instance)
    return 0 if html.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
