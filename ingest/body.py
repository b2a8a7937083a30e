"""Read a push body safely: size cap on the wire, capped streaming gunzip, strict JSON, schema."""

from __future__ import annotations

import gc
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import IO, Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ingest.problems import (
    BAD_ENCODING,
    BAD_GZIP,
    BODY_TOO_LARGE,
    DECOMPRESSED_TOO_LARGE,
    INVALID_JSON,
    INVALID_UNICODE,
    INVALID_UTF8,
    SCHEMA_VIOLATION,
    TOO_COMPLEX,
    TOO_DEEP,
    Problem,
    bad_request,
)

_CHUNK = 1024 * 1024
# Escapes PostgreSQL cannot store in jsonb (NUL) or UTF-8 cannot encode (lone surrogates).
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
# Nineteen digits in a row may be an integer beyond 64 bits (-9223372036854775809 has 19).
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")
INT_RANGE = (-(2**63), 2**64 - 1)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector meanwhile, restoring its previous state.

    JSON builds no reference cycles, and while a 15 MB document is alive as a million objects
    every collection that allocations trigger traverses all of it again: parsing it and
    handling it (hashing, storing) run several times faster with the collector paused.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def too_large(limit: int) -> Problem:
    return Problem(
        413, BODY_TOO_LARGE, "Payload too large", f"the body is larger than {limit} bytes"
    )


def read_capped(stream: IO[bytes], *, declared: int | None, limit: int) -> bytes:
    """Read at most `limit` bytes; refuse with 413 before reading when the declared size is over."""
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
    return b"".join(chunks)


def decode_content(raw: bytes, *, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity or gzip), inflating in chunks and stopping at `limit`."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return raw
    if coding not in ("gzip", "x-gzip"):
        raise Problem(
            415,
            BAD_ENCODING,
            "Unsupported media type",
            f"Content-Encoding {coding!r} is not supported (gzip or identity)",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    total = 0
    pending = raw
    try:
        while not inflater.eof:
            piece = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if not piece and not pending:
                break
            total += len(piece)
            if total > limit:
                raise Problem(
                    413,
                    DECOMPRESSED_TOO_LARGE,
                    "Payload too large",
                    f"the body inflates to more than {limit} bytes",
                )
            out.append(piece)
        if not inflater.eof:
            raise bad_request(BAD_GZIP, "the gzip stream is truncated")
        if inflater.unused_data:
            raise bad_request(BAD_GZIP, "data after the end of the gzip stream")
    except zlib.error as problem:
        raise bad_request(BAD_GZIP, f"invalid gzip data: {problem}") from None
    return b"".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"the number {literal[:40]} is beyond the range of a 64-bit float")
    return value


def estimated_parsed_bytes(data: bytes) -> int:
    """What parsing `data` will take in memory, estimated from its punctuation (CPython:
    about 80 bytes per object or array, 60 per string, 24 per float, 8 per member, plus the
    decoded text), so a body built of tiny containers is refused before it is parsed."""
    return (
        80 * (data.count(b"{") + data.count(b"["))
        + 30 * data.count(b'"')
        + 24 * data.count(b".")
        + 8 * data.count(b",")
        + len(data)
    )


def check_parse_budget(data: bytes, *, limit: int) -> None:
    """413 before parsing when the estimated parsed size is over `limit`."""
    estimate = estimated_parsed_bytes(data)
    if estimate > limit:
        raise Problem(
            413,
            TOO_COMPLEX,
            "Payload too large",
            f"parsing the body would take about {estimate >> 20} MiB of memory "
            f"(the limit is {limit >> 20} MiB): send fewer or smaller objects",
        )


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep (stops early; `limit` stays
    far below the interpreter's recursion limit: MAX_MANIFEST_DEPTH is 100)."""
    kind = type(value)
    return (kind is dict or kind is list) and _containers_exceed(value, limit)


def _containers_exceed(container: Any, budget: int) -> bool:
    """Whether `container` and the containers inside it nest more than `budget` deep (a
    recursive walk: three times faster than an explicit stack of (item, depth) pairs)."""
    if budget <= 0:
        return True
    for child in container.values() if type(container) is dict else container:
        kind = type(child)
        if (kind is dict or kind is list) and _containers_exceed(child, budget - 1):
            return True
    return False


def _has_unstorable_string(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _int_in_range(literal: str) -> int:
    value = int(literal)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ValueError(
            f"the integer {literal[:40]} is outside the 64-bit range the Kubernetes API uses"
        )
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: valid UTF-8, no NaN/Infinity (nor numbers such as 1e400 that only a float
    overflow could read), integers within 64 bits, bounded nesting, strings storable as jsonb."""
    return parse_json_counting_floats(raw)[0]


def _holds_float(container: Any) -> bool:
    """Whether a parsed dict or list holds a float anywhere inside (a recursive walk)."""
    for child in container.values() if type(container) is dict else container:
        kind = type(child)
        if kind is float or ((kind is dict or kind is list) and _holds_float(child)):
            return True
    return False


def _parsed_without_floats(raw: bytes) -> Any:
    """The document as `orjson.loads` reads it when that is surely what the strict parser
    below would return, else `_NOT_PLAIN`.

    orjson accepts exactly strict JSON in valid UTF-8 (no NaN, no control characters, the last
    of duplicate keys wins) and refuses lone surrogates and nesting beyond 1,024; where it
    differs from the strict parser is numbers: 1e400 is refused by both, but an integer beyond
    64 bits becomes a float. So a document without floats reads the same; one with floats (or
    anything orjson refuses) takes the strict parser, which also counts the floats and words
    the refusals. About three times faster on a 15 MB snapshot.
    """
    try:
        document = orjson.loads(raw)
        kind = type(document)
        if kind is float or ((kind is dict or kind is list) and _holds_float(document)):
            return _NOT_PLAIN
    except (orjson.JSONDecodeError, RecursionError):
        return _NOT_PLAIN
    return document


_NOT_PLAIN = object()


def parse_json_counting_floats(raw: bytes) -> tuple[Any, int]:
    """`parse_json`, and how many floats the document holds (none: the store may hash its
    objects' canonical JSON with the faster encoder, `store.snapshots.prepare_objects`)."""
    with cyclic_gc_paused():
        document = _parsed_without_floats(raw)
    if document is not _NOT_PLAIN:
        if _SUSPECT_ESCAPE.search(raw) and _has_unstorable_string(document):
            raise bad_request(INVALID_UNICODE, "strings may not contain NUL or lone surrogates")
        return document, 0
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise bad_request(
            INVALID_UTF8, f"the body is not valid UTF-8 (byte {problem.start})"
        ) from None
    floats: list[float] = []

    def finite_float(literal: str) -> float:
        value = _finite_float(literal)
        floats.append(value)
        return value

    parse_int = _int_in_range if _LONG_DIGIT_RUN.search(raw) else None
    try:
        with cyclic_gc_paused():
            document = json.loads(
                text,
                parse_constant=_reject_constant,
                parse_int=parse_int,
                parse_float=finite_float,
            )
    except RecursionError:
        raise bad_request(TOO_DEEP, "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as problem:
        raise bad_request(
            INVALID_JSON,
            f"malformed JSON at line {problem.lineno} column {problem.colno}: {problem.msg}",
        ) from None
    except ValueError as problem:
        raise bad_request(INVALID_JSON, str(problem)) from None
    if _SUSPECT_ESCAPE.search(raw) and _has_unstorable_string(document):
        raise bad_request(INVALID_UNICODE, "strings may not contain NUL or lone surrogates")
    return document, len(floats)


@lru_cache(maxsize=8)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    return _validator(json.dumps(schema, sort_keys=True))


def validate(document: Any, validator: Draft202012Validator) -> None:
    """400 naming the offending field (a JSON path) when `document` breaks the schema."""
    error = best_match(validator.iter_errors(document))
    if error is None:
        return
    where = error.json_path
    raise Problem(
        400,
        SCHEMA_VIOLATION,
        "Bad request",
        f"{where}: {error.message}"[:500],
        extra={"field": where},
    )
