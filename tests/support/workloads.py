"""Workloads as Kubernetes stores them, for the image listing: a Deployment with two
ReplicaSet revisions and three Pods, a CronJob with its Job and Pod, and a bare Pod with init
and ephemeral containers."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.manifests import deployment


def workloads() -> list[dict[str, Any]]:
    """One app as Kubernetes stores it: Deployment, two ReplicaSet revisions, three Pods;
    a CronJob with its Job and Pod; a bare Pod with init and ephemeral containers."""
    web = deployment("web", namespace="shop", image="shop/web:2")
    objects: list[dict[str, Any]] = [web]
    for revision, image in (("aaa", "shop/web:1"), ("bbb", "shop/web:2")):
        rs = copy.deepcopy(web)
        rs.update(kind="ReplicaSet")
        rs["metadata"] = {
            "name": f"web-{revision}",
            "namespace": "shop",
            "uid": f"uid-rs-{revision}",
            "labels": {"pod-template-hash": revision},
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
        }
        rs["spec"]["template"]["spec"]["containers"][0]["image"] = image
        objects.append(rs)
    for n in range(3):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"web-bbb-{n}",
                    "namespace": "shop",
                    "uid": f"uid-pod-web-{n}",
                    "labels": {"pod-template-hash": "bbb"},
                    "ownerReferences": [
                        {"kind": "ReplicaSet", "name": "web-bbb", "controller": True}
                    ],
                },
                "spec": {"containers": [{"name": "main", "image": "shop/web:2"}]},
            }
        )
    job_spec = {"template": {"spec": {"containers": [{"name": "b", "image": "ops/backup:7"}]}}}
    objects += [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "ops", "uid": "uid-cj"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": job_spec}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "backup-1",
                "namespace": "ops",
                "uid": "uid-job",
                "ownerReferences": [{"kind": "CronJob", "name": "backup", "controller": True}],
            },
            "spec": job_spec,
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "backup-1-x",
                "namespace": "ops",
                "uid": "uid-pod-job",
                "ownerReferences": [{"kind": "Job", "name": "backup-1", "controller": True}],
            },
            "spec": {"containers": [{"name": "b", "image": "ops/backup:7"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug-me", "namespace": "ops", "uid": "uid-pod-debug"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [{"name": "app", "image": "shop/web:2"}],
                "ephemeralContainers": [{"name": "dbg", "image": "nicolaka/netshoot:1"}],
            },
        },
    ]
    return objects
