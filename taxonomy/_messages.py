"""The project's one-line messages for a pydantic validation error and a YAML syntax error.

Every reader of user files (taxonomy, policy, config, datasets, reports) words its errors
through these two functions, so a user sees one style: ``FILE: KEY.PATH[3]: problem``.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError


def _location(loc: tuple[Any, ...], data: Any = None) -> str:
    """``a.b[3].c``; with ``data``, a list item that has an ``id`` is shown by it (``areas[I].risks[I.1]``)."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            ident = item.get("id") if isinstance(item, dict) else None
            out += f"[{ident}]" if isinstance(ident, str) else f"[{part}]"
            node = item
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else str(part)
    return out


def validation_location(exc: ValidationError, data: Any = None) -> str:
    """Key path of the first error (empty for the top level)."""
    return _location(tuple(exc.errors()[0]["loc"]), data)


def validation_problem(exc: ValidationError) -> str:
    """What is wrong with the first error, in plain words, plus how many more there are."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "missing required field"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "enum":
        msg = f"{msg} (got {err.get('input')!r})"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return msg + more


def validation_message(exc: ValidationError, data: Any = None) -> str:
    """``KEY.PATH: problem`` for the first error (``problem`` alone at the top level)."""
    loc = validation_location(exc, data)
    return f"{loc}: {validation_problem(exc)}" if loc else validation_problem(exc)


def yaml_message(exc: yaml.YAMLError) -> str:
    """``line L, column C: malformed YAML: problem``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    return f"{where}malformed YAML: {problem}"
