"""The Pod Security Admission policy as versioned data: policy versions, the controls of each
level with their history since v1.0, and the value sets that changed between releases.

Pod Security Admission (PSA) judges a pod at a *level* (privileged, baseline, restricted) and
a *policy version* (`v1.N` or `latest`). Every control has a minimum version and may change
in later versions; a namespace pins a version with `pod-security.kubernetes.io/enforce-version`
and a cluster's `latest` is its own minor release. This module is the single place where that
history is written down. Rules read it through `policy_version(obj)` / `in_force(obj, id)` /
`at(history, version)`; `rules.admission` evaluates whole levels with it.

How to declare a change in a new release: see docs/rules-authoring.md ("Policy versions").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

Version = tuple[int, int]
T = TypeVar("T")

# The newest Kubernetes minor release whose policy the catalogue implements: `latest`.
LATEST: Version = (1, 37)
OLDEST: Version = (1, 0)

LEVEL_LABEL = "pod-security.kubernetes.io/{mode}"
VERSION_LABEL = "pod-security.kubernetes.io/{mode}-version"
MODES = ("enforce", "audit", "warn")

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:[.\-+].*)?\s*$")


class Level(StrEnum):
    """Pod Security Standards levels, least to most restrictive."""

    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return LEVEL_ORDER.index(self)


LEVEL_ORDER = (Level.PRIVILEGED, Level.BASELINE, Level.RESTRICTED)


class VersionError(ValueError):
    """A Kubernetes version that is not `X.Y` (optionally `vX.Y.Z...`) or `latest`."""


def parse_version(text: Any, *, default: Version | None = None) -> Version | None:
    """(major, minor) of `1.28`, `v1.28.3-eks-abc`, or None (`default`) for `latest`/empty.

    Raises VersionError for anything else. Versions newer than LATEST are capped to it (PSA
    does the same: a pin beyond its own release evaluates at its newest policy).
    """
    if text is None:
        return default
    value = str(text).strip()
    if value in ("", "latest"):
        return default
    match = _VERSION.match(value)
    if match is None:
        raise VersionError(f"not a Kubernetes version: {value!r} (expected X.Y or latest)")
    version = (int(match.group(1)), int(match.group(2)))
    if version[0] != 1:
        raise VersionError(f"unsupported Kubernetes major version in {value!r}")
    return min(version, LATEST)


def format_version(version: Version | None) -> str:
    return "latest" if version is None else f"v{version[0]}.{version[1]}"


def all_versions() -> list[Version]:
    """Every policy version from v1.0 to LATEST."""
    return [(1, minor) for minor in range(OLDEST[1], LATEST[1] + 1)]


def at(history: Mapping[Version, T], version: Version) -> T:
    """The value of a versioned setting at `version`: the entry with the greatest minimum
    version not newer than it (like PSA's version inflation)."""
    best = max((v for v in history if v <= version), default=None)
    if best is None:
        raise KeyError(f"no entry at or before {format_version(version)}")
    return history[best]


def policy_version(obj: Any) -> Version:
    """The policy version an object is judged at (`ObjectView.policy_version`, else LATEST)."""
    version = getattr(obj, "policy_version", None)
    return version if version is not None else LATEST


def cluster_version(obj: Any) -> Version:
    """The Kubernetes release the object's cluster runs (else LATEST)."""
    version = getattr(obj, "kubernetes_version", None)
    return version if version is not None else LATEST


@dataclass(frozen=True, slots=True)
class Control:
    """One PSA check: its id (as in the PSA source), level, the Pod Security Standards
    control it implements (our `pss` tag), the catalogue rules that report it, and its
    history: `(minimum version, what that version checks)` from the first version on.

    `overrides` names the baseline check a restricted check replaces at restricted level
    (from the restricted check's first version on), as PSA's `OverrideCheckIDs` does.
    """

    id: str
    level: Level
    pss: str
    rules: tuple[str, ...]
    history: tuple[tuple[Version, str], ...]
    overrides: str | None = None

    @property
    def since(self) -> Version:
        return self.history[0][0]

    def in_force(self, version: Version) -> bool:
        return version >= self.since


B, R = Level.BASELINE, Level.RESTRICTED

CONTROLS: tuple[Control, ...] = (
    Control(
        "privileged",
        B,
        "baseline/privileged-containers",
        ("KM-101",),
        (((1, 0), "containers must not set securityContext.privileged=true"),),
    ),
    Control(
        "capabilities_baseline",
        B,
        "baseline/capabilities",
        ("KM-109",),
        (((1, 0), "capabilities.add only from the baseline set, compared verbatim"),),
    ),
    Control(
        "hostNamespaces",
        B,
        "baseline/host-namespaces",
        ("KM-102", "KM-103", "KM-104"),
        (((1, 0), "hostNetwork, hostPID and hostIPC must not be true"),),
    ),
    Control(
        "hostPorts",
        B,
        "baseline/host-ports",
        ("KM-114",),
        (((1, 0), "containers must not set ports[*].hostPort (other than 0)"),),
    ),
    Control(
        "hostPathVolumes",
        B,
        "baseline/hostpath-volumes",
        ("KM-113",),
        (((1, 0), "volumes must not be hostPath"),),
    ),
    Control(
        "seLinuxOptions",
        B,
        "baseline/selinux",
        ("KM-116",),
        (
            ((1, 0), "pod and container seLinuxOptions: type in the allowed set, no user/role"),
            ((1, 31), "container_engine_t added to the allowed types"),
        ),
    ),
    Control(
        "procMount",
        B,
        "baseline/proc-mount-type",
        ("KM-117",),
        (
            ((1, 0), "containers must not set procMount other than Default"),
            ((1, 35), "any procMount is allowed when the pod sets hostUsers: false"),
        ),
    ),
    Control(
        "seccompProfile_baseline",
        B,
        "baseline/seccomp",
        ("KM-118",),
        (
            ((1, 0), "seccomp annotations must not be unconfined"),
            ((1, 19), "pod and container seccompProfile.type must not be Unconfined"),
        ),
    ),
    Control(
        "appArmorProfile",
        B,
        "baseline/apparmor",
        ("KM-115",),
        (((1, 0), "AppArmor annotations and appArmorProfile.type: runtime default or local"),),
    ),
    Control(
        "sysctls",
        B,
        "baseline/sysctls",
        ("KM-120",),
        (
            ((1, 0), "only the safe sysctls"),
            ((1, 27), "+ net.ipv4.ip_local_reserved_ports"),
            ((1, 29), "+ tcp_keepalive_time, tcp_fin_timeout, tcp_keepalive_intvl/_probes"),
            ((1, 32), "+ net.ipv4.tcp_rmem, net.ipv4.tcp_wmem"),
            ((1, 37), "+ net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_notsent_lowat"),
        ),
    ),
    Control(
        "windowsHostProcess",
        B,
        "baseline/host-process",
        ("KM-112",),
        (((1, 0), "pod and containers must not set windowsOptions.hostProcess=true"),),
    ),
    Control(
        "hostProbesAndHostLifecycle",
        B,
        "baseline/host-probes",
        ("KM-121",),
        (((1, 34), "probes and lifecycle handlers must not set host"),),
    ),
    Control(
        "restrictedVolumes",
        R,
        "restricted/volume-types",
        ("KM-113", "KM-122"),
        (((1, 0), "only configMap, csi, downwardAPI, emptyDir, ephemeral, image, PVC, ..."),),
    ),
    Control(
        "runAsNonRoot",
        R,
        "restricted/running-as-non-root",
        ("KM-106", "KM-124"),
        (((1, 0), "runAsNonRoot=true on the pod or every container; never false"),),
    ),
    Control(
        "allowPrivilegeEscalation",
        R,
        "restricted/privilege-escalation",
        ("KM-105",),
        (
            ((1, 8), "containers must set allowPrivilegeEscalation=false"),
            ((1, 25), "pods with os.name: windows are exempt"),
        ),
    ),
    Control(
        "seccompProfile_restricted",
        R,
        "restricted/seccomp",
        ("KM-118", "KM-119"),
        (
            (
                (1, 19),
                "seccompProfile.type RuntimeDefault or Localhost, on the pod or each container",
            ),
            ((1, 25), "pods with os.name: windows are exempt"),
        ),
        overrides="seccompProfile_baseline",
    ),
    Control(
        "capabilities_restricted",
        R,
        "restricted/capabilities",
        ("KM-109", "KM-110", "KM-111"),
        (
            ((1, 22), "containers must drop ALL and may add only NET_BIND_SERVICE"),
            ((1, 25), "pods with os.name: windows are exempt"),
        ),
        overrides="capabilities_baseline",
    ),
    Control(
        "runAsUser",
        R,
        "restricted/running-as-non-root-user",
        ("KM-107",),
        (((1, 23), "pod and containers must not set runAsUser=0"),),
    ),
    Control(
        "procMount_restricted",
        R,
        "restricted/proc-mount-type",
        ("KM-117", "KM-125"),
        (((1, 35), "procMount other than Default is forbidden even with hostUsers: false"),),
        overrides="procMount",
    ),
)
CONTROLS_BY_ID: Mapping[str, Control] = {c.id: c for c in CONTROLS}
# The first version each control exists at, by id (`in_force` runs for every pod-bearing
# object, several times).
_SINCE: Mapping[str, Version] = {c.id: c.since for c in CONTROLS}


def namespace_pins(objects: Iterable[Any], mode: str = "enforce") -> dict[str, Version | None]:
    """Namespace name -> the policy version its `pod-security.kubernetes.io/<mode>-version`
    label pins (None: `latest` or unpinned; an unparseable value counts as latest, as PSA
    falls back to its default for an invalid label)."""
    pins: dict[str, Version | None] = {}
    key = VERSION_LABEL.format(mode=mode)
    for obj in objects:
        if getattr(obj, "kind", None) != "Namespace" or not obj.name:
            continue
        try:
            pins[obj.name] = parse_version(obj.labels.get(key))
        except VersionError:
            pins[obj.name] = None
    return pins


def assign_versions(views: Sequence[Any], kubernetes_version: Version | None) -> None:
    """Set `kubernetes_version` and `policy_version` on each ObjectView of one input: the
    namespace's enforce-version pin when pinned (capped at the cluster's own release, as a
    cluster cannot apply a policy newer than itself), else the cluster's release."""
    pins = namespace_pins(views)
    if not any(pin is not None for pin in pins.values()):
        for view in views:  # no namespace pins a version: every object at the cluster's
            view.kubernetes_version = view.policy_version = kubernetes_version
        return
    for view in views:
        assign_version(view, kubernetes_version, pins)


def assign_version(
    view: Any, kubernetes_version: Version | None, pins: Mapping[str, Version | None]
) -> None:
    """Set one ObjectView's versions from its cluster's release and its namespaces' pins
    (`namespace_pins`); see `assign_versions`."""
    view.kubernetes_version = kubernetes_version
    pin = pins.get(view.namespace) if view.namespace else None
    if pin is not None and kubernetes_version is not None:
        pin = min(pin, kubernetes_version)
    view.policy_version = pin if pin is not None else kubernetes_version


def in_force(obj: Any, control_id: str) -> bool:
    """Whether a control exists at the object's policy version."""
    version = getattr(obj, "policy_version", None)
    return (version if version is not None else LATEST) >= _SINCE[control_id]


def controls_for(level: Level, version: Version) -> tuple[Control, ...]:
    """The checks PSA runs at `level` and `version` (restricted includes the baseline checks
    its own checks do not override)."""
    if level is Level.PRIVILEGED:
        return ()
    active = [c for c in CONTROLS if c.in_force(version)]
    if level is Level.BASELINE:
        return tuple(c for c in active if c.level is Level.BASELINE)
    overridden = {c.overrides for c in active if c.level is Level.RESTRICTED and c.overrides}
    return tuple(c for c in active if c.id not in overridden)


# -- value sets that changed between releases (minimum version -> value) ---------------------
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
}
SAFE_SYSCTLS: Mapping[Version, frozenset[str]] = {
    (1, 0): _SYSCTLS_1_0,
    (1, 27): _SYSCTLS_1_27,
    (1, 29): _SYSCTLS_1_29,
    (1, 32): _SYSCTLS_1_32,
    (1, 37): _SYSCTLS_1_37,
}

_SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES: Mapping[Version, frozenset[str]] = {
    (1, 0): _SELINUX_1_0,
    (1, 31): _SELINUX_1_0 | {"container_engine_t"},
}

# Volume sources the restricted profile allows. A volume that names no source at all is
# defaulted to emptyDir by the API server before admission, so it is allowed too.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Every volume source of core/v1 Volume; anything else in a volume is not a source.
VOLUME_SOURCES = RESTRICTED_VOLUME_TYPES | {
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
}
PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def relaxed_for_user_namespace(obj: Any) -> bool:
    """`hostUsers: false`: the pod runs in its own user namespace (PSA relaxes runAsNonRoot,
    runAsUser and, from v1.35 at baseline, procMount for it)."""
    workload = getattr(obj, "workload", None)
    return workload is not None and workload.host_users is False
