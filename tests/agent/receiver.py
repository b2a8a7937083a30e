"""A small local push receiver for agent tests: verifies RFC 9421 signatures, records pushes.

Not the ingest service: it only checks what the agent must get right on the wire (signature
over the required components, Content-Digest of the gzip body, JSON envelope) and answers
with scripted statuses.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from contracts.httpsig import HttpRequest, Policy, SignatureError, verify_request


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    raw: bytes
    document: dict[str, Any] | None
    verdict: str
    status: int


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver:
    """POST endpoint on 127.0.0.1; replies come from a script, then the default reply."""

    def __init__(self, public_key: bytes | None = None, *, port: int = 0) -> None:
        self.public_key = public_key
        self.port = port  # 0: any free port; a fixed one brings a stopped server back
        self.pushes: list[Push] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.telemetry_reply: Reply | None = None  # overrides `default` for telemetry pings
        self.arrived = threading.Condition()
        self.snapshot_started = threading.Event()  # set when a snapshot request begins
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def snapshots(self) -> list[Push]:
        return [p for p in self.pushes if p.path.endswith("/snapshots")]

    def telemetry(self) -> list[Push]:
        return [p for p in self.pushes if p.path.endswith("/telemetry")]

    def wait_for(self, predicate: Any, *, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.arrived.wait(remaining)
        return True

    def verify(self, request: HttpRequest) -> str:
        if self.public_key is None:
            return "unchecked"
        key = VerifyKey(self.public_key)

        def check(base: bytes, signature: bytes) -> bool:
            try:
                key.verify(base, signature)
            except BadSignatureError:
                return False
            return True

        try:
            verify_request(
                request, verify=check, policy=Policy(window_seconds=300), now=time.time()
            )
        except SignatureError as exc:
            return f"refused: {exc.reason.value}: {exc.detail}"
        return "verified"


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm and
        # delayed ACKs would stall every keep-alive response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        receiver = self.receiver
        if self.path.endswith("/snapshots"):
            receiver.snapshot_started.set()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = list(self.headers.items())
        host = self.headers.get("Host", "")
        request = HttpRequest("POST", f"http://{host}{self.path}", headers=headers, body=raw)
        verdict = receiver.verify(request)
        try:
            data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            document = json.loads(data)
        except (OSError, ValueError):
            document = None
        if receiver.script:
            reply = receiver.script.popleft()
        elif self.path.endswith("/telemetry") and receiver.telemetry_reply is not None:
            reply = receiver.telemetry_reply
        else:
            reply = receiver.default
        if reply.delay_s:
            time.sleep(reply.delay_s)
        status = 401 if verdict.startswith("refused") else reply.status
        payload = json.dumps(reply.body or {"status": status, "verdict": verdict}).encode()
        with receiver.arrived:  # recorded before the reply, so a caller never races it
            receiver.pushes.append(
                Push(self.path, dict(self.headers.items()), raw, document, verdict, status)
            )
            receiver.arrived.notify_all()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
