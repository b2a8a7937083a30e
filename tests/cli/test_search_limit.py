"""One time limit for every search: the admin API (through `k8smon search`) and the admin
page stop a search past `K8SMON_SEARCH_TIMEOUT_SECONDS` with a clear 503, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from settings import Settings
from tests.cli.conftest import Operator
from tests.support.manifests import deployment
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, push


@pytest.fixture
def test_settings(test_settings: Settings) -> Settings:
    return test_settings.replace(search_timeout_seconds=0.001)


def _heavy(name: str) -> dict[str, Any]:
    body = deployment(name, namespace="bulk", image=f"bulk/{name}:1")
    body["spec"]["items"] = [{"n": {"m": [i, {"x": i}]}} for i in range(2000)]
    return body


def test_a_search_past_the_limit_is_a_503_for_the_api_the_page_and_images(
    operator: Operator,
) -> None:
    with operator.fleet.sessions() as session:
        push(session, "prod-eu", [_heavy(f"heavy-{i}") for i in range(10)])
        session.commit()
    result = operator.run("search", "$..x", "--distinct")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: 503 search timed out (search_timeout): the search ")
    assert "0.001 s limit" in result.stderr and "Traceback" not in result.output
    page = operator.fleet.app.test_client()
    sign_in(page, "alice", ADMIN_PASSWORD)
    answer = page.get("/admin/search", query_string={"path": "$..x", "distinct": "1"})
    assert answer.status_code == 503
    assert "0.001 s limit" in answer.get_data(as_text=True)
    invalid = page.get("/admin/search", query_string={"path": "$.spec["})
    assert invalid.status_code == 400 and "invalid JSON path" in invalid.get_data(as_text=True)
    images = operator.run("images")
    assert images.exit_code == 1 and "error: 503 search timed out (search_timeout)" in images.stderr
