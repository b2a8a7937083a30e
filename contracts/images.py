"""Container image references and their versions: one parser for the rules, the store and the CLI.

`parse_image` splits `[registry[:port]/]path[:tag][@digest]` (a registry port is never taken
for a tag); `ImageRef.repository` is the canonical repository (`nginx` and
`docker.io/library/nginx` are one repository). `parse_version` reads a tag as a version:

- an optional `v`, one to four dot-separated numbers, then optionally `-suffix` or `+build`:
  `1.2.3`, `v1.25`, `2.14.1-alpine`, `1.27.0-rc.1`, `3.9.18-slim-bookworm`;
- a suffix that starts with a pre-release word (`alpha`, `beta`, `rc`, `pre`, `preview`,
  `dev`, `snapshot`, `milestone`) marks a pre-release, which sorts before its release;
  any other suffix (`alpine`, `jdk17`, `bookworm`) is a *variant*, ignored when ordering
  (a variant changes the base image, not the software's version); `+build` is ignored;
- anything else (`latest`, `stable`, `main`, `sha-3f2a1c`, a date) is not a version and
  `parse_version` raises `VersionError`: callers report such tags as unparseable rather than
  guessing an order.

Why not `packaging.version`: it implements PEP 440 (Python's scheme), which refuses the most
common container tags (`1.2.3-alpine`), reads `1.2.3-1` as a post-release and orders
`1.0-rc1` by Python's rules; container tags follow semver-ish conventions instead, and the
`rules` layer must stay stdlib-only.

A tag may be less precise than another (`1.25` floats to the newest 1.25.x): `compare`
compares on the common precision and says when the answer depends on digits the tag does not
give (`None`), so nothing is guessed from a floating tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST = re.compile(r"(sha256|sha384|sha512):[0-9a-fA-F]{32,}")
_VERSION = re.compile(
    r"^[vV]?(\d{1,5}(?:\.\d{1,9}){0,3})"  # a major of 6+ digits is a date or a build number
    r"(?:[-_]([0-9][0-9A-Za-z.\-_]*)|[-_.]?([A-Za-z][0-9A-Za-z.\-_]*))?"
    r"(?:\+[0-9A-Za-z.\-]+)?$"
)
_PRE_WORDS = (
    *("alpha", "beta", "rc", "pre", "preview", "dev", "snapshot", "milestone"),
    *("m", "a", "b"),  # 1.0-a1, 1.0-b2, 1.0-m3
)
_PRE = re.compile(
    r"^(" + "|".join(sorted(_PRE_WORDS, key=len, reverse=True)) + r")[.\-_]?(\d*)(?:$|[.\-_])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference: `[registry[:port]/]path[:tag][@digest]`."""

    name: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """The canonical repository: registry host and path, Docker Hub spelled out
        (`nginx` -> `docker.io/library/nginx`, `bitnami/redis` -> `docker.io/bitnami/redis`)."""
        return canonical_repository(self.name)

    def __str__(self) -> str:
        text = self.name + (f":{self.tag}" if self.tag else "")
        return text + (f"@{self.digest}" if self.digest else "")


def parse_image(image: str) -> ImageRef:
    """Split an image reference; a registry port (`host:5000/img`) is never taken for a tag."""
    text = image.strip()
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    slash = text.rfind("/")
    last = text[slash + 1 :]
    tag = None
    if ":" in last:
        head, tag = last.rsplit(":", 1)
        text = text[: slash + 1] + head
    return ImageRef(name=text, tag=tag or None, digest=digest or None)


def canonical_repository(name: str) -> str:
    """`registry/path` with Docker Hub's implicit registry and `library/` namespace added."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first.lower(), rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if "/" not in path:
            path = f"library/{path}"
    return f"{registry}/{path}"


def digest_of(image_id: object) -> str | None:
    """The `sha256:...` digest in a pod status `imageID` (`docker-pullable://x@sha256:...`,
    `docker.io/library/nginx@sha256:...`, `sha256:...`) or an image reference; else None."""
    if not isinstance(image_id, str):
        return None
    found = _DIGEST.search(image_id)
    return found.group(0).lower() if found else None


class VersionError(ValueError):
    """A tag or range bound that is not a version (the message says why)."""


@dataclass(frozen=True, slots=True, order=False)
class Version:
    """A version read from a tag: release numbers, pre-release (or None) and variant."""

    release: tuple[int, ...]
    pre: tuple[str, int] | None = None
    variant: str = ""
    text: str = ""

    def __str__(self) -> str:
        return self.text or ".".join(map(str, self.release))

    def padded(self, width: int = 4) -> tuple[int, ...]:
        return self.release + (0,) * (width - len(self.release))

    def sort_key(self) -> tuple[tuple[int, ...], int, str, int]:
        """Total order for picking the newest: release (padded), releases after their
        pre-releases, then pre-release word and number."""
        if self.pre is None:
            return (self.padded(), 1, "", 0)
        return (self.padded(), 0, self.pre[0], self.pre[1])


def parse_version(tag: str | None) -> Version:
    """The version a tag names (see the module docstring); `VersionError` if it names none."""
    if not tag:
        raise VersionError("no tag")
    match = _VERSION.match(tag.strip())
    if match is None:
        raise VersionError(f"{tag!r} is not a version (expected e.g. 1.2.3, v1.25, 2.1-alpine)")
    release = tuple(int(part) for part in match.group(1).split("."))
    suffix = match.group(2) or match.group(3) or ""
    pre = None
    variant = ""
    if suffix:
        found = _PRE.match(suffix)
        if found is not None:
            pre = (found.group(1).lower(), int(found.group(2) or 0))
        else:
            variant = suffix.lower()
    return Version(release=release, pre=pre, variant=variant, text=tag.strip())


def compare(a: Version, b: Version, *, b_exact: bool = False) -> int | None:
    """-1, 0 or 1 as `a` is older than, the same as or newer than `b` (variants ignored).

    Tags float: `1.25` is whichever 1.25.x was pushed last. When the answer depends on
    numbers the less precise side does not give (`1.25` against `1.25.3`), the answer is
    None. `b_exact` says `b` is a bound (an advisory's `fixed: 2.15` means 2.15.0), not a tag.
    """
    common = min(len(a.release), len(b.release))
    if a.release[:common] != b.release[:common]:
        return -1 if a.release[:common] < b.release[:common] else 1
    if len(a.release) < len(b.release) or (len(b.release) < len(a.release) and not b_exact):
        return None
    key_a, key_b = a.sort_key(), b.sort_key()
    if key_a == key_b:
        return 0
    return -1 if key_a < key_b else 1


def releases_between(older: Version, newer: Version) -> tuple[str, int]:
    """How far `older` is behind `newer` at the most significant release number that differs:
    (`major`/`minor`/`patch`/`build`, count); ("", 0) when they agree on the common precision."""
    names = ("major", "minor", "patch", "build")
    for index, (mine, theirs) in enumerate(zip(older.release, newer.release, strict=False)):
        if mine != theirs:
            return names[index], theirs - mine
    return "", 0
