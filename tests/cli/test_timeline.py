"""`k8smon timeline` and the admin API behind it, against a live server on PostgreSQL: the
change that opened a finding and the one that resolved it (with their diffs), keyset pages,
clear 4xx on bad input, and agent-chosen text shown as data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.client import AdminClient, ApiError
from cli.config import resolve
from tests.cli.conftest import Operator
from tests.cli.hostile import TITLE_ESCAPE, k8smon
from tests.support.manifests import config_map, deployment
from tests.web.fleet import privileged, push
from tests.workers.workloads import fixed

PRIVILEGED = "spec.template.spec.containers[0].securityContext.privileged"
WEB = "/v1/admin/clusters/prod-eu/timeline"


def _fix_web(operator: Operator) -> None:
    """prod-eu's web (privileged since its second version) gets a third version that is not."""
    web_v2 = privileged(deployment("web", namespace="shop", image="registry.example/web:1.1"))
    api = deployment("api", namespace="shop", image="registry.example/api:2")
    with operator.fleet.sessions() as session:
        push(session, "prod-eu", [fixed(web_v2), config_map("settings", namespace="shop"), api])
        session.commit()
    operator.fleet.scan("prod-eu")


def _client(operator: Operator, *, viewer: bool = False) -> AdminClient:
    path = operator.viewer_config if viewer else operator.config
    return AdminClient(resolve(environ={}, config_path=str(path)))


def _privileged(entries: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [
        e for e in entries if e["type"] == kind and (e["finding"] or {}).get("path") == PRIVILEGED
    ]
    assert len(found) == 1, entries
    return found[0]


def test_resource_timeline_over_the_admin_api(operator: Operator) -> None:
    _fix_web(operator)
    client = _client(operator, viewer=True)  # reading a timeline is a viewer's right
    answer = client.get(WEB, kind="Deployment", namespace="shop", name="web")
    assert answer["resource"]["name"] == "web" and answer["resource"]["deleted_at"] is None
    entries = answer["entries"]
    versions = [e["change"]["version_id"] for e in entries if e["type"] in ("created", "changed")]
    assert len(versions) == 3  # newest first
    opened = _privileged(entries, "finding_opened")
    # Both pushes landed before the first scan: the finding is on the version it saw (v2).
    assert opened["change"]["version_id"] == versions[1]
    assert opened["change"]["previous_version_id"] == versions[2]
    assert "+          privileged: true" in opened["change"]["diff"]
    resolved = _privileged(entries, "finding_resolved")
    assert resolved["change"]["version_id"] == versions[0]
    assert resolved["change"]["previous_version_id"] == versions[1]
    assert "-          privileged: true" in resolved["change"]["diff"]
    assert "+          privileged: false" in resolved["change"]["diff"]
    assert resolved["finding"]["status"] == "resolved" and resolved["removed"] is False
    assert all(e["scan"] is None for e in entries)

    # The cluster's timeline: scans too; diffs only when asked; keyset pages without gaps.
    whole = client.get(WEB, limit=500)
    assert whole["next_cursor"] is None and whole["resource"] is None
    assert {e["type"] for e in whole["entries"]} >= {"scan", "created", "changed", "finding_opened"}
    assert all("diff" not in (e["change"] or {}) for e in whole["entries"])
    paged: list[str] = []
    before = None
    while True:
        page = client.get(WEB, limit=4, before=before)
        assert page["count"] == len(page["entries"]) <= 4
        paged += [e["cursor"] for e in page["entries"]]
        before = page["next_cursor"]
        if before is None:
            break
    assert paged == [e["cursor"] for e in whole["entries"]]
    only = client.get(WEB, types="scans,findings", limit=500, diffs="1")
    assert {e["type"] for e in only["entries"]} == {"scan", "finding_opened", "finding_resolved"}
    assert any("diff" in (e["change"] or {}) for e in only["entries"])


def test_bad_timeline_requests_are_clear_4xx(operator: Operator) -> None:
    client = _client(operator)
    for params, status, words in (
        ({"types": "everything"}, 400, "types: unknown"),
        ({"before": "yesterday"}, 400, "before:"),
        ({"before": "1.7.1"}, 400, "before:"),
        ({"limit": "0"}, 400, "limit:"),
        ({"limit": "many"}, 400, "limit:"),
        ({"kind": "Deployment"}, 400, "kind and name"),
        ({"kind": "Deployment", "namespace": "shop", "name": "nope"}, 404, "no Deployment"),
    ):
        answer = client._http.get(client.url(WEB, params), timeout=30)  # unsigned: 401 first
        assert answer.status_code == 401
        with pytest.raises(ApiError) as refused:
            client.get(WEB, **params)
        assert refused.value.status == status, (params, refused.value)
        assert words in str(refused.value), (params, refused.value)
    with pytest.raises(ApiError) as unknown:
        client.get("/v1/admin/clusters/nope/timeline")
    assert unknown.value.status == 404


def test_k8smon_timeline_as_the_user_runs_it(operator: Operator) -> None:
    _fix_web(operator)
    shown = k8smon(operator, "timeline", "prod-eu", "Deployment/shop/web", "--diff")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "finding_opened" in text and "finding_resolved" in text and "created" in text
    assert "Deployment shop/web" in text
    assert "+          privileged: false" in text and "-          privileged: true" in text
    assert "# Deployment shop/web:" in text

    as_json = k8smon(operator, "timeline", "prod-eu", "--types", "scans", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert rows and {r["type"] for r in rows} == {"scan"}

    first = k8smon(operator, "timeline", "prod-eu", "--limit", "2")
    assert first.returncode == 0 and b"older entries: add --before " in first.stderr
    cursor = first.stderr.decode().rsplit("--before ", 1)[1].strip()
    older = k8smon(
        operator, "timeline", "prod-eu", "--limit", "2", "--before", cursor, "-o", "json"
    )
    assert older.returncode == 0 and json.loads(older.stdout)

    wrong = k8smon(operator, "timeline", "prod-eu", "web")
    assert wrong.returncode == 2 and b"KIND/NAMESPACE/NAME" in wrong.stderr
    missing = k8smon(operator, "timeline", "prod-eu", "Deployment/shop/nope")
    assert missing.returncode != 0 and b"error: " in missing.stderr
    bad = k8smon(operator, "timeline", "prod-eu", "--types", "bogus")
    assert bad.returncode == 2 and b"--types" in bad.stderr


def test_agent_text_in_a_timeline_stays_data(hostile: Operator) -> None:
    # A second version of a hostile object, whose diff carries a terminal escape.
    body = privileged(deployment("placeholder", namespace="evil", image="img/\x1b]0;diff\x07:2"))
    body["metadata"]["name"] = TITLE_ESCAPE
    body["metadata"]["uid"] = f"uid-{abs(hash(TITLE_ESCAPE))}"
    with hostile.fleet.sessions() as session:
        push(session, "prod-eu", [body, config_map("settings", namespace="shop")])
        session.commit()
    hostile.fleet.scan("prod-eu")
    shown = k8smon(hostile, "timeline", "prod-eu", "--diff", "--limit", "200")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07api" in text  # the name, made visible
    assert '"img/\\u001b]0;diff\\u0007:2"' in text  # the diff line quotes it as JSON text
