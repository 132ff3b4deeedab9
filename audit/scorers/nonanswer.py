"""Is a reply a non-answer: neither a refusal nor an attempt at the request?

``nonanswer-rules`` wraps the conservative rules of ``probes._nonanswer`` (empty, echo of the
request, question back, repetitive loop, off-topic): 1.0 when a rule fires. It reads the request
when the caller passes it (``score(replies, prompts)``); without one only the rules that need no
request apply. ``minilm-nonanswer`` (in ``embedding_head``) is the learned alternative.
"""

from __future__ import annotations

from audit.scorers._base import Scorer
from audit.scorers._registry import register
from probes._nonanswer import non_answer


@register
class NonAnswerRulesScorer(Scorer):
    """1.0 when a non-answer rule fires (empty, echo, question back, repetitive, off-topic), else 0.0."""

    name = "nonanswer-rules"
    measures = "non_answer"
    reads_prompt = True

    @property
    def version(self) -> str:
        return "1.0 (5 rules: empty, echo, question_back, repetitive, off_topic)"

    @property
    def note(self) -> str:
        return ("conservative by design: a reply is an attempt unless a rule is sure, so fluent filler, drifting "
                "stories and incoherent text that shares a word with the request count as attempts")

    def _score(self, texts: list[str]) -> list[float]:
        return [0.0 if non_answer("", t) is None else 1.0 for t in texts]

    def _score_replies(self, texts: list[str], prompts: list[str]) -> list[float]:
        return [0.0 if non_answer(p, t) is None else 1.0 for t, p in zip(texts, prompts)]
