"""The scan report as JSON text (the design's `k8smon scan --format json` contract)."""

from __future__ import annotations

import json

import orjson

from contracts.findings import ScanReport


def render_json(report: ScanReport, *, indent: int | None = 2) -> str:
    """Serialise a scan report; keys keep the contract's order (`render_json_bytes` as text)."""
    if indent == 2:
        return render_json_bytes(report).decode()
    return json.dumps(report, indent=indent, ensure_ascii=False) + "\n"


def render_json_bytes(report: ScanReport) -> bytes:
    """The indented report as UTF-8, as `render_json` writes it.

    Indented output is orjson's: byte for byte what `json.dumps(indent=2, ensure_ascii=False)`
    writes for a report (strings, integers, booleans, null; the contract has no floats, which
    the two would spell differently), about twenty times faster; a large report's rendering
    used to cost more than the scan. The standard library writes what orjson refuses
    (integers beyond 64 bits). Bytes, so that a caller writing them out does not decode a
    report of megabytes only to encode it again. (The compact form, `indent=None`, is the
    standard library's: orjson writes no `", "` separators.)
    """
    try:
        return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
