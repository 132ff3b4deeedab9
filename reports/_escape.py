"""Escaping of untrusted text (model outputs, prompts, user-supplied names) for Markdown.

The rendered text must be inert in any common Markdown renderer: no raw HTML,
no links or images, no table breakage, no headings or lists injected.
"""

from __future__ import annotations

import re

from reports._sanitize import sanitize_text

# Characters that open or close inline Markdown anywhere in a line: backslash, code, emphasis,
# strikethrough, link and image brackets, table pipes. Everything else is left as it is, so the raw
# file stays readable ("2026-11-27T06:13:59", not "2026\-11\-27T06\:13\:59").
_MD_INLINE = re.compile(r"([\\`*\[\]|~])")
# An underscore emphasises only at a word boundary; inside a word ("stereotype_pairs") it is literal.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What makes a block when a line starts with it: a heading, quote, list item, rule, setext underline.
_LINE_START = re.compile(r"^(\s*)(\d{1,9}(?=[.)](?:\s|$))|(?=[-+](?:\s|$))|(?=#{1,6}(?:\s|$))|(?=[=-]+\s*$))(.)")
# Things renderers turn into links without any Markdown syntax (GFM autolinks):
# "scheme://", "www." and e-mail addresses. Defanged the way security reports do it.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_WWW = re.compile(r"\b(www)\.", re.IGNORECASE)
_EMAIL = re.compile(r"(?<=[A-Za-z0-9._%+-])@(?=[A-Za-z0-9-]+\.)")

NEWLINE_MARK = "\u21b5 "  # shown where the original text had a line break


def escape_markdown(text: str, max_chars: int | None = None) -> str:
    """Return ``text`` as one line of inert Markdown (safe inside a table cell).

    HTML-significant characters become entities, the characters that make inline Markdown are
    backslash-escaped (and a leading one that would make a block), URLs and e-mail addresses are
    defanged (``http[:]//``, ``www[.]``, ``name[@]host``), escape sequences, control characters and
    bidi formatting are dropped (``sanitize_text``) and line breaks shown as a visible mark.
    Rendered, the text reads as it was written, apart from the defanged links.
    """
    text = sanitize_text(text)  # first, so a cut cannot leave half an escape sequence
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + " [...]"
    text = _SCHEME.sub(r"\1[:]//", text)
    text = _WWW.sub(r"\1[.]", text)
    text = _EMAIL.sub("[@]", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = NEWLINE_MARK.join(part.strip() for part in text.split("\n"))
    return _LINE_START.sub(r"\1\2\\\3", text, count=1)  # e.g. "1. x" -> "1\. x", "- x" -> "\- x"


def code_span(text: str, table: bool = False) -> str:
    """``text`` as a Markdown code span (an id, a name, a hash): shown exactly as written, since
    nothing inside a code span is Markdown or HTML. The fence is one backtick longer than the longest
    run inside, padded when the text starts or ends with one; line breaks become spaces; inside a
    table row a pipe is written ``\\|`` (GFM splits cells before it reads code spans, and shows the
    escaped pipe as ``|``)."""
    text = sanitize_text(text).replace("\n", " ") or " "
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"
