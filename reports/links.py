"""Signed, expiring links to a cluster's report (itsdangerous): they open without sign-in until
they expire, and cannot be forged or pointed at another cluster."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

REPORT_LINK_SALT = "k8smon.report-link.v1"
REPORT_LINK_SECONDS = 24 * 3600
REPORT_LINK_PATH = "/chatops/reports/"


class LinkError(ValueError):
    """The link is expired, altered or forged (the message says which, for the page)."""


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=REPORT_LINK_SALT)


def report_token(secret_key: str, cluster_id: str) -> str:
    return _serializer(secret_key).dumps({"cluster": cluster_id})


def report_link(*, secret_key: str, public_url: str, cluster_id: str) -> str:
    """Absolute URL of the cluster's report, valid for REPORT_LINK_SECONDS."""
    return f"{public_url.rstrip('/')}{REPORT_LINK_PATH}{report_token(secret_key, cluster_id)}"


def cluster_of_token(
    secret_key: str, token: str, *, max_age: int = REPORT_LINK_SECONDS, now: float | None = None
) -> str:
    """The cluster a valid token names; LinkError when it expired or was tampered with."""
    serializer = _serializer(secret_key)
    try:
        if now is None:
            data = serializer.loads(token, max_age=max_age)
        else:
            data, signed_at = serializer.loads(token, max_age=None, return_timestamp=True)
            if now - signed_at.timestamp() > max_age:
                raise SignatureExpired("expired")
    except SignatureExpired:
        raise LinkError("this report link has expired; ask for a fresh one") from None
    except BadSignature:
        raise LinkError("this report link is not valid") from None
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), str):
        raise LinkError("this report link is not valid")
    return data["cluster"]
