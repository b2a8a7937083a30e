"""reports.jsontext writes exactly the standard library's compact JSON, escapes included."""

from __future__ import annotations

import json
import random
from typing import Any

from reports.jsontext import compact_json_pieces


def _standard(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _written(value: Any) -> bytes:
    return b"".join(bytes(piece) for piece in compact_json_pieces(value))


def _text(rng: random.Random) -> str:
    ranges = ((0, 0x80), (0x7F, 0x80), (0x80, 0x800), (0x800, 0xD800), (0xE000, 0x110000))
    return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(0, 12)))


def test_random_documents_are_written_as_the_standard_library_writes_them() -> None:
    rng = random.Random(20261206)
    for _ in range(2000):
        text = _text(rng)
        # the filler puts characters to escape on either side of the 64 KiB chunks checked
        filler = "a" * rng.choice((0, 65_530, 65_536, 131_070))
        value = {"k": [text, 1, -(2**63), None, True, {text: filler + text + "é"}]}
        assert _written(value) == _standard(value), repr(text)


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    for value in ({"big": 2**64}, ["lone \ud800 surrogate"], {"n": [1, {"x": "—"}]}):
        assert _written(value) == _standard(value)


def test_plain_ascii_is_orjsons_text_as_it_is() -> None:
    value = {"apiVersion": "v1", "items": [{"a": 'b\\"c\n'}]}
    assert compact_json_pieces(value) == [_standard(value)]
