"""Authenticate signed requests: agents (cluster keys) and operators (admin keys).

Order of checks, chosen so that only a key holder learns anything specific: parse the
signature fields, algorithm, key lookup, cryptographic verification; then revocation, the
cluster in the URL, the server policy (components, parameters, freshness), the body digest
(agents: the body is read only now), and finally the nonce (recorded only for requests that
passed everything else).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote

from flask import Request, g, request
from nacl.signing import SigningKey
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from contracts import httpsig
from contracts.httpsig import HttpRequest, Policy, Reason, SignatureError
from ingest.context import IngestContext
from ingest.guards import NonceCache
from ingest.keys import KeyFormatError, ed25519_verifier
from ingest.problems import Problem, unauthorised
from store.admin_keys import find_admin_key
from store.audit import record_action
from store.clusters import find_cluster_key

log = logging.getLogger("k8smon.ingest")
# Admin reads have no body: method, authority, path and query are what they must cover.
ADMIN_READ_COMPONENTS = ("@method", "@authority", "@path", "@query")
ADMIN_WRITE_COMPONENTS = (*ADMIN_READ_COMPONENTS, "content-type", "content-digest")


def http_request(request: Request, body: bytes) -> HttpRequest:
    """The message as signed: raw (still percent-encoded) target, Host as authority."""
    environ = request.environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw_uri or "://" in raw_uri:
        path = quote(
            environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            safe="/:@!$&'()*+,;=-._~%",
        )
        query = environ.get("QUERY_STRING", "")
        raw_uri = path + (f"?{query}" if query else "")
    host = request.headers.get("Host") or environ.get("SERVER_NAME", "localhost")
    headers = [(str(name), str(value)) for name, value in request.headers.items()]
    return HttpRequest(request.method, f"{request.scheme}://{host}{raw_uri}", headers, body)


@dataclass(frozen=True)
class Caller:
    """Who signed a request."""

    key_id: str
    cluster_id: str | None = None  # agents
    admin_name: str | None = None  # operators
    role: str | None = None


# Outsiders learn one reason for "no such key" and "wrong signature" (no key-id oracle); the
# precise one stays in the server log and the audit log (`Problem.private_reason`).
_PUBLIC_REASONS = {Reason.UNKNOWN_KEY: Reason.BAD_SIGNATURE}
# Verified against when the key id is unknown, so that answer costs what a real check costs.
_DECOY_KEY = bytes(SigningKey(bytes(32)).verify_key)


def _refuse(problem: SignatureError) -> Problem:
    public = _PUBLIC_REASONS.get(problem.reason, problem.reason)
    return unauthorised(
        public.value,
        problem.detail,
        private_reason=problem.reason.value if public is not problem.reason else None,
    )


def _unknown_key(message: HttpRequest, parsed: httpsig.ParsedSignature, detail: str) -> NoReturn:
    with contextlib.suppress(SignatureError):
        httpsig.verify_signature(message, parsed, verify=ed25519_verifier(_DECOY_KEY))
    raise SignatureError(Reason.UNKNOWN_KEY, detail)


def _verify_crypto(message: HttpRequest, parsed: httpsig.ParsedSignature, public: bytes) -> None:
    try:
        verify = ed25519_verifier(public)
    except KeyFormatError:
        raise SignatureError(Reason.UNKNOWN_KEY, "stored key is unusable") from None
    httpsig.verify_signature(message, parsed, verify=verify)


def _check_nonce(parsed: httpsig.ParsedSignature, nonces: NonceCache, *, window: int) -> None:
    nonce = parsed.params.get("nonce")
    if isinstance(nonce, str) and not nonces.first_use(
        parsed.key_id or "", nonce, ttl=2 * window + 1
    ):
        raise SignatureError(Reason.REPLAYED_NONCE, "nonce seen before within the window")


def authenticate_agent(
    session: Session,
    message: HttpRequest,
    *,
    cluster_id: str,
    nonces: NonceCache,
    policy: Policy,
    read_body: Callable[[], bytes],
    clock: Callable[[], float] = time.time,
) -> tuple[Caller, bytes]:
    """The cluster key that signed `message` for `cluster_id` and the body, or a 401 Problem.

    `message` carries the headers only: the signature is checked before the body is read
    (`read_body`, with its size cap), so an unauthenticated caller cannot make the server
    read, let alone inflate, a large body. The body then has to match the signed digest.
    """
    try:
        parsed = httpsig.parse_signature(message)
        g.k8smon_claimed_key_id = parsed.key_id
        httpsig.check_algorithm(parsed, policy=policy)
        key = find_cluster_key(session, parsed.key_id) if parsed.key_id else None
        if key is None:
            _unknown_key(message, parsed, f"no key {parsed.key_id!r}")
        _verify_crypto(message, parsed, key.public_key)
        if key.revoked_at is not None:
            raise SignatureError(Reason.REVOKED_KEY, f"key {key.key_id} was revoked")
        if key.cluster_id != cluster_id:
            raise SignatureError(
                Reason.WRONG_CLUSTER, f"key {key.key_id} belongs to another cluster"
            )
        httpsig.check_policy(message, parsed, policy=policy, now=clock(), check_body=False)
        body = read_body()
        httpsig.check_content_digest(message.header("content-digest"), body)
        _check_nonce(parsed, nonces, window=policy.window_seconds)
    except SignatureError as problem:
        raise _refuse(problem) from None
    return Caller(key_id=key.key_id, cluster_id=key.cluster_id), body


def authenticate_admin(
    session: Session,
    message: HttpRequest,
    *,
    nonces: NonceCache,
    window_seconds: int,
    clock: Callable[[], float] = time.time,
) -> Caller:
    """The admin key that signed `message`, or a 401 Problem."""
    components = ADMIN_WRITE_COMPONENTS if message.body else ADMIN_READ_COMPONENTS
    policy = Policy(required_components=components, window_seconds=window_seconds)
    try:
        parsed = httpsig.parse_signature(message)
        g.k8smon_claimed_key_id = parsed.key_id
        httpsig.check_algorithm(parsed, policy=policy)
        key = find_admin_key(session, parsed.key_id) if parsed.key_id else None
        if key is None:
            _unknown_key(message, parsed, f"no admin key {parsed.key_id!r}")
        _verify_crypto(message, parsed, key.public_key)
        if key.revoked_at is not None:
            raise SignatureError(Reason.REVOKED_KEY, f"admin key {key.key_id} was revoked")
        httpsig.check_policy(message, parsed, policy=policy, now=clock())
        _check_nonce(parsed, nonces, window=window_seconds)
    except SignatureError as problem:
        raise _refuse(problem) from None
    return Caller(key_id=key.key_id, admin_name=key.name, role=key.role)


def audit_key_refusal(context: IngestContext, problem: Problem, *, key_id: str) -> None:
    """A refused request that named a key id goes to the audit log with its precise reason
    (the caller may have been told a vaguer one). Best effort: a failing audit write is
    logged, and the refusal stands."""
    reason = problem.private_reason or problem.reason
    try:
        with context.sessions() as session:
            record_action(
                session,
                actor="unauthenticated",
                action="auth.refused",
                target=request.path[:500],
                details={"reason": reason, "key_id": key_id[:128], "remote": request.remote_addr},
                source="ingest",
            )
            session.commit()
    except SQLAlchemyError as error:
        log.warning(json.dumps({"event": "audit_write_failed", "error": type(error).__name__}))
