"""Fleet image rules: versions that drift behind the rest of the fleet (KM-621) and running
images that loaded advisories affect (KM-622).

Both are fleet rules (`scope="fleet"`): they see every container image of every cluster
(`rules.fleet.FleetContext`), so "the newest version running anywhere" and "every running
image in an affected range" are answered across clusters. Offline, the scanned input is the
fleet. Versions are read from tags with `contracts.images` (tags that are not versions are
never ordered: KM-621 skips them, KM-622 says it cannot tell).
"""

from __future__ import annotations

from collections.abc import Iterator

from contracts.advisories import AdvisoryIndex
from contracts.images import Version, compare, releases_between
from contracts.severity import Severity
from rules.fleet import FleetContext, RunningImage
from rules.model import Violation, rule

CATEGORY = "hygiene"
IMAGES_DOC = "https://kubernetes.io/docs/concepts/containers/images/"
OSV_DOC = "https://ossf.github.io/osv-schema/"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@rule(
    id="KM-621",
    title="Image version behind the newest running in the fleet",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="fleet",
    references=(IMAGES_DOC, "https://semver.org/"),
    remediation="Upgrade the workload to the version the rest of the fleet runs (or record "
    "why it must stay behind as an exemption); tune the thresholds with `image_drift` in the "
    "rules configuration.",
    kinds=("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"),
)
def image_version_drift(fleet: FleetContext) -> Iterator[Violation]:
    """Flags workloads running an image version far behind the newest one the fleet runs.

    ## What it does
    Groups every running container image of every cluster by repository
    (`nginx` and `docker.io/library/nginx` are one), reads each tag as a version
    (`1.25.3`, `v1.25`, `1.25.3-alpine`; variants such as `-alpine` do not change the
    version) and finds the newest release running anywhere in the fleet. A workload is
    reported when its version is behind that newest one by more than
    `image_drift.max_releases_behind` releases (counted at the first number that differs:
    1.20 → 1.25 is 5 minor releases, 1.25.1 → 1.25.4 is 3 patch releases, 1.x → 2.x one
    major release) or when the newest version has been running in the fleet for more than
    `image_drift.max_days_behind` days (from the stored history; unknown offline) and the
    workload has still not caught up. Tags that are not versions (`latest`, `main`) are
    not ordered, pre-releases are never "the newest", and a floating tag (`1.25`) is not
    reported against `1.25.3`: it may point at it.

    ## Why is this bad?
    A workload left behind its siblings misses every fix the fleet already runs, and the
    gap grows: the upgrade that was one release becomes five, with their breaking changes.

    ## Example
    ```yaml
    # cluster prod-eu
    image: registry.example/shop/web:2.1.0
    # cluster prod-us
    image: registry.example/shop/web:2.6.0
    ```

    ## Use instead
    ```yaml
    image: registry.example/shop/web:2.6.0
    ```

    ## References
    - https://semver.org/
    """
    limits = fleet.drift
    for repository in sorted(fleet.by_repository()):
        versioned: list[tuple[RunningImage, Version]] = []
        for item in fleet.by_repository()[repository]:
            version = item.version()
            if version is not None:
                versioned.append((item, version))
        releases = [v for _i, v in versioned if v.pre is None]
        if not releases:
            continue
        newest = max(releases, key=lambda v: v.sort_key())
        newest_key = newest.sort_key()
        running_newest = [i for i, v in versioned if v.sort_key() == newest_key]
        seen = [i.since for i in running_newest if i.since is not None]
        newest_since = min(seen) if seen else None
        days = (fleet.now - newest_since).days if newest_since is not None else None
        for item, version in versioned:
            if compare(version, newest) != -1:
                continue
            unit, count = releases_between(version, newest)
            too_many = count > limits.max_releases_behind
            too_long = days is not None and days > limits.max_days_behind
            if not (too_many or too_long):
                continue
            gap = f"{_plural(count, unit + ' release')} behind" if count else "behind"
            since = (
                f" since {newest_since.date().isoformat()} ({days} days)"
                if newest_since is not None and days is not None
                else ""
            )
            # Nothing in the message depends on how many containers run the newest version:
            # it would change every drifted workload's finding across the fleet whenever
            # one container anywhere is redeployed (`k8smon images` lists where it runs).
            yield Violation(
                f"image {item.image} of container {item.container!r} in {item.where()} is "
                f"{gap} {newest}, the newest version of {repository} running in the fleet"
                f"{since}; upgrade it",
                path=item.path,
                container=item.container,
                subject=item,
            )


@rule(
    id="KM-622",
    title="Running image affected by a loaded advisory",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="fleet",
    references=(OSV_DOC, IMAGES_DOC),
    remediation="Upgrade the image to a fixed version the advisory names (or rebuild it on "
    "one); until then, exempt the finding with the reason and an expiry.",
    kinds=("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"),
)
def advisory_affected_image(fleet: FleetContext) -> Iterator[Violation]:
    """Flags every running container image in a version range a loaded advisory affects.

    ## What it does
    Matches each running container image of the fleet against the advisories operators
    loaded (`k8smon advisories load FILE`, the admin API): an advisory names repository
    patterns and the affected version ranges (`introduced`, `fixed` or `last_affected`).
    One finding per container lists every advisory affecting its image, with the
    advisory's severity (the most severe one) and the fixed versions. An image whose
    repository matches but whose tag is not a version (`latest`), or is too imprecise for
    the range (`2` against `fixed: 2.15.0`), is reported as "cannot tell" (medium), not
    guessed either way. On the server, loading or deleting an advisory re-evaluates the
    whole fleet at once, and every scan keeps evaluating the loaded advisories.

    ## Why is this bad?
    A known vulnerability in a running image is the first thing an attacker tries; knowing
    within minutes of an advisory where the affected versions run is what makes a fast
    response possible ("where is log4shell running right now").

    ## Example
    ```yaml
    # advisory: introduced 2.0.0, fixed 2.15.0, repository */log4j-app
    image: registry.example/shop/log4j-app:2.14.1
    ```

    ## Use instead
    ```yaml
    image: registry.example/shop/log4j-app:2.17.1
    ```

    ## References
    - https://ossf.github.io/osv-schema/
    """
    if not fleet.advisories:
        return
    names = {n for item in fleet.images for n in (item.image.repository, item.image.name)}
    index = AdvisoryIndex(fleet.advisories, names)
    for item in fleet.images:
        verdicts = index.verdicts(item.image)
        if not verdicts:
            continue
        affected = sorted((a for a, v in verdicts if v is True), key=lambda a: a.id)
        unknown = sorted((a for a, v in verdicts if v is None), key=lambda a: a.id)
        where = f"image {item.image} of container {item.container!r} in {item.where()}"
        if affected:
            listed = "; ".join(
                f"{a.id} ({a.severity.value}"
                + (f", fixed in {', '.join(a.fixed_versions)}" if a.fixed_versions else "")
                + ")"
                for a in affected
            )
            also = f"; cannot tell for {', '.join(a.id for a in unknown)}" if unknown else ""
            yield Violation(
                f"{where} is affected by {listed}{also}; upgrade to a fixed version",
                path=item.path,
                container=item.container,
                subject=item,
                severity=max((a.severity for a in affected), key=lambda s: s.rank),
            )
        else:
            tag = item.image.tag
            reason = (
                "it has no tag"
                if tag is None
                else f"its tag {tag!r} is not a version"
                if item.version() is None
                else f"its tag {tag!r} is too imprecise for the affected range"
            )
            yield Violation(
                f"{where} matches {', '.join(a.id for a in unknown)} but {reason}: cannot "
                "tell whether it is affected; pin a version tag",
                path=item.path,
                container=item.container,
                subject=item,
                severity=Severity.MEDIUM,
            )
