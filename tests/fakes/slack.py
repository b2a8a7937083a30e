"""A fake Slack on 127.0.0.1: the Web API's chat.postMessage (bot token checked) and an
incoming-webhook/response_url path, recording every request as received."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

BOT_TOKEN = "xoxb-fake-bot-token"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeSlack:
    """`api_url` is for K8SMON_SLACK_API_URL; `hook_url` stands in for hooks.slack.com."""

    token: str = BOT_TOKEN
    received: list[Received] = field(default_factory=list)
    base_url: str = ""
    _server: ThreadingHTTPServer | None = None

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def hook_url(self) -> str:
        return f"{self.base_url}/services/T000/B000/fake"

    def posts(self, method: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/api/{method}"]

    def __enter__(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                fake.received.append(Received(self.path, dict(self.headers), body))
                if self.path.startswith("/api/"):
                    answer = fake.api_answer(self.headers.get("Authorization", ""), body)
                    payload = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def api_answer(self, authorization: str, body: dict[str, Any]) -> dict[str, Any]:
        """What Slack answers: invalid_auth for a wrong token, channel_not_found for a
        channel that does not start with '#' or 'C'."""
        if authorization != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        channel = str(body.get("channel", ""))
        if not channel.startswith(("#", "C")):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": "C0FAKE", "ts": "1700000000.000100"}

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
