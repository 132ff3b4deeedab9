"""Load and validate a taxonomy YAML file; errors name the file and key path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from taxonomy._files import UserFileError, read_user_yaml
from taxonomy._messages import validation_location, validation_problem
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


def load_taxonomy(path: Path | str | None = None, known_probes: Iterable[str] | None = None) -> Taxonomy:
    """Read, validate and return a taxonomy.

    ``known_probes``: when given, every probe id a risk lists must be in it.
    Raises TaxonomyError with a one-line message naming the file and key path.
    """
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        data = read_user_yaml(path, "taxonomy file", expect=None)
    except UserFileError as exc:
        raise TaxonomyError(path, exc.where, exc.problem) from None
    if not isinstance(data, dict):
        raise TaxonomyError(path, "", "expected a mapping with 'name', 'version' and 'areas' at the top")
    try:
        tax = Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise TaxonomyError(path, validation_location(exc, data), validation_problem(exc)) from None
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
