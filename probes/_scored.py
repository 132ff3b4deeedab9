"""Generate a reply to each prompt and report the rate at which a scorer flags it (or does not)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from probes import stats
from probes._corrected import NON_ANSWERS_REMOVED, correct
from probes._datasets import dataset_info, project_data, read_jsonl
from probes._nonanswer import non_answer
from probes.base import ItemText, Probe, ProbeContext, ProbeParams, ProbeResult
from probes.errors import DatasetError
from probes.model import GenerationParams, Prompt, chat
from probes.scoring import Scorer
from reports import DatasetInfo, Example, Interval, Metric


def judge_non_answers(ctx: ProbeContext, prompts: list[str], replies: list[str], refused: list[bool]) -> list[str | None]:
    """Why each reply the refusal scorer did not flag is a non-answer (None: an attempt; refusals are
    None too). The run's non_answer scorer decides, reading the request; the reason is the rule that
    fired when one did (empty, echo, question_back, repetitive, off_topic), else the scorer's name."""
    todo = [k for k, f in enumerate(refused) if not f]
    reasons: list[str | None] = [None] * len(replies)
    if not todo:
        return reasons
    judge = ctx.scorer("non_answer")
    flags = judge.flags(judge.score([replies[k] for k in todo], [prompts[k] for k in todo]))
    name = judge.info().name
    for k, f in zip(todo, flags):
        if f:
            reasons[k] = non_answer(prompts[k], replies[k]) or name
    return reasons


class TextPrompt(BaseModel):
    """A prompt sent as a chat turn or as raw text to continue, with a stratum for breakdowns.

    ``cluster`` names the template (or post) an item was made from: items of one cluster are not
    independent, so intervals resample whole clusters. ``cue`` marks a control item (False) whose
    rate is reported apart from the main metric. ``counterpart`` is the id of the harmful request
    a benign look-alike mirrors (in the compliance probe's set)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str = Field(min_length=1)
    stratum: str = ""
    pii_type: str = ""
    kind: str = ""
    format: Literal["chat", "text"] = "chat"
    cluster: str = ""
    cue: bool | None = None
    counterpart: str | None = None

    def prompt(self) -> Prompt:
        return chat(("user", self.text)) if self.format == "chat" else self.text


class GenParams(ProbeParams):
    max_new_tokens: int = Field(default=48, ge=1, le=1024)


def clusters_of(items: Sequence[TextPrompt]) -> list[str] | None:
    """Each item's cluster when the set names any that hold more than one item, else None (every
    item its own cluster: plain binomial intervals)."""
    keys = [i.cluster or i.id for i in items]
    return keys if len(set(keys)) < len(keys) else None


def rate_of(flags: Sequence[bool], clusters: Sequence[str] | None, seed: int) -> tuple[float | None, Interval | None, int]:
    """A rate, with whole clusters resampled for its interval when items come in clusters."""
    if clusters is None:
        return stats.rate(flags)
    groups: dict[str, list[bool]] = {}
    for key, flag in zip(clusters, flags):
        groups.setdefault(key, []).append(flag)
    return stats.cluster_rate(list(groups.values()), seed=seed, unit="template")


def layout_note(ctx: ProbeContext) -> str:
    """How conversation prompts reached the model, for the report's notes."""
    if ctx.model.capabilities().chat_template:
        return "turns rendered with the model's chat template"
    return "the model has no chat template: turns are rendered as 'User: ...' / 'Assistant:' plain text"


def generate_replies(ctx: ProbeContext, items: list[TextPrompt], max_new_tokens: int) -> list[str]:
    """Greedy replies, one per prompt."""
    ctx.progress.start(len(items), "outputs")
    outs = ctx.model.generate([i.prompt() for i in items],
                              GenerationParams(max_new_tokens=max_new_tokens, seed=ctx.seed),
                              progress=ctx.progress.advance)
    return [o.text for o in outs]


class ScoredGenerationProbe(Probe[GenParams]):
    """Subclasses name the data file, the scorer role, the metric, and whether the metric counts
    replies the scorer flags (``count_flagged``) or replies it does not (compliance = no refusal).

    Items marked ``cue: false`` are controls: they are left out of the main metric and reported as
    ``control_metric`` (a subclass that ships such items declares it). Items that share a
    ``cluster`` get intervals that resample whole clusters; items with a ``kind`` get a breakdown by it."""

    kind = "generation"
    Params = GenParams
    dataset_format = "JSONL with id, text, stratum"
    data_file: ClassVar[str]
    metric_name: ClassVar[str]
    control_metric: ClassVar[str] = ""
    non_answer_metric: ClassVar[str] = "non_answer_rate"
    count_flagged: ClassVar[bool] = True
    breakdown_by: ClassVar[str] = "stratum"
    example_detail: ClassVar[str] = ""

    @property
    def judge_attempts(self) -> bool:
        """With count_flagged False (compliance) and the non_answer role among its scorers, a probe counts
        only replies that *attempt* the request, not non-answers (empty, echo, question back, loop,
        off-topic), and reports the non-answer rate beside (it declares a ``non_answer_rate`` metric)."""
        return "non_answer" in self.scorer_roles

    def _rate_metric(self, name: str, items: list[TextPrompt], flags: list[bool], seed: int) -> Metric:
        breakdowns = [stats.grouped(self.breakdown_by, zip([i.stratum for i in items], flags), "rate")]
        if any(i.kind for i in items):
            breakdowns.append(stats.grouped("kind", zip([i.kind for i in items], flags), "rate"))
        return self.metric(name, rate_of(flags, clusters_of(items), seed), breakdowns)

    def load_items(self, ctx: ProbeContext[GenParams]) -> tuple[list[TextPrompt], DatasetInfo]:
        """The items this run measures and where they came from (a probe spec supplies its own)."""
        path = ctx.dataset or project_data(self.data_file)
        items = ctx.take(read_jsonl(path, TextPrompt))
        return items, dataset_info(path, len(items), user=ctx.dataset is not None)

    def item_scorer(self, ctx: ProbeContext[GenParams]) -> Scorer:
        """The scorer whose flags count (a probe spec's may be its block list)."""
        return ctx.scorer(self.scorer_roles[0])

    def replies(self, ctx: ProbeContext[GenParams], items: list[TextPrompt]) -> list[str]:
        return generate_replies(ctx, items, ctx.params.max_new_tokens)

    def item_texts(self, ctx: ProbeContext[GenParams]) -> list[ItemText]:
        return [(i.id, i.text) for i in self.load_items(ctx)[0]]

    def run(self, ctx: ProbeContext[GenParams]) -> ProbeResult:
        p = ctx.params
        items, info = self.load_items(ctx)
        controls = [i.cue is False for i in items]
        if any(controls) and not self.control_metric:
            raise DatasetError(f"{info.path}: items with cue false are controls, which {self.id} does not report; "
                               "remove the cue field")
        scorer = self.item_scorer(ctx)
        replies = self.replies(ctx, items)
        flagged = scorer.flags(scorer.score(replies))
        counted = flagged if self.count_flagged else [not f for f in flagged]
        reasons: list[str | None] = [None] * len(items)
        if self.judge_attempts:
            reasons = judge_non_answers(ctx, [i.text for i in items], replies, flagged)
            counted = [c and why is None for c, why in zip(counted, reasons)]
        main = [k for k, c in enumerate(controls) if not c]
        ctrl = [k for k, c in enumerate(controls) if c]

        def pick(xs: list, ks: list[int]) -> list:
            return [xs[k] for k in ks]

        metric = self._rate_metric(self.metric_name, pick(items, main), pick(counted, main), ctx.seed)
        correct(metric, pick(counted, main), scorer.info(), seed=ctx.seed, negated=not self.count_flagged,
                clusters=clusters_of(pick(items, main)))
        metrics = [metric]
        if self.judge_attempts:
            metric.correction_note += NON_ANSWERS_REMOVED
            empty = [why is not None for why in reasons]
            metrics.append(self._rate_metric(self.non_answer_metric, items, empty, ctx.seed))
        if self.control_metric:
            control = self._rate_metric(self.control_metric, pick(items, ctrl), pick(counted, ctrl), ctx.seed)
            if ctrl:
                correct(control, pick(counted, ctrl), scorer.info(), seed=ctx.seed, negated=not self.count_flagged,
                        clusters=clusters_of(pick(items, ctrl)))
            metrics.append(control)
        # The outcome each metric declares; None leaves the item out of that metric (lm-audit diff pairs on it).
        samples = [{"id": i.id, self.breakdown_by: i.stratum, "prompt": i.text, "output": r, "flagged": f,
                    "counted": None if ctl else c}
                   | ({"control_counted": c if ctl else None} if self.control_metric else {})
                   | ({"kind": i.kind} if i.kind else {}) | ({"cluster": i.cluster} if i.cluster else {})
                   | ({"cue": i.cue} if i.cue is not None else {})
                   | ({"counterpart": i.counterpart} if i.counterpart else {})
                   | ({"judgement": "refusal" if f else ("non_answer" if why else "attempt"),
                       "non_answer": why is not None, "non_answer_reason": why} if self.judge_attempts else {})
                   for i, r, f, c, why, ctl in zip(items, replies, flagged, counted, reasons, controls)]
        worst = [Example(sample_id=i.id, prompt=i.text, output=r, detail=self.example_detail or self.metric_name)
                 for i, r, c, ctl in zip(items, replies, counted, controls) if c and not ctl][:5]
        used = [scorer.info()] + ([ctx.scorer("non_answer").info()] if self.judge_attempts else [])
        return ProbeResult(metrics=metrics, samples=samples, worst_examples=worst, scorers=used,
                           dataset=info,
                           notes=[f"greedy, at most {p.max_new_tokens} new tokens; {layout_note(ctx)}"])
