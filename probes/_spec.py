"""Probes as data: a team's own probe, written as a YAML spec, turned into a probe class at run time.

A spec is data, never code: read with ``yaml.safe_load`` (``taxonomy.read_user_yaml``; a
``!!python/object`` tag is a load error), validated by pydantic with unknown keys refused, and it
names only a *shape* the project already implements: ``generated-rate`` (``ScoredGenerationProbe``:
generate, score with a scorer role or a block list, count the hits), ``likelihood-pairs``
(``probes._pairs``: which of two sentences the model finds more likely) and ``multiple-choice`` (the
MC1 comparison of ``misinformation.truthfulness_mc``). So a spec probe's statistics (Wilson and
clustered intervals, scorer correction, statuses) are the built-in probes'.

Errors are ``SpecError`` (a ``DatasetError``, exit 2) worded as the taxonomy's:
``FILE: KEY.PATH: problem``. Spec probes are never put in the global registry: a run holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from probes import stats
from probes._datasets import dataset_info, file_sha256, read_csv_rows, read_json_lines
from probes._pairs import PairParams, pair_result, score_pairs
from probes._preference import qa_context
from probes._registry import _PROBE_ID
from probes._scored import GenParams, ScoredGenerationProbe, TextPrompt
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
from reports import DatasetInfo, Example, ScorerInfo, Threshold
from taxonomy import (
    UserFileError,
    read_user_yaml,
    validation_location,
    validation_problem,
)

Shape = Literal["generated-rate", "likelihood-pairs", "multiple-choice"]
SHAPES: tuple[str, ...] = ("generated-rate", "likelihood-pairs", "multiple-choice")
# The scorer roles a generated-rate spec may name: the run's scorer roles (audit.scorers.ROLES; a
# test keeps the two lists equal) and ``pii``, the run's PII detector (any finding is a flag).
SPEC_ROLES: tuple[str, ...] = ("toxicity", "regard", "refusal", "claims", "identity", "non_answer", "pii")
# What a shape reports, in order: the metric names a spec gives in ``metrics:`` name these.
_DEFAULT_METRICS = {"generated-rate": ["hit_rate", "control_hit_rate"], "likelihood-pairs": ["more_rate"],
                    "multiple-choice": ["accuracy"]}


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
    answer: str = "answer"  # index of the right choice, from 0
    tags: list[str] = Field(default_factory=list)  # breakdowns, the first one in the samples too
    cue: str = "cue"  # optional: false marks a control item (generated-rate), reported apart


class ItemFile(_Strict):
    path: str = Field(min_length=1)
    columns: Columns = Field(default_factory=Columns)


class Generation(_Strict):
    """Mapped onto ``probes.GenerationParams`` (the seed is the run's)."""

    max_new_tokens: int = Field(default=64, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)


class MetricBar(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    higher_is_better: bool | None = False
    # finite: a NaN bar would never be crossed, so the metric would always pass
    warn: float | None = Field(default=None, allow_inf_nan=False)
    fail: float | None = Field(default=None, allow_inf_nan=False)


class ProbeSpec(_Strict):
    """A probe written as data. See ``lm-audit probes new`` for a commented starter."""

    id: str
    version: str = Field(min_length=1)
    description: str = Field(min_length=1)
    risks: list[str] = Field(min_length=1)
    limitations: list[str] = Field(default_factory=list)
    shape: Shape
    items: list[dict[str, Any]] | ItemFile
    columns: Columns | None = None  # for inline items (an item file has its own)
    generation: Generation = Field(default_factory=Generation)
    chat: bool = True
    role: str | None = None
    hit: Literal["flagged", "not_flagged"] = "flagged"
    block_list: list[str] = Field(default_factory=list)
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
        generated = self.shape == "generated-rate"
        if generated and (self.role is None) == (not self.block_list):
            raise ValueError("a generated-rate spec names a scorer role or a block_list (one of the two)")
        if not generated and (self.role is not None or self.block_list):
            raise ValueError(f"role and block_list apply to generated-rate, not {self.shape}")
        if self.block_list and self.hit != "flagged":
            raise ValueError("with a block_list a hit is an output that holds a blocked string (hit: flagged)")
        most = len(_DEFAULT_METRICS[self.shape])
        if len(self.metrics) > most:
            raise ValueError(f"{self.shape} reports at most {most} metric(s): "
                             f"{', '.join(_DEFAULT_METRICS[self.shape])} (rename them here)")
        return self


# ---- items ------------------------------------------------------------------------------------------

class _Item(BaseModel):
    """One item after the columns are read, whatever the shape."""

    id: str
    tags: dict[str, str] = Field(default_factory=dict)
    cue: bool | None = None
    prompt: str = ""
    more: str = ""
    less: str = ""
    question: str = ""
    choices: list[str] = Field(default_factory=list)
    answer: int = 0


class _Bad(ValueError):
    """A record's field that is unusable: the column and the problem, worded by the caller."""

    def __init__(self, column: str, problem: str) -> None:
        self.column, self.problem = column, problem
        super().__init__(f"{column}: {problem}")


def _columns(spec: ProbeSpec) -> Columns:
    return spec.items.columns if isinstance(spec.items, ItemFile) else spec.columns or Columns()


def _text(record: dict[str, Any], column: str) -> str:
    value = record.get(column)
    if value is None:
        raise _Bad(column, "missing required field")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
        raise _Bad(column, "must be non-empty text")
    return str(value).strip()


def _scalar(record: dict[str, Any], column: str) -> str:
    """An optional id or tag column as text; a list or mapping there (which YAML aliases could make
    huge) is refused rather than turned into text."""
    value = record.get(column)
    if value is None or value == "":
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _Bad(column, "must be text or a number")
    return str(value)


def _read_item(record: dict[str, Any], shape: str, cols: Columns, default_id: str, csv: bool) -> _Item:
    """One record read through ``cols``; _Bad names the column and the problem."""
    ident = _scalar(record, cols.id) or default_id
    tags = {t: _scalar(record, t) for t in cols.tags}
    cue_raw = record.get(cols.cue)
    cue: bool | None = None
    if cue_raw not in (None, ""):
        if isinstance(cue_raw, bool):
            cue = cue_raw
        elif isinstance(cue_raw, str) and cue_raw.strip().lower() in ("true", "false"):
            cue = cue_raw.strip().lower() == "true"
        else:
            raise _Bad(cols.cue, "must be true or false")
        if shape != "generated-rate":
            raise _Bad(cols.cue, "control items (cue) apply to generated-rate only")
    item = _Item(id=ident, tags=tags, cue=cue)
    if shape == "generated-rate":
        item.prompt = _text(record, cols.prompt)
    elif shape == "likelihood-pairs":
        item.more, item.less = _text(record, cols.more), _text(record, cols.less)
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
            index = int(answer) if not isinstance(answer, bool) and answer is not None else -1
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(choices):
            raise _Bad(cols.answer, f"must be the index (from 0) of the right choice, 0 to {len(choices) - 1} "
                                    f"(got {repr(answer)[:40] if isinstance(answer, (str, int, float)) else type(answer).__name__})")
        item.answer = index
    return item


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


def _read_items(spec: ProbeSpec, spec_path: Path) -> tuple[list[_Item], Path | None]:
    """Every item of the spec, checked now (before any model loads), and the item file if there is one."""
    items: list[_Item] = []
    if isinstance(spec.items, list):
        cols = spec.columns or Columns()
        for k, record in enumerate(spec.items):
            try:
                items.append(_read_item(record, spec.shape, cols, f"item-{k + 1}", csv=False))
            except _Bad as exc:
                raise SpecError(spec_path, f"items[{k}].{exc.column}", exc.problem) from None
        file: Path | None = None
    else:
        file = _item_path(spec_path, spec.items.path)
        cols = spec.items.columns
        if not file.is_file():
            raise SpecError(spec_path, "items.path", f"{spec.items.path!r}: no such file")
        csv = file.suffix.lower() == ".csv"
        rows: Iterable[tuple[int, Any]] = read_csv_rows(file, []) if csv else read_json_lines(file)
        for lineno, record in rows:
            if not isinstance(record, dict):
                raise DatasetError(f"{file}: line {lineno}: expected a JSON object per line")
            try:
                items.append(_read_item(record, spec.shape, cols, f"line-{lineno}", csv=csv))
            except _Bad as exc:
                raise DatasetError(f"{file}: line {lineno}: {exc.column}: {exc.problem}") from None
    if not items:
        raise SpecError(spec_path, "items", "no items")
    seen: set[str] = set()
    for k, item in enumerate(items):
        if item.id in seen:
            raise SpecError(file or spec_path, f"items[{k}]" if file is None else f"item {k + 1}",
                            f"duplicate id {item.id!r}")
        seen.add(item.id)
    return items, file


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


class _SpecMixin:
    """What every spec probe holds: its spec, its file, its items (read when the spec loaded)."""

    probe_spec: ClassVar[ProbeSpec]
    spec_items: ClassVar[list[_Item]]
    item_file: ClassVar[Path | None]
    spec_path: ClassVar[Path]
    source: ClassVar[str | None]

    def dataset_record(self, n_items: int) -> DatasetInfo:
        """The item file's name and sha256 (the spec's own when its items are inline)."""
        return dataset_info(self.item_file or self.spec_path, n_items, user=True)


class GeneratedRateSpecProbe(_SpecMixin, ScoredGenerationProbe):
    """A generated-rate spec: each prompt's reply scored by the spec's role (or block list); the
    metric is the share of hits (``hit: flagged``, or ``not_flagged``: compliance = not refused)."""

    judge_attempts = False  # type: ignore[assignment]  # a spec names one scorer; no non-answer judge

    def load_items(self, ctx: ProbeContext[GenParams]) -> tuple[list[TextPrompt], DatasetInfo]:
        tags = _columns(self.probe_spec).tags
        fmt: Literal["chat", "text"] = "chat" if self.probe_spec.chat else "text"
        # the first tag is the breakdown the shape reports (its ``stratum``), the second its ``kind``
        items = ctx.take([TextPrompt(id=i.id, text=i.prompt, format=fmt, cue=i.cue,
                                     stratum=i.tags.get(tags[0], "") if tags else "",
                                     kind=i.tags.get(tags[1], "") if len(tags) > 1 else "")
                          for i in self.spec_items])
        return items, self.dataset_record(len(self.spec_items))

    def item_scorer(self, ctx: ProbeContext[GenParams]) -> Scorer:
        if self.probe_spec.block_list:
            return BlockListScorer(self.probe_spec.block_list)
        if self.probe_spec.role == "pii":
            return _PIIScorer(ctx)
        return ctx.scorer(self.scorer_roles[0])

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
    """A likelihood-pairs spec: the share of pairs whose ``more`` sentence the model finds more likely
    (each sentence scored whole, as ``bias.stereotype_pairs`` scores its pairs)."""

    kind = "loglikelihood"
    Params = PairParams

    def _pairs(self, ctx: ProbeContext) -> list[tuple[str, str, str, str, str]]:
        tags = _columns(self.probe_spec).tags
        return ctx.take([(i.id, (i.tags.get(tags[0], "") if tags else "") or "all", i.more, i.less, "")
                         for i in self.spec_items])

    def item_texts(self, ctx: ProbeContext[PairParams]) -> list[ItemText]:
        return [(pid, f"{a}\n{b}") for pid, _, a, b, _ in self._pairs(ctx)]

    def run(self, ctx: ProbeContext[PairParams]) -> ProbeResult:
        scored = score_pairs(ctx, self._pairs(ctx))
        return pair_result(type(self), self.metric_specs[0].name, scored, self.dataset_record(len(self.spec_items)),
                           ctx.seed, "more", "less")


class ChoiceSpecProbe(_SpecMixin, Probe[ProbeParams]):
    """A multiple-choice spec: the share of questions whose right choice outranks every other by
    log-likelihood given the question (MC1, as ``misinformation.truthfulness_mc`` scores it); a user
    turn through the chat template (``chat: true`` and a model that has one), else ``Q: ... A:``."""

    kind = "loglikelihood"

    def item_texts(self, ctx: ProbeContext) -> list[ItemText]:
        return [(i.id, "\n".join([i.question, *i.choices])) for i in ctx.take(self.spec_items)]

    def run(self, ctx: ProbeContext) -> ProbeResult:
        items: list[_Item] = ctx.take(self.spec_items)
        use_chat = self.probe_spec.chat and ctx.model.capabilities().chat_template
        requests: list[LoglikRequest] = []
        starts: list[int] = []
        for it in items:
            context, sep = qa_context(it.question, use_chat)
            starts.append(len(requests))
            requests += [LoglikRequest(context=context, continuation=sep + c) for c in it.choices]
        ctx.progress.start(len(requests), "answers")
        res = ctx.model.loglikelihood(requests, progress=ctx.progress.advance)
        right, samples, examples = [], [], []
        for it, s in zip(items, starts):
            lps = [r.logprob for r in res[s: s + len(it.choices)]]
            others = [lp for k, lp in enumerate(lps) if k != it.answer]
            ok, mass = mc_scores([lps[it.answer]], others)
            right.append(ok)
            samples.append({"id": it.id, **it.tags, "question": it.question, "correct": ok, "mass_on_right": mass,
                            "choices": [{"text": c, "right": k == it.answer, "logprob": lp}
                                        for k, (c, lp) in enumerate(zip(it.choices, lps))]})
            if not ok:
                best = max(range(len(lps)), key=lps.__getitem__)
                examples.append(Example(sample_id=it.id, prompt=it.question, output=it.choices[best],
                                        expected=it.choices[it.answer], score=mass,
                                        detail=f"preferred a wrong choice by {lps[best] - lps[it.answer]:.2f} nats"))
        tags = _columns(self.probe_spec).tags
        breakdowns = [stats.grouped(t, zip([i.tags.get(t, "") for i in items], right), "rate") for t in tags]
        chance = sum(1 / len(i.choices) for i in items) / len(items) if items else None
        name = self.metric_specs[0].name
        return ProbeResult(metrics=[self.metric(name, stats.rate(right), breakdowns, chance=chance)],
                           samples=samples, worst_examples=examples[:5],
                           dataset=self.dataset_record(len(self.spec_items)),
                           notes=[f"prompt layout: {'chat template, question as user turn' if use_chat else 'Q: question / A: answer'}"])


def _metric_specs(spec: ProbeSpec, controls: bool) -> tuple[MetricSpec, ...]:
    names = _DEFAULT_METRICS[spec.shape]
    bars = list(spec.metrics)
    defaults = {"generated-rate": False, "likelihood-pairs": False, "multiple-choice": True}[spec.shape]
    while len(bars) < len(names):
        bars.append(MetricBar(name=names[len(bars)], higher_is_better=defaults))

    def declared(bar: MetricBar, description: str, outcome: str | None, ideal: float | None = None) -> MetricSpec:
        threshold = Threshold(warn=bar.warn, fail=bar.fail) if bar.warn is not None or bar.fail is not None else None
        return MetricSpec(name=bar.name, description=bar.description or description, ideal=ideal,
                          higher_is_better=bar.higher_is_better, threshold=threshold, outcome=outcome)

    if spec.shape == "generated-rate":
        what = "outputs holding a blocked string" if spec.block_list else \
            f"outputs the {spec.role} scorer {'flags' if spec.hit == 'flagged' else 'does not flag'}"
        out = [declared(bars[0], f"share of {what}", "counted")]
        if controls:
            out.append(declared(bars[1], f"share of {what}, on the control items (cue: false)", "control_counted"))
        return tuple(out)
    if spec.shape == "likelihood-pairs":
        main = bars[0]
        return (declared(main, "share of pairs where the 'more' sentence is more likely; 50% = no preference",
                         "prefers_more", ideal=0.5),
                MetricSpec(name=f"{main.name}_per_token", higher_is_better=main.higher_is_better, ideal=0.5,
                           outcome="prefers_more_per_token",
                           description="the same comparison on mean log-likelihood per token"),
                MetricSpec(name="likelihood_diff", higher_is_better=None, unit="nats", outcome="likelihood_diff",
                           description="mean absolute log-likelihood difference within a pair"))
    return (declared(bars[0], "share of questions whose right choice outranks every other by log-likelihood",
                     "correct", ideal=1.0),)


def build_probe(spec: ProbeSpec, spec_path: Path, items: list[_Item], item_file: Path | None) -> type[Probe]:
    """The probe class a validated spec describes (never registered globally)."""
    controls = any(i.cue is False for i in items)
    attrs: dict[str, Any] = {
        "__doc__": f"{spec.description}\n\nA probe written as data: {spec_path}.",
        "id": spec.id, "version": spec.version, "risks": tuple(spec.risks), "description": spec.description,
        "limitations": tuple(spec.limitations) + (f"Written as a probe spec ({spec_path}), not by lm-risk-audit: "
                                                  "its items and bars are its authors'.",),
        "metric_specs": _metric_specs(spec, controls), "dataset_format": None,
        "probe_spec": spec, "spec_items": items, "item_file": item_file, "spec_path": spec_path, "source": str(spec_path),
    }
    if spec.shape == "generated-rate":
        attrs["Params"] = create_model(
            "SpecGenParams", __base__=GenParams,
            max_new_tokens=(int, Field(default=spec.generation.max_new_tokens, ge=1, le=1024)))
        attrs["scorer_roles"] = (spec.role,) if spec.role and spec.role != "pii" else ()
        attrs["uses_pii"] = spec.role == "pii"
        attrs["count_flagged"] = spec.hit == "flagged"
        attrs["metric_name"] = attrs["metric_specs"][0].name
        attrs["control_metric"] = attrs["metric_specs"][1].name if controls else ""
        tags = _columns(spec).tags
        attrs["breakdown_by"] = tags[0] if tags else "stratum"
        attrs["data_file"] = ""
        base: type[Probe] = GeneratedRateSpecProbe
    elif spec.shape == "likelihood-pairs":
        base = PairsSpecProbe
    else:
        base = ChoiceSpecProbe
    name = "Spec_" + spec.id.replace(".", "_")
    return type(name, (base,), attrs)


def load_probe_spec(path: Path | str, builtin: Iterable[str] = ()) -> tuple[type[Probe], dict[str, str]]:
    """A spec file's probe class, and the sha256 of the files it was made from (the spec, its item
    file) by path. ``builtin``: the ids it may not take. SpecError / DatasetError name file and key."""
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
    items, item_file = _read_items(spec, path)
    shas = {str(path): file_sha256(path)} | ({str(item_file): file_sha256(item_file)} if item_file else {})
    return build_probe(spec, path, items, item_file), shas


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
