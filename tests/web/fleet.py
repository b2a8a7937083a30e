"""Shared set-up of the operator-surface tests: an app on the test database, a seeded fleet,
real in-process scans, and a live HTTP server in a thread."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from contracts.tasks import RESCAN
from ingest.app import create_app
from settings import Settings
from store.accounts import create_account
from store.snapshots import apply_pending, stage_snapshot
from store.telemetry import record_telemetry
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope
from workers.context import WorkerContext
from workers.inprocess import InProcessDispatcher

ADMIN_PASSWORD = "correct horse battery staple"
VIEWER_PASSWORD = "viewer password 1234"


def savepoint_sessions(db_session: Session) -> sessionmaker[Session]:
    """Sessions that share the test's connection; their commits are SAVEPOINTs rolled back."""
    return sessionmaker(
        bind=db_session.connection(),
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )


def privileged(deploy: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(deploy)
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return obj


@dataclass
class Fleet:
    sessions: sessionmaker[Session]
    dispatcher: InProcessDispatcher
    app: Flask
    settings: Settings

    def scan(self, cluster_id: str) -> Any:
        return self.dispatcher.run(RESCAN, cluster_id)


def push(session: Session, cluster_id: str, objects: list[dict[str, Any]]) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects))
    apply_pending(session, cluster_id)


@dataclass(frozen=True)
class History:
    """When `push_history` changed its cluster (three pushes, a day apart, ending a day ago)."""

    first: datetime  # web runs history/web:1, job runs history/job:1
    second: datetime  # web replaced by history/web:2
    third: datetime  # job deleted


def push_history(session: Session, cluster_id: str, *, now: datetime) -> History:
    """Three pushes of `cluster_id` at known past times (see `History`), for back-in-time search."""
    when = History(*(now - timedelta(days=days) for days in (3, 2, 1)))
    web1 = deployment("web", namespace="hist", image="history/web:1")
    web2 = deployment("web", namespace="hist", image="history/web:2")
    job = deployment("job", namespace="hist", image="history/job:1")
    for at, objects in (
        (when.first, [web1, job]),
        (when.second, [web2, job]),
        (when.third, [web2]),
    ):
        stage_snapshot(session, cluster_id, envelope=full_envelope(objects), received_at=at)
        apply_pending(session, cluster_id)
    return when


def seed_fleet(sessions: sessionmaker[Session]) -> None:
    """prod-eu: a web Deployment that became privileged in its second version; staging-us: clean;
    accounts alice (admin) and victor (viewer)."""
    web_v1 = deployment("web", namespace="shop", image="registry.example/web:1.0")
    web_v2 = privileged(deployment("web", namespace="shop", image="registry.example/web:1.1"))
    with sessions() as session:
        make_cluster(
            session, "prod-eu", team="payments", channel="#payments-sec", labels={"env": "prod"}
        )
        make_cluster(session, "staging-us", team="platform")
        push(session, "prod-eu", [web_v1, config_map("settings", namespace="shop")])
        api = deployment("api", namespace="shop", image="registry.example/api:2")
        push(session, "prod-eu", [web_v2, config_map("settings", namespace="shop"), api])
        push(
            session,
            "staging-us",
            [deployment("api", namespace="qa", image="registry.example/api:2")],
        )
        five_minutes_ago = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        last_pushes = {
            "prod-eu": {
                "result": "accepted",
                "type": "delta",
                "objects": 3,
                "at": five_minutes_ago,
                "status": 202,
                "ok": True,
                "detail": "",
            },
            "staging-us": {
                "result": "failed",
                "type": "full",
                "objects": 1,
                "at": five_minutes_ago,
                "status": 429,
                "ok": False,
                "detail": "rate_limited",
            },
        }
        for cid in ("prod-eu", "staging-us"):
            record_telemetry(
                session,
                cid,
                payload={
                    "agent_version": "0.1.0",
                    "kubernetes_version": "v1.31.2",
                    "platform": "eks",
                    "node_count": 3,
                    "namespace_count": 4,
                    "object_counts": {"Deployment": 2},
                    "last_push": last_pushes[cid],
                },
            )
        create_account(session, "alice", password=ADMIN_PASSWORD, role="admin")
        create_account(session, "victor", password=VIEWER_PASSWORD, role="viewer")
        session.commit()


def build_fleet(db_session: Session, settings: Settings, **app_options: Any) -> Fleet:
    sessions = savepoint_sessions(db_session)
    dispatcher = InProcessDispatcher(WorkerContext(settings=settings, sessions_override=sessions))
    app = create_app(settings, store=sessions, dispatch=dispatcher, **app_options)
    seed_fleet(sessions)
    fleet = Fleet(sessions=sessions, dispatcher=dispatcher, app=app, settings=settings)
    fleet.scan("prod-eu")
    fleet.scan("staging-us")
    return fleet


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (an ephemeral port) in a thread; yields the base URL.

    Single-threaded on purpose: the test's database connection is shared with the app.
    """
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
