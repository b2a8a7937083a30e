"""Per-route request body caps, enforced before any byte of the body is read.

Every route has a cap that fits what it legitimately receives: agent pushes the configured push
limit (`K8SMON_MAX_BODY_BYTES`), the signed admin API one mebibyte, chat-ops (Slack's form
posts) and the admin pages' forms (sign-in, exemptions, rescans) a few kilobytes, anything else
none worth mentioning. A declared `Content-Length` above the cap is answered 413 with a problem
document at once; a body without one (chunked) is cut off by werkzeug at the same cap while it
is read, so no route reads, parses or spools more than its cap.
"""

from __future__ import annotations

import io

from flask import Flask, request

from ingest.body import too_large
from ingest.context import ctx

ADMIN_API_BODY_LIMIT = 1024 * 1024
FORM_BODY_LIMIT = 16 * 1024  # sign-in and admin page forms, Slack slash commands
CHATOPS_BODY_LIMIT = 64 * 1024  # Slack interactive payloads carry the original message
OTHER_BODY_LIMIT = 16 * 1024
FORM_PARTS_LIMIT = 64
# Routes that read their body themselves, in capped chunks (`ingest.body.read_capped`).
STREAMED = frozenset({"push", "admin"})


def body_limit(blueprint: str | None, *, push_limit: int) -> int:
    """The body cap of a route, by the blueprint that serves it."""
    if blueprint == "push":
        return push_limit
    if blueprint == "admin":
        return ADMIN_API_BODY_LIMIT
    if blueprint == "chatops":
        return CHATOPS_BODY_LIMIT
    if blueprint == "web":
        return FORM_BODY_LIMIT
    return OTHER_BODY_LIMIT


def _buffer_unsized_body(limit: int) -> None:
    """A body without Content-Length (chunked) on a form route: read at most `limit` + 1
    bytes now, refuse beyond, and hand the rest of the request an ordinary sized body
    (werkzeug's form parser would otherwise cut it silently at the cap)."""
    environ = request.environ
    stream = environ["wsgi.input"]
    pieces: list[bytes] = []
    total = 0
    while total <= limit:
        piece = stream.read(limit + 1 - total)
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
    if total > limit:
        raise too_large(limit)
    environ["wsgi.input"] = io.BytesIO(b"".join(pieces))
    environ["CONTENT_LENGTH"] = str(total)
    environ.pop("HTTP_TRANSFER_ENCODING", None)


def _enforce() -> None:
    limit = body_limit(request.blueprint, push_limit=ctx().settings.max_body_bytes)
    request.max_content_length = limit
    request.max_form_memory_size = limit
    request.max_form_parts = FORM_PARTS_LIMIT
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large(limit)
    elif request.blueprint not in STREAMED and request.environ.get("wsgi.input_terminated"):
        _buffer_unsized_body(limit)


def install_body_caps(app: Flask) -> None:
    """Run the cap check before every other request hook (app hooks precede blueprints')."""
    app.before_request_funcs.setdefault(None, []).insert(0, _enforce)
