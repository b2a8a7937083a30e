"""Rule documentation as HTML: the rule's Markdown docstring rendered with raw HTML disabled.

markdown-it-py (CommonMark) with `html=False` escapes any markup the text carries, so a
docstring can never inject tags into a page; links keep only http(s) targets (markdown-it's
own URL validation drops `javascript:` and friends). References that are URLs become links.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

_URL = re.compile(r"^https?://[^\s<>\"']+$")


def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_doc(doc: str) -> Markup:
    """The docstring's body (its first line is the page's lead, shown apart) as safe HTML."""
    _lead, _, body = doc.strip().partition("\n")
    # Safe: markdown-it escapes all text and raw HTML when html=False.
    return Markup(_renderer().render(body.strip()))  # noqa: S704


def doc_lead(doc: str) -> str:
    return doc.strip().partition("\n")[0].strip()


def reference(text: str) -> Markup:
    """A reference as a link when it is a URL, else as escaped text."""
    value = text.strip()
    if _URL.match(value):
        return Markup('<a href="{0}" rel="noreferrer">{0}</a>').format(value)
    return escape(value)
