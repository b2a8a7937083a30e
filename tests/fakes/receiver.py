"""A webhook receiver on 127.0.0.1 (a thread in the test): records each request with its
Idempotency-Key, answers a chosen status after an optional delay, and can be stopped (the
receiver is down: connections are refused) and started again on the same port."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reports.webhook import IDEMPOTENCY_HEADER


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    @property
    def key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    status: int = 200
    delay_s: float = 0.0  # before answering (a slow receiver)
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # keys of the 2xx answers written
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def keys(self) -> list[str | None]:
        with self._lock:
            return [r.key for r in self.requests]

    def times_seen(self) -> Counter[str | None]:
        return Counter(self.keys())

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received = Received(self.path, dict(self.headers), body, time.monotonic())
                with receiver._lock:
                    receiver.requests.append(received)
                    status, delay = receiver.status, receiver.delay_s
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok" if status < 300 else b"no")
                except OSError:  # the sender is gone (killed): not an acknowledgement
                    return
                if status < 300 and received.key:
                    with receiver._lock:
                        receiver.answered.append(received.key)

            def log_message(self, *_args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start` again."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


@contextmanager
def running_receiver(**options: Any) -> Iterator[WebhookReceiver]:
    """A started receiver (WebhookReceiver's fields as options), stopped at the end."""
    receiver = WebhookReceiver(**options).start()
    try:
        yield receiver
    finally:
        receiver.stop()
