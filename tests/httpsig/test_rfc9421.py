"""RFC 9421 / RFC 9530 / RFC 8941: the RFC's own Ed25519 example, byte for byte, and the parsers."""

from __future__ import annotations

import base64
import time
from decimal import Decimal

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from contracts import httpsig
from contracts.httpsig import HttpRequest, Item, Policy, Reason, SignatureError, Token

# RFC 9421 Appendix B.1.4: test-key-ed25519 (PKCS#8 / SPKI DER, base64).
B14_PRIVATE = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
B14_PUBLIC = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="

# RFC 9421 Appendix B.2: the test request.
TEST_REQUEST = (
    b"POST /foo?param=Value&Pet=dog HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Date: Tue, 20 Apr 2021 02:07:55 GMT\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7B"
    b"NNyealdVLvRwEmTHWXvJwew==:\r\n"
    b"Content-Length: 18\r\n"
    b"\r\n"
    b'{"hello": "world"}'
)

# RFC 9421 Appendix B.2.6.
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"  # noqa: E501
B26_COMPONENTS = ("date", "@method", "@path", "@authority", "content-type", "content-length")


def _signing_key() -> SigningKey:
    return SigningKey(base64.b64decode(B14_PRIVATE)[-32:])


def _verifier(public: bytes):
    key = VerifyKey(public)

    def verify(base: bytes, signature: bytes) -> bool:
        try:
            key.verify(base, signature)
        except BadSignatureError:
            return False
        return True

    return verify


def test_b14_key_pair_matches() -> None:
    assert bytes(_signing_key().verify_key) == base64.b64decode(B14_PUBLIC)[-32:]


def test_b26_signer_reproduces_the_rfc_byte_for_byte() -> None:
    request = httpsig.parse_raw_request(TEST_REQUEST)
    seen_bases: list[bytes] = []

    def sign(base: bytes) -> bytes:
        seen_bases.append(base)
        return _signing_key().sign(base).signature

    headers = httpsig.sign_request(
        request,
        key_id="test-key-ed25519",
        sign=sign,
        components=B26_COMPONENTS,
        label="sig-b26",
        created=1618884473,
        nonce="",
        alg=None,
    )
    assert seen_bases == [B26_BASE.encode("ascii")]
    assert headers["Signature-Input"] == B26_INPUT
    assert headers["Signature"] == B26_SIGNATURE
    assert "Content-Digest" not in headers  # not covered here


def test_b26_verifier_accepts_the_rfc_signature_with_time_check_off() -> None:
    request = httpsig.parse_raw_request(TEST_REQUEST)
    signed = HttpRequest(
        request.method,
        request.url,
        [*request.headers, ("Signature-Input", B26_INPUT), ("Signature", B26_SIGNATURE)],
        request.body,
    )
    public = base64.b64decode(B14_PUBLIC)[-32:]
    parsed = httpsig.verify_request(signed, verify=_verifier(public))
    assert parsed.label == "sig-b26"
    assert parsed.key_id == "test-key-ed25519"
    assert httpsig.rebuild_base(signed, parsed) == B26_BASE
    # The same request fails our server policy (no digest/nonce covered) ...
    with pytest.raises(SignatureError) as refused:
        httpsig.check_policy(signed, parsed, policy=Policy(window_seconds=300), now=None)
    assert refused.value.reason is Reason.MISSING_COMPONENT
    # ... and, with the clock on, is far too old.
    with pytest.raises(SignatureError) as stale:
        httpsig.check_policy(
            signed,
            parsed,
            policy=Policy(window_seconds=300, required_components=(), required_params=()),
            now=1_800_000_000,
        )
    assert stale.value.reason is Reason.STALE_SIGNATURE


def test_b26_tampered_body_header_is_a_bad_signature() -> None:
    tampered = TEST_REQUEST.replace(b"Content-Length: 18", b"Content-Length: 19")
    request = httpsig.parse_raw_request(tampered)
    signed = HttpRequest(
        request.method,
        request.url,
        [*request.headers, ("Signature-Input", B26_INPUT), ("Signature", B26_SIGNATURE)],
        request.body,
    )
    with pytest.raises(SignatureError) as refused:
        httpsig.verify_request(signed, verify=_verifier(base64.b64decode(B14_PUBLIC)[-32:]))
    assert refused.value.reason is Reason.BAD_SIGNATURE


def test_rfc9530_test_request_digest_matches_its_body() -> None:
    request = httpsig.parse_raw_request(TEST_REQUEST)
    httpsig.check_content_digest(request.header("content-digest"), request.body)
    assert httpsig.content_digest(request.body, "sha-512") == request.header("content-digest")
    with pytest.raises(SignatureError) as refused:
        httpsig.check_content_digest(request.header("content-digest"), request.body + b" ")
    assert refused.value.reason is Reason.DIGEST_MISMATCH


def test_raw_request_with_lf_line_endings_parses_the_same() -> None:
    lf = httpsig.parse_raw_request(TEST_REQUEST.replace(b"\r\n", b"\n"))
    crlf = httpsig.parse_raw_request(TEST_REQUEST)
    assert lf == crlf
    assert crlf.url == "https://example.com/foo?param=Value&Pet=dog"
    assert crlf.body == b'{"hello": "world"}'


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("@method", "POST"),
        ("@authority", "example.com"),
        ("@scheme", "https"),
        ("@target-uri", "https://example.com/foo?param=Value&Pet=dog"),
        ("@request-target", "/foo?param=Value&Pet=dog"),
        ("@path", "/foo"),
        ("@query", "?param=Value&Pet=dog"),
    ],
)
def test_derived_components_match_rfc_section_2_2(component: str, expected: str) -> None:
    request = httpsig.parse_raw_request(TEST_REQUEST)
    assert httpsig.component_value(request, Item(component)) == expected


def test_query_param_and_authority_normalisation() -> None:
    request = HttpRequest("GET", "https://EXAMPLE.com:443/path?param=value&foo=bar&baz=batman")
    assert httpsig.component_value(request, Item("@authority")) == "example.com"
    assert httpsig.component_value(request, Item("@query-param", {"name": "baz"})) == "batman"
    assert httpsig.component_value(HttpRequest("GET", "http://h:8080"), Item("@path")) == "/"
    assert httpsig.component_value(HttpRequest("GET", "http://h:8080/"), Item("@authority")) == (
        "h:8080"
    )
    assert httpsig.component_value(HttpRequest("GET", "http://h/p"), Item("@query")) == "?"


def test_multiple_header_lines_are_combined() -> None:
    request = HttpRequest("GET", "https://h/", [("X-A", " one "), ("x-a", "two")])
    assert httpsig.component_value(request, Item("x-a")) == "one, two"
    with pytest.raises(SignatureError) as missing:
        httpsig.component_value(request, Item("x-b"))
    assert missing.value.reason is Reason.MISSING_COMPONENT


def test_structured_fields_round_trip() -> None:
    text = 'a=1, b=?0, c=("x" tok;p=1 :AAE=:);q=-2.5, d, e="s\\"q"'
    parsed = httpsig.parse_dictionary(text)
    assert parsed["a"] == Item(1)
    assert parsed["b"] == Item(False)
    inner = parsed["c"]
    assert isinstance(inner, httpsig.InnerList)
    assert inner.items[1].value == Token("tok") and inner.items[1].params == {"p": 1}
    assert inner.items[2].value == b"\x00\x01"
    assert inner.params == {"q": Decimal("-2.5")}
    assert parsed["d"] == Item(True)
    assert parsed["e"] == Item('s"q')
    assert httpsig.serialize_dictionary(parsed) == text


@pytest.mark.parametrize(
    "bad",
    ['a=("x"', "a=1,", "A=1", 'a="\x01"', "a=:!!:", "a=1234567890123456", "a=1;", "a=?2"],
)
def test_structured_field_errors(bad: str) -> None:
    with pytest.raises(httpsig.StructuredFieldError):
        httpsig.parse_dictionary(bad)


def _signed(headers_extra=None, *, body=b'{"a":1}', created=None, key=None, **kwargs):
    key = key or _signing_key()
    request = HttpRequest(
        "POST",
        "https://ingest.example:8443/v1/clusters/c1/snapshots",
        [("Host", "ingest.example:8443"), ("Content-Type", "application/json")],
        body,
    )
    added = httpsig.sign_request(
        request, key_id="k1", sign=lambda b: key.sign(b).signature, created=created, **kwargs
    )
    headers = [*request.headers, *added.items(), *(headers_extra or [])]
    return HttpRequest(request.method, request.url, headers, body)


def test_sign_and_verify_with_server_policy() -> None:
    request = _signed(created=1_700_000_000, nonce="n-1")
    public = bytes(_signing_key().verify_key)
    parsed = httpsig.verify_request(
        request, verify=_verifier(public), policy=Policy(window_seconds=300), now=1_700_000_100
    )
    assert parsed.params == {
        "created": 1_700_000_000,
        "keyid": "k1",
        "nonce": "n-1",
        "alg": "ed25519",
    }
    assert set(Policy(window_seconds=300).required_components) <= set(parsed.component_names)


def test_policy_refusals() -> None:
    public = bytes(_signing_key().verify_key)
    verify = _verifier(public)
    stale = _signed(created=1_700_000_000)
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            stale, verify=verify, policy=Policy(window_seconds=300), now=1_700_000_301
        )
    assert err.value.reason is Reason.STALE_SIGNATURE

    other_alg = _signed(created=1_700_000_000, alg="rsa-pss-sha512")
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            other_alg, verify=verify, policy=Policy(window_seconds=300), now=1_700_000_000
        )
    assert err.value.reason is Reason.UNSUPPORTED_ALGORITHM

    no_nonce = _signed(created=1_700_000_000, nonce="")
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            no_nonce, verify=verify, policy=Policy(window_seconds=300), now=1_700_000_000
        )
    assert err.value.reason is Reason.MISSING_PARAMETER

    partial = _signed(created=1_700_000_000, components=("@method", "@path"))
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            partial, verify=verify, policy=Policy(window_seconds=300), now=1_700_000_000
        )
    assert err.value.reason is Reason.MISSING_COMPONENT

    good = _signed(created=1_700_000_000)
    swapped = HttpRequest(good.method, good.url, good.headers, b'{"a":2}')
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            swapped, verify=verify, policy=Policy(window_seconds=300), now=1_700_000_000
        )
    # The covered Content-Digest still matches the signature, but no longer the body.
    assert err.value.reason is Reason.DIGEST_MISMATCH

    other_key = SigningKey.generate()
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            good,
            verify=_verifier(bytes(other_key.verify_key)),
            policy=Policy(window_seconds=300),
            now=1_700_000_000,
        )
    assert err.value.reason is Reason.BAD_SIGNATURE


def test_missing_and_malformed_signature_headers() -> None:
    bare = HttpRequest("POST", "https://h/", [("Content-Type", "x")])
    with pytest.raises(SignatureError) as err:
        httpsig.parse_signature(bare)
    assert err.value.reason is Reason.MISSING_SIGNATURE
    garbled = HttpRequest(
        "POST", "https://h/", [("Signature-Input", "sig1=(@@@"), ("Signature", "sig1=:AA==:")]
    )
    with pytest.raises(SignatureError) as err:
        httpsig.parse_signature(garbled)
    assert err.value.reason is Reason.MALFORMED_SIGNATURE
    mismatched = HttpRequest(
        "POST", "https://h/", [("Signature-Input", 'a=("@method")'), ("Signature", "b=:AA==:")]
    )
    with pytest.raises(SignatureError) as err:
        httpsig.parse_signature(mismatched)
    assert err.value.reason is Reason.MALFORMED_SIGNATURE


DIGEST_NEAR_MISSES = {
    # A member that is not a digest the verifier checks binds nothing of the body.
    "foreign-member": (Item("content-digest", {"key": "x-id"}), Reason.MISSING_COMPONENT),
    "unknown-algorithm": (Item("content-digest", {"key": "sha-999"}), Reason.MISSING_COMPONENT),
    # The whole field, or exactly the verified member, in any serialisation.
    "whole": (Item("content-digest"), None),
    "verified-member": (Item("content-digest", {"key": "sha-256"}), None),
    "structured": (Item("content-digest", {"sf": True}), None),
    "byte-sequence": (Item("content-digest", {"bs": True}), None),
}


@pytest.mark.parametrize("case", sorted(DIGEST_NEAR_MISSES))
def test_content_digest_coverage_near_misses(case: str) -> None:
    """Issue 13 point 10: the policy needs the whole Content-Digest field or exactly the
    member that is verified against the body."""
    component, reason = DIGEST_NEAR_MISSES[case]
    body = b'{"a":1}'
    extra = [("Content-Digest", f"{httpsig.content_digest(body)}, x-id=:AAAA:, sha-999=:AA==:")]
    components = ("@method", "@authority", "@path", "content-type", component)
    key = _signing_key()
    request = HttpRequest(
        "POST",
        "https://ingest.example:8443/v1/clusters/c1/snapshots",
        [("Host", "ingest.example:8443"), ("Content-Type", "application/json"), *extra],
        body,
    )
    added = httpsig.sign_request(
        request, key_id="k1", sign=lambda b: key.sign(b).signature, components=components
    )
    signed = HttpRequest(request.method, request.url, [*request.headers, *added.items()], body)
    verify = _verifier(bytes(key.verify_key))
    now = int(time.time())
    if reason is None:
        httpsig.verify_request(signed, verify=verify, policy=Policy(window_seconds=300), now=now)
        return
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(signed, verify=verify, policy=Policy(window_seconds=300), now=now)
    assert err.value.reason is reason
    assert "content-digest" in err.value.detail


def test_a_covered_digest_member_still_has_to_match_the_body() -> None:
    body = b'{"a":1}'
    key = _signing_key()
    request = HttpRequest(
        "POST",
        "https://h/v1/x",
        [
            ("Host", "h"),
            ("Content-Type", "application/json"),
            ("Content-Digest", httpsig.content_digest(b"other")),
        ],
        body,
    )
    added = httpsig.sign_request(
        request,
        key_id="k1",
        sign=lambda b: key.sign(b).signature,
        components=(
            "@method",
            "@authority",
            "@path",
            "content-type",
            Item("content-digest", {"key": "sha-256"}),
        ),
    )
    signed = HttpRequest(request.method, request.url, [*request.headers, *added.items()], body)
    with pytest.raises(SignatureError) as err:
        httpsig.verify_request(
            signed,
            verify=_verifier(bytes(key.verify_key)),
            policy=Policy(window_seconds=300),
            now=time.time(),
        )
    assert err.value.reason is Reason.DIGEST_MISMATCH
