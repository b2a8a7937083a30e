"""Image versions, advisories and the fleet image rules (KM-621 drift, KM-622 advisories)."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.advisories import AdvisoryError, AdvisoryIndex, parse_advisories
from contracts.images import (
    VersionError,
    compare,
    digest_of,
    parse_image,
    parse_version,
    releases_between,
)
from contracts.resources import ResourceRef
from rules import ClusterContext, Engine, ScanConfig
from rules.config import ConfigError
from rules.fleet import FleetContext, RunningImage
from tests.rules.helpers import deployment, pod

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("tag", "release", "pre", "variant"),
    [
        ("1.2.3", (1, 2, 3), None, ""),
        ("v1.25", (1, 25), None, ""),
        ("V2", (2,), None, ""),
        ("2.14.1-alpine", (2, 14, 1), None, "alpine"),
        ("3.9.18-slim-bookworm", (3, 9, 18), None, "slim-bookworm"),
        ("1.27.0-rc.1", (1, 27, 0), ("rc", 1), ""),
        ("2.0.0-beta2", (2, 0, 0), ("beta", 2), ""),
        ("1.2.3+build.5", (1, 2, 3), None, ""),
        ("1.2.3-1", (1, 2, 3), None, "1"),
        ("2024.01.15", (2024, 1, 15), None, ""),
    ],
)
def test_tags_that_are_versions(
    tag: str, release: tuple[int, ...], pre: tuple[str, int] | None, variant: str
) -> None:
    version = parse_version(tag)
    assert (version.release, version.pre, version.variant) == (release, pre, variant)
    assert str(version) == tag


@pytest.mark.parametrize(
    "tag", ["latest", "stable", "main", "sha-3f2a1c9", "20240101", "", None, "1.2.3.4.5", "x1.2"]
)
def test_tags_that_are_not_versions_are_refused_not_guessed(tag: str | None) -> None:
    with pytest.raises(VersionError):
        parse_version(tag)


def test_ordering_floating_tags_and_bounds() -> None:
    v = parse_version
    assert compare(v("1.20.1"), v("1.25.3")) == -1
    assert compare(v("v1.25.3"), v("1.25.3-alpine")) == 0  # a variant is not a version
    assert compare(v("1.27.0-rc.1"), v("1.27.0")) == -1
    assert compare(v("1.27.0-alpha.1"), v("1.27.0-beta.1")) == -1
    assert compare(v("1.25"), v("1.25.3")) is None  # the floating tag may be 1.25.3
    assert compare(v("1.25.3"), v("1.25")) is None
    assert compare(v("2.15.1"), v("2.15"), b_exact=True) == 1  # a bound is exact: 2.15.0
    assert compare(v("2.15"), v("2.15.0"), b_exact=True) is None
    assert releases_between(v("1.20.9"), v("1.25.0")) == ("minor", 5)
    assert releases_between(v("3.9.2"), v("6.0.0")) == ("major", 3)
    assert releases_between(v("1.25.1"), v("1.25.4")) == ("patch", 3)


def test_image_references_repositories_and_digests() -> None:
    assert parse_image("nginx:1.25").repository == "docker.io/library/nginx"
    assert parse_image("docker.io/library/nginx").repository == "docker.io/library/nginx"
    assert parse_image("index.docker.io/bitnami/redis:7").repository == "docker.io/bitnami/redis"
    assert parse_image("localhost:5000/app:1").repository == "localhost:5000/app"
    assert parse_image("ghcr.io/Org/app:1").repository == "ghcr.io/Org/app"
    ref = parse_image(f"registry.example:5000/shop/web:2.1@{DIGEST}")
    assert (ref.name, ref.tag, ref.digest) == ("registry.example:5000/shop/web", "2.1", DIGEST)
    assert digest_of(f"docker-pullable://nginx@{DIGEST.upper().replace('SHA', 'sha')}") == DIGEST
    assert digest_of(DIGEST) == DIGEST
    assert digest_of("nginx:1.25") is None and digest_of(None) is None


RECORD = {
    "id": "TEST-1",
    "severity": "high",
    "summary": "test",
    "url": "https://advisories.example/TEST-1",
    "affected": [{"repository": "*/log4j-app", "introduced": "2.0.0", "fixed": "2.15.0"}],
}


def _with(**changes: object) -> dict[str, object]:
    return {**RECORD, **changes}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ([], "advisories: must be a non-empty list"),
        ("text", "advisories: must be a non-empty list"),
        ([_with(id="")], "advisories[0].id: must be a non-empty string"),
        ([_with(id="bad id")], "advisories[0].id: letters, digits"),
        ([_with(severity="urgent")], "advisories[0].severity: one of critical"),
        ([_with(url="javascript:alert(1)")], "advisories[0].url: must be an http(s) URL"),
        ([_with(affected=[])], "advisories[0].affected: must be a non-empty list"),
        ([_with(colour="red")], "advisories[0]: unknown field colour"),
        (
            [_with(affected=[{"repository": "x", "fixed": "soon"}])],
            "advisories[0].affected[0].fixed: 'soon' is not a version",
        ),
        (
            [_with(affected=[{"repository": "x", "introduced": "2.0", "fixed": "1.0"}])],
            "advisories[0].affected[0].fixed: must come after introduced",
        ),
        (
            [_with(affected=[{"repository": "x", "fixed": "2", "last_affected": "1"}])],
            "advisories[0].affected[0]: give fixed or last_affected, not both",
        ),
        ([RECORD, _with(severity="low")], "advisories[1].id: TEST-1 appears twice"),
        ({"advisories": [RECORD, _with(id="T2", affected="x")]}, "advisories[1].affected"),
    ],
)
def test_bad_advisories_name_the_field(data: object, named: str) -> None:
    with pytest.raises(AdvisoryError) as refused:
        parse_advisories(data)
    assert str(refused.value).startswith(named), str(refused.value)


def test_advisory_shapes_and_round_trip() -> None:
    one = parse_advisories(RECORD)
    listed = parse_advisories([RECORD])
    wrapped = parse_advisories({"advisories": [RECORD]})
    assert one == listed == wrapped
    assert parse_advisories(one[0].to_dict()) == one
    numeric = parse_advisories(_with(affected=[{"repository": "x", "fixed": 2.15}]))
    assert str(numeric[0].affected[0].fixed) == "2.15"


def test_matching_by_canonical_or_written_repository() -> None:
    advisories = parse_advisories(
        [
            _with(id="A", affected=[{"repository": "docker.io/library/nginx", "fixed": "1.25"}]),
            _with(id="B", affected=[{"repository": "nginx", "last_affected": "1.20.1"}]),
            _with(id="C", affected=[{"repository": "nginx"}]),  # every version
        ]
    )
    images = [parse_image(i) for i in ("nginx:1.20.1", "nginx:1.26.0", "nginx:2", "nginx")]
    index = AdvisoryIndex(advisories, {n for i in images for n in (i.repository, i.name)})

    def verdicts(image: str) -> dict[str, bool | None]:
        return {a.id: v for a, v in index.verdicts(parse_image(image))}

    assert verdicts("nginx:1.20.1") == {"A": True, "B": True, "C": True}
    assert verdicts("nginx:1.26.0") == {"C": True}
    assert verdicts("nginx:2") == {"C": True}
    assert verdicts("nginx:1") == {"A": None, "B": None, "C": True}  # 1 may be 1.20 or 1.27
    assert verdicts("nginx") == {"A": None, "B": None, "C": None}  # no tag: cannot tell
    assert verdicts("redis:7") == {}


def _running(
    image: str, *, cluster: str, name: str, since: dt.datetime | None = None
) -> RunningImage:
    return RunningImage(
        cluster=cluster,
        workload=ResourceRef("apps/v1", "Deployment", "shop", name),
        container="app",
        path="spec.template.spec.containers[0].image",
        image=parse_image(image),
        since=since,
    )


def _fleet_results(fleet: FleetContext, *, config: ScanConfig | None = None) -> list[tuple]:
    engine = Engine.from_config(config or ScanConfig())
    return [
        (cluster, r.rule_id, r.resource.name, r.severity.value)
        for cluster, r in engine.evaluate_fleet(fleet)
    ]


def test_drift_across_clusters_by_releases_and_by_days() -> None:
    newest_since = NOW - dt.timedelta(days=45)
    fleet = FleetContext(
        images=(
            _running("shop/web:2.6.0", cluster="prod-us", name="web", since=newest_since),
            _running("shop/web:2.5.0", cluster="prod-eu", name="web"),  # 1 behind, 45 days
            _running("shop/web:2.1.0", cluster="dev", name="web"),  # 5 behind
            _running("shop/web:latest", cluster="dev", name="web-latest"),
        ),
        now=NOW,
    )
    assert sorted(_fleet_results(fleet)) == [
        ("dev", "KM-621", "web", "low"),
        ("prod-eu", "KM-621", "web", "low"),
    ]
    lenient = ScanConfig.from_dict(
        {"image_drift": {"max_releases_behind": 5, "max_days_behind": 60}}
    )
    assert _fleet_results(fleet, config=lenient) == []
    by_days_only = ScanConfig.from_dict({"image_drift": {"max_releases_behind": 100}})
    assert sorted(_fleet_results(fleet, config=by_days_only)) == [
        ("dev", "KM-621", "web", "low"),
        ("prod-eu", "KM-621", "web", "low"),
    ]
    for bad in ({"max_days_behind": -1}, {"max_releases_behind": "2"}, {"other": 1}, []):
        with pytest.raises(ConfigError, match="image_drift"):
            ScanConfig.from_dict({"image_drift": bad})


def test_a_drift_message_does_not_change_when_another_cluster_redeploys() -> None:
    """A drifted workload's finding says what is behind what, and since when: not how many
    containers run the newest version, which any redeploy anywhere would change (rewriting
    every drifted workload's finding across the fleet at the next evaluation)."""
    since = NOW - dt.timedelta(days=3)
    behind = _running("shop/web:2.1.0", cluster="dev", name="web")
    newest = [
        _running("shop/web:2.6.0", cluster=f"prod-{n}", name="web", since=since) for n in range(3)
    ]
    retagged = _running("shop/web:canary", cluster="prod-2", name="web")

    def messages(*images: RunningImage) -> list[str]:
        engine = Engine.from_config(ScanConfig())
        fleet = FleetContext(images=images, now=NOW)
        return [r.message for _cluster, r in engine.evaluate_fleet(fleet)]

    before = messages(behind, *newest)
    assert before == [
        "image shop/web:2.1.0 of container 'app' in Deployment shop/web in cluster dev is "
        "5 minor releases behind 2.6.0, the newest version of docker.io/shop/web running in "
        f"the fleet since {since.date().isoformat()} (3 days); upgrade it"
    ]
    assert messages(behind, *newest[:2], retagged) == before


def test_advisory_findings_carry_the_advisory_severity_in_every_cluster() -> None:
    advisories = parse_advisories(
        [RECORD, _with(id="TEST-2", severity="critical", affected=[{"repository": "*/app"}])]
    )
    fleet = FleetContext(
        images=(
            _running("registry.example/log4j-app:2.14.1", cluster="a", name="x"),
            _running("registry.example/log4j-app:2.17.1", cluster="b", name="y"),
            _running("registry.example/log4j-app:2", cluster="c", name="z"),
            _running("registry.example/app:1.0", cluster="c", name="w"),
        ),
        advisories=tuple(advisories),
        now=NOW,
    )
    assert sorted(r for r in _fleet_results(fleet) if r[1] == "KM-622") == [
        ("a", "KM-622", "x", "high"),
        ("c", "KM-622", "w", "critical"),
        ("c", "KM-622", "z", "medium"),  # cannot tell: reported, not guessed
    ]


def test_offline_scan_runs_fleet_rules_with_locations_and_pod_digests() -> None:
    old = deployment("old", spec={"containers": [{"name": "app", "image": "shop/app:1.0.0"}]})
    running = pod("new", spec={"containers": [{"name": "app", "image": "shop/app:1.4.0"}]})
    running["status"] = {"containerStatuses": [{"name": "app", "imageID": f"x@{DIGEST}"}]}
    advisories = parse_advisories(_with(affected=[{"repository": "shop/app", "fixed": "1.1"}]))
    outcome = Engine.from_config(None).scan([old, running], advisories=advisories)
    hits = sorted((r.rule_id, r.resource.name) for r in outcome.results if r.rule_id >= "KM-621")
    assert hits == [("KM-621", "old"), ("KM-622", "old")]
    context = FleetContext.of_cluster(ClusterContext([old, running]))
    assert {i.workload.name: i.digests for i in context.images} == {
        "old": (),
        "new": (DIGEST,),
    }


def test_running_images_are_the_dataclass_the_constructor_builds() -> None:
    spec = {"containers": [{"name": "app", "image": f"shop/app:1.4.0@{DIGEST}"}]}
    (item,) = FleetContext.of_cluster(ClusterContext([deployment("web", spec=spec)])).images
    built = RunningImage(
        cluster=None,
        workload=item.workload,
        container="app",
        path="spec.template.spec.containers[0].image",
        image=parse_image(f"shop/app:1.4.0@{DIGEST}"),
        digests=(DIGEST,),
    )
    assert item == built and hash(item) == hash(built) and repr(item) == repr(built)
    with pytest.raises(AttributeError):  # frozen, as the constructor's are
        item.container = "other"  # type: ignore[misc]
