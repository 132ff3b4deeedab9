"""The model contract a probe uses: batched generation, log-likelihoods and a capabilities record.

``audit`` implements it (the transformers backend, behind the runner's metering wrapper);
a probe sees nothing else of a model: not its cache, its timing or its report record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)
    role: Literal["system", "user", "assistant"]
    content: str


# A prompt is raw text (sent as is) or a conversation (rendered with the model's
# chat template; a backend without one uses a plain "role: content" layout).
Prompt = Union[str, tuple[ChatMessage, ...]]


class GenerationParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_new_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)  # 0 = greedy
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Generation(BaseModel):
    text: str
    n_tokens: int
    finish_reason: Literal["stop", "length", "eos"]


class LoglikRequest(BaseModel):
    """Score ``continuation`` given ``context``. Requests with equal context share one context pass."""

    model_config = ConfigDict(frozen=True)
    context: Prompt
    continuation: str


class LoglikResult(BaseModel):
    logprob: float  # sum of the continuation tokens' log-probabilities (natural log)
    n_tokens: int
    is_greedy: bool  # every continuation token was the argmax


ProgressFn = Callable[[int], None]  # called with the number of items just finished


class Capabilities(BaseModel):
    """What a model can do, for probes that adapt to it."""

    model_config = ConfigDict(frozen=True)
    chat_template: bool  # conversations are rendered with the model's own chat template
    loglikelihood: bool  # continuations can be scored (log-probabilities are available)
    max_context: int | None = None  # tokens of prompt plus output; None when unknown
    loglikelihood_note: str = ""  # why log-likelihoods are unavailable, when they are
    # Optional: each token's log-probability of a plain text, in one forward pass per text
    # (``TokenScorer``); a backend that offers it implements ``token_logprobs``.
    token_logprobs: bool = False


@runtime_checkable
class Model(Protocol):
    """A model as probes see it. Calls are batched: pass every prompt of a probe at once."""

    def capabilities(self) -> Capabilities: ...

    def generate(
        self,
        prompts: list[Prompt],
        params: GenerationParams | Sequence[GenerationParams],
        progress: ProgressFn | None = None,
    ) -> list[Generation]:
        """One parameter set for all prompts, or one per prompt (e.g. per-request max tokens)."""
        ...

    def loglikelihood(
        self, requests: list[LoglikRequest], progress: ProgressFn | None = None
    ) -> list[LoglikResult]:
        """One result per request, in order. Requests with equal context share one context pass."""
        ...


@runtime_checkable
class TokenScorer(Protocol):
    """The optional capability of a model that scores every token of a text (Min-K% Prob and other
    membership signals). Offered where ``capabilities().token_logprobs`` is true."""

    def token_logprobs(self, texts: list[str], progress: ProgressFn | None = None) -> list[list[float]]:
        """For each text, the natural-log probability of each of its tokens given the ones before,
        the first conditioned on the sequence-start token (the tokens and values of a
        ``LoglikRequest(context="", continuation=text)``, whose ``logprob`` is their sum)."""
        ...


def chat(*turns: tuple[str, str]) -> tuple[ChatMessage, ...]:
    """Build a conversation prompt: ``chat(("user", "Hi"))``."""
    return tuple(ChatMessage(role=role, content=content) for role, content in turns)  # type: ignore[arg-type]
