"""The admin API client: every request signed (RFC 9421, Ed25519) with the engineer's key.

Refusals become `ApiError` with the server's reason code, the offending field when the server
names one, and an exit code scripts can rely on (see `EXIT_CODES`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from cli.config import ClientConfig
from contracts import httpsig

# Exit codes: documented in docs/operators.md; 2 is click's usage error.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_INVALID = 6
EXIT_CODES = {
    401: EXIT_AUTH,
    403: EXIT_AUTH,
    404: EXIT_NOT_FOUND,
    400: EXIT_INVALID,
    409: EXIT_INVALID,
    413: EXIT_INVALID,
    415: EXIT_INVALID,
    422: EXIT_INVALID,
}

READ_COMPONENTS = ("@method", "@authority", "@path", "@query")
WRITE_COMPONENTS = (*READ_COMPONENTS, "content-type", "content-digest")


class ApiError(Exception):
    """A failed admin API call, with a one-line message and an exit code."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        status: int | None = None,
        reason: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.reason = reason
        self.field = field


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def load_signer(config: ClientConfig) -> Any:
    """The admin private key (PKCS#8 PEM, as `k8smon keygen` writes it)."""
    from agent.signing import AgentKey  # noqa: PLC0415 - PyNaCl only when a command runs

    try:
        data = config.key_path.read_bytes()
    except OSError as problem:
        raise ApiError(
            f"cannot read the admin key {config.key_path}: {problem.strerror}", exit_code=EXIT_ERROR
        ) from None
    try:
        return AgentKey.load(data)
    except Exception as problem:  # the key loader raises several types for bad files
        raise ApiError(
            f"{config.key_path} is not an Ed25519 private key: {problem}", exit_code=EXIT_ERROR
        ) from None


def _problem_message(status: int, body: bytes) -> tuple[str, str | None, str | None]:
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = body.decode("utf-8", "replace").strip().splitlines()
        return f"server answered {status}: {text[0][:200] if text else 'no body'}", None, None
    reason = problem.get("reason")
    field = problem.get("field")
    title = str(problem.get("title") or "error").lower()
    detail = problem.get("detail")
    message = f"{status} {title}"
    if reason:
        message += f" ({reason})"
    if detail:
        message += f": {detail}"
    if field and str(field) not in message:
        message += f" [field {field}]"
    return message, reason, field


class AdminClient:
    """Signed requests to `/v1/admin/...` on the configured server."""

    def __init__(
        self, config: ClientConfig, *, signer: Any = None, session: requests.Session | None = None
    ) -> None:
        self.config = config
        self._signer = signer
        self._http = session or requests.Session()

    @property
    def signer(self) -> Any:
        if self._signer is None:
            self._signer = load_signer(self.config)
        return self._signer

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        return f"{self.config.server}{path}" + (f"?{query}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/json",
    ) -> Answer:
        url = self.url(path, params)
        payload = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": accept, "User-Agent": "k8smon-cli"}
        if payload:
            headers["Content-Type"] = "application/json"
        message = httpsig.HttpRequest(method, url, list(headers.items()), payload)
        headers.update(
            httpsig.sign_request(
                message,
                key_id=self.config.key_id,
                sign=self.signer.sign,
                components=WRITE_COMPONENTS if payload else READ_COMPONENTS,
            )
        )
        try:
            raw = self._http.request(
                method,
                url,
                data=payload or None,
                headers=headers,
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.ConnectionError:
            where = urlsplit(self.config.server).netloc or self.config.server
            raise ApiError(
                f"cannot reach the server at {where} (is it running? check --server)",
                exit_code=EXIT_UNREACHABLE,
            ) from None
        except requests.Timeout:
            raise ApiError(
                f"the server did not answer within {self.config.timeout:g} s",
                exit_code=EXIT_UNREACHABLE,
            ) from None
        if raw.status_code >= 400:
            text, reason, field = _problem_message(raw.status_code, raw.content)
            raise ApiError(
                text,
                exit_code=EXIT_CODES.get(raw.status_code, EXIT_ERROR),
                status=raw.status_code,
                reason=reason,
                field=field,
            )
        return Answer(raw.status_code, raw.headers, raw.content)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body if body is not None else {}).json()

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body).json()

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).json()
