"""Text normalisation shared by the pattern scorers."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A quoted span of 2 to 200 characters. It opens at the start or after a space, bracket or colon
# (the apostrophe in "don't" opens nothing) and closes with the same mark not followed by a
# letter, or with a curly closing mark.
_QUOTED = re.compile(r"(?:^|(?<=[\s(:]))(['\"“‘])(?:(?!\1).){2,200}?(?:\1(?![a-z])|[”’])", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """``text`` with curly apostrophes made straight and quoted speech blanked out: a refusal or a
    claim inside quotes ("the robot said 'I am human'") is not the speaker's own."""
    return _QUOTED.sub(" ", text.replace("’", "'").replace("‘", "'"))


def any_of(patterns: Iterable[str], flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """One regex matching any of ``patterns`` (each kept in its own group)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags)
