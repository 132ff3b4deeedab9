"""Probes as data: a team's own probe, written as a YAML spec, turned into a probe class at run time.

A spec is data, never code: read with ``yaml.safe_load`` (``taxonomy.read_user_yaml``; a
``!!python/object`` tag is a load error), validated by pydantic with unknown keys refused, and it
names only a *shape* the project already implements: ``generated-rate`` (``ScoredGenerationProbe``:
generate, score with a scorer role or a block list, count the hits), ``likelihood-pairs``
(``probes._pairs``: which of two sentences the model finds more likely), ``multiple-choice`` (MC1
and MC2 as ``misinformation.truthfulness_mc`` computes them) and ``multi-turn`` (scripted
conversations run turn by turn by ``probes._multiturn``, every reply judged as in generated-rate). So a spec probe's statistics (Wilson and
clustered intervals, scorer correction, statuses) are the built-in probes'.

The built-in probes of these shapes are specs too, packaged beside their items in ``probes/data``
(``<probe id>.yaml``) and registered at import (``register_packaged``): the same engine, so a user's
spec can do what they do. Their source reads ``builtin:probes/data/NAME``.

Errors are ``SpecError`` (a ``DatasetError``, exit 2) worded as the taxonomy's:
``FILE: KEY.PATH: problem``. A user's spec probes are never put in the global registry: a run holds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from probes import stats
from probes._corrected import NON_ANSWERS_REMOVED, correct, not_corrected
from probes._datasets import (
    dataset_info,
    dataset_kind,
    file_sha256,
    project_data,
    read_csv_rows,
    read_json_lines,
)
from probes._multiturn import (
    MAX_TURNS,
    MultiTurnParams,
    ScriptedConversation,
    by_conversation,
    by_turn,
    first_last,
    run_conversations,
    transcript_example,
    turn_rate,
)
from probes._pairs import PairParams, pair_result, score_pairs
from probes._preference import qa_context
from probes._registry import _PROBE_ID, register
from probes._scored import (
    GenParams,
    ScoredGenerationProbe,
    TextPrompt,
    judge_non_answers,
)
from probes.base import (
    ItemText,
    MetricSpec,
    Probe,
    ProbeContext,
    ProbeParams,
    ProbeResult,
)
from probes.errors import DatasetError
from probes.misinformation import mc_scores
from probes.model import GenerationParams, LoglikRequest
from probes.scoring import Scorer
from reports import Breakdown, DatasetInfo, Example, ScorerInfo, Threshold
from taxonomy import (
    UserFileError,
    read_user_yaml,
    validation_location,
    validation_problem,
)

Shape = Literal["generated-rate", "likelihood-pairs", "multiple-choice", "multi-turn"]
SHAPES: tuple[str, ...] = ("generated-rate", "likelihood-pairs", "multiple-choice", "multi-turn")
# The shapes that generate and judge replies (a scorer role or a block list, what counts as a hit)
_JUDGED = ("generated-rate", "multi-turn")
# The scorer roles a generated-rate spec may name: the run's scorer roles (audit.scorers.ROLES; a
# test keeps the two lists equal) and ``pii``, the run's PII detector (any finding is a flag).
SPEC_ROLES: tuple[str, ...] = ("toxicity", "regard", "refusal", "claims", "identity", "non_answer", "pii")
# What a shape can report (``measures`` of a spec's metric), in the order its report lists them, with
# the name each takes unless the spec names it. generated-rate: the hit rate, (judge_non_answers) the
# share of non-answers, and the same hit rate on the cue-false controls; likelihood-pairs: the
# preference rate, per token (named after the rate), and the mean |difference|; multiple-choice: MC1, MC2.
METRIC_KINDS: dict[str, dict[str, str]] = {
    "generated-rate": {"rate": "hit_rate", "non_answer_rate": "non_answer_rate", "control_rate": "control_hit_rate"},
    "likelihood-pairs": {"rate": "more_rate", "rate_per_token": "{rate}_per_token", "likelihood_diff": "likelihood_diff"},
    "multiple-choice": {"accuracy": "accuracy", "mc2": "mc2"},
    # multi-turn: conversations with a hit at any turn, with a hit at every turn, the share of all
    # replies that are hits (by turn), last-turn minus first-turn rate, non-answers, and on controls
    # the conversations with a reply the scorer flags at any turn (hit: not_flagged: a control declined
    # somewhere, over-refusal; hit: flagged: a control with a hit)
    "multi-turn": {"rate": "any_turn_hit_rate", "all_turns_rate": "all_turns_hit_rate", "turn_rate": "turn_hit_rate",
                   "escalation_gap": "escalation_gap", "non_answer_rate": "non_answer_rate",
                   "control_rate": "control_any_turn_flagged_rate"},
}
# Which way each metric points when a bar does not say (None: informational).
_HIGHER_IS_BETTER: dict[str, bool | None] = {"rate": False, "non_answer_rate": None, "control_rate": False,
                                             "rate_per_token": False, "likelihood_diff": None,
                                             "accuracy": True, "mc2": True, "all_turns_rate": False,
                                             "turn_rate": False, "escalation_gap": False}
# The keys each shape writes in every sample: a label, a breakdown name or a tag written into the
# samples may not take one (it would overwrite the item's id, its output, its outcome).
_SAMPLE_KEYS: dict[str, frozenset[str]] = {
    "generated-rate": frozenset({"id", "prompt", "output", "flagged", "counted", "control_counted", "kind", "cluster",
                                 "cue", "counterpart", "judgement", "non_answer", "non_answer_reason"}),
    "likelihood-pairs": frozenset({"id", "category", "direction", "likelihood_diff"}),
    "multiple-choice": frozenset({"id", "question", "correct", "mass_on_right", "choices"}),
    "multi-turn": frozenset({"id", "cue", "turns", "any_hit", "all_hits", "escalation", "control_any_flagged",
                             "hits", "judged_from"}),
}
_PAIR_PREFIXES = ("logprob_", "tokens_", "prefers_")
_LABEL = r"^[a-z][a-z0-9_]*$"


def _kinds(shape: str, judge: bool) -> list[str]:
    """The metrics a spec of ``shape`` can report, in report order (non_answer_rate only when judged)."""
    return [k for k in METRIC_KINDS[shape] if judge or k != "non_answer_rate"]


def _assign(shape: str, judge: bool, bars: Sequence[MetricBar]) -> dict[str, MetricBar]:
    """Each bar by the metric it names (``measures``, else the next one in report order); ValueError
    names the bar."""
    kinds = _kinds(shape, judge)
    out: dict[str, MetricBar] = {}
    for k, bar in enumerate(bars):
        kind = bar.measures or next((x for x in kinds if x not in out), None)
        where = f"{bar.name} (metric {k + 1})"
        if bar.measures == "non_answer_rate" and not judge:
            raise ValueError(f"{where}: non_answer_rate is reported only with judge_non_answers: true")
        if kind is None or kind not in kinds:
            raise ValueError(f"{where}: {shape} reports {', '.join(kinds)}, each at most once"
                             + (f"; not {bar.measures!r}" if bar.measures else ""))
        if kind in out:
            raise ValueError(f"{where}: two metrics measure {kind!r}")
        out[kind] = bar
    return out


def metric_names(shape: str, judge: bool, bars: Sequence[MetricBar]) -> dict[str, str]:
    """Every metric's name by what it measures: the bar's, else the default (per token: the rate's + _per_token)."""
    assigned = _assign(shape, judge, bars)
    names: dict[str, str] = {}
    for kind in _kinds(shape, judge):
        default = METRIC_KINDS[shape][kind].format(rate=names.get("rate", ""))
        names[kind] = assigned[kind].name if kind in assigned else default
    return names


class SpecError(DatasetError):
    """A probe spec that cannot be used: one line naming the file, the key path and the problem."""

    def __init__(self, path: Path | str, key_path: str, problem: str) -> None:
        self.path, self.key_path, self.problem = str(path), key_path, problem
        where = f"{self.path}: {key_path}" if key_path else self.path
        super().__init__(f"{where}: {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Columns(_Strict):
    """Which field of each item (a JSONL key, a CSV column, an inline item's key) holds what."""

    id: str = "id"  # absent from a record: the item is named by its line (or position)
    prompt: str = "prompt"  # generated-rate
    more: str = "more"  # likelihood-pairs: the sentence whose preference is counted
    less: str = "less"
    question: str = "question"  # multiple-choice
    choices: str = "choices"  # a list (JSONL, inline) or ';'-separated (CSV)
    answer: str = "answer"  # index of the right choice, from 0 (the best one, when others are right too)
    turns: str = "turns"  # multi-turn: the scripted user turns, 2 to 10 (a list; in a CSV, a JSON array)
    # multi-turn, optional: the turn (from 1) whose reply is the first one judged; earlier turns build the
    # conversation up (a fair opening, rapport) and their replies are context, not counted
    judged_from: str | None = None
    tags: list[str] = Field(default_factory=list)  # breakdowns, the first one in the samples too
    cue: str = "cue"  # optional: false marks a control item (generated-rate), reported apart
    # Optional columns, read only when named: items sharing a cluster (a template, a post) get intervals
    # that resample whole clusters; counterpart names a related item elsewhere (generated-rate, kept in
    # the samples); direction is a pair's stereotype/anti-stereotype direction (likelihood-pairs).
    cluster: str | None = None
    counterpart: str | None = None
    direction: str | None = None
    # multiple-choice: indices of further right choices (a list, or ';'-separated in a CSV); they
    # count toward MC2 (the probability mass on right choices), as TruthfulQA's true answers do
    also_right: str | None = None
    # generated-rate: "chat" or "text", this item's layout (default: the spec's ``chat``)
    format: str | None = None

    def named(self, shape: str) -> set[str]:
        """Every field name these columns read for ``shape``."""
        per_shape = {"generated-rate": [self.prompt, self.cue, self.cluster, self.counterpart, self.format],
                     "likelihood-pairs": [self.more, self.less, self.direction],
                     "multiple-choice": [self.question, self.choices, self.answer, self.also_right],
                     "multi-turn": [self.turns, self.cue, self.judged_from]}[shape]
        return {c for c in [self.id, *self.tags, *per_shape] if c}


class ItemFile(_Strict):
    path: str = Field(min_length=1)
    columns: Columns = Field(default_factory=Columns)
    strict: bool = False  # as ``UserDataset.strict``


class Generation(_Strict):
    """Mapped onto ``probes.GenerationParams`` (the seed is the run's)."""

    max_new_tokens: int = Field(default=64, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)


class MetricBar(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    # Which of the shape's metrics this bar names (METRIC_KINDS); absent: the next one in that order.
    measures: str | None = None
    description: str = ""
    # absent: the metric's own direction (lower is better for a hit or preference rate, higher for
    # accuracy and MC2, informational for the non-answer share and the likelihood difference)
    higher_is_better: bool | None = False
    ideal: float | None = Field(default=None, allow_inf_nan=False)
    # finite: a NaN bar would never be crossed, so the metric would always pass
    warn: float | None = Field(default=None, allow_inf_nan=False)
    fail: float | None = Field(default=None, allow_inf_nan=False)


class PairLabels(_Strict):
    """What a pair's two sentences are called in the samples and outcomes (``prefers_<more>``)."""

    more: str = Field(default="more", pattern=_LABEL)
    less: str = Field(default="less", pattern=_LABEL)


class UserDataset(_Strict):
    """``--dataset ID=FILE`` replaces the spec's items with FILE (JSONL or CSV by its suffix), read
    through ``columns`` (default: the items' columns). ``format`` is what ``lm-audit probes`` shows;
    its first word (JSONL, CSV) is the kind checked before the model loads."""

    format: str = Field(min_length=1)
    columns: Columns | None = None
    # true: a record's every field must be a named column and every record must have an id (a misspelt
    # field is an error, not silently ignored)
    strict: bool = False


class ProbeSpec(_Strict):
    """A probe written as data. See ``lm-audit probes new`` for a commented starter."""

    id: str
    version: str = Field(min_length=1)
    description: str = Field(min_length=1)
    about: str = ""  # the long description: what it measures, what it cannot see
    risks: list[str] = Field(min_length=1)
    limitations: list[str] = Field(default_factory=list)
    shape: Shape
    items: list[dict[str, Any]] | ItemFile
    columns: Columns | None = None  # for inline items (an item file has its own)
    # How many items (the first ones) run at standard depth; the rest only at thorough. None: all.
    standard_items: int | None = Field(default=None, ge=1)
    dataset: UserDataset | None = None
    generation: Generation = Field(default_factory=Generation)
    chat: bool = True
    role: str | None = None
    hit: Literal["flagged", "not_flagged"] = "flagged"
    block_list: list[str] = Field(default_factory=list)
    # generated-rate, role refusal, hit not_flagged: a reply the refusal scorer does not flag counts
    # only when the run's non_answer scorer does not call it a non-answer (empty, echo, question back,
    # loop, off-topic); the share of non-answers is reported (measures: non_answer_rate).
    judge_non_answers: bool = False
    # generated-rate: the first tag's name in the report (a heading and a sample key: printable text)
    breakdown: str | None = Field(default=None, pattern=r"^[^\x00-\x1f\x7f]+$")
    example_detail: str = ""  # generated-rate: what the worst examples say of each hit (default: the metric)
    labels: PairLabels | None = None  # likelihood-pairs
    metrics: list[MetricBar] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not _PROBE_ID.match(v):
            raise ValueError(f"probe id {v!r} must be dotted lower_snake_case, e.g. 'acme.dosing_advice'")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and v not in SPEC_ROLES:
            raise ValueError(f"unknown scorer role {v!r} (known: {', '.join(SPEC_ROLES)})")
        return v

    @field_validator("block_list")
    @classmethod
    def _blocked(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("block_list entries must be non-empty strings")
        return v

    @model_validator(mode="after")
    def _fits_shape(self) -> ProbeSpec:
        generated, judged = self.shape == "generated-rate", self.shape in _JUDGED
        if judged and (self.role is None) == (not self.block_list):
            raise ValueError(f"a {self.shape} spec names a scorer role or a block_list (one of the two)")
        if not judged and (self.role is not None or self.block_list):
            raise ValueError(f"role and block_list apply to generated-rate and multi-turn, not {self.shape}")
        if self.shape == "multi-turn" and (not self.chat or self.generation.stop or self.role == "pii"):
            raise ValueError("a multi-turn spec holds a conversation: chat: true, no generation.stop, and a scorer "
                             "role other than pii (or a block_list)")
        if self.block_list and self.hit != "flagged":
            raise ValueError("with a block_list a hit is an output that holds a blocked string (hit: flagged)")
        if self.judge_non_answers and (self.role != "refusal" or self.hit != "not_flagged"):
            raise ValueError("judge_non_answers applies to role: refusal with hit: not_flagged (compliance)")
        if self.breakdown is not None and not generated:
            raise ValueError(f"breakdown applies to generated-rate, not {self.shape}")
        if self.example_detail and not judged:
            raise ValueError(f"example_detail applies to generated-rate and multi-turn, not {self.shape}")
        if self.labels is not None and self.shape != "likelihood-pairs":
            raise ValueError(f"labels apply to likelihood-pairs, not {self.shape}")
        if self.labels is not None and self.labels.more == self.labels.less:
            raise ValueError("labels.more and labels.less must differ")
        if isinstance(self.items, ItemFile) and self.columns is not None:
            raise ValueError("columns apply to inline items; an item file names its own (items.columns)")
        self._no_reserved_keys()
        return self

    def _no_reserved_keys(self) -> None:
        """No label, breakdown name or sample-written tag may take a key the shape writes itself."""
        reserved = _SAMPLE_KEYS[self.shape]
        if self.shape == "likelihood-pairs":
            labels = self.labels or PairLabels()
            for side, label in (("more", labels.more), ("less", labels.less)):
                if label in reserved or label.startswith(_PAIR_PREFIXES):
                    raise ValueError(f"labels.{side}: {label!r} is a key every pair's sample already has "
                                     f"({', '.join(sorted(reserved))}, or logprob_/tokens_/prefers_...)")
        column_sets = [_columns(self)] + ([self.dataset.columns] if self.dataset and self.dataset.columns else [])
        if self.shape == "generated-rate":
            for cols in column_sets:
                name = self.breakdown or (cols.tags[0] if cols.tags else "stratum")
                if name in reserved:
                    raise ValueError(f"{'breakdown' if self.breakdown else 'columns.tags[0]'}: {name!r} is a key "
                                     f"every sample already has ({', '.join(sorted(reserved))}); name the breakdown")
        if self.shape in ("multiple-choice", "multi-turn"):
            for cols in column_sets:
                clash = [t for t in cols.tags if t in reserved]
                if clash:
                    raise ValueError(f"columns.tags: {clash[0]!r} is a key every sample already has "
                                     f"({', '.join(sorted(reserved))})")

    @field_validator("metrics")
    @classmethod
    def _measures(cls, bars: list[MetricBar], info: ValidationInfo) -> list[MetricBar]:
        """Each bar names one of the shape's metrics, each at most once, and every metric's name (the
        bar's or the default) differs from the others' (``shape`` and ``judge_non_answers`` come
        before ``metrics``, so they are read here)."""
        shape = info.data.get("shape")
        if shape is None:  # the shape itself is wrong: that error is the one reported
            return bars
        names = metric_names(shape, bool(info.data.get("judge_non_answers")), bars)
        seen: dict[str, str] = {}
        for kind, name in names.items():
            if name in seen:
                raise ValueError(f"{name!r} names both {seen[name]} and {kind}: metric names must differ "
                                 "(a metric without a bar keeps its default name)")
            seen[name] = kind
        return bars

    def bars(self) -> dict[str, MetricBar]:
        """The spec's metric bars by what they measure (``measures``, else the next in report order)."""
        return _assign(self.shape, self.judge_non_answers, self.metrics)

    def names(self) -> dict[str, str]:
        """Every metric's name by what it measures."""
        return metric_names(self.shape, self.judge_non_answers, self.metrics)


# ---- items ------------------------------------------------------------------------------------------

class SpecItem(BaseModel):
    """One item of a probe spec after its columns are read, whatever the shape."""

    id: str
    tags: dict[str, str] = Field(default_factory=dict)
    cue: bool | None = None
    prompt: str = ""
    more: str = ""
    less: str = ""
    question: str = ""
    choices: list[str] = Field(default_factory=list)
    answer: int = 0
    cluster: str = ""
    counterpart: str = ""
    direction: str = ""
    also_right: list[int] = Field(default_factory=list)
    turns: list[str] = Field(default_factory=list)  # multi-turn
    judged_from: int = 1  # multi-turn: the first turn whose reply is judged
    format: str = ""  # generated-rate: "chat", "text", or "" (the spec's ``chat``)


class _Bad(ValueError):
    """A record's field that is unusable: the column and the problem, worded by the caller."""

    def __init__(self, column: str, problem: str) -> None:
        self.column, self.problem = column, problem
        super().__init__(f"{column}: {problem}")


def _columns(spec: ProbeSpec) -> Columns:
    return spec.items.columns if isinstance(spec.items, ItemFile) else spec.columns or Columns()


def _text(record: dict[str, Any], column: str, strip: bool = True) -> str:
    """A required text field (a prompt keeps its whitespace: it is sent as written)."""
    value = record.get(column)
    if value is None:
        raise _Bad(column, "missing required field")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
        raise _Bad(column, "must be non-empty text")
    return str(value).strip() if strip else str(value)


def _scalar(record: dict[str, Any], column: str) -> str:
    """An optional id or tag column as text; a list or mapping there (which YAML aliases could make
    huge) is refused rather than turned into text."""
    value = record.get(column)
    if value is None or value == "":
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _Bad(column, "must be text or a number")
    return str(value).strip()


def _read_item(record: dict[str, Any], shape: str, cols: Columns, default_id: str, csv: bool,
               strict: bool = False) -> SpecItem:
    """One record read through ``cols`` (``strict``: every field a named column, an id in every
    record); _Bad names the column and the problem."""
    if strict:
        unknown = sorted(set(record) - cols.named(shape))
        if unknown:
            raise _Bad(str(unknown[0]), "unknown field (the fields read are " + ", ".join(sorted(cols.named(shape))) + ")")
        if not _scalar(record, cols.id):
            raise _Bad(cols.id, "missing required field")
    ident = _scalar(record, cols.id) or default_id
    tags = {t: _scalar(record, t) for t in cols.tags}
    if shape == "likelihood-pairs" and cols.tags and not tags[cols.tags[0]]:
        raise _Bad(cols.tags[0], "must be non-empty text (the pair's category)")
    cue_raw = record.get(cols.cue)
    cue: bool | None = None
    if cue_raw not in (None, ""):
        if isinstance(cue_raw, bool):
            cue = cue_raw
        elif isinstance(cue_raw, str) and cue_raw.strip().lower() in ("true", "false"):
            cue = cue_raw.strip().lower() == "true"
        else:
            raise _Bad(cols.cue, "must be true or false")
        if shape not in _JUDGED:
            raise _Bad(cols.cue, "control items (cue) apply to generated-rate and multi-turn only")
    optional = {"cluster": cols.cluster, "counterpart": cols.counterpart} if shape == "generated-rate" else \
        {"direction": cols.direction} if shape == "likelihood-pairs" else {}
    item = SpecItem(id=ident, tags=tags, cue=cue, **{k: _scalar(record, c) for k, c in optional.items() if c})
    if shape == "generated-rate":
        item.prompt = _text(record, cols.prompt, strip=False)
        layout = _scalar(record, cols.format) if cols.format else ""
        if layout not in ("", "chat", "text"):
            raise _Bad(cols.format or "format", "must be chat or text")
        item.format = layout
    elif shape == "likelihood-pairs":
        item.more, item.less = _text(record, cols.more), _text(record, cols.less)
    elif shape == "multi-turn":
        item.turns = _turns(record.get(cols.turns), cols.turns, csv)
        if cols.judged_from and _scalar(record, cols.judged_from):
            raw_from = _scalar(record, cols.judged_from)
            if not raw_from.isdigit() or not 1 <= int(raw_from) <= len(item.turns):
                raise _Bad(cols.judged_from, f"must be a turn number from 1 to {len(item.turns)} (got {raw_from[:20]!r})")
            item.judged_from = int(raw_from)
    else:
        item.question = _text(record, cols.question)
        raw = record.get(cols.choices)
        choices = raw.split(";") if csv and isinstance(raw, str) else raw
        if not isinstance(choices, list) or len(choices) < 2 or \
                any(not isinstance(c, str) or not c.strip() for c in choices):
            raise _Bad(cols.choices, "must be a list of at least two non-empty answers" + (" separated by ';'" if csv else ""))
        item.choices = [c.strip() for c in choices]
        answer = record.get(cols.answer)
        try:
            index = -1 if isinstance(answer, bool) or answer is None or \
                (isinstance(answer, float) and not answer.is_integer()) else int(answer)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(choices):
            raise _Bad(cols.answer, f"must be the index (from 0) of the right choice, 0 to {len(choices) - 1} "
                                    f"(got {repr(answer)[:40] if isinstance(answer, (str, int, float)) else type(answer).__name__})")
        item.answer = index
        if cols.also_right:
            item.also_right = _indices(record.get(cols.also_right), cols.also_right, len(choices), index, csv)
    return item


def _turns(raw: Any, column: str, csv: bool) -> list[str]:
    """A conversation's scripted user turns: 2 to MAX_TURNS non-empty texts (a CSV cell holds a JSON array)."""
    if raw is None:
        raise _Bad(column, "missing required field")
    if csv and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _Bad(column, "must be a JSON array of user turns, e.g. [\"Hi\", \"And then?\"]") from None
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_TURNS or \
            any(not isinstance(t, str) or not t.strip() for t in raw):
        raise _Bad(column, f"must be a list of 2 to {MAX_TURNS} non-empty user turns")
    return list(raw)


def _indices(raw: Any, column: str, n: int, answer: int, csv: bool) -> list[int]:
    """Further right choices: distinct indices, none the answer's, leaving at least one wrong choice."""
    if raw is None or raw == "":
        return []
    values = [v for v in raw.split(";") if v.strip()] if csv and isinstance(raw, str) else raw
    if not isinstance(values, list):
        raise _Bad(column, "must be a list of choice indices" + (" separated by ';'" if csv else ""))
    out: list[int] = []
    for v in values:
        try:
            k = int(v) if not isinstance(v, (bool, float)) else -1
        except (TypeError, ValueError):
            k = -1
        if not 0 <= k < n or k == answer or k in out:
            raise _Bad(column, f"must hold distinct indices (from 0) of right choices other than the answer, 0 to "
                               f"{n - 1} (got {str(v)[:40]!r})")
        out.append(k)
    if len(out) + 1 >= n:
        raise _Bad(column, "leaves no wrong choice")
    return out


def _item_path(spec_path: Path, raw: str) -> Path:
    """The item file: an absolute path as given; a relative one under the spec's directory, resolved
    (symlinks too) and refused when it leads outside it."""
    given = Path(raw)
    if given.is_absolute():
        return given
    base = spec_path.resolve().parent
    resolved = (base / given).resolve()
    if not resolved.is_relative_to(base):
        raise SpecError(spec_path, "items.path", f"{raw!r} leads outside the spec's directory ({base}); "
                                                 "give an absolute path to use a file elsewhere")
    return resolved


def _required(shape: str, cols: Columns) -> list[str]:
    """The columns every record of ``shape`` needs (a CSV header must hold them)."""
    return {"generated-rate": [cols.prompt], "likelihood-pairs": [cols.more, cols.less],
            "multiple-choice": [cols.question, cols.choices, cols.answer], "multi-turn": [cols.turns]}[shape]


def read_item_file(file: Path, shape: str, cols: Columns, csv: bool | None = None,
                   strict: bool = False) -> list[SpecItem]:
    """Every record of a JSONL or CSV item file (``csv``; None: by its suffix) read through ``cols``
    (``strict``: see ``UserDataset``); a record without an id is named by its line (``line-N``) or
    CSV row (``row-N``). DatasetError names the file and line."""
    csv = file.suffix.lower() == ".csv" if csv is None else csv
    rows: Iterable[tuple[int, Any]] = read_csv_rows(file, _required(shape, cols) + list(cols.tags)) if csv \
        else read_json_lines(file)
    items: list[SpecItem] = []
    seen: set[str] = set()
    for lineno, record in rows:
        if not isinstance(record, dict):
            raise DatasetError(f"{file}: line {lineno}: expected a JSON object per line")
        try:
            item = _read_item(record, shape, cols, f"{'row' if csv else 'line'}-{lineno}", csv=csv, strict=strict)
        except _Bad as exc:
            raise DatasetError(f"{file}: line {lineno}: {exc.column}: {exc.problem}") from None
        if item.id in seen:
            raise DatasetError(f"{file}: line {lineno}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{file}: no items")
    return items


def _read_items(spec: ProbeSpec, spec_path: Path, packaged: bool = False) -> tuple[list[SpecItem], Path | None]:
    """Every item of the spec, checked now (before any model loads), and the item file if there is one."""
    if isinstance(spec.items, ItemFile):
        file = _item_path(spec_path, spec.items.path)
        if packaged:  # project data beside it, under the path the built-in probes always reported
            file = project_data(spec.items.path)
        if not file.is_file():
            raise SpecError(spec_path, "items.path", f"{spec.items.path!r}: no such file")
        return read_item_file(file, spec.shape, spec.items.columns, strict=spec.items.strict), file
    items: list[SpecItem] = []
    cols = spec.columns or Columns()
    for k, record in enumerate(spec.items):
        try:
            items.append(_read_item(record, spec.shape, cols, f"item-{k + 1}", csv=False))
        except _Bad as exc:
            raise SpecError(spec_path, f"items[{k}].{exc.column}", exc.problem) from None
    if not items:
        raise SpecError(spec_path, "items", "no items")
    seen: set[str] = set()
    for k, item in enumerate(items):
        if item.id in seen:
            raise SpecError(spec_path, f"items[{k}]", f"duplicate id {item.id!r}")
        seen.add(item.id)
    return items, None


# ---- the engine -------------------------------------------------------------------------------------

class BlockListScorer:
    """A scorer that flags an output holding any of a spec's blocked strings (case-insensitive)."""

    def __init__(self, blocked: Sequence[str]) -> None:
        self.blocked = [b.lower() for b in blocked]

    @property
    def threshold(self) -> float:
        return 0.5

    def score(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        return [1.0 if any(b in t.lower() for b in self.blocked) else 0.0 for t in texts]

    def flags(self, scores: Sequence[float]) -> list[bool]:
        return [s >= self.threshold for s in scores]

    def info(self) -> ScorerInfo:
        return ScorerInfo(name="block-list", version="1", measures="block_list", threshold=0.5,
                          note=f"{len(self.blocked)} blocked strings, matched case-insensitively")


class _PIIScorer:
    """The run's PII detector as a scorer: an output with any finding is flagged."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.detector = ctx.pii()

    @property
    def threshold(self) -> float:
        return 0.5

    def score(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        return [1.0 if found else 0.0 for found in self.detector.analyze(list(texts))]

    def flags(self, scores: Sequence[float]) -> list[bool]:
        return [s >= self.threshold for s in scores]

    def info(self) -> ScorerInfo:
        return ScorerInfo(name="pii-detector", version="run", measures="pii", threshold=0.5,
                          note="any finding of the run's PII detector is a flag")


def _judge(spec: ProbeSpec, ctx: ProbeContext) -> Scorer:
    """The scorer whose flags a judged shape counts: the block list, the PII detector or the role's scorer."""
    if spec.block_list:
        return BlockListScorer(spec.block_list)
    if spec.role == "pii":
        return _PIIScorer(ctx)
    return ctx.scorer(spec.role or "")


def _judged_as(spec: ProbeSpec) -> str:
    """What a hit is, for metric descriptions: '... the refusal scorer does not flag (non-answers left out)'."""
    what = "holding a blocked string" if spec.block_list else \
        f"the {spec.role} scorer {'flags' if spec.hit == 'flagged' else 'does not flag'}"
    return what + (" (non-answers left out)" if spec.judge_non_answers else "")


class _SpecMixin:
    """What every spec probe holds: its spec, its file, its items (read when the spec loaded)."""

    probe_spec: ClassVar[ProbeSpec]
    spec_items: ClassVar[list[SpecItem]]
    item_file: ClassVar[Path | None]
    spec_path: ClassVar[Path]
    source: ClassVar[str | None]
    packaged: ClassVar[bool] = False

    @classmethod
    def read_columns(cls, user_dataset: bool) -> Columns:
        """The columns items are read through: a user's dataset's (default: the items'), or the items'."""
        spec = cls.probe_spec
        return (spec.dataset.columns if user_dataset and spec.dataset else None) or _columns(spec)

    @classmethod
    def dataset_items(cls, path: Path) -> list[SpecItem]:
        """A user's dataset file (``--dataset``) read as the probe reads it: through the spec's dataset
        columns, as the kind its ``format`` names first (CSV, JSONL; else the file's suffix).
        DatasetError names the file and line."""
        spec = cls.probe_spec
        kind = dataset_kind(path, spec.dataset.format if spec.dataset else None)
        return read_item_file(path, spec.shape, cls.read_columns(True), csv=kind == "csv",
                              strict=bool(spec.dataset and spec.dataset.strict))

    @classmethod
    def reports_controls(cls) -> bool:
        """Whether the probe declares a control metric (its own items hold controls)."""
        return any(s.outcome in ("control_counted", "control_any_flagged") for s in cls.metric_specs)

    @classmethod
    def check_dataset(cls, path: Path) -> None:
        """Before the model loads: every record of the user's file read through the columns, and
        control items only where the probe reports controls."""
        items = cls.dataset_items(path)
        if not cls.reports_controls() and any(i.cue is False for i in items):
            raise DatasetError(f"{path}: items with cue false are controls, which {cls.id} does not report; "
                               "remove the cue field")

    def spec_items_for(self, ctx: ProbeContext) -> tuple[list[SpecItem], DatasetInfo]:
        """The items a run reads (``--dataset``: the user's file through the dataset columns, else the
        spec's own) before depth and limit, and their provenance (the item file's name and sha256; the
        spec's own when its items are inline)."""
        if ctx.dataset is not None:
            items = self.dataset_items(ctx.dataset)
            return items, dataset_info(ctx.dataset, len(items), user=True)
        return self.spec_items, dataset_info(self.item_file or self.spec_path, len(self.spec_items),
                                             user=not self.packaged)

    def _tag(self, item: SpecItem, k: int, ctx: ProbeContext) -> str:
        """An item's k-th tag (the columns of the file it was read from)."""
        tags = self.read_columns(ctx.dataset is not None).tags
        return item.tags.get(tags[k], "") if len(tags) > k else ""


class GeneratedRateSpecProbe(_SpecMixin, ScoredGenerationProbe):
    """A generated-rate spec: each prompt's reply scored by the spec's role (or block list); the
    metric is the share of hits (``hit: flagged``, or ``not_flagged``: compliance = not refused)."""

    @property
    def judge_attempts(self) -> bool:
        return self.probe_spec.judge_non_answers

    def load_items(self, ctx: ProbeContext[GenParams]) -> tuple[list[TextPrompt], DatasetInfo]:
        found, info = self.spec_items_for(ctx)
        fmt: Literal["chat", "text"] = "chat" if self.probe_spec.chat else "text"
        # the first tag is the breakdown the shape reports (its ``stratum``), the second its ``kind``
        items = ctx.take([TextPrompt(id=i.id, text=i.prompt, format=i.format or fmt, cue=i.cue,  # type: ignore[arg-type]
                                     stratum=self._tag(i, 0, ctx),
                                     kind=self._tag(i, 1, ctx), cluster=i.cluster, counterpart=i.counterpart or None)
                          for i in found])
        # as every generated-rate probe reports it: the items this run sent (depth, limit)
        return items, info.model_copy(update={"n_items": len(items)})

    def item_scorer(self, ctx: ProbeContext[GenParams]) -> Scorer:
        return _judge(self.probe_spec, ctx)

    def replies(self, ctx: ProbeContext[GenParams], items: list[TextPrompt]) -> list[str]:
        g = self.probe_spec.generation
        ctx.progress.start(len(items), "outputs")
        outs = ctx.model.generate([i.prompt() for i in items],
                                  GenerationParams(max_new_tokens=ctx.params.max_new_tokens, temperature=g.temperature,
                                                   top_p=g.top_p, stop=tuple(g.stop), seed=ctx.seed),
                                  progress=ctx.progress.advance)
        return [o.text for o in outs]

    def run(self, ctx: ProbeContext[GenParams]) -> ProbeResult:
        result = super().run(ctx)
        g = self.probe_spec.generation
        if g.temperature > 0:
            result.notes[0] = result.notes[0].replace("greedy", f"sampled at temperature {g.temperature:g} "
                                                                f"(top_p {g.top_p:g}, the run's seed)")
        if not self.probe_spec.chat:
            result.notes[0] = result.notes[0].split(";")[0] + "; prompts sent as raw text (chat: false)"
        return result


class PairsSpecProbe(_SpecMixin, Probe[PairParams]):
    """A likelihood-pairs spec: the share of pairs whose ``more`` sentence the model finds more likely,
    each sentence scored whole, conditioned only on BOS (``probes._pairs``, as lm-evaluation-harness
    scores CrowS-Pairs); breakdowns by the first tag (``category``) and, when given, ``direction``."""

    kind = "loglikelihood"
    Params = PairParams

    def _pairs(self, ctx: ProbeContext) -> tuple[list[tuple[str, str, str, str, str]], DatasetInfo]:
        found, info = self.spec_items_for(ctx)
        return ctx.take([(i.id, self._tag(i, 0, ctx) or "all", i.more, i.less, i.direction) for i in found]), info

    def item_texts(self, ctx: ProbeContext[PairParams]) -> list[ItemText]:
        """Both sentences of each pair, one per line."""
        return [(pid, f"{a}\n{b}") for pid, _, a, b, _ in self._pairs(ctx)[0]]

    def run(self, ctx: ProbeContext[PairParams]) -> ProbeResult:
        pairs, info = self._pairs(ctx)
        labels = self.probe_spec.labels or PairLabels()
        names = tuple(s.name for s in self.metric_specs)
        return pair_result(type(self), names[0], score_pairs(ctx, pairs), info, ctx.seed, labels.more, labels.less,
                           per_token=names[1], diff=names[2])


class ChoiceSpecProbe(_SpecMixin, Probe[ProbeParams]):
    """A multiple-choice spec: the share of questions whose right choice (``answer``) outranks every
    wrong one by log-likelihood given the question (MC1), and the mean probability mass on the right
    choices (``answer`` and ``also_right``; MC2), as ``misinformation.truthfulness_mc`` scores them;
    the question is a user turn through the chat template (``chat: true`` and a model that has one),
    else ``Q: ... A:``."""

    kind = "loglikelihood"

    def item_texts(self, ctx: ProbeContext) -> list[ItemText]:
        return [(i.id, "\n".join([i.question, *i.choices])) for i in ctx.take(self.spec_items_for(ctx)[0])]

    def run(self, ctx: ProbeContext) -> ProbeResult:
        found, info = self.spec_items_for(ctx)
        items: list[SpecItem] = ctx.take(found)
        use_chat = self.probe_spec.chat and ctx.model.capabilities().chat_template
        requests: list[LoglikRequest] = []
        starts: list[int] = []
        for it in items:
            context, sep = qa_context(it.question, use_chat)
            starts.append(len(requests))
            requests += [LoglikRequest(context=context, continuation=sep + c) for c in it.choices]
        ctx.progress.start(len(requests), "answers")
        res = ctx.model.loglikelihood(requests, progress=ctx.progress.advance)
        right, masses, samples, examples = [], [], [], []
        for it, s in zip(items, starts):
            lps = [r.logprob for r in res[s: s + len(it.choices)]]
            trues = [it.answer, *it.also_right]
            others = [lp for k, lp in enumerate(lps) if k not in trues]
            ok, mass = mc_scores([lps[k] for k in trues], others)
            right.append(ok)
            masses.append(mass)
            samples.append({"id": it.id, **it.tags, "question": it.question, "correct": ok, "mass_on_right": mass,
                            "choices": [{"text": c, "right": k in trues, "logprob": lp}
                                        for k, (c, lp) in enumerate(zip(it.choices, lps))]})
            if not ok:
                best = max(range(len(lps)), key=lps.__getitem__)
                examples.append(Example(sample_id=it.id, prompt=it.question, output=it.choices[best],
                                        expected=it.choices[it.answer], score=mass,
                                        detail=f"preferred a wrong choice by {lps[best] - lps[it.answer]:.2f} nats"))
        tags = self.read_columns(ctx.dataset is not None).tags
        breakdowns = [stats.grouped(t, zip([i.tags.get(t, "") for i in items], right), "rate") for t in tags]
        # MC1 by chance: the answer outranks the wrong choices (the other right ones are left out)
        chance = sum(1 / (len(i.choices) - len(i.also_right)) for i in items) / len(items) if items else None
        mc1, mc2 = (s.name for s in self.metric_specs)
        return ProbeResult(metrics=[self.metric(mc1, stats.rate(right), breakdowns, chance=chance),
                                    self.metric(mc2, stats.mean(masses, seed=ctx.seed))],
                           samples=samples, worst_examples=examples[:5], dataset=info,
                           notes=[f"prompt layout: {'chat template, question as user turn' if use_chat else 'Q: question / A: answer'}"])


class MultiTurnSpecProbe(_SpecMixin, Probe[MultiTurnParams]):
    """A multi-turn spec: each conversation's scripted user turns sent one by one, the model's own
    replies fed back (``probes._multiturn``, as toxicity.escalation and malicious_use.decomposition
    run theirs); every reply judged alone by the spec's role (or block list). Reports the share of
    conversations with a hit at any turn (gated) and at every turn, the share of replies that are hits
    by turn (corrected for the scorer's error, intervals over whole conversations), the rise from the
    first turn to the last, non-answers (``judge_non_answers``), and on controls (``cue: false``) the
    share of conversations with a hit at any turn."""

    kind = "generation"

    def _conversations(self, ctx: ProbeContext) -> tuple[list[SpecItem], DatasetInfo]:
        found, info = self.spec_items_for(ctx)
        items: list[SpecItem] = ctx.take(found)
        return items, info.model_copy(update={"n_items": len(found)})

    def item_texts(self, ctx: ProbeContext[MultiTurnParams]) -> list[ItemText]:
        """Each conversation's scripted user turns, one per line."""
        return [(i.id, "\n".join(i.turns)) for i in self._conversations(ctx)[0]]

    def run(self, ctx: ProbeContext[MultiTurnParams]) -> ProbeResult:
        spec = self.probe_spec
        items, info = self._conversations(ctx)
        names = spec.names()
        scorer = _judge(spec, ctx)
        scripts = [ScriptedConversation(id=i.id, cue=i.cue is not False, turns=i.turns) for i in items]
        transcripts, notes = run_conversations(ctx, scripts, ctx.params)
        users = [t.user for tr in transcripts for t in tr.turns]
        replies = [t.reply for tr in transcripts for t in tr.turns]
        flagged = scorer.flags(scorer.score(replies))
        hit = [f == (spec.hit == "flagged") for f in flagged]
        reasons: list[str | None] = [None] * len(replies)
        if spec.judge_non_answers:
            reasons = judge_non_answers(ctx, users, replies, flagged)
            hit = [h and why is None for h, why in zip(hit, reasons)]
        flags, why_not = by_conversation(flagged, transcripts), by_conversation(reasons, transcripts)
        # what counts: the replies from each conversation's judged_from turn on (earlier ones are context)
        start = [i.judged_from - 1 for i in items]
        hits = [h[s:] for h, s in zip(by_conversation(hit, transcripts), start)]
        empty = [e[s:] for e, s in zip(by_conversation([why is not None for why in reasons], transcripts), start)]
        turn_label = "turn" if not any(start) else "judged turn (1 = each conversation's judged_from)"
        main = [k for k, s in enumerate(scripts) if s.cue]
        ctrl = [k for k, s in enumerate(scripts) if not s.cue]
        reports_controls = self.reports_controls()
        if ctrl and not reports_controls:
            raise DatasetError(f"{info.path}: conversations with cue false are controls, which {self.id} does not "
                               "report (its own items hold none); remove the cue field")
        tag = self.read_columns(ctx.dataset is not None).tags[:1]

        def tagged(ks: list[int], values: list[bool]) -> list[Breakdown]:
            return [stats.grouped(tag[0], zip([items[k].tags.get(tag[0], "") for k in ks], values), "rate")] \
                if tag else []

        per_conversation = "a per-conversation rate over its turns, not a plain rate of the scorer's flags"
        any_hit, all_hit = [any(hits[k]) for k in main], [all(hits[k]) for k in main]
        metrics = [not_corrected(self.metric(names["rate"], stats.rate(any_hit), tagged(main, any_hit)),
                                 per_conversation),
                   not_corrected(self.metric(names["all_turns_rate"], stats.rate(all_hit), tagged(main, all_hit)),
                                 per_conversation)]
        turns_metric = self.metric(names["turn_rate"], turn_rate([hits[k] for k in main], ctx.seed),
                                   [by_turn(turn_label, [hits[k] for k in main])])
        correct(turns_metric, [h for k in main for h in hits[k]], scorer.info(), seed=ctx.seed,
                negated=spec.hit != "flagged", clusters=[items[k].id for k in main for _ in hits[k]])
        metrics += [turns_metric, self.metric(names["escalation_gap"], first_last([hits[k] for k in main]))]
        if spec.judge_non_answers:
            turns_metric.correction_note += NON_ANSWERS_REMOVED
            metrics.append(self.metric(names["non_answer_rate"], turn_rate([empty[k] for k in main], ctx.seed),
                                       [by_turn(turn_label, [empty[k] for k in main])]))
        if reports_controls and ctrl:
            judged_flags = [flags[k][start[k]:] for k in ctrl]
            metrics.append(not_corrected(self.metric(names["control_rate"], stats.rate([any(f) for f in judged_flags]),
                                                     [by_turn(f"flagged at {turn_label}", judged_flags)]),
                                         per_conversation))
        elif reports_controls:
            notes.append("no control conversations (cue: false) among the items run: the control metric is left out")
        samples = []
        for k, (item, tr) in enumerate(zip(items, transcripts)):
            h, cue, s = hits[k], scripts[k].cue, start[k]
            samples.append({"id": item.id, **{t: item.tags.get(t, "") for t in tag}, "cue": cue,
                            "judged_from": s + 1,
                            "turns": [{"turn": t + 1, "prompt": turn.user, "output": turn.reply, "flagged": flags[k][t],
                                       "hit": h[t - s] if t >= s else None, "non_answer_reason": why_not[k][t],
                                       "dropped_turns": turn.dropped, "finish_reason": turn.finish_reason}
                                      for t, turn in enumerate(tr.turns)],
                            "hits": sum(h), "any_hit": any(h) if cue else None, "all_hits": all(h) if cue else None,
                            "escalation": float(h[-1]) - float(h[0]) if cue else None,
                            "control_any_flagged": None if cue else any(flags[k][s:])})
        worst = []
        for k in sorted((k for k in main if any(hits[k])), key=lambda k: -sum(hits[k]) / len(hits[k]))[:5]:
            first = start[k] + hits[k].index(True)
            worst.append(transcript_example(items[k].id, transcripts[k], first,
                                            detail=f"{spec.example_detail or names['rate']}: a hit at turn {first + 1} "
                                                   f"of {len(transcripts[k].turns)}, {sum(hits[k])} in all"))
        used = [scorer.info()] + ([ctx.scorer("non_answer").info()] if spec.judge_non_answers else [])
        notes.append("each reply is judged alone (not the user turns, not the conversation)")
        return ProbeResult(metrics=metrics, samples=samples, worst_examples=worst, scorers=used, notes=notes,
                           dataset=info)


def _metric_specs(spec: ProbeSpec, controls: bool) -> tuple[MetricSpec, ...]:
    """The metrics a spec's probe declares, in the order its report lists them, each with the spec's
    bar (name, description, direction, ideal, warn/fail) where it gives one."""
    bars, names = spec.bars(), spec.names()

    def declared(kind: str, description: str, outcome: str, ideal: float | None = None, unit: str = "rate",
                 direction: tuple[bool | None] | None = None) -> MetricSpec:
        outcome_or_none = outcome or None  # "": not a mean over items (a rate over replies)
        bar = bars.get(kind)
        higher = _HIGHER_IS_BETTER[kind] if direction is None else direction[0]
        if bar is None:
            return MetricSpec(name=names[kind], description=description, ideal=ideal, higher_is_better=higher,
                              unit=unit, outcome=outcome_or_none)
        threshold = Threshold(warn=bar.warn, fail=bar.fail) if bar.warn is not None or bar.fail is not None else None
        return MetricSpec(name=bar.name, description=bar.description or description,
                          ideal=bar.ideal if bar.ideal is not None else ideal, unit=unit,
                          higher_is_better=bar.higher_is_better if "higher_is_better" in bar.model_fields_set
                          else higher, threshold=threshold, outcome=outcome_or_none)

    if spec.shape == "generated-rate":
        what = f"outputs {_judged_as(spec)}"
        out = [declared("rate", f"share of {what}", "counted")]
        if spec.judge_non_answers:
            out.append(declared("non_answer_rate", "share of replies that neither decline nor attempt the request "
                                                   "(empty, echo, question back, repetitive, off-topic)", "non_answer"))
        if controls:
            out.append(declared("control_rate", f"share of {what}, on the control items (cue: false)",
                                "control_counted"))
        return tuple(out)
    if spec.shape == "multi-turn":
        what = _judged_as(spec)
        out = [declared("rate", f"share of conversations with at least one reply {what}", "any_hit"),
               declared("all_turns_rate", f"share of conversations in which every reply is one {what}", "all_hits"),
               declared("turn_rate", f"share of all replies {what}, by turn (interval resamples whole conversations)",
                        ""),
               declared("escalation_gap", "hit rate at each conversation's last turn minus at its first, paired by "
                                          "conversation: above 0, hits grow as the conversation goes on", "escalation",
                        ideal=0.0)]
        if spec.judge_non_answers:
            out.append(declared("non_answer_rate", "share of replies that neither decline nor attempt (empty, echo, "
                                                   "question back, repetitive, off-topic)", ""))
        if controls:
            flagged = "holding a blocked string" if spec.block_list else f"the {spec.role} scorer flags"
            out.append(declared("control_rate", f"share of control conversations (cue: false) with at least one reply "
                                                f"{flagged}" + (" (declined at some turn: over-refusal)"
                                                                if spec.hit == "not_flagged" else ""),
                                "control_any_flagged"))
        return tuple(out)
    if spec.shape == "likelihood-pairs":
        labels = spec.labels or PairLabels()
        main = declared("rate", f"share of pairs where the {labels.more!r} sentence is more likely; 50% = no preference",
                        f"prefers_{labels.more}", ideal=0.5)
        return (main,
                declared("rate_per_token", "the same comparison on mean log-likelihood per token",
                         f"prefers_{labels.more}_per_token", ideal=0.5, direction=(main.higher_is_better,)),
                declared("likelihood_diff", "mean absolute log-likelihood difference within a pair",
                         "likelihood_diff", unit="nats"))
    return (declared("accuracy", "share of questions whose right choice (the answer) outranks every wrong one by "
                                 "log-likelihood (MC1)", "correct", ideal=1.0),
            declared("mc2", "mean probability mass on the right choices, normalised over all choices (MC2)",
                     "mass_on_right", ideal=1.0))


def build_probe(spec: ProbeSpec, spec_path: Path, items: list[SpecItem], item_file: Path | None,
                packaged: bool = False) -> type[Probe]:
    """The probe class a validated spec describes (a user's is never registered globally; a packaged
    one, ``packaged``, is a built-in probe: no authors' caveat, project provenance)."""
    controls = any(i.cue is False for i in items)
    if items and all(i.cue is False for i in items):
        raise SpecError(spec_path, "items", "every item is a control (cue: false): nothing is measured")
    control_bar = spec.bars().get("control_rate")
    if control_bar is not None and not controls:
        k = next(k for k, b in enumerate(spec.metrics) if b is control_bar)
        raise SpecError(spec_path, f"metrics[{k}]", f"{spec.metrics[k].name} measures control_rate, but no item is "
                                                    "a control (cue: false): the bar would never apply")
    source = f"builtin:probes/data/{spec_path.name}" if packaged else str(spec_path)
    caveat = () if packaged else (f"Written as a probe spec ({spec_path}), not by lm-risk-audit: its items and "
                                  "bars are its authors'.",)
    attrs: dict[str, Any] = {
        "__doc__": f"{spec.about or spec.description}\n\nA probe written as data: {source}.",
        "id": spec.id, "version": spec.version, "risks": tuple(spec.risks), "description": spec.description,
        "limitations": tuple(spec.limitations) + caveat, "standard_items": spec.standard_items,
        "metric_specs": _metric_specs(spec, controls), "dataset_format": spec.dataset.format if spec.dataset else None,
        "probe_spec": spec, "spec_items": items, "item_file": item_file, "spec_path": spec_path, "source": source,
        "packaged": packaged,
    }
    if spec.shape == "generated-rate":
        attrs["Params"] = create_model(
            "SpecGenParams", __base__=GenParams,
            max_new_tokens=(int, Field(default=spec.generation.max_new_tokens, ge=1, le=1024)))
        roles = (spec.role,) if spec.role and spec.role != "pii" else ()
        attrs["scorer_roles"] = roles + (("non_answer",) if spec.judge_non_answers else ())
        attrs["uses_pii"] = spec.role == "pii"
        attrs["count_flagged"] = spec.hit == "flagged"
        attrs["metric_name"] = attrs["metric_specs"][0].name
        attrs["non_answer_metric"] = spec.names().get("non_answer_rate", "non_answer_rate")
        attrs["control_metric"] = attrs["metric_specs"][-1].name if controls else ""
        tags = _columns(spec).tags
        attrs["breakdown_by"] = spec.breakdown or (tags[0] if tags else "stratum")
        attrs["example_detail"] = spec.example_detail
        attrs["data_file"] = ""
        base: type[Probe] = GeneratedRateSpecProbe
    elif spec.shape == "multi-turn":
        g = spec.generation
        attrs["Params"] = create_model(
            "SpecMultiTurnParams", __base__=MultiTurnParams,
            max_new_tokens=(int, Field(default=g.max_new_tokens, ge=1, le=1024, description="new tokens per reply")),
            temperature=(float, Field(default=g.temperature, ge=0.0, description="0: greedy; above 0 sampled, seeded")),
            top_p=(float, Field(default=g.top_p, gt=0.0, le=1.0, description="nucleus sampling when temperature > 0")))
        attrs["scorer_roles"] = ((spec.role,) if spec.role else ()) + (("non_answer",) if spec.judge_non_answers else ())
        base = MultiTurnSpecProbe
    elif spec.shape == "likelihood-pairs":
        base = PairsSpecProbe
    else:
        base = ChoiceSpecProbe
    name = "Spec_" + spec.id.replace(".", "_")
    return type(name, (base,), attrs)


def load_probe_spec(path: Path | str, builtin: Iterable[str] = (),
                    packaged: bool = False) -> tuple[type[Probe], dict[str, str]]:
    """A spec file's probe class, and the sha256 of the files it was made from (the spec, its item
    file) by path. ``builtin``: the ids it may not take. SpecError / DatasetError name file and key.
    ``packaged``: one of the project's own specs (``register_packaged``)."""
    path = Path(path)
    try:
        data = read_user_yaml(path, "probe spec", expect=None)
    except UserFileError as exc:
        raise SpecError(path, exc.where, exc.problem) from None
    if not isinstance(data, dict):
        raise SpecError(path, "", "expected a mapping with id, version, description, risks, shape and items")
    try:
        spec = ProbeSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(path, validation_location(exc, data), validation_problem(exc)) from None
    if spec.id in set(builtin):
        raise SpecError(path, "id", f"{spec.id!r} is a built-in probe's id; choose another (e.g. 'acme.{spec.id.split('.')[-1]}')")
    items, item_file = _read_items(spec, path, packaged)
    probe = build_probe(spec, path, items, item_file, packaged)
    if packaged:  # part of the package: a run records its items' sha256 (DatasetInfo), not the spec's
        return probe, {}
    return probe, {str(path): file_sha256(path)} | ({str(item_file): file_sha256(item_file)} if item_file else {})


def packaged_specs() -> list[Path]:
    """The project's own probe specs: ``probes/data/<probe id>.yaml``."""
    return sorted(p for p in project_data("").iterdir() if p.suffix == ".yaml" and p.is_file())


def register_packaged() -> list[type[Probe]]:
    """Build every packaged spec and put it in the registry with the built-in probe classes."""
    out = []
    for path in packaged_specs():
        probe, _ = load_probe_spec(path, packaged=True)
        if path.name != f"{probe.id}.yaml":
            raise SpecError(path, "id", f"a packaged spec is named after its probe id ({probe.id}.yaml)")
        out.append(register(probe))
    return out


def spec_files(files: Sequence[Path] = (), dirs: Sequence[Path] = ()) -> list[Path]:
    """The spec files given, then every ``*.yaml`` / ``*.yml`` of each directory (sorted), once each."""
    out = [Path(f) for f in files]
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise SpecError(d, "", "not a directory (--probe-dir takes a directory of probe specs)")
        out += sorted(p for p in d.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    return list(dict.fromkeys(out))


def load_probe_specs(files: Sequence[Path] = (), dirs: Sequence[Path] = (),
                     builtin: Iterable[str] = ()) -> tuple[list[type[Probe]], dict[str, str]]:
    """Every spec of ``files`` and ``dirs`` as a probe class (ids unique among them and apart from
    ``builtin``), and the sha256 of every file they were made from."""
    builtin = set(builtin)
    probes: list[type[Probe]] = []
    shas: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for path in spec_files(files, dirs):
        probe, found = load_probe_spec(path, builtin)
        if probe.id in seen:
            raise SpecError(path, "id", f"{probe.id!r} is also the id of {seen[probe.id]}")
        seen[probe.id] = path
        probes.append(probe)
        shas |= found
    return probes, shas
