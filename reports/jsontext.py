"""Compact JSON text exactly as `json.dumps(value, separators=(",", ":"))` writes it, by orjson.

The PolicyReports of a cluster are megabytes of JSON written after every scan with news; the
standard library's encoder took most of their time. orjson writes the same text but for the
characters the standard library escapes (`ensure_ascii`) and orjson does not: non-ASCII
characters and DEL, which only ever occur inside strings. Those are escaped afterwards as the
standard library does (`\\uXXXX`, a surrogate pair beyond U+FFFF), scanning only the parts of
the text that hold any. What orjson refuses (integers beyond 64 bits, lone surrogates) is
written by the standard library. For documents of text, integers, booleans and null: the two
spell some floats differently.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_CHUNK = 1 << 16  # bytes checked at a time for characters to escape
_NON_ASCII = bytes(int(byte >= 0x80) for byte in range(256))


def compact_json_pieces(value: Any) -> list[bytes | memoryview]:
    """The text of `value`, UTF-8 (in fact ASCII), in pieces to write one after another."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return [json.dumps(value, separators=(",", ":")).encode("ascii")]
    if b"\x7f" in text:
        text = text.replace(b"\x7f", b"\\u007f")
    if text.isascii():
        return [text]
    view = memoryview(text)
    pieces: list[bytes | memoryview] = []
    done = 0  # text[:done] is in pieces
    for chunk in range(0, len(text), _CHUNK):
        part = text[chunk : chunk + _CHUNK]
        if part.isascii():
            continue
        marks = part.translate(_NON_ASCII)
        at = marks.find(1, max(done - chunk, 0))
        while at >= 0:
            begin = end = chunk + at
            while end < len(text) and text[end] >= 0x80:
                end += 1
            pieces += (view[done:begin], _escaped(text[begin:end].decode("utf-8")))
            done = end
            at = marks.find(1, end - chunk)
    pieces.append(view[done:])
    return pieces


def _escaped(characters: str) -> bytes:
    escapes = []
    for character in characters:
        code = ord(character)
        if code > 0xFFFF:
            code -= 0x10000
            escapes.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            escapes.append(f"\\u{code:04x}")
    return "".join(escapes).encode("ascii")
