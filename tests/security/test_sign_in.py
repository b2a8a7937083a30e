"""Issue 13 points 7, 8, 12 (next=) and 13: the admin pages' sign-in and sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests

from ingest.app import create_app
from ingest.context import EXTENSION
from ingest.web.throttle import FAILURES_PER_ACCOUNT, FAILURES_PER_ADDRESS, WINDOW_MINUTES
from settings import Settings
from store import accounts
from tests.ingest.conftest import Server, start_server
from tests.security.conftest import Browser, audit_rows


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",  # a tab, dropped by browsers: //evil.example
        "/\t/evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/admin/",
        "/admin/../\t/evil.example",
        "/admin/%2e%2e//evil.example",
        "javascript:alert(1)",
        "/admin/\r\nSet-Cookie: x=1",  # a line break: never a 500, never a header
        "/admin/x\n",
    ],
)
def test_next_never_leaves_the_admin_pages(browser: Browser, target: str) -> None:
    answer = browser.sign_in(next_=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/"
    assert "x=1" not in answer.headers.get("Set-Cookie", "")


def test_next_inside_the_admin_pages_is_followed(browser: Browser, server: Server) -> None:
    answer = browser.sign_in(next_="/admin/clusters/prod?tab=findings")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/clusters/prod?tab=findings"


# ---- point 7: sessions end when they should ------------------------------------------------


def _copy(browser: Browser) -> requests.Session:
    """Another browser holding a copy of the session cookie."""
    thief = requests.Session()
    thief.cookies.update(browser.http.cookies)
    return thief


def _signed_in(http: requests.Session, server: Server) -> bool:
    answer = http.get(server.base_url + "/admin/", allow_redirects=False, timeout=10)
    if answer.status_code == 302:
        assert answer.headers["Location"].startswith("/admin/login")
        return False
    assert answer.status_code == 200
    return True


def _sign_out(browser: Browser, server: Server) -> None:
    token = browser.token("/admin/")
    answer = browser.http.post(
        server.base_url + "/admin/logout",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302


@pytest.mark.parametrize("change", ["sign-out", "password", "role", "disable"])
def test_a_copied_session_cookie_ends_with_the_session(
    browser: Browser, server: Server, change: str
) -> None:
    assert browser.sign_in().status_code == 302
    copy = _copy(browser)
    assert _signed_in(copy, server)
    if change == "sign-out":
        _sign_out(browser, server)
    else:
        with server.sessions() as session:
            if change == "password":
                accounts.set_password(session, browser.username, password="another long password")
            elif change == "role":
                accounts.set_role(session, browser.username, role="viewer")
            else:
                accounts.set_disabled(session, browser.username, disabled=True)
            session.commit()
    assert not _signed_in(copy, server)
    assert not _signed_in(browser.http, server)
    if change == "password":
        browser.password = "another long password"
    if change != "disable":
        fresh = Browser(server.base_url, browser.username, browser.password, requests.Session())
        assert fresh.sign_in().status_code == 302
        assert _signed_in(fresh.http, server)


# ---- point 8: sign-in is throttled and audited ---------------------------------------------


def test_wrong_passwords_are_throttled_per_account_and_audited(
    browser: Browser, server: Server
) -> None:
    for _ in range(FAILURES_PER_ACCOUNT):
        assert browser.sign_in(password="wrong password!").status_code == 401
    refused = browser.sign_in()  # the right password, too late
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= WINDOW_MINUTES * 60
    assert "Too many failed sign-ins" in refused.text
    assert not _signed_in(browser.http, server)
    failed = [
        r
        for r in audit_rows(server, action="session.sign_in_failed")
        if r.details["username"] == browser.username
    ]
    assert len(failed) == FAILURES_PER_ACCOUNT
    assert all(r.details["remote"] == "127.0.0.1" for r in failed)
    throttled = audit_rows(server, action="session.sign_in_throttled")
    assert [r.details["username"] for r in throttled][-1:] == [browser.username]
    assert not [
        r for r in audit_rows(server, action="session.sign_in") if r.actor == browser.username
    ]


def test_the_throttle_is_shared_by_every_web_worker(browser: Browser, server: Server) -> None:
    """A second app (another gunicorn worker) on the same Redis sees the same failures."""
    client = redis.Redis.from_url(server.settings.redis_url or "")
    prefix = server.app.extensions[EXTENSION].throttle.storage.key_prefix.removesuffix("sign-in")
    other = create_app(
        server.settings, store=server.sessions, redis_client=client, redis_prefix=prefix
    )
    http, thread, base_url = start_server(other)
    try:
        for _ in range(FAILURES_PER_ACCOUNT - 1):
            assert browser.sign_in(password="wrong password!").status_code == 401
        elsewhere = Browser(base_url, browser.username, "wrong password!", requests.Session())
        assert elsewhere.sign_in().status_code == 401
        assert elsewhere.sign_in().status_code == 429
        assert browser.sign_in().status_code == 429
    finally:
        http.shutdown()
        thread.join(timeout=5)
        client.close()


def test_one_address_is_throttled_across_accounts(browser: Browser, server: Server) -> None:
    for index in range(FAILURES_PER_ADDRESS):
        stranger = Browser(server.base_url, f"nobody-{index}", "wrong password!", browser.http)
        assert stranger.sign_in().status_code == 401
    answer = browser.sign_in()
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0


def test_users_set_role_ends_the_accounts_sessions(
    browser: Browser, server: Server, test_settings: Settings
) -> None:
    """The command an admin runs on the server, as a process: the copied cookie and the browser's
    own cookie stop working at once; the change is audited; a fresh sign-in gets the new role."""
    assert browser.sign_in().status_code == 302
    copy = _copy(browser)
    assert _signed_in(copy, server)
    environment = {
        **os.environ,
        "DATABASE_URL": test_settings.database_url,
        "K8SMON_INSTANCE_PATH": str(test_settings.instance_path),
    }
    k8smon = str(Path(sys.executable).with_name("k8smon"))
    changed = subprocess.run(
        [k8smon, "users", "set-role", browser.username, "viewer"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout == f"account {browser.username} is now viewer (its sessions ended)\n"
    assert not _signed_in(copy, server)
    assert not _signed_in(browser.http, server)
    [entry] = [
        row for row in audit_rows(server, action="account.role") if row.target == browser.username
    ]
    assert entry.details == {"role": "viewer"} and entry.actor == "cli"
    with server.sessions() as session:
        [account] = [a for a in accounts.list_accounts(session) if a.username == browser.username]
        assert account.role == "viewer"
    fresh = Browser(server.base_url, browser.username, browser.password, requests.Session())
    assert fresh.sign_in().status_code == 302
    assert _signed_in(fresh.http, server)

    unknown = subprocess.run(
        [k8smon, "users", "set-role", "nobody-here", "admin"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode == 1 and "no account named 'nobody-here'" in unknown.stderr
    bad_role = subprocess.run(
        [k8smon, "users", "set-role", browser.username, "root"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad_role.returncode == 2 and "root" in bad_role.stderr
