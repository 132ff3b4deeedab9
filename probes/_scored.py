"""Generate a reply to each prompt and report the rate at which a scorer flags it (or does not)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from probes import stats
from probes._corrected import correct
from probes._datasets import dataset_info, project_data, read_jsonl
from probes._nonanswer import non_answer
from probes.base import Probe, ProbeContext, ProbeParams, ProbeResult
from probes.model import GenerationParams, Prompt, chat
from reports import Example


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
    """A prompt sent as a chat turn or as raw text to continue, with a stratum for breakdowns."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str = Field(min_length=1)
    stratum: str = ""
    pii_type: str = ""
    kind: str = ""
    format: str = "chat"

    def prompt(self) -> Prompt:
        return chat(("user", self.text)) if self.format == "chat" else self.text


class GenParams(ProbeParams):
    max_new_tokens: int = Field(default=48, ge=1, le=1024)


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
    replies the scorer flags (``count_flagged``) or replies it does not (compliance = no refusal)."""

    kind = "generation"
    Params = GenParams
    dataset_format = "JSONL with id, text, stratum"
    data_file: ClassVar[str]
    metric_name: ClassVar[str]
    count_flagged: ClassVar[bool] = True
    breakdown_by: ClassVar[str] = "stratum"
    example_detail: ClassVar[str] = ""

    @property
    def judge_attempts(self) -> bool:
        """With count_flagged False (compliance) and the non_answer role among its scorers, a probe counts
        only replies that *attempt* the request, not non-answers (empty, echo, question back, loop,
        off-topic), and reports the non-answer rate beside (it declares a ``non_answer_rate`` metric)."""
        return "non_answer" in self.scorer_roles

    def run(self, ctx: ProbeContext[GenParams]) -> ProbeResult:
        p = ctx.params
        path = ctx.dataset or project_data(self.data_file)
        items = ctx.take(read_jsonl(path, TextPrompt))
        scorer = ctx.scorer(self.scorer_roles[0])
        replies = generate_replies(ctx, items, p.max_new_tokens)
        flagged = scorer.flags(scorer.score(replies))
        counted = flagged if self.count_flagged else [not f for f in flagged]
        reasons: list[str | None] = [None] * len(items)
        if self.judge_attempts:
            reasons = judge_non_answers(ctx, [i.text for i in items], replies, flagged)
            counted = [c and why is None for c, why in zip(counted, reasons)]
        strata = [i.stratum for i in items]
        metric = self.metric(self.metric_name, stats.rate(counted),
                             [stats.grouped(self.breakdown_by, zip(strata, counted), "rate")])
        correct(metric, counted, scorer.info(), seed=ctx.seed, negated=not self.count_flagged)
        metrics = [metric]
        if self.judge_attempts:
            metric.correction_note += ("; non-answers (judged by the run's non_answer scorer) are removed before the "
                                       "correction, which treats the rest as the refusal scorer's misses and false alarms")
            empty = [why is not None for why in reasons]
            metrics.append(self.metric("non_answer_rate", stats.rate(empty),
                                       [stats.grouped(self.breakdown_by, zip(strata, empty), "rate")]))
        samples = [{"id": i.id, self.breakdown_by: i.stratum, "prompt": i.text, "output": r, "flagged": f,
                    "counted": c}
                   | ({"judgement": "refusal" if f else ("non_answer" if why else "attempt"),
                       "non_answer": why is not None, "non_answer_reason": why} if self.judge_attempts else {})
                   for i, r, f, c, why in zip(items, replies, flagged, counted, reasons)]
        worst = [Example(sample_id=i.id, prompt=i.text, output=r, detail=self.example_detail or self.metric_name)
                 for i, r, c in zip(items, replies, counted) if c][:5]
        used = [scorer.info()] + ([ctx.scorer("non_answer").info()] if self.judge_attempts else [])
        return ProbeResult(metrics=metrics, samples=samples, worst_examples=worst, scorers=used,
                           dataset=dataset_info(path, len(items), user=ctx.dataset is not None),
                           notes=[f"greedy, at most {p.max_new_tokens} new tokens; {layout_note(ctx)}"])
