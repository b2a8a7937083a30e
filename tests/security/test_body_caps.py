"""Issue 13 point 1: every route's body cap holds before the body is read (413, problem
document), for a declared Content-Length and for a chunked body alike."""

from __future__ import annotations

import json

import pytest

from tests.ingest.conftest import Server
from tests.security.conftest import audit_rows, raw_exchange, stored

HUGE = 200 * 1024 * 1024


def _status_and_problem(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/problem+json" in head.lower()
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/admin/login", 16 * 1024),
        ("/admin/exemptions", 16 * 1024),
        ("/chatops/slack", 64 * 1024),
        ("/v1/admin/clusters", 1024 * 1024),
        ("/healthz", 16 * 1024),
    ],
)
def test_declared_oversized_body_is_refused_before_it_is_read(
    server: Server, path: str, limit: int
) -> None:
    sign_ins = len(audit_rows(server, action="session.sign_in"))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {HUGE}\r\nConnection: close\r\n\r\n"
    ).encode()
    # Only the head and 4 KiB of the announced 200 MiB are sent: the answer comes anyway.
    status, problem = _status_and_problem(raw_exchange(server.base_url, head, [b"a=" * 2048]))
    assert status == 413
    assert problem["reason"] == "body_too_large"
    assert problem["detail"] == f"the body is larger than {limit} bytes"
    assert len(audit_rows(server, action="session.sign_in")) == sign_ins


def test_push_cap_is_the_push_limit(server: Server) -> None:
    agent = server.register_cluster()
    limit = server.settings.max_body_bytes
    head = (
        f"POST /v1/clusters/{agent.cluster_id}/telemetry HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, problem = _status_and_problem(raw_exchange(server.base_url, head))
    assert (status, problem["reason"]) == (413, "body_too_large")
    assert stored(server, agent.cluster_id) == {"snapshots": 0, "pings": 0}


def test_chunked_sign_in_form_is_cut_off_at_the_cap(server: Server) -> None:
    head = (
        b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    piece = b"a" * 8192
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # 1 MiB in chunks, no Content-Length: read only up to the 16 KiB cap, then refused.
    answer = raw_exchange(server.base_url, head, [chunk] * 128 + [b"0\r\n\r\n"])
    status, problem = _status_and_problem(answer)
    assert (status, problem["reason"]) == (413, "body_too_large")
