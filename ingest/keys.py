"""Ed25519 public keys: parse PEM/base64 forms and build `verify(base, signature)` callables."""

from __future__ import annotations

import base64
import binascii
import hashlib
import textwrap
from collections.abc import Callable

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

# SubjectPublicKeyInfo DER prefix of an Ed25519 public key (RFC 8410).
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class KeyFormatError(ValueError):
    """Not an Ed25519 public key in a form we read."""


def parse_public_key(text: str | bytes) -> bytes:
    """Raw 32-byte key from a `BEGIN PUBLIC KEY` PEM, base64 of the raw key or of SPKI DER."""
    if isinstance(text, bytes):
        if len(text) == PUBLIC_KEY_BYTES:
            return text
        text = text.decode("ascii", "replace")
    text = text.strip()
    if "-----BEGIN PUBLIC KEY-----" in text:
        inner = text.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END PUBLIC KEY-----")[0]
        text = "".join(inner.split())
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            der = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise KeyFormatError("not base64 or PEM") from None
    if len(der) == PUBLIC_KEY_BYTES:
        return der
    if len(der) == len(SPKI_PREFIX) + PUBLIC_KEY_BYTES and der.startswith(SPKI_PREFIX):
        return der[len(SPKI_PREFIX) :]
    raise KeyFormatError("not an Ed25519 public key (32 bytes, or SPKI PEM)")


def public_key_pem(raw: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(SPKI_PREFIX + raw).decode("ascii"), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def fingerprint(raw: bytes) -> str:
    """`SHA256:<unpadded base64>` of the raw public key (OpenSSH style)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


def ed25519_verifier(raw: bytes) -> Callable[[bytes, bytes], bool]:
    """`verify(base, signature) -> bool` for one raw Ed25519 public key."""
    try:
        key = VerifyKey(raw)
    except (CryptoError, ValueError, TypeError) as problem:
        raise KeyFormatError(str(problem)) from None

    def verify(base: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            key.verify(base, signature)
        except (BadSignatureError, CryptoError, ValueError):
            return False
        return True

    return verify
