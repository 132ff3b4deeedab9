"""Load and validate a taxonomy YAML file; errors name the file and key path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taxonomy._schema import Taxonomy

DEFAULT_TAXONOMY = Path(__file__).with_name("weidinger.yaml")


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used. The message is one line: file, key path, problem."""

    def __init__(self, path: Path | str, key_path: str, problem: str) -> None:
        self.path = str(path)
        self.key_path = key_path
        self.problem = problem
        where = f"{self.path}: {key_path}" if key_path else self.path
        super().__init__(f"{where}: {problem}")


def _with_ids(data: Any, loc: tuple[Any, ...]) -> str:
    """Render a pydantic location, adding the id of each list item where it has one."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            ident = node.get("id") if isinstance(node, dict) else None
            out += f"[{ident}]" if isinstance(ident, str) else f"[{part}]"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else str(part)
    return out


def load_taxonomy(path: Path | str | None = None, known_probes: Iterable[str] | None = None) -> Taxonomy:
    """Read, validate and return a taxonomy.

    ``known_probes``: when given, every probe id a risk lists must be in it.
    Raises TaxonomyError with a one-line message naming the file and key path.
    """
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(path, "", "file not found") from None
    except OSError as exc:
        raise TaxonomyError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TaxonomyError(path, where, f"malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise TaxonomyError(path, "", "expected a mapping with 'name', 'version' and 'areas' at the top")
    try:
        tax = Taxonomy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "missing required field"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "enum":
            msg = f"{msg} (got {err.get('input')!r})"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TaxonomyError(path, _with_ids(data, tuple(err["loc"])), msg + more) from None
    _check_unique(path, tax)
    if known_probes is not None:
        known = set(known_probes)
        for area in tax.areas:
            for risk in area.risks:
                for i, probe in enumerate(risk.probes):
                    if probe not in known:
                        raise TaxonomyError(
                            path,
                            f"areas[{area.id}].risks[{risk.id}].probes[{i}]",
                            f"unknown probe id {probe!r} (see `lm-audit probes`)",
                        )
    return tax


def _check_unique(path: Path, tax: Taxonomy) -> None:
    seen: set[str] = set()
    for area in tax.areas:
        if area.id in seen:
            raise TaxonomyError(path, f"areas[{area.id}].id", f"duplicate id {area.id!r}")
        seen.add(area.id)
    seen_risk: set[str] = set()
    for area in tax.areas:
        for risk in area.risks:
            for key, value in (("id", risk.id), ("slug", risk.slug)):
                if value in seen_risk:
                    raise TaxonomyError(path, f"areas[{area.id}].risks[{risk.id}].{key}", f"duplicate {key} {value!r}")
                seen_risk.add(value)


def taxonomy_sha256(path: Path | str | None = None) -> str:
    """sha256 of the taxonomy file's bytes, recorded in every report."""
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    return hashlib.sha256(path.read_bytes()).hexdigest()
