"""AuditConfig: everything that defines a run, and the one path its settings take.

Layering (``layered``): packaged defaults (the field defaults below) < a ``--config`` YAML
file < flags. A resumed run (``resume=RUN_DIR``) takes its settings from the run's recorded
``config.json`` instead (``resume_config``): the settings that decide what is measured cannot
change, the output settings (``OUTPUT_SETTINGS``) can, and the settings that let code or data
in (``TRUSTED_SETTINGS``) are never read back from the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import to_jsonable_python

from audit.errors import BadInput
from audit.models._openai import EndpointOptions
from audit.models._system import system_prompt_sha256
from audit.scorers import ROLES, PIIOptions, ScorerSpec
from probes import Depth
from taxonomy import (
    UserFileError,
    read_user_json,
    read_user_text,
    read_user_yaml,
    validation_location,
    validation_message,
    validation_problem,
)

# Settings a resumed run takes from its caller: they change what is written, not what is measured.
OUTPUT_SETTINGS = frozenset({"policy", "junit", "force"})
# Settings that let code or data in: never taken from a recorded config.json, only from the
# caller (the command line); a resume of a run that had one needs it given again.
TRUSTED_SETTINGS = ("trust_remote_code", "allow_download", "show_pii")
# The system prompt is given as text or as a file (one of the two per layer); the text is what a run
# records and applies. Its value is never shown in a message: it may hold a deployment's internals.
SYSTEM_PROMPT_SETTINGS = ("system_prompt", "system_prompt_file")


class AuditConfig(BaseModel):
    """One audit run. Recorded verbatim in the report."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="built-in alias, checkpoint directory, .gguf file, hub id "
                                                         "(with allow_download), or openai:URL (a served model); "
                                                         "required unless resuming")
    taxonomy: Path | None = Field(default=None, description="taxonomy YAML; default: the bundled Weidinger et al. file")
    areas: list[str] = Field(default_factory=list)
    risks: list[str] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1, description="items per probe, for smoke runs (never evidence)")
    depth: Depth = Field(default="standard", description="how many of the project's items each probe runs: quick "
                                                          "(a third of standard), standard, thorough (all, "
                                                          "for the power stated in each probe's limitations)")
    out: Path | None = None
    force: bool = Field(default=False, description="start over in out when it holds an earlier run (its report, "
                                                   "samples and cache are removed; nothing else is)")
    seed: int = Field(default=0, ge=0, lt=2**63)
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
    canaries: Path | None = Field(default=None, description="JSONL of secrets known to be in the training data; "
                                                            "the dataset of every probe that declares takes_canaries")
    corpus: list[Path] = Field(default_factory=list, description="training-corpus files or directories (text, JSONL, "
                                                                 "optionally .gz) that contamination.membership "
                                                                 "checks the audit's items against")
    probe_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    probe_files: list[Path] = Field(default_factory=list, description="probe specs (YAML) run in addition to the "
                                                                      "taxonomy's probes")
    probe_dirs: list[Path] = Field(default_factory=list, description="directories whose *.yaml / *.yml probe specs "
                                                                     "are run in addition to the taxonomy's probes")
    probe_file_sha256: dict[str, str] = Field(default_factory=dict,
                                              description="recorded by the run: sha256 of every probe spec and item "
                                                          "file it loaded, by path (a resume refuses changed ones)")
    show_pii: bool = False
    scorers: dict[str, ScorerSpec] = Field(default_factory=dict, description="role (toxicity, regard) -> scorer")
    pii: PIIOptions = Field(default_factory=PIIOptions, description="PII detection (probes and report redaction)")
    endpoint: EndpointOptions = Field(default_factory=EndpointOptions,
                                      description="model: openai:URL — served model, API key variable, API, "
                                                  "concurrency, timeout, retries")
    policy: str | None = Field(default=None, description="release policy YAML, or 'default' for the packaged one")
    junit: Path | None = Field(default=None, description="write the policy checks as JUnit XML here")
    resume: Path | None = Field(default=None, description="a run directory: continue that run with its recorded "
                                                          "settings (config.json); finished work comes from its cache")
    system_prompt: str | None = Field(default=None, description="the deployment's system prompt: the first message of "
                                                                "every conversation a probe sends; recorded verbatim "
                                                                "with its sha256 in the report, never printed")
    system_prompt_file: Path | None = Field(default=None, description="UTF-8 file holding the system prompt (read "
                                                                      "once, trailing line breaks dropped; its text is "
                                                                      "recorded as system_prompt)")

    @field_validator("system_prompt")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty: a system prompt needs text (leave it out for none)")
        return value

    @model_validator(mode="after")
    def _model_or_resume(self) -> AuditConfig:
        if self.model is None and self.resume is None:
            raise ValueError("model is required unless resume names a run directory")
        return self

    def recorded(self) -> dict[str, Any]:
        """The settings as the report records them: ``resume`` is how the run was started, not
        what it measured, and ``canaries`` and ``corpus`` appear only when given."""
        exclude = {"resume"} | ({"canaries"} if self.canaries is None else set()) | \
            (set() if self.corpus else {"corpus"}) | \
            {k for k in ("probe_files", "probe_dirs", "probe_file_sha256") if not getattr(self, k)}
        return self.model_dump(mode="json", exclude=exclude)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later, layered under the flags)."""
    try:
        data = read_user_yaml(path, "config file", expect=dict)
    except UserFileError as exc:
        raise BadInput(str(exc), setting="config") from None
    return data if data is not None else {}


def merge_settings(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> dict[str, Any]:
    """``upper``'s settings over ``lower``'s. ``pii`` merges key by key; in ``scorers`` an entry
    that names a scorer replaces the role's entry, one with only labels or a threshold refines it
    (and a role left without a name gets its default scorer)."""
    out = dict(lower)
    for key, value in upper.items():
        below = out.get(key)
        if key == "pii" and isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = {**below, **value}
        elif key == "scorers" and isinstance(value, Mapping):
            scorers = {role: dict(spec) if isinstance(spec, Mapping) else spec
                       for role, spec in (below.items() if isinstance(below, Mapping) else ())}
            for role, spec in value.items():
                if isinstance(spec, Mapping):
                    current = scorers.get(role)
                    base: Mapping[str, Any] = current if "name" not in spec and isinstance(current, Mapping) else {}
                    spec = {**base, **spec}
                    if "name" not in spec and role in ROLES:
                        spec["name"] = ROLES[role]
                scorers[role] = spec
            out[key] = scorers
        else:
            out[key] = value
    return out


def _shown(value: Any) -> str:
    """A setting's value as a user would have written it: ``I,III``, ``none``, ``hf-classifier:PATH``."""
    if isinstance(value, ScorerSpec):
        return value.name + (f":{value.model}" if value.model else "")
    value = to_jsonable_python(value)
    if value is None:
        return "none"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _setting_error(exc: ValidationError) -> BadInput:
    """A validation error of one setting: ``BadInput("<value>: <problem>", setting="limit")``."""
    setting = validation_location(exc)
    if not setting:
        return BadInput(validation_message(exc))
    value = exc.errors()[0].get("input")
    if setting == "system_prompt":  # never echoed: it may hold a deployment's internals
        return BadInput(validation_problem(exc), setting=setting)
    scalar = value is None or isinstance(value, (str, int, float, bool, Path))
    detail = f"{_shown(value)}: {validation_problem(exc)}" if scalar else validation_problem(exc)
    return BadInput(detail, setting=setting)


def layered(file_values: Mapping[str, Any] | None = None, flag_values: Mapping[str, Any] | None = None, *,
            source: Path | None = None) -> AuditConfig:
    """Packaged defaults < ``file_values`` (a config file, see ``load_config_file``; ``source``
    names it in errors) < ``flag_values`` (None means not given). BadInput names the setting,
    or the file and the key path when the bad value came from the file."""
    file_values = dict(file_values or {})
    flags = {k: v for k, v in (flag_values or {}).items() if v is not None}
    _one_system_prompt(file_values, flags, source)
    values = merge_settings(file_values, flags)
    if values.get("model") is None and values.get("resume") is None:
        raise BadInput("is required (e.g. smollm2-135m)", setting="model")
    try:
        config = AuditConfig.model_validate(values)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        if source is not None and loc and loc[0] in file_values and loc[0] not in flags:
            if loc[0] == "system_prompt":
                raise BadInput(f"{source}: system_prompt: {validation_problem(exc)}", setting="config") from None
            raise BadInput(f"{source}: {validation_message(exc, values)}", setting="config") from None
        raise _setting_error(exc) from None
    in_file = source is not None and "system_prompt_file" in file_values
    return read_system_prompt(config, where=f"{source}: system_prompt_file: " if in_file else "")


def _one_system_prompt(file_values: dict[str, Any], flags: Mapping[str, Any], source: Path | None) -> None:
    """BadInput when one layer gives both the system prompt's text and its file; a flag's choice replaces
    the config file's (``--system-prompt`` over a file's ``system_prompt_file``, and the reverse)."""
    if all(flags.get(k) is not None for k in SYSTEM_PROMPT_SETTINGS):
        raise BadInput("cannot be combined with --system-prompt: give the text or a file, not both",
                       setting="system_prompt_file")
    if all(file_values.get(k) is not None for k in SYSTEM_PROMPT_SETTINGS):
        raise BadInput(f"{source}: system_prompt and system_prompt_file: give one of the two", setting="config")
    if any(flags.get(k) is not None for k in SYSTEM_PROMPT_SETTINGS):
        for k in SYSTEM_PROMPT_SETTINGS:
            file_values.pop(k, None)


def read_system_prompt(config: AuditConfig, where: str = "") -> AuditConfig:
    """``config`` with ``system_prompt`` read from ``system_prompt_file`` when only the file is given:
    UTF-8 text, trailing line breaks dropped. A missing, unreadable or empty file is BadInput naming the
    setting and the file (``where``: the config file and key it came from). A config that has the text
    (a resumed run's, or one that never had a file) comes back as it is."""
    path = config.system_prompt_file
    if path is None or config.system_prompt is not None:
        return config
    try:
        text = read_user_text(path, "system prompt file").rstrip("\r\n")
        if not text.strip():
            raise UserFileError(path, "is empty: a system prompt needs text")
    except UserFileError as exc:
        raise BadInput(f"{where}{exc}", setting="config" if where else "system_prompt_file") from None
    return config.model_copy(update={"system_prompt": text})


def system_prompt_shown(text: str | None) -> str:
    """How a message names a system prompt without showing it: its sha256 prefix and length."""
    if text is None:
        return "no system prompt"
    return f"system prompt sha256 {system_prompt_sha256(text)[:16]} ({len(text)} chars)"


def explicit_settings(config: AuditConfig) -> dict[str, Any]:
    """The settings the caller gave (nested ones too), not the defaults: a resume's overrides."""
    return config.model_dump(exclude_unset=True)


def _effective(config: AuditConfig, key: str) -> Any:
    """A setting's value as the run uses it: ``scorers`` with each role's default filled in, so
    naming the default scorer again is not a change."""
    value = getattr(config, key)
    if key == "scorers":
        return {role: value.get(role) or ScorerSpec(name=default) for role, default in ROLES.items()} | value
    return value


def _changed(key: str, new: AuditConfig, old: AuditConfig) -> BadInput:
    """BadInput naming the setting (for ``pii`` and a scorer, the option) whose value differs from the recorded one."""
    new_value, old_value = _effective(new, key), _effective(old, key)
    if key == "system_prompt":  # named by its digest, never shown
        new_value, old_value = system_prompt_shown(new_value), system_prompt_shown(old_value)
    if key == "scorers":  # name the role, and the option of its scorer that differs
        role = next(r for r in {**old_value, **new_value} if new_value.get(r) != old_value.get(r))
        if role in new_value and role in old_value:
            key, new_value, old_value = f"scorers.{role}", new_value[role], old_value[role]
    if isinstance(new_value, BaseModel):  # pii or one scorer: name the option that differs
        sub = next(f for f in type(new_value).model_fields if getattr(new_value, f) != getattr(old_value, f))
        key, new_value, old_value = f"{key}.{sub}", getattr(new_value, sub), getattr(old_value, sub)
    if isinstance(new_value, dict):  # datasets, scorers, probe_params: show the entry that differs
        entry = next(k for k in {**old_value, **new_value} if new_value.get(k) != old_value.get(k))
        new_value, old_value = (f"{entry}={_shown(v[entry])}" if entry in v else f"{entry} unset"
                                for v in (new_value, old_value))
    return BadInput(f"{_shown(new_value)}: the resumed run measured with {_shown(old_value)}; a resume keeps "
                    "what a run measures (start a new run to change it)", setting=key)


def resume_config(run_dir: Path, overrides: Mapping[str, Any] | None = None) -> AuditConfig:
    """The settings of the run recorded in ``run_dir/config.json``, for resuming it there.

    ``overrides`` (the caller's settings, e.g. ``explicit_settings(config)``): ``policy`` and
    ``junit`` apply; ``allow_download``, ``trust_remote_code`` and ``show_pii`` come only from
    here (BadInput when the recorded run had one and the overrides do not); any other setting
    must equal the recorded one (BadInput naming it otherwise).
    """
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory (--resume takes a run directory)", setting="resume")
    if not path.exists():
        raise BadInput(f"{run_dir}: no config.json there (not a run directory, or it stopped before its first "
                       "probe started)", setting="resume")
    try:
        recorded = read_user_json(path, "run's config.json", expect=dict)
    except UserFileError as exc:
        raise BadInput(str(exc), setting="resume") from None
    recorded.pop("resume", None)  # older runs recorded a bool here
    had = [key for key in TRUSTED_SETTINGS if recorded.pop(key, False)]
    try:
        base = AuditConfig.model_validate({**recorded, "out": run_dir, "resume": run_dir})
    except ValidationError as exc:
        raise BadInput(f"{path}: {validation_message(exc, recorded)}", setting="resume") from None

    given = {k: v for k, v in (overrides or {}).items() if k != "resume" and v is not None}
    out = given.pop("out", None)
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise BadInput(f"{out}: a resumed run writes into its own directory ({run_dir})", setting="out")
    try:
        config = AuditConfig.model_validate(merge_settings(base.model_dump(), given))
    except ValidationError as exc:
        raise _setting_error(exc) from None
    for key in given:
        if key not in OUTPUT_SETTINGS and key not in TRUSTED_SETTINGS and _effective(config, key) != _effective(base, key):
            raise _changed(key, config, base)
    for key in had:
        if not getattr(config, key):
            raise BadInput("is required: the resumed run had it on, and it is never read back from its "
                           "config.json", setting=key)
    return config
