"""The secure-defaults checklist every pod of our charts must satisfy."""

from __future__ import annotations

from typing import Any

from tests.helm.charts import containers, pod_spec


def assert_secure_pod(doc: dict[str, Any]) -> None:
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no host."""
    name = f"{doc['kind']} {doc['metadata']['name']}"
    spec = pod_spec(doc)
    pod_context = spec["securityContext"]
    assert pod_context["runAsNonRoot"] is True, name
    assert pod_context["runAsUser"] > 0, name
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(flag), f"{name}: {flag}"
    for volume in spec.get("volumes", []):
        assert "hostPath" not in volume, f"{name}: hostPath volume"
    for container in containers(doc):
        where = f"{name}/{container['name']}"
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context.get("privileged", False) is False, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert ":latest" not in container["image"], where
        assert not container.get("ports") or all(
            "hostPort" not in port for port in container["ports"]
        ), where
