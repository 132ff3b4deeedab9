"""Backends without a model: recorded outputs answer the requests an audit makes.

- ``OutputsBackend`` (``--model outputs:FILE``): a JSONL file of ``{"id", "output"}`` lines that
  someone filled in for the requests ``lm-audit prompts export`` listed (an air-gapped system, a
  human-in-the-loop product, a vendor's transcripts). Log-likelihoods: none.
- ``ReplayBackend`` (``lm-audit rescore``): a finished run's request log (every result
  ``MeteredModel`` wrote under its request id), so the run's scorers, statistics and policy can be
  applied again without the model.
- ``RecordingBackend`` (``lm-audit prompts export``): notes every generation request and answers
  with an empty text.

A request with no recorded output raises ``MissingOutputs``: the runner reports that probe not
evaluated and lists the ids; nothing is made up.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.cache import BatchCache
from audit.errors import BadInput
from audit.models._requests import (
    generation_id,
    log_key,
    loglik_id,
    per_request,
    prompt_record,
)
from probes.model import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    ProgressFn,
    Prompt,
)
from reports import ModelInfo
from taxonomy import UserFileError, read_user_json_lines, validation_message

OUTPUTS_PREFIX = "outputs:"


class MissingOutputs(Exception):
    """Requests that have no recorded output; ``ids`` in request order."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        super().__init__(f"{len(ids)} request(s) have no recorded output (first: {', '.join(ids[:3])})")


class OutputLine(BaseModel):
    """One recorded output: the request's id (from ``lm-audit prompts export``) and the text."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    output: str


def is_outputs(spec: str) -> bool:
    return spec.startswith(OUTPUTS_PREFIX)


class OutputsBackend:
    """Recorded outputs as a model (see the module docstring)."""

    def __init__(self, spec: str, *, chat_template: bool = True) -> None:
        self.path = Path(spec[len(OUTPUTS_PREFIX):]).expanduser()
        if not self.path.is_file():
            raise BadInput(f"{self.path}: no such outputs file", setting="model")
        self.chat_template = chat_template
        self.outputs: dict[str, str] = {}
        try:
            for lineno, raw in read_user_json_lines(self.path, "outputs file"):
                try:
                    line = OutputLine.model_validate(raw)
                except ValidationError as exc:
                    raise BadInput(f"{self.path}: line {lineno}: {validation_message(exc)}", setting="model") from None
                if line.id in self.outputs:
                    raise BadInput(f"{self.path}: line {lineno}: duplicate id {line.id!r}", setting="model")
                self.outputs[line.id] = line.output
        except UserFileError as exc:
            raise BadInput(str(exc), setting="model") from None
        if not self.outputs:
            raise BadInput(f"{self.path}: no outputs", setting="model")
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.used: set[str] = set()
        self.missing: list[str] = []

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=self.chat_template, loglikelihood=False,
                            loglikelihood_note="recorded outputs carry no log-probabilities")

    def info(self) -> ModelInfo:
        notes = [f"recorded outputs from {self.path.name} ({len(self.outputs)} outputs, sha256 {self.sha256[:12]})"]
        if self.missing:
            notes.append(f"{len(self.missing)} requests had no output in the file: their probes were not evaluated "
                         f"(first: {', '.join(self.missing[:5])})")
        extra = sorted(set(self.outputs) - self.used)
        if self.used and extra:
            notes.append(f"{len(extra)} outputs in the file answer no request of this audit (first: "
                         f"{', '.join(extra[:5])})")
        return ModelInfo(id=self.path.stem, backend="outputs", source=str(self.path), dtype="recorded",
                         device="recorded", fingerprint_sha256=self.sha256, chat_template=self.chat_template,
                         supports_loglikelihood=False, notes=notes, libraries={"outputs": self.sha256})

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        ids = [generation_id(p, q) for p, q in zip(prompts, per_request(len(prompts), params))]
        missing = [i for i in ids if i not in self.outputs]
        self.used.update(i for i in ids if i in self.outputs)
        if missing:
            self.missing += [i for i in missing if i not in self.missing]
            raise MissingOutputs(missing)
        if progress:
            progress(len(ids))
        return [Generation(text=self.outputs[i], n_tokens=len(self.outputs[i].split()), finish_reason="stop")
                for i in ids]

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        raise MissingOutputs([loglik_id(r) for r in requests])


class ReplayBackend:
    """A finished run's request log as a model (``lm-audit rescore``)."""

    def __init__(self, run_dir: Path, model: ModelInfo, capabilities: Capabilities) -> None:
        db = run_dir / "cache.sqlite"
        if not db.is_file():
            raise BadInput(f"{run_dir}: no cache.sqlite: the run's outputs are not there to re-score",
                           setting="run_dir")
        # read-only: a re-score never writes into the run it reads
        self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self._model = model
        self._caps = capabilities
        self.missing = 0

    def _get(self, rid: str) -> Any | None:
        row = self._db.execute("SELECT value FROM results WHERE key = ?", (log_key(rid),)).fetchone()
        return None if row is None else json.loads(row[0])

    def capabilities(self) -> Capabilities:
        return self._caps

    def info(self) -> ModelInfo:
        return self._model

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        ids = [generation_id(p, q) for p, q in zip(prompts, per_request(len(prompts), params))]
        return self._replay(ids, Generation, progress)

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        return self._replay([loglik_id(r) for r in requests], LoglikResult, progress)

    def _replay(self, ids: list[str], kind: type[BaseModel], progress: ProgressFn | None) -> list[Any]:
        found = [self._get(i) for i in ids]
        missing = [i for i, v in zip(ids, found) if v is None]
        if missing:
            self.missing += len(missing)
            raise MissingOutputs(missing)
        if progress:
            progress(len(ids))
        return [kind.model_validate(v) for v in found]

    def close(self) -> None:
        self._db.close()


class RecordingBackend:
    """Notes each generation request (with the probe that made it) and answers with an empty text."""

    def __init__(self, *, chat_template: bool = True) -> None:
        self.chat_template = chat_template
        self.current_probe = ""
        self.requests: dict[str, dict[str, Any]] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=self.chat_template, loglikelihood=False,
                            loglikelihood_note="exporting prompts: log-likelihood requests need the model itself")

    def info(self) -> ModelInfo:
        return ModelInfo(id="prompts-export", backend="recording", source="", fingerprint_sha256="recording",
                         chat_template=self.chat_template, supports_loglikelihood=False)

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        for p, q in zip(prompts, per_request(len(prompts), params)):
            rid = generation_id(p, q)
            line = self.requests.setdefault(rid, {"id": rid, "probes": [], **prompt_record(p),
                                                  "params": q.model_dump(mode="json")})
            if self.current_probe and self.current_probe not in line["probes"]:
                line["probes"].append(self.current_probe)
        if progress:
            progress(len(prompts))
        return [Generation(text="", n_tokens=0, finish_reason="stop") for _ in prompts]

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        raise MissingOutputs([loglik_id(r) for r in requests])


__all__ = ["MissingOutputs", "OUTPUTS_PREFIX", "OutputsBackend", "RecordingBackend", "ReplayBackend", "is_outputs"]
