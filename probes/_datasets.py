"""Reading prompt sets: the project's JSONL files and user-supplied public formats.

Every file is read through ``taxonomy.read_user_text`` (and its JSON forms); every error names
the file and the line (or row) and is a DatasetError (exit code 2).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from probes.errors import DatasetError
from reports import DatasetInfo
from taxonomy import (
    UserFileError,
    kind_of,
    read_user_json,
    read_user_json_lines,
    read_user_text,
    validation_message,
)

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
        raw: Any = read_user_json(path, "dataset", expect=None)
    except UserFileError as exc:
        raise DatasetError(str(exc)) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(f"{path}: {validation_message(exc)}") from None


def read_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file. The whole file is
    checked as text (UTF-8, size) before the first line is given."""
    try:
        yield from read_user_json_lines(path, "dataset")
    except UserFileError as exc:
        raise DatasetError(str(exc)) from None


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


def read_csv_rows(path: Path, required: list[str]) -> list[tuple[int, dict[str, str]]]:
    """CSV rows as dicts with their line numbers; the header must hold ``required``."""
    try:
        text = read_user_text(path, "dataset")
    except UserFileError as exc:
        raise DatasetError(str(exc)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        if not header:
            raise DatasetError(f"{path}: no rows (the file is empty)")
        missing = [c for c in required if c not in header]
        if missing:
            found = ", ".join(header) or "nothing"
            raise DatasetError(f"{path}: header lacks column(s) {', '.join(repr(m) for m in missing)} (found {found})")
        rows = []
        for row in reader:
            if None in row:
                raise DatasetError(f"{path}: line {reader.line_num}: more fields than the header has")
            rows.append((reader.line_num, {k: (v or "") for k, v in row.items()}))
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from None
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def dataset_kind(path: Path, dataset_format: str | None) -> str:
    """``csv``, ``jsonl`` or ``json``: the kind a probe's ``dataset_format`` names first
    ("TruthfulQA CSV ...", "JSONL with ...", "JSON with ..."), else the file's suffix."""
    for word in re.findall(r"[A-Za-z]+", dataset_format or ""):
        if word in ("CSV", "JSONL", "JSON"):
            return word.lower()
    return path.suffix.lower().lstrip(".") if path.suffix.lower() in (".csv", ".json") else "jsonl"


def check_dataset_file(path: Path, dataset_format: str | None = None) -> None:
    """Read a user's dataset through once, before any model loads: the whole file as text
    (UTF-8, size, no lone surrogates) and as its kind (every JSONL line, the JSON document, every
    CSV row), and at least one record. DatasetError names the file and line. The probe's own
    loader checks the fields of each record when it runs."""
    kind = dataset_kind(path, dataset_format)
    if kind == "csv":
        read_csv_rows(path, [])
    elif kind == "json":
        try:
            read_user_json(path, "dataset", expect=dict)
        except UserFileError as exc:
            raise DatasetError(str(exc)) from None
    else:
        records = 0
        for lineno, value in read_json_lines(path):
            if not isinstance(value, dict):  # every JSONL format here is one object per line
                raise DatasetError(f"{path}: line {lineno}: expected a JSON object per line, got {kind_of(value)}")
            records += 1
        if not records:
            raise DatasetError(f"{path}: no records")
