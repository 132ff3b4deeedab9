"""Reading prompt sets: the project's JSONL files and user-supplied public formats.

Every error names the file and the line (or row) and is a DatasetError (exit code 2).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from probes.errors import DatasetError
from reports import DatasetInfo
from taxonomy import validation_message

T = TypeVar("T", bound=BaseModel)


def project_data(name: str) -> Path:
    """Path of a data file shipped under probes/data/."""
    return Path(str(resources.files("probes").joinpath("data", name)))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_info(path: Path, n_items: int, user: bool) -> DatasetInfo:
    """Provenance of the items a probe ran on: a user's file by its name, a project file as 'lm-risk-audit <stem>'."""
    return DatasetInfo(name=path.name if user else f"lm-risk-audit {path.stem}", origin="user" if user else "project",
                       path=str(path), sha256=file_sha256(path), n_items=n_items)


def read_json(path: Path, model: type[T]) -> T:
    """One validated JSON document; errors name the file and the line or key."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: line {exc.lineno}: malformed JSON: {exc.msg}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(f"{path}: {validation_message(exc)}") from None


def read_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file."""
    for lineno, line in _lines(path):
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {lineno}: malformed JSON: {exc.msg}") from None


def read_jsonl(path: Path, model: type[T]) -> list[T]:
    """Validated records of a JSONL file; blank lines are skipped; ids must be unique."""
    items: list[T] = []
    seen: set[str] = set()
    for lineno, raw in read_json_lines(path):
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            raise DatasetError(f"{path}: line {lineno}: {validation_message(exc)}") from None
        ident = getattr(item, "id", None)
        if isinstance(ident, str):
            if ident in seen:
                raise DatasetError(f"{path}: line {lineno}: duplicate id {ident!r}")
            seen.add(ident)
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no records")
    return items


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, line
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None


def read_csv_rows(path: Path, required: list[str]) -> list[tuple[int, dict[str, str]]]:
    """CSV rows as dicts with their line numbers; the header must hold ``required``."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(f"{path}: header lacks column(s) {', '.join(repr(m) for m in missing)}"
                               f" (found {', '.join(header) or 'nothing'})")
            rows = []
            for row in reader:
                if None in row:
                    raise DatasetError(f"{path}: line {reader.line_num}: more fields than the header has")
                rows.append((reader.line_num, {k: (v or "") for k, v in row.items()}))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV: {exc}") from None
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows
