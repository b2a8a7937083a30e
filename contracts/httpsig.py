"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530), stdlib only.

The agent signs pushes with this module, the ingest verifies them with it, and
`k8smon signature verify` explains a refusal with it. Cryptography is plugged in as callables,
so this module never imports PyNaCl:

Signing (agent side)::

    request = HttpRequest("POST", "https://ingest.example/v1/clusters/prod/snapshots",
                          headers=[("Content-Type", "application/json")], body=body)
    extra = sign_request(request, key_id="prod-2026", sign=signing_key_sign_bytes)
    # extra == {"Content-Digest": ..., "Signature-Input": ..., "Signature": ...}
    # `sign(base: bytes) -> bytes` returns the raw 64-byte Ed25519 signature.

Verifying (server side)::

    parsed = parse_signature(request)             # SignatureError(MALFORMED/MISSING) if bad
    public_key = lookup(parsed.key_id)            # the caller's key registry
    verify_signature(request, parsed, verify=lambda base, sig: ed25519_ok(public_key, base, sig))
    check_policy(request, parsed, policy=Policy(window_seconds=300), now=time.time())

Every failure raises `SignatureError` whose `reason` is one of the `Reason` codes; those codes
are part of the protocol (docs/protocol.md) and appear in refusal bodies and logs.

Structured Field Values (RFC 8941) are implemented for what signatures need: dictionaries,
inner lists, parameters and every bare item type (integer, decimal, string, token, byte
sequence, boolean).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from urllib.parse import quote, unquote, urlsplit

# --------------------------------------------------------------------------------------------
# Refusal reasons


class Reason(StrEnum):
    """Why a signed request is refused: stable codes, shared by server, agent and docs."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    MISSING_COMPONENT = "missing_component"
    MISSING_PARAMETER = "missing_parameter"
    UNKNOWN_KEY = "unknown_key"
    WRONG_CLUSTER = "wrong_cluster"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    STALE_SIGNATURE = "stale_signature"
    EXPIRED_SIGNATURE = "expired_signature"
    REPLAYED_NONCE = "replayed_nonce"


class SignatureError(Exception):
    """A signature could not be accepted; `reason` is a `Reason`, `detail` says more."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Structured Field Values (RFC 8941)


class Token(str):
    """An sf-token (serialised without quotes), e.g. `sha-256` in a dictionary key position."""

    __slots__ = ()


BareItem = int | Decimal | str | Token | bytes | bool


@dataclass(frozen=True, eq=True)
class Item:
    """A bare item with parameters."""

    value: BareItem
    params: dict[str, BareItem] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, eq=True)
class InnerList:
    """A parenthesised list of items with parameters."""

    items: tuple[Item, ...]
    params: dict[str, BareItem] = field(default_factory=dict, hash=False)


Member = Item | InnerList


class StructuredFieldError(ValueError):
    """A structured field value does not parse (RFC 8941)."""


_KEY_START = re.compile(r"[a-z*]")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_UNESCAPE = re.compile(r"\\([\\\"])")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


class _Parser:
    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise StructuredFieldError("structured fields are ASCII")
        self.text = text.strip(" ")
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise StructuredFieldError(f"expected {char!r} at {self.pos}")
        self.pos += 1

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if not match:
            raise StructuredFieldError(f"expected a key at {self.pos}")
        self.pos = match.end()
        return match.group(0)

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit():
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            match = _BYTES.match(self.text, self.pos)
            if not match:
                raise StructuredFieldError(f"bad byte sequence at {self.pos}")
            self.pos = match.end()
            try:
                return base64.b64decode(match.group(1), validate=True)
            except binascii.Error:
                raise StructuredFieldError("bad base64 in byte sequence") from None
        if char == "?":
            value = self.text[self.pos + 1 : self.pos + 2]
            if value not in ("0", "1"):
                raise StructuredFieldError(f"bad boolean at {self.pos}")
            self.pos += 2
            return value == "1"
        match = _TOKEN.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return Token(match.group(0))
        raise StructuredFieldError(f"unexpected {char!r} at {self.pos}")

    def number(self) -> int | Decimal:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise StructuredFieldError(f"bad number at {self.pos}")
        raw = match.group(0)
        self.pos = match.end()
        digits = raw.lstrip("-")
        if match.group(1) is None:
            if len(digits) > 15:
                raise StructuredFieldError("integer too long")
            return int(raw)
        whole, frac = digits.split(".")
        if len(whole) > 12 or len(frac) > 3:
            raise StructuredFieldError("decimal too long")
        return Decimal(raw)

    def string(self) -> str:
        match = _STRING.match(self.text, self.pos)
        if not match:
            raise StructuredFieldError(f"bad string at {self.pos}")
        self.pos = match.end()
        return _UNESCAPE.sub(r"\1", match.group(1))

    def params(self) -> dict[str, BareItem]:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[name] = value
        return params

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def member(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    def inner_list(self) -> InnerList:
        self.expect("(")
        items: list[Item] = []
        while True:
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise StructuredFieldError(f"bad inner list at {self.pos}")

    def dictionary(self) -> dict[str, Member]:
        result: dict[str, Member] = {}
        while not self.done():
            name = self.key()
            if self.peek() == "=":
                self.pos += 1
                result[name] = self.member()
            else:
                result[name] = Item(True, self.params())
            self.skip_ows()
            if self.done():
                return result
            self.expect(",")
            self.skip_ows()
            if self.done():
                raise StructuredFieldError("trailing comma")
        return result


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse an RFC 8941 Dictionary (e.g. a Signature-Input or Content-Digest value)."""
    return _Parser(text).dictionary()


def parse_item(text: str) -> Item:
    """Parse an RFC 8941 Item."""
    parser = _Parser(text)
    item = parser.item()
    if not parser.done():
        raise StructuredFieldError("trailing characters after item")
    return item


def parse_inner_list(text: str) -> InnerList:
    """Parse a lone inner list with parameters (a serialised signature-params value)."""
    parser = _Parser(text)
    inner = parser.inner_list()
    if not parser.done():
        raise StructuredFieldError("trailing characters after inner list")
    return inner


def serialize_bare_item(value: BareItem) -> str:  # noqa: PLR0911 - one branch per type
    if type(value) is str:  # the common case first: component names, keyid, nonce
        if not _PRINTABLE.fullmatch(value):
            raise StructuredFieldError("strings are printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) >= 10**15:
            raise StructuredFieldError("integer out of range")
        return str(value)
    if isinstance(value, Decimal):
        rounded = value.quantize(Decimal("0.001"))
        text = format(rounded, "f").rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        if not _TOKEN.fullmatch(value):
            raise StructuredFieldError(f"invalid token {value!r}")
        return str(value)
    if isinstance(value, str):
        if not _PRINTABLE.fullmatch(value):
            raise StructuredFieldError("strings are printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise StructuredFieldError(f"cannot serialise {type(value).__name__}")


def serialize_params(params: Mapping[str, BareItem]) -> str:
    out = []
    for name, value in params.items():
        if not _KEY.fullmatch(name):
            raise StructuredFieldError(f"invalid parameter key {name!r}")
        out.append(f";{name}" if value is True else f";{name}={serialize_bare_item(value)}")
    return "".join(out)


def serialize_item(item: Item) -> str:
    return serialize_bare_item(item.value) + serialize_params(item.params)


def serialize_member(member: Member) -> str:
    if isinstance(member, InnerList):
        inner = " ".join(serialize_item(i) for i in member.items)
        return f"({inner})" + serialize_params(member.params)
    return serialize_item(member)


def serialize_dictionary(members: Mapping[str, Member]) -> str:
    out = []
    for name, member in members.items():
        if not _KEY.fullmatch(name):
            raise StructuredFieldError(f"invalid dictionary key {name!r}")
        if isinstance(member, Item) and member.value is True:
            out.append(name + serialize_params(member.params))
        else:
            out.append(f"{name}={serialize_member(member)}")
    return ", ".join(out)


# --------------------------------------------------------------------------------------------
# Content-Digest (RFC 9530)

DIGEST_ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda data: hashlib.sha256(data).digest(),
    "sha-512": lambda data: hashlib.sha512(data).digest(),
}


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest field value for `body`, e.g. `sha-256=:...:`."""
    return serialize_dictionary({algorithm: Item(DIGEST_ALGORITHMS[algorithm](body))})


def check_content_digest(value: str | None, body: bytes) -> None:
    """Raise DIGEST_MISMATCH unless `value` has a sha-256/sha-512 digest and all such match."""
    if not value:
        raise SignatureError(Reason.DIGEST_MISMATCH, "no Content-Digest header")
    try:
        members = parse_dictionary(value)
    except StructuredFieldError as problem:
        raise SignatureError(
            Reason.DIGEST_MISMATCH, f"malformed Content-Digest: {problem}"
        ) from None
    checked = 0
    for name, member in members.items():
        compute = DIGEST_ALGORITHMS.get(name)
        if compute is None:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise SignatureError(Reason.DIGEST_MISMATCH, f"{name} digest is not a byte sequence")
        if not hmac.compare_digest(member.value, compute(body)):
            raise SignatureError(Reason.DIGEST_MISMATCH, f"{name} digest does not match the body")
        checked += 1
    if not checked:
        raise SignatureError(Reason.DIGEST_MISMATCH, "no sha-256 or sha-512 digest")


# --------------------------------------------------------------------------------------------
# The message and its components (RFC 9421 section 2)


@dataclass(frozen=True)
class HttpRequest:
    """What a signature covers: method, full target URI, header lines (in order) and body.

    `url` is absolute (`https://host[:port]/path?query`), with the path and query exactly as
    sent on the wire (still percent-encoded).
    """

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    @cached_property
    def _by_name(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key, value in self.headers:
            index.setdefault(key.lower(), []).append(value)
        return index

    def header_values(self, name: str) -> list[str]:
        return list(self._by_name.get(name.lower(), ()))

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return ", ".join(v.strip() for v in values) if values else None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _derived(  # noqa: PLR0911 - one return per derived component
    request: HttpRequest, name: str, params: Mapping[str, BareItem]
) -> str:
    parts = urlsplit(request.url)
    scheme = parts.scheme.lower()
    if name == "@method":
        return request.method
    if name == "@target-uri":
        return request.url
    if name == "@authority":
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
        return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if name == "@scheme":
        return scheme
    if name == "@path":
        return parts.path or "/"
    if name == "@query":
        return "?" + parts.query
    if name == "@request-target":
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if name == "@query-param":
        wanted = params.get("name")
        if not isinstance(wanted, str):
            raise SignatureError(Reason.MALFORMED_SIGNATURE, "@query-param needs a name")
        values = []
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if unquote(key.replace("+", " ")) == unquote(wanted):
                values.append(quote(unquote(value.replace("+", " ")), safe=""))
        if len(values) != 1:
            raise SignatureError(
                Reason.MISSING_COMPONENT, f"query parameter {wanted!r} is absent or repeated"
            )
        return values[0]
    raise SignatureError(Reason.MALFORMED_SIGNATURE, f"unsupported derived component {name}")


def _field(request: HttpRequest, name: str, params: Mapping[str, BareItem]) -> str:
    values = request.header_values(name)
    if not values:
        raise SignatureError(Reason.MISSING_COMPONENT, f"header {name!r} is not in the request")
    unsupported = set(params) - {"sf", "key", "bs"}
    if unsupported:
        raise SignatureError(
            Reason.MALFORMED_SIGNATURE, f"unsupported component parameter {sorted(unsupported)}"
        )
    if params.get("bs"):
        return ", ".join(
            serialize_bare_item(v.strip().encode("latin-1", "replace")) for v in values
        )
    combined = ", ".join(v.strip() for v in values)
    if "key" in params or params.get("sf"):
        try:
            members = parse_dictionary(combined)
        except StructuredFieldError as problem:
            raise SignatureError(Reason.MALFORMED_SIGNATURE, f"{name}: {problem}") from None
        if "key" in params:
            key = str(params["key"])
            member = members.get(key)
            if member is None:
                raise SignatureError(Reason.MISSING_COMPONENT, f"{name} has no {key}")
            return serialize_member(member)
        return serialize_dictionary(members)
    return combined


def component_value(request: HttpRequest, component: Item) -> str:
    """The value one covered component contributes to the signature base."""
    name = component.value
    if not isinstance(name, str) or isinstance(name, Token) or name != name.lower():
        raise SignatureError(Reason.MALFORMED_SIGNATURE, f"bad component identifier {name!r}")
    if name.startswith("@"):
        return _derived(request, name, component.params)
    return _field(request, name, component.params)


def signature_base(
    request: HttpRequest, components: Sequence[Item], params: Mapping[str, BareItem]
) -> tuple[str, str]:
    """(signature base, serialised signature-params) for the covered components, RFC 9421 2.5."""
    seen: set[str] = set()
    lines = []
    for component in components:
        identifier = serialize_item(component)
        if identifier in seen:
            raise SignatureError(Reason.MALFORMED_SIGNATURE, f"{identifier} covered twice")
        seen.add(identifier)
        value = component_value(request, component)
        if "\n" in value or "\r" in value or not value.isascii():
            raise SignatureError(Reason.MALFORMED_SIGNATURE, f"{identifier} is not plain ASCII")
        lines.append(f"{identifier}: {value}")
    try:
        signature_params = serialize_member(InnerList(tuple(components), dict(params)))
    except StructuredFieldError as problem:
        raise SignatureError(Reason.MALFORMED_SIGNATURE, str(problem)) from None
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines), signature_params


# --------------------------------------------------------------------------------------------
# Signing

DEFAULT_COMPONENTS = ("@method", "@authority", "@path", "content-type", "content-digest")


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_request(
    request: HttpRequest,
    *,
    key_id: str,
    sign: Callable[[bytes], bytes],
    components: Sequence[str | Item] = DEFAULT_COMPONENTS,
    label: str = "sig1",
    created: int | None = None,
    nonce: str | None = None,
    alg: str | None = "ed25519",
    expires: int | None = None,
    digest_algorithm: str = "sha-256",
    extra_params: Mapping[str, BareItem] | None = None,
) -> dict[str, str]:
    """Headers to add to `request`: Content-Digest (when covered and absent), Signature-Input
    and Signature. Parameters are written in the order created, keyid, nonce, alg, expires;
    pass `nonce=""` or `alg=None` to leave one out (the RFC examples do).
    """
    added: dict[str, str] = {}
    items = [c if isinstance(c, Item) else Item(c) for c in components]
    if any(c.value == "content-digest" for c in items) and request.header("content-digest") is None:
        added["Content-Digest"] = content_digest(request.body, digest_algorithm)
        request = HttpRequest(
            request.method,
            request.url,
            [*request.headers, ("Content-Digest", added["Content-Digest"])],
            request.body,
        )
    params: dict[str, BareItem] = {"created": int(time.time()) if created is None else created}
    params["keyid"] = key_id
    if nonce is None:
        nonce = new_nonce()
    if nonce:
        params["nonce"] = nonce
    if alg:
        params["alg"] = alg
    if expires is not None:
        params["expires"] = expires
    params.update(extra_params or {})
    base, signature_params = signature_base(request, items, params)
    signature = sign(base.encode("ascii"))
    added["Signature-Input"] = f"{label}={signature_params}"
    added["Signature"] = serialize_dictionary({label: Item(signature)})
    return added


# --------------------------------------------------------------------------------------------
# Verifying


@dataclass(frozen=True)
class ParsedSignature:
    """One signature of a request: its label, covered components, parameters and bytes."""

    label: str
    components: tuple[Item, ...]
    params: dict[str, BareItem]
    signature: bytes

    @property
    def key_id(self) -> str | None:
        value = self.params.get("keyid")
        return value if isinstance(value, str) else None

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(str(c.value) for c in self.components)


def parse_signature(request: HttpRequest, *, label: str | None = None) -> ParsedSignature:
    """The signature labelled `label`, else the first one present in both fields."""
    raw_input = request.header("signature-input")
    raw_signature = request.header("signature")
    if not raw_input or not raw_signature:
        raise SignatureError(Reason.MISSING_SIGNATURE, "Signature-Input and Signature required")
    try:
        inputs = parse_dictionary(raw_input)
        signatures = parse_dictionary(raw_signature)
    except StructuredFieldError as problem:
        raise SignatureError(Reason.MALFORMED_SIGNATURE, str(problem)) from None
    labels = [label] if label else [name for name in inputs if name in signatures]
    if not labels or labels[0] not in inputs or labels[0] not in signatures:
        raise SignatureError(Reason.MALFORMED_SIGNATURE, "no label in both signature fields")
    chosen = labels[0]
    spec, value = inputs[chosen], signatures[chosen]
    if not isinstance(spec, InnerList):
        raise SignatureError(Reason.MALFORMED_SIGNATURE, "Signature-Input member is no list")
    if not isinstance(value, Item) or not isinstance(value.value, bytes):
        raise SignatureError(Reason.MALFORMED_SIGNATURE, "Signature member is no byte sequence")
    for component in spec.items:
        if not isinstance(component.value, str) or isinstance(component.value, Token):
            raise SignatureError(Reason.MALFORMED_SIGNATURE, "component ids are strings")
    return ParsedSignature(chosen, spec.items, dict(spec.params), value.value)


def rebuild_base(request: HttpRequest, parsed: ParsedSignature) -> str:
    """The signature base the signer must have signed."""
    return signature_base(request, parsed.components, parsed.params)[0]


def verify_signature(
    request: HttpRequest, parsed: ParsedSignature, *, verify: Callable[[bytes, bytes], bool]
) -> str:
    """Check the signature as RFC 9421 defines it (any covered components); return the base.

    `verify(base, signature)` is the cryptographic check for the key named by `keyid`.
    """
    base = rebuild_base(request, parsed)
    if not verify(base.encode("ascii"), parsed.signature):
        raise SignatureError(Reason.BAD_SIGNATURE, "the signature does not match")
    return base


@dataclass(frozen=True)
class Policy:
    """What this server demands beyond a valid signature.

    `window_seconds` has no default here: its one default is the server's setting
    (`settings.config`, K8SMON_SIGNATURE_WINDOW_SECONDS), which callers pass in.
    """

    window_seconds: int
    required_components: tuple[str, ...] = DEFAULT_COMPONENTS
    required_params: tuple[str, ...] = ("created", "keyid", "nonce")
    algorithms: frozenset[str] = frozenset({"ed25519"})
    max_nonce_length: int = 128


def check_algorithm(parsed: ParsedSignature, *, policy: Policy) -> None:
    alg = parsed.params.get("alg")
    if alg is not None and alg not in policy.algorithms:
        raise SignatureError(Reason.UNSUPPORTED_ALGORITHM, f"alg {alg!r} is not accepted")


def _covers_whole(component: Item) -> bool:
    """Whether a covered component binds its whole field (what a policy may require).

    `key` narrows a dictionary field to one member: that binds nothing of the rest of the
    field, so it counts only for `content-digest` and only when the member is a digest
    algorithm this module verifies against the body (every such member is checked, so the
    signed one is exactly the digest that was verified). `sf` and `bs` re-serialise or wrap
    the whole field and keep covering all of it.
    """
    if "key" not in component.params:
        return True
    return component.value == "content-digest" and component.params["key"] in DIGEST_ALGORITHMS


def check_policy(
    request: HttpRequest,
    parsed: ParsedSignature,
    *,
    policy: Policy,
    now: float | None,
    check_body: bool = True,
) -> None:
    """Required components and parameters, algorithm, freshness (skipped when `now` is None)
    and the body's Content-Digest (unless `check_body=False`: a server that authenticates
    from the headers before reading the body then calls `check_content_digest` itself)."""
    check_algorithm(parsed, policy=policy)
    covered = {str(c.value) for c in parsed.components if _covers_whole(c)}
    missing = [c for c in policy.required_components if c not in covered]
    if missing:
        raise SignatureError(
            Reason.MISSING_COMPONENT, f"must cover the whole of {', '.join(missing)}"
        )
    for name in policy.required_params:
        if name not in parsed.params:
            raise SignatureError(Reason.MISSING_PARAMETER, f"parameter {name!r} is required")
    created = parsed.params.get("created")
    if "created" in parsed.params and (not isinstance(created, int) or isinstance(created, bool)):
        raise SignatureError(Reason.MALFORMED_SIGNATURE, "created must be an integer")
    nonce = parsed.params.get("nonce")
    if "nonce" in parsed.params and (
        not isinstance(nonce, str) or not nonce or len(nonce) > policy.max_nonce_length
    ):
        raise SignatureError(Reason.MALFORMED_SIGNATURE, "nonce must be a short string")
    if now is not None:
        if isinstance(created, int) and abs(now - created) > policy.window_seconds:
            raise SignatureError(
                Reason.STALE_SIGNATURE,
                f"created is {int(now - created)} s from server time "
                f"(window ±{policy.window_seconds} s)",
            )
        expires = parsed.params.get("expires")
        if isinstance(expires, int) and expires < now:
            raise SignatureError(Reason.EXPIRED_SIGNATURE, "the signature has expired")
    if check_body and (
        "content-digest" in parsed.component_names or "content-digest" in policy.required_components
    ):
        check_content_digest(request.header("content-digest"), request.body)


def verify_request(
    request: HttpRequest,
    *,
    verify: Callable[[bytes, bytes], bool],
    policy: Policy | None = None,
    now: float | None = None,
    label: str | None = None,
) -> ParsedSignature:
    """Parse, verify cryptographically, then apply `policy` (if given); raise SignatureError."""
    parsed = parse_signature(request, label=label)
    if policy is not None:
        check_algorithm(parsed, policy=policy)
    verify_signature(request, parsed, verify=verify)
    if policy is not None:
        check_policy(request, parsed, policy=policy, now=now)
    return parsed


def parse_raw_request(raw: bytes, *, scheme: str = "https") -> HttpRequest:
    """Read an HTTP/1.1 request (request line, headers, blank line, body; CRLF or LF).

    `@authority` comes from the Host header; an absolute-form target is used as is.
    """
    ends = [(i, len(m)) for m in (b"\r\n\r\n", b"\n\n") if (i := raw.find(m)) >= 0]
    if ends:
        at, size = min(ends)
        head, body = raw[:at], raw[at + size :]
    else:
        head, body = raw, b""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    if not lines or len(lines[0].split(" ")) != 3:
        raise ValueError("the first line must be `METHOD TARGET HTTP/1.1`")
    method, target, _version = lines[0].split(" ")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    if "://" in target:
        url = target
    else:
        host = next((v for k, v in headers if k.lower() == "host"), None)
        if host is None:
            raise ValueError("no Host header (needed for @authority)")
        url = f"{scheme}://{host}{target}"
    return HttpRequest(method=method, url=url, headers=headers, body=body)


def header_lines(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Normalise header pairs into a list (helper for callers holding dicts or multidicts)."""
    return [(str(k), str(v)) for k, v in pairs]
