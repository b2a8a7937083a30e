"""Signed, gzip-compressed POSTs to the monitor server; one attempt per call, never raises."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from agent.backoff import parse_retry_after
from agent.kube import USER_AGENT
from agent.signing import AgentKey, signed_headers
from contracts.wire import SNAPSHOT_PATH, TELEMETRY_PATH

CONTENT_TYPE = "application/json"
HTTP_TOO_MANY = 429
HTTP_SERVER_ERROR = 500


@dataclass(frozen=True)
class Outcome:
    """What one POST achieved: status (0 for a network error), Retry-After, parsed body."""

    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None
    detail: str = ""
    sent_bytes: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in (0, HTTP_TOO_MANY) or self.status >= HTTP_SERVER_ERROR

    def summary(self) -> dict[str, Any]:
        problem = self.body if isinstance(self.body, dict) and not self.ok else {}
        detail = self.detail or next(
            (str(problem[k]) for k in ("detail", "reason", "title") if problem.get(k)), ""
        )
        return {"status": self.status, "ok": self.ok, "detail": detail, "bytes": self.sent_bytes}


class Sender:
    """POSTs signed pushes for one cluster; a fresh signature (created, nonce) per attempt."""

    def __init__(
        self,
        *,
        server_url: str,
        cluster_id: str,
        key: AgentKey,
        key_id: str,
        timeout_s: float,
        ca_file: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._base = server_url.rstrip("/")
        self._cluster = quote(cluster_id, safe="")
        self._key = key
        self._key_id = key_id
        self._timeout = timeout_s
        self._session = session or requests.Session()
        if ca_file:
            self._session.verify = ca_file  # the server's (internal) CA bundle

    def snapshot(self, gz_body: bytes) -> Outcome:
        return self._post(SNAPSHOT_PATH.format(cluster_id=self._cluster), gz_body)

    def telemetry(self, gz_body: bytes) -> Outcome:
        return self._post(TELEMETRY_PATH.format(cluster_id=self._cluster), gz_body)

    def _post(self, path: str, gz_body: bytes) -> Outcome:
        url = self._base + path
        headers = [("Content-Type", CONTENT_TYPE), ("Content-Encoding", "gzip")]
        headers_out = {**dict(headers), "User-Agent": USER_AGENT}
        headers_out.update(
            signed_headers(
                self._key,
                key_id=self._key_id,
                method="POST",
                url=url,
                headers=headers,
                body=gz_body,
            )
        )
        try:
            response = self._session.post(
                url, data=gz_body, headers=headers_out, timeout=self._timeout
            )
        except requests.RequestException as exc:
            return Outcome(0, detail=f"{type(exc).__name__}: {exc}"[:300])
        try:
            body = response.json()
        except ValueError:
            body = None
        return Outcome(
            response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=time.time()),
            body=body if isinstance(body, dict) else None,
            sent_bytes=len(gz_body),
        )
