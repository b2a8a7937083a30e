"""Where the agent's key comes from: a mounted Secret file, else its own Secret (created once).

The key Secret in the agent's own namespace is the only Secret the agent ever reads or writes,
and it is addressed by name (get/create/update), never listed.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from agent.kube import KubeApi, KubeError
from agent.logs import log_event
from agent.signing import AgentKey, KeyFormatError

PRIVATE_KEY_FIELD = "private-key.pem"
PUBLIC_KEY_FIELD = "public-key.pem"
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


class KeyUnavailable(RuntimeError):
    """No key could be read, and generating one was not allowed or not possible."""


@dataclass(frozen=True)
class LoadedKey:
    key: AgentKey
    source: str  # "file", "secret" or "generated"


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return f"{base}/{quote(name, safe='')}" if name else base


def load_or_create_key(
    *,
    key_file: str | None,
    kube: KubeApi | None,
    namespace: str | None,
    secret_name: str,
    generate: bool,
) -> LoadedKey:
    """The mounted key file if present; else the key Secret; else a new key stored in it."""
    if key_file and Path(key_file).is_file():
        try:
            return LoadedKey(AgentKey.load(Path(key_file).read_bytes()), "file")
        except (OSError, KeyFormatError) as exc:
            raise KeyUnavailable(f"cannot use the key file {key_file}: {exc}") from exc
    if kube is None or not namespace:
        raise KeyUnavailable(f"no key file at {key_file} and no namespace to keep a key Secret in")
    path = secret_path(namespace, secret_name)
    try:
        existing = kube.get(path)
    except KubeError as exc:
        if exc.status != HTTP_NOT_FOUND:
            raise KeyUnavailable(f"cannot read Secret {namespace}/{secret_name}: {exc}") from exc
        existing = None
    if existing is not None:
        stored = _stored_key(existing)
        if stored is not None:
            return LoadedKey(stored, "secret")
    if not generate:
        raise KeyUnavailable(f"Secret {namespace}/{secret_name} holds no key and generation is off")
    key = AgentKey.generate()
    data = {
        PRIVATE_KEY_FIELD: _b64(key.private_key_pem),
        PUBLIC_KEY_FIELD: _b64(key.public_key_pem),
    }
    try:
        if existing is None:
            kube.send(
                "POST",
                secret_path(namespace),
                body={
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": secret_name,
                        "namespace": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "k8s-monitor-agent"},
                    },
                    "type": "Opaque",
                    "data": data,
                },
            )
        else:
            updated = {**existing, "data": {**(existing.get("data") or {}), **data}}
            kube.send("PUT", path, body=updated)
    except KubeError as exc:
        if exc.status == HTTP_CONFLICT:  # another replica won the race: use its key
            stored = _stored_key(kube.get(path))
            if stored is not None:
                return LoadedKey(stored, "secret")
        raise KeyUnavailable(
            f"cannot store the key in Secret {namespace}/{secret_name}: {exc}"
        ) from exc
    return LoadedKey(key, "generated")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("ascii")).decode("ascii")


def _stored_key(secret: dict[str, object]) -> AgentKey | None:
    data = secret.get("data")
    if not isinstance(data, dict) or not data.get(PRIVATE_KEY_FIELD):
        return None
    try:
        return AgentKey.load(base64.b64decode(str(data[PRIVATE_KEY_FIELD])))
    except (KeyFormatError, ValueError):
        return None


def log_public_key(
    logger: logging.Logger, loaded: LoadedKey, *, key_id: str, cluster_id: str
) -> None:
    """The one log line an operator needs to register this agent's key."""
    log_event(
        logger,
        "agent.key",
        source=loaded.source,
        key_id=key_id,
        fingerprint=loaded.key.fingerprint,
        public_key_pem=loaded.key.public_key_pem,
        register_with=f"k8smon clusters register {cluster_id} --public-key <the PEM above>",
    )
