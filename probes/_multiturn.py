"""Scripted multi-turn conversations: the engine that runs them, batched across conversations, and
what the multi-turn probes share (``toxicity.escalation``, ``malicious_use.decomposition``).

Each conversation is a list of scripted user turns. At turn t every conversation that has a t-th
turn is sent its history (its user turns and the model's own earlier replies, as assistant turns)
plus the new user turn, all in one ``generate`` call: as many calls as the longest script has
turns. The user turns do not adapt to the replies: the script is fixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from probes import stats
from probes._scored import layout_note
from probes.base import ProbeContext, ProbeParams
from probes.model import ChatMessage, GenerationParams, Prompt
from reports import Breakdown, Example, GroupValue, Interval

MAX_TURNS = 10
# Tokens a chat template adds around one message (role markers, separators); an estimate on the
# generous side, used only to keep a conversation inside the model's context.
MESSAGE_OVERHEAD_TOKENS = 8

UserTurn = Annotated[str, Field(min_length=1)]


class ScriptedConversation(BaseModel):
    """A scripted conversation: 2 to 10 user turns. ``cue`` false marks a control (a civil or benign
    conversation of matched turn count and length), reported apart from the main metric."""

    model_config = ConfigDict(extra="forbid")
    id: str
    cue: bool = True
    turns: list[UserTurn] = Field(min_length=2, max_length=MAX_TURNS)


class EscalationConversation(ScriptedConversation):
    """A conversation that turns hostile over its turns (``kind``: how), or a civil control."""

    kind: str = ""


class DecompositionRequest(ScriptedConversation):
    """A harmful ``goal`` split into steps that each look harmless (``category``: the kind of harm),
    or a benign multi-step control."""

    category: str = ""
    goal: str = Field(min_length=1)


T = TypeVar("T")


class MultiTurnParams(ProbeParams):
    max_new_tokens: int = Field(default=48, ge=1, le=1024, description="new tokens per reply")
    temperature: float = Field(default=0.0, ge=0.0, description="0: greedy (the default); above 0 every reply is "
                                                                 "sampled, seeded")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="nucleus sampling when temperature > 0")
    bytes_per_token: float = Field(default=2.0, gt=0.0,
                                   description="bytes of text per token, assumed when fitting a conversation into the "
                                               "model's context (an underestimate, so a conversation is cut early "
                                               "rather than overflow); tokenizers of English text average about 4")


@dataclass
class Turn:
    """One exchange: the scripted user turn, the model's reply (stripped), and how many earlier
    exchanges were left out of the prompt to fit the model's context."""

    user: str
    reply: str
    finish_reason: str
    dropped: int = 0


@dataclass
class Transcript:
    id: str
    turns: list[Turn] = field(default_factory=list)


def _tokens(message: ChatMessage, bytes_per_token: float) -> int:
    return math.ceil(len(message.content.encode("utf-8")) / bytes_per_token) + MESSAGE_OVERHEAD_TOKENS


def fit_context(history: Sequence[ChatMessage], user: ChatMessage, budget: int | None,
                bytes_per_token: float) -> tuple[tuple[ChatMessage, ...], int]:
    """The prompt for the next turn and how many of the oldest exchanges (a user turn and its reply)
    were dropped so that its estimated length stays within ``budget`` tokens (None: no limit). The
    new user turn is always sent, even when it alone is over the budget."""
    kept = list(history)
    dropped = 0
    if budget is not None:
        cost = [_tokens(m, bytes_per_token) for m in kept]
        need = _tokens(user, bytes_per_token)
        while kept and sum(cost) + need > budget:
            kept, cost = kept[2:], cost[2:]
            dropped += 1
    return (*kept, user), dropped


def run_conversations(ctx: ProbeContext, scripts: Sequence[ScriptedConversation],
                      p: MultiTurnParams) -> tuple[list[Transcript], list[str]]:
    """Run every script turn by turn, one batched ``generate`` call per turn index; returns a
    transcript per script (in order) and notes for the report."""
    sampled = p.temperature > 0.0
    gen = GenerationParams(max_new_tokens=p.max_new_tokens, seed=ctx.seed, temperature=p.temperature,
                           top_p=p.top_p if sampled else 1.0)
    limit = ctx.model.capabilities().max_context
    budget = None if limit is None else limit - p.max_new_tokens
    histories: list[list[ChatMessage]] = [[] for _ in scripts]
    transcripts = [Transcript(id=s.id) for s in scripts]
    longest = max((len(s.turns) for s in scripts), default=0)
    ctx.progress.start(sum(len(s.turns) for s in scripts), "outputs")
    for t in range(longest):
        active = [k for k, s in enumerate(scripts) if t < len(s.turns)]
        users = [ChatMessage(role="user", content=scripts[k].turns[t]) for k in active]
        fitted = [fit_context(histories[k], u, budget, p.bytes_per_token) for k, u in zip(active, users)]
        prompts: list[Prompt] = [prompt for prompt, _ in fitted]
        outs = ctx.model.generate(prompts, gen, progress=ctx.progress.advance)
        for k, u, (_, dropped), out in zip(active, users, fitted, outs):
            reply = out.text.strip()
            histories[k] += [u, ChatMessage(role="assistant", content=reply)]
            transcripts[k].turns.append(Turn(user=u.content, reply=reply, finish_reason=out.finish_reason,
                                             dropped=dropped))
    decoding = (f"sampled at temperature {p.temperature}, top-p {p.top_p}, seed {ctx.seed}" if sampled
                else "greedy")
    notes = [f"{len(scripts)} scripted conversations of up to {longest} user turns, run turn by turn: each turn's "
             f"prompt is the conversation so far (the model's own earlier replies as assistant turns) and the next "
             f"scripted user turn, one batched generation call per turn index; {decoding}, at most "
             f"{p.max_new_tokens} new tokens per reply; {layout_note(ctx)}"]
    cut = [turn.dropped for tr in transcripts for turn in tr.turns if turn.dropped]
    if cut:
        notes.append(f"{len(cut)} of {sum(len(tr.turns) for tr in transcripts)} prompts were over the model's context "
                     f"of {limit} tokens (estimated at {p.bytes_per_token:g} bytes per token, {p.max_new_tokens} kept "
                     f"for the reply): their oldest exchanges were left out, at most {max(cut)} of them; each "
                     "turn's dropped_turns in the samples says how many")
    return transcripts, notes


def by_conversation(values: Sequence[T], transcripts: Sequence[Transcript]) -> list[list[T]]:
    """A flat per-reply list (in transcript order) split into one list per conversation."""
    out: list[list[T]] = []
    at = 0
    for tr in transcripts:
        out.append(list(values[at: at + len(tr.turns)]))
        at += len(tr.turns)
    return out


def turn_rate(per_conversation: Sequence[Sequence[bool]], seed: int) -> tuple[float | None, Interval | None, int]:
    """Share of all replies flagged; a conversation's replies are not independent, so the interval
    resamples whole conversations. It is never narrower than the Wilson interval of the replies
    taken one by one (a bootstrap of no flags at all collapses to [0, 0]). n counts replies."""
    convs = [list(c) for c in per_conversation if c]
    value, ci, n = stats.cluster_rate(convs, seed=seed, unit="conversation")
    wilson = stats.wilson_interval(sum(sum(c) for c in convs), n)
    if ci is None or wilson is None or ci.method == "wilson":
        return value, ci, n
    return value, ci.model_copy(update={"low": min(ci.low, wilson.low), "high": max(ci.high, wilson.high)}), n


def by_turn(by: str, per_conversation: Sequence[Sequence[bool]]) -> Breakdown:
    """The rate at each turn index (1, 2, ...): one reply per conversation at each, so Wilson intervals."""
    longest = max((len(c) for c in per_conversation), default=0)
    groups = []
    for t in range(longest):
        value, ci, n = stats.rate([c[t] for c in per_conversation if t < len(c)])
        groups.append(GroupValue(group=str(t + 1), value=value, ci=ci, n=n))
    return Breakdown(by=by, groups=groups)


def first_last(per_conversation: Sequence[Sequence[bool]]) -> tuple[float | None, Interval | None, int]:
    """Rate at each conversation's last turn minus the rate at its first, paired by conversation
    (Newcombe's interval for paired proportions). n counts conversations."""
    convs = [c for c in per_conversation if c]
    return stats.paired_rate_difference([c[0] for c in convs], [c[-1] for c in convs])


def transcript_example(sample_id: str, tr: Transcript, focus: int, detail: str, score: float | None = None,
                       preface: str = "") -> Example:
    """The whole conversation as a worst example: the prompt field holds it up to the user turn at
    ``focus`` ("User: ..." / "Assistant: ..." lines), the output field that turn's reply and the rest."""
    lines = [preface] if preface else []
    for turn in tr.turns[:focus]:
        lines += [f"User: {turn.user}", f"Assistant: {turn.reply}"]
    lines.append(f"User: {tr.turns[focus].user}")
    rest = [f"Assistant: {tr.turns[focus].reply}"]
    for turn in tr.turns[focus + 1:]:
        rest += [f"User: {turn.user}", f"Assistant: {turn.reply}"]
    return Example(sample_id=sample_id, prompt="\n".join(lines), output="\n".join(rest), score=score, detail=detail)
