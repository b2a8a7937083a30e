"""RFC 9457 problem details: the one exception type every refusal raises, and its JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, json

PROBLEM_TYPE_BASE = "https://k8s-monitor.dev/problems/"

# Reason codes of refusals that are not about the signature (those live in contracts.httpsig).
BODY_TOO_LARGE = "body_too_large"
DECOMPRESSED_TOO_LARGE = "decompressed_too_large"
BAD_ENCODING = "unsupported_content_encoding"
BAD_GZIP = "invalid_gzip"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
TOO_DEEP = "too_deeply_nested"
TOO_COMPLEX = "too_complex"
TOO_MANY_OBJECTS = "too_many_objects"
INVALID_UNICODE = "invalid_unicode"
SCHEMA_VIOLATION = "schema_violation"
FORBIDDEN_KIND = "forbidden_kind"
INVALID_SNAPSHOT = "invalid_snapshot"
UNKNOWN_BASE = "unknown_base_snapshot"
RATE_LIMITED = "rate_limited"
CLUSTER_DISABLED = "cluster_disabled"
CLUSTER_BUSY = "cluster_busy"
FORBIDDEN_ROLE = "forbidden_role"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
BAD_REQUEST = "bad_request"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
UNAVAILABLE = "unavailable"


class Problem(Exception):
    """A refusal: HTTP status, a stable reason code, a title and (optionally) a detail.

    `public_detail=False` keeps the detail out of the response (it is still logged): used for
    authentication failures, where the caller learns only "unauthorised" and the reason code.
    `private_reason`, when set, is the precise reason behind a deliberately vaguer public one
    (an unknown key id answers `bad_signature` like a wrong signature): it goes to the server
    log and the audit log, never to the caller.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        title: str,
        detail: str = "",
        *,
        public_detail: bool = True,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        private_reason: str | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {detail or title}")
        self.status = status
        self.reason = reason
        self.title = title
        self.detail = detail
        self.public_detail = public_detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.private_reason = private_reason

    def body(self, *, instance: str | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.reason.replace("_", "-"),
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
        }
        if self.detail and self.public_detail:
            document["detail"] = self.detail
        if instance:
            document["instance"] = instance
        document.update(self.extra)
        return document

    def response(self, *, instance: str | None = None) -> Response:
        response = Response(
            json.dumps(self.body(instance=instance)),
            status=self.status,
            mimetype="application/problem+json",
        )
        for name, value in self.headers.items():
            response.headers[name] = value
        return response


def unauthorised(reason: str, detail: str = "", *, private_reason: str | None = None) -> Problem:
    return Problem(
        401,
        reason,
        "Unauthorised",
        detail,
        public_detail=False,
        headers={"WWW-Authenticate": 'Signature realm="k8s-monitor"'},
        private_reason=private_reason,
    )


def bad_request(reason: str, detail: str) -> Problem:
    return Problem(400, reason, "Bad request", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, NOT_FOUND, "Not found", detail)


def refuse_nul_in_url(path: str, query: str) -> None:
    """NUL can be neither stored nor compared by the database: refuse it in the URL."""
    if "\x00" in path or "%00" in query or "\x00" in query:
        raise bad_request(BAD_REQUEST, "the URL contains a NUL character")
