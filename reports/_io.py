"""Reading and atomically writing reports and other run files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reports._schema import AuditReport
from taxonomy import (
    UserFileError,
    read_user_json,
    read_user_json_lines,
    validation_location,
    validation_problem,
)


class ReportError(ValueError):
    """A report file that cannot be read. One-line message naming the file and the key path."""


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: AuditReport, path: Path | str) -> None:
    atomic_write_text(path, report.model_dump_json(indent=2) + "\n")


def load_report(path: Path | str) -> AuditReport:
    """Load and validate a report.json; raises ReportError with file and key path."""
    path = Path(path)
    if path.is_dir() and (path / "report.json").is_file():
        raise ReportError(f"{path}: is a run directory; give its report: {path / 'report.json'}")
    try:
        raw: Any = read_user_json(path, "report", expect=None)
    except UserFileError as exc:
        raise ReportError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: not an lm-risk-audit report (top level is not an object)")
    try:
        return AuditReport.model_validate(raw)
    except ValidationError as exc:
        raise ReportError(f"{path}: {validation_location(exc) or '(top level)'}: {validation_problem(exc)}") from None


def load_samples(report: AuditReport, report_path: Path | str) -> dict[str, list[dict[str, Any]] | None]:
    """Each probe's per-sample records, read from its ``samples_file`` (relative to the report's
    directory): probe id -> records, or None when the file is absent or unreadable (a report
    copied without its run directory), so a comparison falls back to what report.json holds."""
    base = Path(report_path).parent.resolve()
    out: dict[str, list[dict[str, Any]] | None] = {}
    for p in report.probes:
        out[p.id] = None
        if p.samples_file is None:
            continue
        path = (base / p.samples_file).resolve()
        if not path.is_relative_to(base):  # a report names files in its own run directory, nowhere else
            continue
        try:
            records = [r for _, r in read_user_json_lines(path, "samples file")]
        except UserFileError:
            continue  # no usable samples: the comparison says it used the report alone
        if all(isinstance(r, dict) for r in records):
            out[p.id] = records
    return out


def report_json_schema() -> dict[str, Any]:
    return AuditReport.model_json_schema()
