"""Generic webhook payload: the report as JSON, and its HMAC-SHA256 signature over the exact body
(sent by reports.channels.WebhookChannel; receivers verify with `verify`)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from reports.model import ClusterReport

SIGNATURE_HEADER = "X-K8sMon-Signature"
TIMESTAMP_HEADER = "X-K8sMon-Timestamp"
# The same for every attempt of one delivery (and `delivery_id` in the body): a receiver that
# has seen it already can drop the retry.
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT = "k8smon.scan.report"


def payload(report: ClusterReport, *, delivery_id: str) -> dict[str, Any]:
    """Only what changed (new and resolved) plus the summary and the admin link."""
    data = report.to_dict()
    return {
        "event": EVENT,
        "delivery_id": delivery_id,
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
