"""The timeline on the resource page and the cluster's timeline page (Flask test client on
PostgreSQL): the change that opened and resolved a finding with its diff, filters, keyset
pages, clear 400s, agent-chosen text escaped."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from store.models import KubeObject
from tests.support.manifests import config_map, deployment
from tests.web.fleet import Fleet, privileged, push
from tests.workers.workloads import fixed

HOSTILE = '<img src=x onerror="alert(1)">'


def _fix_web(fleet: Fleet) -> int:
    web_v2 = privileged(deployment("web", namespace="shop", image="registry.example/web:1.1"))
    api = deployment("api", namespace="shop", image="registry.example/api:2")
    with fleet.sessions() as session:
        push(session, "prod-eu", [fixed(web_v2), config_map("settings", namespace="shop"), api])
        session.commit()
        web = session.scalar(
            select(KubeObject.id).where(
                KubeObject.cluster_id == "prod-eu", KubeObject.name == "web"
            )
        )
    fleet.scan("prod-eu")
    assert web is not None
    return web


def _events(html: str) -> list[str]:
    return re.findall(r'<li class="event (\w+)"', html)


def test_resource_page_shows_what_opened_and_resolved_each_finding(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    web = _fix_web(fleet)
    html = admin_client.get(f"/admin/clusters/prod-eu/objects/{web}").get_data(as_text=True)
    section = html.split('id="timeline"')[1]
    events = _events(section)
    assert events.count("changed") == 2 and events[-1] == "created"
    assert "finding_opened" in events and "finding_resolved" in events
    assert "scan" not in events
    resolved = section.split('<li class="event finding_resolved"')[1].split("</li>")[0]
    assert "resolved by" in resolved and "/diff?a=" in resolved
    assert '<span class="del">-          privileged: true</span>' in resolved
    assert '<span class="add">+          privileged: false</span>' in resolved
    opened = [
        chunk.split("</li>")[0]
        for chunk in section.split('<li class="event finding_opened"')[1:]
        if "securityContext.privileged" in chunk.split("</li>")[0]
    ]
    assert len(opened) == 1 and "introduced by" in opened[0]
    assert '<span class="add">+          privileged: true</span>' in opened[0]
    # The diff link goes to the diff page of that change.
    link = re.search(
        r'href="(/admin/clusters/prod-eu/objects/\d+/diff\?a=\d+&amp;b=\d+)"', resolved
    )
    assert link is not None
    assert admin_client.get(link.group(1).replace("&amp;", "&")).status_code == 200


def test_cluster_timeline_page_filters_and_pages(admin_client: FlaskClient, fleet: Fleet) -> None:
    web = _fix_web(fleet)
    cluster = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    assert 'href="/admin/clusters/prod-eu/timeline"' in cluster
    html = admin_client.get("/admin/clusters/prod-eu/timeline").get_data(as_text=True)
    events = _events(html)
    assert {"scan", "created", "changed", "finding_opened", "finding_resolved"} <= set(events)
    scans_only = admin_client.get("/admin/clusters/prod-eu/timeline?types=scans")
    assert set(_events(scans_only.get_data(as_text=True))) == {"scan"}
    both = admin_client.get("/admin/clusters/prod-eu/timeline?types=scans&types=resources")
    assert set(_events(both.get_data(as_text=True))) == {"scan", "created", "changed"}

    seen: list[str] = []
    url = "/admin/clusters/prod-eu/timeline?limit=3"
    pages = 0
    while url:
        page = admin_client.get(url).get_data(as_text=True)
        seen += _events(page)
        pages += 1
        older = re.search(r'<a rel="next" href="([^"]+)">older', page)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert pages > 1 and seen == events  # the default page holds all of them here
    for bad, words in (
        ("?types=nope", "types: unknown"),
        ("?before=12", "before:"),
        ("?before=1.9.9", "before:"),
    ):
        answer = admin_client.get(f"/admin/clusters/prod-eu/timeline{bad}")
        assert answer.status_code == 400, bad
        assert words in answer.get_data(as_text=True)
    assert admin_client.get("/admin/clusters/nope/timeline").status_code == 404
    refused = admin_client.get(f"/admin/clusters/prod-eu/objects/{web}?before=x")
    assert refused.status_code == 400 and "before:" in refused.get_data(as_text=True)


def test_agent_text_on_the_timeline_is_escaped(admin_client: FlaskClient, fleet: Fleet) -> None:
    evil = privileged(deployment("evil", namespace="shop", image=f"img/{HOSTILE}:1"))
    evil["metadata"]["name"] = HOSTILE
    with fleet.sessions() as session:
        push(session, "prod-eu", [evil])
        session.commit()
    fleet.scan("prod-eu")
    evil2 = privileged(deployment("evil", namespace="shop", image=f"img/{HOSTILE}:2"))
    evil2["metadata"]["name"] = HOSTILE
    with fleet.sessions() as session:
        push(session, "prod-eu", [evil2])
        session.commit()
    html = admin_client.get("/admin/clusters/prod-eu/timeline?limit=500").get_data(as_text=True)
    assert HOSTILE not in html and "onerror" in html
    assert "&lt;img src=x onerror=" in html
