"""The one sanitiser for untrusted text (model outputs, prompts, names from user files) on its way
to a terminal, into JUnit XML or into Markdown.

What it removes is what a terminal would act on or a reader would not see: ANSI/ECMA-48 escape
sequences whole (CSI such as ``ESC[31m``, OSC such as the ``ESC]8;;URL`` hyperlink, DCS/SOS/PM/APC
strings, in their 7-bit and 8-bit forms), the remaining C0 and C1 control characters and DEL, and the
bidirectional overrides, embeddings, isolates and marks that reorder what is shown (U+202A-U+202E,
U+2066-U+2069, U+200E, U+200F, U+061C). What XML 1.0 forbids and no encoder can write (lone
surrogates, U+FFFE, U+FFFF) becomes U+FFFD, so the reader sees that something was there.
"""

from __future__ import annotations

import re

# A whole escape sequence, removed as one so its parameters do not show as text ("[31m"):
# - a control string (OSC, DCS, SOS, PM, APC: ESC ] P X ^ _, or 8-bit 0x9d 0x90 0x98 0x9e 0x9f)
#   up to its terminator (BEL, ESC \, or 8-bit ST 0x9c). The body stops at the next ESC, so an
#   unterminated one costs one pass: its introducer goes below and its body stays visible, inert.
# - CSI (ESC [ or 8-bit 0x9b): parameter bytes, intermediate bytes, a final byte.
# - any other escape: intermediate bytes and a final byte (ESC ( B, ESC 7, ESC c).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
# Line breaks in every spelling a terminal or a line splitter honours.
_LINE_BREAK = re.compile(r"\r\n|[\r\u2028\u2029]")
# C0 but tab and line feed, DEL, C1, and the bidirectional formatting characters.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Not an XML 1.0 character, and not encodable as UTF-8 (the surrogates).
_NOT_XML = re.compile(r"[\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def sanitize_text(text: object, *, newlines: bool = True) -> str:
    """``text`` (``str()`` of anything else) with escape sequences, control characters and bidi
    formatting removed and XML-illegal characters replaced by U+FFFD; tabs are kept.

    With ``newlines`` line breaks are kept as ``\\n`` (``\\r\\n``, ``\\r``, U+2028 and U+2029 become
    ``\\n``); without, each becomes a space, for text printed on one line. The result is valid in
    XML 1.0 text and attributes, encodable as UTF-8, and inert on a terminal.
    """
    s = str(text)
    s = _ESCAPE_SEQUENCE.sub("", s)
    s = _LINE_BREAK.sub("\n", s)
    s = _INVISIBLE.sub("", s)
    s = _NOT_XML.sub(REPLACEMENT, s)
    return s if newlines else s.replace("\n", " ")
