"""Fixtures of the admin-page tests: a seeded fleet behind the real ingest app."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from settings import Settings
from tests.web.fleet import ADMIN_PASSWORD, VIEWER_PASSWORD, Fleet, build_fleet


@pytest.fixture
def fleet(db_session: Session, test_settings: Settings) -> Fleet:
    return build_fleet(db_session, test_settings)


def sign_in(client: FlaskClient, username: str, password: str) -> None:
    page = client.get("/admin/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/admin/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)


@pytest.fixture
def admin_client(fleet: Fleet) -> FlaskClient:
    client = fleet.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    return client


@pytest.fixture
def viewer_client(fleet: Fleet) -> FlaskClient:
    client = fleet.app.test_client()
    sign_in(client, "victor", VIEWER_PASSWORD)
    return client
