"""Issue 13 point 12: every admin page survives what the store already holds — a manifest nested
950 levels deep, stored before the ingest depth cap existed (inserted through the store here,
bypassing the cap), leaves its resource page, diff page and search answering, never a 500."""

from __future__ import annotations

import html
import re
import threading
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.wire import MAX_MANIFEST_DEPTH, SNAPSHOT_SCHEMA_ID
from ingest.web import manifest_view
from store.models import KubeObject
from store.snapshots import apply_pending, stage_snapshot
from tests.cli.conftest import Operator
from tests.security.conftest import Browser
from tests.support.manifests import config_map, digest_of
from tests.web.fleet import ADMIN_PASSWORD

DEPTH = 950


def _deep(leaf: Any) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(DEPTH):
        value = {"x": value}
    return value


def _deep_config_map(leaf: Any) -> dict[str, Any]:
    obj = config_map("deep", namespace="shop")
    obj["nested"] = _deep(leaf)
    return obj


def _store(session: Session, leaf: Any) -> None:
    """Through the store, as an older server (before the ingest depth cap) stored it."""
    obj = _deep_config_map(leaf)
    envelope = {
        "schema": SNAPSHOT_SCHEMA_ID,
        "type": "full",
        "digest": digest_of([obj]),
        "agent_version": "test",
        "objects": [obj],
    }
    stage_snapshot(session, "prod-eu", envelope=envelope)
    apply_pending(session, "prod-eu")


def test_pages_survive_a_stored_manifest_950_levels_deep(operator: Operator) -> None:
    fleet = operator.fleet
    failures: list[BaseException] = []

    def store_both() -> None:
        try:
            with fleet.sessions() as session:
                _store(session, "first")
                _store(session, "second")
                session.commit()
        except BaseException as problem:
            failures.append(problem)

    # In a thread of its own, as a server's request or worker thread would (xdist's frames
    # would otherwise sit under the store's 950-level canonical JSON encoding).
    storing = threading.Thread(target=store_both)
    storing.start()
    storing.join()
    assert failures == []
    with fleet.sessions() as session:
        obj = session.scalar(
            select(KubeObject).where(KubeObject.name == "deep", KubeObject.cluster_id == "prod-eu")
        )
    browser = Browser(operator.url, "alice", ADMIN_PASSWORD, requests.Session())
    assert browser.sign_in().status_code == 302

    def get(url: str, **params: str) -> requests.Response:
        return browser.http.get(operator.url + url, params=params, timeout=60)

    link = f"/admin/clusters/prod-eu/objects/{obj.id}"
    page = get(link)
    assert page.status_code == 200, page.text[:2000]
    assert "nested:" in page.text
    assert "nested deeper than" in page.text  # the truncation marker, not 950 lines of "x:"
    versions = re.findall(r'name="a" value="(\d+)"', page.text)
    assert len(versions) == 2
    diff = get(f"{link}/diff", a=versions[0], b=versions[1])
    assert diff.status_code == 200, diff.text[:2000]
    # They differ only at the leaf, 950 levels down: never "identical".
    assert "differ only in fields nested deeper than 100 levels" in diff.text
    assert "identical" not in diff.text

    searches = {
        "hits": get("/admin/search", path="$.nested", kind="ConfigMap"),
        "distinct": get("/admin/search", path="$.nested", kind="ConfigMap", distinct="1"),
        "deep path": get("/admin/search", path="$.nested" + ".x" * 200, kind="ConfigMap"),
    }
    for name, found in searches.items():
        assert found.status_code == 200, (name, found.text[:2000])
        assert 'class="value-link"' in found.text, name
    for name in ("hits", "deep path"):
        assert (
            "/admin/clusters/prod-eu/find?ref=v1%7CConfigMap%7Cshop%7Cdeep" in searches[name].text
        )
    # Following a value link carries the whole 950-level value back as ?value=.
    link = html.unescape(
        re.search(r'class="value-link" href="([^"]+)"', searches["distinct"].text).group(1)
    )
    narrowed = browser.http.get(operator.url + link, timeout=60)
    assert narrowed.status_code == 200, narrowed.text[:2000]
    assert "find?ref=v1%7CConfigMap%7Cshop%7Cdeep" in narrowed.text


def test_what_ingest_accepts_renders_in_full_and_deeper_is_one_marker() -> None:
    def nested(depth: int) -> dict[str, Any]:  # `depth` containers, the root included
        value: Any = "leaf"
        for _ in range(depth - 1):
            value = {"x": value}
        return {"root": value} if depth > 1 else {"root": "leaf"}

    accepted = manifest_view.render(nested(MAX_MANIFEST_DEPTH))
    assert not any("nested deeper than" in line.text for line in accepted)
    assert accepted[-1].text.endswith("x: leaf")
    assert len(accepted) == MAX_MANIFEST_DEPTH
    deeper = manifest_view.render(nested(MAX_MANIFEST_DEPTH + 1))
    assert len(deeper) == MAX_MANIFEST_DEPTH + 1
    assert deeper[-1].text.strip() == "… nested deeper than 100 levels: not shown"
    listed = manifest_view.render({"a": [[[["leaf"]]]], "b": [{"c": 1}, {"d": [2]}]})
    assert [line.text for line in listed] == [
        "a:",
        "-",
        "  -",
        "    -",
        "      - leaf",
        "b:",
        "- c: 1",
        "- d:",
        "  - 2",
    ]
