"""The attack matrix's rig: the real ingest app (live server, PostgreSQL, Redis) from the ingest
tests, plus what every attack asserts — the exact refusal, and that nothing was stored."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from store import accounts
from store.models import AuditEntry, Snapshot, TelemetryPing
from tests.cli import conftest as cli_rig
from tests.ingest import conftest as ingest_rig
from tests.ingest.conftest import Server

# The ingest tests' live server (real PostgreSQL and Redis), reused as is; and the CLI tests'
# operator (the `k8smon` command against a live server, with admin keys alice and victor).
server = ingest_rig.server
ingest_settings = ingest_rig.ingest_settings
operator = cli_rig.operator

PASSWORD = "correct horse battery staple"


def assert_refused(response: requests.Response, status: int, reason: str) -> dict[str, Any]:
    """The exact status and reason, as an RFC 9457 problem document."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["reason"] == reason
    return problem


def stored(live: Server, cluster_id: str) -> dict[str, int]:
    """How many snapshots and telemetry pings a cluster has."""
    with live.sessions() as session:
        snapshots = session.scalar(
            select(func.count()).select_from(Snapshot).where(Snapshot.cluster_id == cluster_id)
        )
        pings = session.scalar(
            select(func.count())
            .select_from(TelemetryPing)
            .where(TelemetryPing.cluster_id == cluster_id)
        )
    return {"snapshots": snapshots or 0, "pings": pings or 0}


def audit_rows(live: Server, *, action: str) -> list[AuditEntry]:
    with live.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


@dataclass
class Browser:
    """A person at the admin pages: a requests session that keeps the cookie."""

    base_url: str
    username: str
    password: str
    http: requests.Session

    def token(self, path: str = "/admin/login") -> str:
        page = self.http.get(self.base_url + path, timeout=10)
        return page.text.split('name="csrf_token" value="')[1].split('"')[0]

    def sign_in(self, *, password: str | None = None, next_: str | None = None) -> Any:
        query = {"next": next_} if next_ is not None else None
        return self.http.post(
            self.base_url + "/admin/login",
            params=query,
            data={
                "username": self.username,
                "password": self.password if password is None else password,
                "csrf_token": self.token(),
            },
            allow_redirects=False,
            timeout=30,
        )


@pytest.fixture
def browser(server: Server) -> Browser:
    """An enabled admin account and a fresh browser session for it."""
    username = f"user-{uuid.uuid4().hex[:8]}"
    with server.sessions() as session:
        accounts.create_account(session, username, password=PASSWORD, role="admin")
        session.commit()
    return Browser(server.base_url, username, PASSWORD, requests.Session())


def raw_exchange(base_url: str, head: bytes, body_chunks: Any = ()) -> bytes:
    """Send a request head and body pieces over a raw socket; return what the server answered
    (the server may answer, and close, before the body is sent: that is the point)."""
    host, port = base_url.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
                if b"\r\n\r\n" in answer and _complete(answer):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False
