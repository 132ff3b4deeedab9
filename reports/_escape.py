"""Escaping of untrusted text (model outputs, prompts, user-supplied names) for Markdown.

The rendered text must be inert in any common Markdown renderer: no raw HTML,
no links or images, no table breakage, no headings or lists injected.
"""

from __future__ import annotations

import re

from reports._sanitize import sanitize_text

# Every ASCII punctuation character that can start or close Markdown syntax.
# CommonMark allows a backslash before any ASCII punctuation, so over-escaping is safe.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=:\"'$^])")
# Things renderers turn into links without any Markdown syntax (GFM autolinks):
# "scheme://" and "www.". Defanged the way security reports do it.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_WWW = re.compile(r"\b(www)\.", re.IGNORECASE)

NEWLINE_MARK = "\u21b5 "  # shown where the original text had a line break


def escape_markdown(text: str, max_chars: int | None = None) -> str:
    """Return ``text`` as one line of inert Markdown (safe inside a table cell).

    HTML-significant characters become entities, Markdown punctuation is
    backslash-escaped, URLs are defanged (``http[:]//``, ``www[.]``), escape
    sequences, control characters and bidi formatting are dropped (``sanitize_text``)
    and line breaks shown as a visible mark.
    """
    text = sanitize_text(text)  # first, so a cut cannot leave half an escape sequence
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + " [...]"
    text = _SCHEME.sub(r"\1[:]//", text)
    text = _WWW.sub(r"\1[.]", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = NEWLINE_MARK.join(part.strip() for part in text.split("\n"))
    return text
