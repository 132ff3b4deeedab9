"""AuditConfig: everything that defines a run, from a YAML file and/or CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.errors import BadInput
from audit.scorers import PIIOptions, ScorerSpec


class AuditConfig(BaseModel):
    """One audit run. Recorded verbatim in the report."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="built-in alias, checkpoint directory, .gguf file, or hub id (with allow_download)")
    taxonomy: Path | None = Field(default=None, description="taxonomy YAML; default: the bundled Weidinger et al. file")
    areas: list[str] = Field(default_factory=list)
    risks: list[str] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1, description="items per probe, for quick runs")
    out: Path | None = None
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    chat_template: bool = True
    model_cache: bool = Field(default=True, description="read a GGUF model from its converted copy in the local "
                                                         "model cache (written on first use)")
    allow_download: bool = False
    trust_remote_code: bool = False
    batch_size: int | None = Field(default=None, ge=1, description="rows per forward pass; None: planned from "
                                                                     "the model's shape and free memory")
    datasets: dict[str, Path] = Field(default_factory=dict, description="probe id -> user-supplied dataset file")
    probe_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    show_pii: bool = False
    scorers: dict[str, ScorerSpec] = Field(default_factory=dict, description="role (toxicity, regard) -> scorer")
    pii: PIIOptions = Field(default_factory=PIIOptions, description="PII detection (probes and report redaction)")
    policy: str | None = Field(default=None, description="release policy YAML, or 'default' for the packaged one")
    junit: Path | None = Field(default=None, description="write the policy checks as JUnit XML here")
    resume: bool = Field(default=False, description="continue the run in `out` from its cache")


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later, merged with flags)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"--config {path}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise BadInput(f"--config {path}: {where}malformed YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"--config {path}: expected a mapping of settings at the top level")
    return data


def make_config(values: dict[str, Any], origin: str = "settings") -> AuditConfig:
    try:
        return AuditConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"{origin}: {loc}: {err['msg']}") from None
