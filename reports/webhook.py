"""Generic webhook delivery: the report as JSON, signed with HMAC-SHA256 over the exact body."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests

from reports.model import ClusterReport

SIGNATURE_HEADER = "X-K8sMon-Signature"
TIMESTAMP_HEADER = "X-K8sMon-Timestamp"
EVENT = "k8smon.scan.report"


class WebhookError(Exception):
    """The receiver did not accept the delivery (retried later)."""


def payload(report: ClusterReport) -> dict[str, Any]:
    """Only what changed (new and resolved) plus the summary and the admin link."""
    data = report.to_dict()
    return {
        "event": EVENT,
        "cluster": data["cluster"],
        "scan": data["scan"],
        "admin_url": data["admin_url"],
        "new": data["new"],
        "resolved": data["resolved"],
    }


def sign(body: bytes, *, secret: str, timestamp: str) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(body: bytes, *, secret: str, timestamp: str, signature: str) -> bool:
    return hmac.compare_digest(sign(body, secret=secret, timestamp=timestamp), signature)


def send_webhook(
    url: str,
    data: dict[str, Any],
    *,
    secret: str | None,
    timeout_s: float = 10.0,
    now: float | None = None,
) -> None:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "k8s-monitor"}
    if secret:
        timestamp = str(int(now if now is not None else time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(body, secret=secret, timestamp=timestamp)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout_s)
    except requests.RequestException as problem:
        raise WebhookError(f"{type(problem).__name__}: {problem}") from problem
    if not 200 <= response.status_code < 300:
        raise WebhookError(f"webhook answered {response.status_code}")
