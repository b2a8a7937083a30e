"""`make demo`: the whole system on a bare machine in one process, end to end, then explorable.

Starts the server on the embedded default (SQLite in a fresh folder, tasks in-process),
registers a demo cluster with a freshly generated agent key and a `demo` account for the admin
pages, pushes the bundled example cluster (`examples/demo-cluster`) through the real signed
push protocol with the agent's one-shot push, waits for the scan the push starts, and prints
the report per cluster and per rule (with CIS ids). Then, by option:

- (default) says how to explore it, removes its temporary folder and exits 0;
- `--serve`: keeps serving the admin pages on `--port` (default 8000) until Ctrl-C, with the
  `demo` account's password printed;
- `--keep`: keeps the folder (with the HTML report) and prints the `k8smon serve` command that
  serves it again, with the account's password.

`--instance DIR` uses (and keeps) DIR instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy import select

from agent.__main__ import main as agent_main
from agent.signing import AgentKey, default_key_id
from cli.embedded import EmbeddedServer
from contracts.states import ScanState, SnapshotState
from contracts.stopping import stop_on_signals
from reports.build import build_cluster_report
from reports.text import render_text
from store.accounts import create_account
from store.clusters import add_cluster_key, create_cluster
from store.db import unit_of_work
from store.models import Cluster, ScanRun, Snapshot
from workers.services.delivery import html_report_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo-cluster"
CLUSTER_ID = "demo"
ACCOUNT = "demo"
DEFAULT_PORT = 8000
# Variables of a real deployment that must not leak into the demo's embedded world.
_DROPPED = (
    "DATABASE_URL",
    "REDIS_URL",
    "K8SMON_ENV",
    "K8SMON_INSTANCE_PATH",
    "K8SMON_PUBLIC_URL",
    "K8SMON_RULES_CONFIG",
    "K8SMON_SCAN_ON_PUSH",
    "SECRET_KEY",
)


def demo_environ(instance: Path, *, public_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(
        {
            "K8SMON_ENV": "embedded",
            "K8SMON_INSTANCE_PATH": str(instance),
            "K8SMON_PUBLIC_URL": public_url,
            "K8SMON_LOG_LEVEL": "WARNING",
        }
    )
    return env


def serve_command(instance: Path, *, port: int) -> str:
    """A shell command that serves a kept demo folder again (embedded, whatever the shell's
    deployment variables say)."""
    k8smon = Path(sys.executable).with_name("k8smon")
    unset = " ".join(f"-u {name}" for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"))
    return (
        f"env {unset} K8SMON_ENV=embedded K8SMON_INSTANCE_PATH={shlex.quote(str(instance))} "
        f"K8SMON_PUBLIC_URL=http://127.0.0.1:{port} "
        f"{shlex.quote(str(k8smon))} serve --port {port}"
    )


@dataclass(frozen=True, slots=True)
class DemoResult:
    html: Path
    password: str


def _wait_scanned(server: EmbeddedServer, html: Path, *, timeout_s: float = 120.0) -> int:
    """Wait until the pushed snapshot is processed, the scan the push started is done and its
    HTML report is written; return the scan's id."""
    sessions = server.runner.ctx.sessions
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with unit_of_work(sessions) as session:
            pending = (
                session.query(Snapshot)
                .filter_by(cluster_id=CLUSTER_ID, state=SnapshotState.PENDING)
                .count()
            )
            scan_id = session.scalar(
                select(ScanRun.id)
                .join(Cluster, Cluster.id == ScanRun.cluster_id)
                .where(
                    ScanRun.cluster_id == CLUSTER_ID,
                    ScanRun.state == ScanState.DONE,
                    ScanRun.snapshot_digest == Cluster.current_digest,
                )
                .order_by(ScanRun.id.desc())
                .limit(1)
            )
        if scan_id and not pending and html.exists():
            return int(scan_id)
        time.sleep(0.1)
    raise RuntimeError("the pushed snapshot was not processed and scanned in time")


def _register(server: EmbeddedServer, instance: Path) -> tuple[Path, str, str]:
    """The demo cluster with a fresh agent key, and the demo account; (key file, key id,
    password)."""
    key = AgentKey.generate()
    key_file = instance / "demo-agent.key"
    key_file.write_text(key.private_key_pem, encoding="utf-8")
    key_file.chmod(0o600)
    key_id = default_key_id(CLUSTER_ID, key.public_key)
    password = secrets.token_urlsafe(12)
    with unit_of_work(server.runner.ctx.sessions) as session:
        create_cluster(
            session,
            CLUSTER_ID,
            display_name="Demo shop cluster",
            team="platform",
            labels={"env": "demo"},
        )
        add_cluster_key(session, CLUSTER_ID, key_id=key_id, public_key=key.public_key)
        create_account(session, ACCOUNT, password=password, role="admin")
    return key_file, key_id, password


def run_demo(
    server: EmbeddedServer, *, instance: Path, examples: Path = EXAMPLES, out: TextIO = sys.stdout
) -> DemoResult:
    """Register, push, wait for the scan, print the report (the server is started)."""
    key_file, key_id, password = _register(server, instance)
    print(f"server on {server.url}; cluster '{CLUSTER_ID}' registered with key {key_id}", file=out)
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
    html = html_report_dir(server.settings) / f"{CLUSTER_ID}.html"
    scan_id = _wait_scanned(server, html)  # the push starts the scan (K8SMON_SCAN_ON_PUSH)
    with unit_of_work(server.runner.ctx.sessions) as session:
        report = build_cluster_report(
            session, CLUSTER_ID, public_url=server.settings.public_url, scan_id=scan_id
        )
    print("", file=out)
    print(render_text([report]), file=out)
    return DemoResult(html=html, password=password)


def _serve_until_stopped(server: EmbeddedServer) -> None:
    stop_on_signals().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cli.demo",
        description=__doc__.split("\n\n", 1)[0],
        epilog="make demo DEMO_ARGS='--serve' (or '--keep') passes these options.",
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep serving the admin pages until Ctrl-C"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the demo's folder and print the command that serves it again",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to serve on (with --serve/--keep)"
    )
    parser.add_argument(
        "--instance", type=Path, help="folder for the demo's data (kept; default: a temporary one)"
    )
    args = parser.parse_args(argv)
    keep = args.keep or args.instance is not None
    instance = args.instance or Path(tempfile.mkdtemp(prefix="k8smon-demo-"))
    instance.mkdir(parents=True, exist_ok=True)
    port = args.port if args.serve else 0
    server = EmbeddedServer(
        environ=demo_environ(instance, public_url=f"http://127.0.0.1:{args.port}"),
        port=port,
    )
    try:
        server.start()
        try:
            result = run_demo(server, instance=instance)
            admin = f"http://127.0.0.1:{args.port}/admin/"
            if args.serve:
                print(
                    f"\nServing the demo at {admin} - sign in as {ACCOUNT} / {result.password}"
                    "\nCtrl-C stops it.",
                    flush=True,
                )
                _serve_until_stopped(server)
        finally:
            server.stop()
        if keep:
            print(f"\nHTML report: {result.html}")
            print(f"Kept the demo's folder {instance}. Serve it again with:")
            print(f"  {serve_command(instance, port=args.port)}")
            print(f"then open {admin} and sign in as {ACCOUNT} / {result.password}")
        elif not args.serve:
            print(
                "\nExplore it in the admin pages: make demo DEMO_ARGS=--serve"
                "\n(or DEMO_ARGS=--keep to keep the demo's folder and HTML report)"
            )
        return 0 if result.html.exists() else 1
    finally:
        if not keep:
            shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
