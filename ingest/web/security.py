"""Admin pages' security: signed expiring sessions, CSRF tokens, roles, security headers.

Sessions are Flask's signed cookies (itsdangerous, keyed by SECRET_KEY), HttpOnly, SameSite=Lax,
Secure when served over HTTPS, and expire after `SESSION_HOURS` (checked server-side from the
sign-in time, not only by the browser). The account is looked up again on every request, and a
session carries the account's session version from sign-in: sign-out, a password or role change
and disabling raise the version (`store.accounts.end_sessions`), so every older session — a
copied cookie included — ends at its next request. Every POST must carry the session's CSRF
token in the `csrf_token` form field; the comparison is constant-time.
"""

from __future__ import annotations

import hmac
import posixpath
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, abort, g, redirect, request, session, url_for

from ingest.context import ctx
from store.accounts import Account, find_account

SESSION_HOURS = 8
CSRF_FIELD = "csrf_token"
SESSION_VERSION = "v"
MAX_NEXT_LENGTH = 2000

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}

F = TypeVar("F", bound=Callable[..., Any])


def configure_sessions(app: Flask, *, secret_key: str, secure: bool) -> None:
    """Cookie settings for the admin session (called once when the blueprint is registered)."""
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="k8smon_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return str(token)


def check_csrf() -> None:
    """Refuse (400) a state-changing request without the session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not given or not hmac.compare_digest(str(expected), given):
        abort(400, description="the form's CSRF token is missing or wrong; reload the page")


def sign_in(account: Account) -> None:
    session.clear()
    session.permanent = True
    session["user"] = account.username
    session["signed_in_at"] = int(time.time())
    session[SESSION_VERSION] = account.session_version
    session[CSRF_FIELD] = secrets.token_urlsafe(32)  # a fresh token per sign-in


def sign_out() -> None:
    session.clear()


def load_user() -> None:
    """Put the signed-in, still enabled account (or None) on `g.user`."""
    g.user = None
    username = session.get("user")
    signed_in_at = session.get("signed_in_at", 0)
    if not username:
        return
    if time.time() - float(signed_in_at) > SESSION_HOURS * 3600:
        session.clear()
        return
    with ctx().sessions() as db:
        g.user = find_account(db, str(username))
    # Sign-out, a new password or role, or disabling the account moved the version on: every
    # session made before (a copied cookie too) ends here.
    if g.user is None or g.user.session_version != session.get(SESSION_VERSION, 0):
        g.user = None
        session.clear()


def current_user() -> Account:
    return cast(Account, g.user)


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        if not g.user.is_admin:
            abort(403, description="this action needs the admin role")
        return view(*args, **kwargs)

    return cast(F, wrapped)


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def safe_next(target: str | None) -> str | None:
    """Only a same-site path under /admin is followed after sign-in (no open redirect).

    Browsers drop tabs and line breaks from a URL and read `\\` as `/`, so `/%09/evil.example`
    would become `//evil.example`: any control character, backslash, scheme or host refuses
    the target outright rather than being cleaned up.
    """
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment or not target.startswith("/"):
        return None
    # Dot segments (also percent-encoded ones, as the URL standard reads them) are resolved
    # first, so `/admin/../x` is judged as the `/x` a browser would request.
    path = posixpath.normpath(re.sub("%2e", ".", parts.path, flags=re.IGNORECASE))
    if path.startswith("//") or not (path == "/admin" or path.startswith("/admin/")):
        return None
    return urlunsplit(("", "", path, parts.query, ""))
