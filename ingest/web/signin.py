"""The admin pages' sign-in and sign-out: throttled, audited, and sign-out ends sessions.

Every failed attempt is in the audit log (`session.sign_in_failed`, with the name typed and the
client address); after `FAILURES_PER_ACCOUNT` failures for one account or
`FAILURES_PER_ADDRESS` from one address within the window (`ingest.web.throttle`), attempts
are answered 429 with Retry-After (`session.sign_in_throttled`), the right password included.
Sign-out raises the account's session version, so a cookie copied before it no longer works.
"""

from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ingest.context import ctx
from ingest.web.security import safe_next, sign_in, sign_out
from store import accounts
from store.audit import record_action

SOURCE = "admin-pages"
MAX_USERNAME = 200


def _audit(action: str, *, username: str, actor: str = "unauthenticated") -> None:
    with ctx().sessions() as db:
        record_action(
            db,
            actor=actor[:MAX_USERNAME],
            action=action,
            source=SOURCE,
            details={"username": username[:MAX_USERNAME], "remote": request.remote_addr},
        )
        db.commit()


def _throttled(username: str, wait: int) -> Response:
    _audit("session.sign_in_throttled", username=username)
    minutes = max(1, round(wait / 60))
    flash(f"Too many failed sign-ins: try again in about {minutes} minute(s).", "error")
    response = make_response(render_template("web/login.html", username=username), 429)
    response.headers["Retry-After"] = str(wait)
    return response


def login() -> str | Response:
    if request.method != "POST":
        return render_template("web/login.html", username="")
    username = request.form.get("username", "")[:MAX_USERNAME]
    password = request.form.get("password", "")
    address = request.remote_addr or ""
    throttle = ctx().throttle
    wait = throttle.retry_after(username, address)
    if wait is not None:
        return _throttled(username, wait)
    with ctx().sessions() as db:
        account = accounts.authenticate(db, username, password)
        record_action(
            db,
            actor=account.username if account else "unauthenticated",
            action="session.sign_in" if account else "session.sign_in_failed",
            source=SOURCE,
            details={"username": username, "remote": address},
        )
        db.commit()
    if account is None:
        throttle.failed(username, address)
        flash("Unknown username or wrong password.", "error")
        return make_response(render_template("web/login.html", username=username), 401)
    sign_in(account)
    return redirect(safe_next(request.args.get("next")) or url_for("web.fleet"))


def logout() -> Response:
    username = session.get("user")
    if username:
        with ctx().sessions() as db:
            try:
                accounts.end_sessions(db, str(username))
            except accounts.AccountNotFound:
                pass
            else:
                record_action(db, actor=str(username), action="session.sign_out", source=SOURCE)
                db.commit()
    sign_out()
    return redirect(url_for("web.login"))
