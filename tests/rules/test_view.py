"""Workload normalisation: every pod-bearing kind, all container groups, kubelet precedence."""

from __future__ import annotations

import pytest

from rules import Engine, ObjectView
from rules.view import POD_KINDS
from tests.rules.helpers import deployment, pod

POD_SPEC = {
    "initContainers": [{"name": "init", "image": "i:1"}],
    "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}],
    "ephemeralContainers": [{"name": "debug", "image": "d:1"}],
}
TEMPLATE = {"metadata": {"labels": {"a": "b"}}, "spec": POD_SPEC}
WRAPPED = {
    "Pod": ("v1", {"spec": POD_SPEC}, "spec"),
    "Deployment": ("apps/v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "StatefulSet": ("apps/v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "DaemonSet": ("apps/v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "ReplicaSet": ("apps/v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "ReplicationController": ("v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "DeploymentConfig": (
        "apps.openshift.io/v1",
        {"spec": {"template": TEMPLATE}},
        "spec.template.spec",
    ),
    "Job": ("batch/v1", {"spec": {"template": TEMPLATE}}, "spec.template.spec"),
    "CronJob": (
        "batch/v1",
        {"spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}},
        "spec.jobTemplate.spec.template.spec",
    ),
    "PodTemplate": ("v1", {"template": TEMPLATE}, "template.spec"),
}


def test_every_pod_bearing_kind_is_covered() -> None:
    assert set(WRAPPED) == POD_KINDS


@pytest.mark.parametrize("kind", sorted(WRAPPED))
def test_workload_unwraps_all_container_groups(kind: str) -> None:
    api_version, body, spec_path = WRAPPED[kind]
    view = ObjectView(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "x", "namespace": "n"},
            **body,
        }
    )
    assert view.workload is not None
    assert view.workload.spec_path == spec_path
    containers = view.workload.containers
    assert [c.name for c in containers] == ["init", "app", "side", "debug"]
    assert [c.path for c in containers] == [
        f"{spec_path}.initContainers[0]",
        f"{spec_path}.containers[0]",
        f"{spec_path}.containers[1]",
        f"{spec_path}.ephemeralContainers[0]",
    ]


def test_non_workload_and_malformed_objects() -> None:
    assert (
        ObjectView({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}).workload
        is None
    )
    broken = ObjectView(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": "nonsense"},
        }
    )
    assert broken.workload is not None and broken.workload.containers == ()
    odd = ObjectView({"kind": "Pod", "metadata": None, "spec": {"containers": [None, 3]}})
    assert odd.name == "" and odd.workload is not None and odd.workload.containers == ()


def _container(pod_sc: dict, container_sc: dict | None):
    c = {"name": "app", "image": "a:1"}
    if container_sc is not None:
        c["securityContext"] = container_sc
    view = ObjectView(pod(spec={"securityContext": pod_sc, "containers": [c]}))
    assert view.workload is not None
    return view.workload.containers[0]


def test_pod_run_as_non_root_applies_when_container_is_silent() -> None:
    c = _container({"runAsNonRoot": True}, None)
    assert c.effective("runAsNonRoot") == (True, "spec.securityContext.runAsNonRoot")


def test_container_value_wins_over_pod() -> None:
    c = _container({"runAsNonRoot": True, "runAsUser": 1000}, {"runAsUser": 0})
    assert c.effective("runAsUser") == (0, "spec.containers[0].securityContext.runAsUser")
    assert c.effective("runAsNonRoot")[0] is True


def test_container_seccomp_unconfined_overrides_pod_runtime_default() -> None:
    c = _container(
        {"seccompProfile": {"type": "RuntimeDefault"}}, {"seccompProfile": {"type": "Unconfined"}}
    )
    value, path = c.effective("seccompProfile")
    assert value == {"type": "Unconfined"}
    assert path == "spec.containers[0].securityContext.seccompProfile"


def test_container_only_fields_are_not_inherited() -> None:
    # privileged/allowPrivilegeEscalation/capabilities are container-only; a pod-level key
    # of the same name (invalid, but seen in the wild) must not leak into containers.
    c = _container({"allowPrivilegeEscalation": False}, None)
    assert c.effective("allowPrivilegeEscalation") == (
        None,
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
    )


def test_windows_options_merge_field_by_field() -> None:
    c = _container(
        {"windowsOptions": {"hostProcess": True, "runAsUserName": "a"}},
        {"windowsOptions": {"runAsUserName": "b"}},
    )
    assert c.effective_windows("hostProcess") == (
        True,
        "spec.securityContext.windowsOptions.hostProcess",
    )
    assert c.effective_windows("runAsUserName")[0] == "b"


def test_selinux_options_replace_as_a_whole() -> None:
    c = _container(
        {"seLinuxOptions": {"type": "spc_t", "level": "s0"}}, {"seLinuxOptions": {"level": "s0:c1"}}
    )
    assert c.effective("seLinuxOptions")[0] == {"level": "s0:c1"}


def _rule_ids(manifest: dict) -> dict[str, list[str]]:
    engine = Engine.from_config(None)
    out: dict[str, list[str]] = {}
    for result in engine.evaluate_object(manifest):
        out.setdefault(result.rule_id, []).append(result.path)
    return out


def test_issue_examples_through_the_rules() -> None:
    ok = _rule_ids(
        deployment(
            spec={
                "securityContext": {"runAsNonRoot": True},
                "containers": [{"name": "app", "image": "a:1"}],
            }
        )
    )
    assert "KM-106" not in ok
    root = _rule_ids(
        deployment(
            spec={
                "securityContext": {"runAsNonRoot": True},
                "containers": [
                    {"name": "app", "image": "a:1", "securityContext": {"runAsUser": 0}}
                ],
            }
        )
    )
    assert root["KM-107"] == ["spec.template.spec.containers[0].securityContext.runAsUser"]
    unconfined = _rule_ids(
        deployment(
            spec={
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "app",
                        "image": "a:1",
                        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
                    }
                ],
            }
        )
    )
    assert unconfined["KM-118"] == [
        "spec.template.spec.containers[0].securityContext.seccompProfile.type"
    ]
    assert "KM-119" not in unconfined


def test_one_finding_per_container_names_the_container() -> None:
    manifest = pod(
        spec={
            "containers": [
                {"name": "a", "image": "a:1", "securityContext": {"privileged": True}},
                {"name": "b", "image": "b:1", "securityContext": {"privileged": True}},
            ]
        }
    )
    results = [
        r for r in Engine.from_config(None).evaluate_object(manifest) if r.rule_id == "KM-101"
    ]
    assert [(r.container, r.path) for r in results] == [
        ("a", "spec.containers[0].securityContext.privileged"),
        ("b", "spec.containers[1].securityContext.privileged"),
    ]


def test_container_image_ref_is_parsed_once_and_none_when_blank() -> None:
    view = ObjectView(
        pod(spec={"containers": [{"name": "a", "image": " host:5000/app:1.2 "}, {"name": "b"}]})
    )
    assert view.workload is not None
    first, second = view.workload.containers
    ref = first.image_ref
    assert ref is not None and (ref.name, ref.tag, ref.digest) == ("host:5000/app", "1.2", None)
    assert first.image_ref is ref
    assert second.image_ref is None


@pytest.mark.parametrize(
    "manifest",
    [
        pod("web"),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}},
        {"kind": "ConfigMap", "metadata": {"name": 7, "namespace": "n"}},
        {"apiVersion": "v1"},
    ],
)
def test_a_views_key_is_its_refs_key_before_and_after_the_ref(manifest: dict) -> None:
    view = ObjectView(manifest)
    key = view.key  # computed without the ref
    assert key == ObjectView(manifest).ref.key == view.ref.key == view.key
