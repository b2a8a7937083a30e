"""Issue 13 points 7, 8, 12 (next=) and 13: the admin pages' sign-in and sessions."""

from __future__ import annotations

import pytest

from tests.ingest.conftest import Server
from tests.security.conftest import Browser


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
