"""What fleet rules see: every container image the fleet's workloads run, and the advisories.

A fleet rule (`scope="fleet"`) takes a `FleetContext` and yields violations whose `subject`
is a `RunningImage` (which names its cluster). On the server the context is the whole fleet's
image inventory (`store.images.image_uses`, with digests from pod status and since-when from
the stored history) plus the loaded advisories; offline (`k8smon scan`) the scanned input is
a fleet of one cluster (`FleetContext.of_cluster`), with advisories from `--advisories` and no
since-when (the day threshold then never applies).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.advisories import Advisory
from contracts.images import ImageRef, Version, VersionError, digest_of, parse_version
from contracts.resources import ResourceRef
from rules.cluster import ClusterContext
from rules.config import ImageDrift

# Tags up to this long are read as versions once per process (`_tag_version_memo`): a fleet
# runs few distinct tags, each in many containers.
TAG_MEMO_CHARS = 128


def tag_version(tag: str | None) -> Version | None:
    """`parse_version(tag)`, or None when the tag is not a version (`latest`, a branch)."""
    try:
        return parse_version(tag)
    except VersionError:
        return None


_tag_version_memo = functools.lru_cache(maxsize=4096)(tag_version)


@dataclass(frozen=True, slots=True)
class RunningImage:
    """One container of one workload and the image it runs.

    `workload` is the top of the controller chain (a Deployment, not its Pods), `path` the
    JSON path of the container's `image` field in it, `digests` the digests it runs (from
    the reference or its Pods' status `imageID`), `since` when the workload started running
    this image without interruption (None: unknown).
    """

    cluster: str | None
    workload: ResourceRef
    container: str
    path: str
    image: ImageRef
    digests: tuple[str, ...] = ()
    since: dt.datetime | None = None

    def version(self) -> Version | None:
        """The tag's version, or None when the tag is not one (`latest`, a branch name)."""
        tag = self.image.tag
        if tag is not None and len(tag) <= TAG_MEMO_CHARS:
            return _tag_version_memo(tag)
        return tag_version(tag)

    def where(self) -> str:
        """`Deployment shop/web in cluster prod-eu` (for messages)."""
        ns = f"{self.workload.namespace}/" if self.workload.namespace else ""
        cluster = f" in cluster {self.cluster}" if self.cluster else ""
        return f"{self.workload.kind} {ns}{self.workload.name}{cluster}"


# Each field's slot setter, in field order (`_running_image`).
_RUNNING_IMAGE_SLOTS: tuple[Callable[[RunningImage, Any], None], ...] = tuple(
    vars(RunningImage)[f.name].__set__ for f in dataclasses.fields(RunningImage)
)


def _running_image(
    cluster: str | None,
    workload: ResourceRef,
    container: str,
    path: str,
    image: ImageRef,
    digests: tuple[str, ...],
) -> RunningImage:
    """`RunningImage(cluster, workload, container, path, image, digests)` (since unknown),
    its slots set directly: the frozen dataclass's `__init__` sets each field through
    `object.__setattr__` (about three times as long), and a scan makes one per container."""
    item = object.__new__(RunningImage)
    values = (cluster, workload, container, path, image, digests, None)
    for set_slot, value in zip(_RUNNING_IMAGE_SLOTS, values, strict=True):
        set_slot(item, value)
    return item


@dataclass(frozen=True, slots=True)
class FleetContext:
    """The fleet's running images, the loaded advisories, the drift thresholds and the time
    rules judge at. Immutable; `by_repository()` is computed once."""

    images: tuple[RunningImage, ...]
    advisories: tuple[Advisory, ...] = ()
    drift: ImageDrift = field(default_factory=ImageDrift)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    _repositories: dict[str, tuple[RunningImage, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def by_repository(self) -> Mapping[str, tuple[RunningImage, ...]]:
        """Running images grouped by canonical repository."""
        if not self._repositories and self.images:
            grouped: dict[str, list[RunningImage]] = defaultdict(list)
            for item in self.images:
                grouped[item.image.repository].append(item)
            self._repositories.update({k: tuple(v) for k, v in grouped.items()})
        return self._repositories

    def holds_until(self) -> dt.datetime | None:
        """The first instant after `now` at which the fleet rules could judge these images
        otherwise with time alone (None: never). They read `now` only as the whole days
        since a running image's `since` (KM-621's day threshold and the count its message
        gives), and those change only when `now` passes a `since` plus a whole number of
        days: the earliest such instant over every `since` (conservative: KM-621 counts the
        days of the newest version's only)."""
        day = dt.timedelta(days=1)
        starts = {item.since for item in self.images if item.since is not None}
        return min(
            (since + ((self.now - since) // day + 1) * day for since in starts), default=None
        )

    @classmethod
    def of_cluster(
        cls,
        context: ClusterContext,
        *,
        cluster: str | None = None,
        advisories: Sequence[Advisory] = (),
        drift: ImageDrift | None = None,
        now: dt.datetime | None = None,
    ) -> FleetContext:
        """The input of one offline scan as a fleet of one cluster."""
        return cls(
            images=tuple(running_images(context, cluster=cluster)),
            advisories=tuple(advisories),
            drift=drift or ImageDrift(),
            now=now or dt.datetime.now(dt.UTC),
        )


def _status_digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> digest from a Pod's `status.*containerStatuses[].imageID`."""
    status = manifest.get("status")
    found: dict[str, str] = {}
    if not isinstance(status, Mapping):
        return found
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        entries = status.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                digest = digest_of(entry.get("imageID"))
                if digest:
                    found[entry["name"]] = digest
    return found


def running_images(context: ClusterContext, *, cluster: str | None) -> Iterable[RunningImage]:
    """Every container image of the context's workloads (`ClusterContext.workloads()`)."""
    for obj in context.workloads():
        workload = obj.workload
        if workload is None:
            continue
        statuses = _status_digests(obj.manifest) if obj.kind == "Pod" else {}
        for container in workload.containers:
            image = container.raw.get("image")
            if not isinstance(image, str) or not image.strip():
                continue
            ref = container.image_ref  # parse_image(image), computed once per container
            assert ref is not None  # a non-blank string
            if ref.digest is None and not statuses:
                digests: tuple[str, ...] = ()  # the usual container: no digest anywhere
            else:
                found = {d for d in (digest_of(ref.digest), statuses.get(container.name)) if d}
                digests = tuple(sorted(found))
            yield _running_image(
                cluster, obj.ref, container.name, f"{container.path}.image", ref, digests
            )
