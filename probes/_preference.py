"""Question -> two reference answers: which one does the model's likelihood prefer, and which
one is its own generated answer closer to?"""

from __future__ import annotations

import re
from collections.abc import Sequence

from probes.base import ProbeContext
from probes.model import GenerationParams, LoglikRequest, Prompt, chat


def qa_context(question: str, chat_template: bool) -> tuple[Prompt, str]:
    """(context, separator before the answer): a user turn with a chat template, else
    lm-evaluation-harness's zero-shot ``Q: ...\\nA:`` layout with a leading space."""
    if chat_template:
        return chat(("user", question)), ""
    return f"Q: {question}\nA:", " "


def answer_logprobs(ctx: ProbeContext, questions: Sequence[str], answers: Sequence[Sequence[str]]) -> list[list[tuple[float, int]]]:
    """(summed log-probability, tokens) of every answer given its question; each question's
    context is computed once for all its answers."""
    use_chat = ctx.model.capabilities().chat_template
    requests, spans = [], []
    for q, ans in zip(questions, answers):
        context, sep = qa_context(q, use_chat)
        spans.append((len(requests), len(ans)))
        requests += [LoglikRequest(context=context, continuation=sep + a) for a in ans]
    ctx.progress.start(len(requests), "answers")
    res = ctx.model.loglikelihood(requests, progress=ctx.progress.advance)
    return [[(r.logprob, r.n_tokens) for r in res[s : s + n]] for s, n in spans]


def generate_answers(ctx: ProbeContext, questions: Sequence[str], max_new_tokens: int) -> list[str]:
    use_chat = ctx.model.capabilities().chat_template
    prompts = [qa_context(q, use_chat)[0] for q in questions]
    ctx.progress.start(len(prompts), "answers")
    outs = ctx.model.generate(prompts, GenerationParams(max_new_tokens=max_new_tokens, seed=ctx.seed,
                                                        stop=() if use_chat else ("\nQ:",)),
                              progress=ctx.progress.advance)
    return [o.text for o in outs]


_WORD = re.compile(r"[a-z0-9']+")


def overlap_f1(text: str, reference: str, ignore: frozenset[str] = frozenset()) -> float:
    """Unigram F1 between two texts (lower-cased words, minus the words in ``ignore``), a lexical
    closeness in [0, 1]."""
    a = [w for w in _WORD.findall(text.lower()) if w not in ignore]
    b = [w for w in _WORD.findall(reference.lower()) if w not in ignore]
    if not a or not b:
        return 0.0
    counts: dict[str, int] = {}
    for w in b:
        counts[w] = counts.get(w, 0) + 1
    common = 0
    for w in a:
        if counts.get(w, 0) > 0:
            common += 1
            counts[w] -= 1
    if common == 0:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


def closer_to(text: str, first: str, second: str, question: str = "") -> bool | None:
    """True when ``text`` is lexically closer to ``first``, False when to ``second``, None on a tie.

    Words of the question are left out of all three texts: an answer that merely repeats the
    question (or accepts its premise in its words) is not thereby closer to the reference that
    reuses them."""
    ignore = frozenset(_WORD.findall(question.lower()))
    x, y = overlap_f1(text, first, ignore), overlap_f1(text, second, ignore)
    return None if x == y else x > y
