"""The agent's Ed25519 key (PyNaCl) and request signing through `contracts.httpsig`."""

from __future__ import annotations

import base64
import hashlib
import textwrap
from dataclasses import dataclass

from nacl.signing import SigningKey

from contracts.httpsig import HttpRequest, sign_request

# DER prefixes of PKCS#8 Ed25519 private keys and SubjectPublicKeyInfo public keys (RFC 8410).
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
SEED_BYTES = 32


class KeyFormatError(ValueError):
    """Key material is neither a PKCS#8 Ed25519 PEM, a base64 seed nor a raw 32-byte seed."""


def _pem(label: str, der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def _pem_der(text: str, label: str) -> bytes:
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text or end not in text:
        raise KeyFormatError(f"no {label} block")
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        return base64.b64decode("".join(inner.split()), validate=True)
    except ValueError as exc:
        raise KeyFormatError(f"bad base64 in {label}") from exc


@dataclass(frozen=True)
class AgentKey:
    """An Ed25519 signing key with the encodings operators and the server need."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> AgentKey:
        return cls(SigningKey.generate())

    @classmethod
    def load(cls, data: bytes | str) -> AgentKey:
        """From a PKCS#8 PEM (`BEGIN PRIVATE KEY`), a base64 32-byte seed, or the raw seed."""
        raw = data.encode("ascii", "replace") if isinstance(data, str) else data
        text = raw.decode("ascii", "replace").strip()
        if "-----BEGIN PRIVATE KEY-----" in text:
            der = _pem_der(text, "PRIVATE KEY")
            if len(der) != len(_PKCS8_PREFIX) + SEED_BYTES or not der.startswith(_PKCS8_PREFIX):
                raise KeyFormatError("PRIVATE KEY is not an Ed25519 PKCS#8 key")
            return cls(SigningKey(der[len(_PKCS8_PREFIX) :]))
        if len(raw) == SEED_BYTES:
            return cls(SigningKey(raw))
        try:
            seed = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise KeyFormatError("unrecognised private key format") from exc
        if len(seed) != SEED_BYTES:
            raise KeyFormatError("a base64 seed must decode to 32 bytes")
        return cls(SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def private_key_pem(self) -> str:
        return _pem("PRIVATE KEY", _PKCS8_PREFIX + bytes(self.signing_key))

    @property
    def public_key_pem(self) -> str:
        return _pem("PUBLIC KEY", _SPKI_PREFIX + self.public_key)

    @property
    def fingerprint(self) -> str:
        """`SHA256:` and the unpadded base64 SHA-256 of the raw public key (OpenSSH style)."""
        digest = hashlib.sha256(self.public_key).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of `message`."""
        return self.signing_key.sign(message).signature


def default_key_id(cluster_id: str, public_key: bytes) -> str:
    """The key id the server gives a key registered without one (`k8smon clusters register`):
    `<cluster id>-<first 12 hex digits of SHA-256 of the raw public key>`."""
    return f"{cluster_id}-{hashlib.sha256(public_key).hexdigest()[:12]}"


def signed_headers(
    key: AgentKey,
    *,
    key_id: str,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Content-Digest, Signature-Input and Signature for one request (fresh nonce each call).

    Covers `@method`, `@authority`, `@path`, `content-type` and `content-digest` with the
    `created`, `keyid`, `nonce` and `alg="ed25519"` parameters (the httpsig defaults).
    """
    request = HttpRequest(method, url, headers=headers, body=body)
    return sign_request(request, key_id=key_id, sign=key.sign, created=created, nonce=nonce)
