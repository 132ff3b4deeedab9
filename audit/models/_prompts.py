"""Prompts as the tokens a model sees: chat rendering, encoding, and where a continuation's
tokens begin. Log-likelihood scoring and ``continuation_ids`` share this code, so a test (or
a benchmark) that scores naively sees exactly the tokens the batched path scored."""

from __future__ import annotations

from typing import Any, NamedTuple

from audit.errors import BadInput
from audit.models._requests import plain_layout
from probes.model import Prompt


class EncodedContext(NamedTuple):
    """A context encoded once, however many continuations it has."""

    ids: tuple[int, ...]  # as the model sees it (special tokens where the tokenizer adds them)
    text: str  # the rendered text
    plain: list[int]  # the rendered text encoded without special tokens


class PromptEncoder:
    """Renders and encodes prompts for one tokenizer. ``use_chat_template`` is honoured only
    when the tokenizer has a template; conversations otherwise use a plain 'Role: text' layout."""

    def __init__(self, tokenizer: Any, *, use_chat_template: bool) -> None:
        self.tok = tokenizer
        self.use_chat_template = use_chat_template and bool(getattr(tokenizer, "chat_template", None))

    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        """Prompt as the text the model sees."""
        if isinstance(prompt, str):
            return prompt
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        if self.use_chat_template:
            return str(self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt))
        text = plain_layout(prompt)
        return text if add_generation_prompt else text.removesuffix("Assistant:")

    def encode(self, prompt: Prompt) -> list[int]:
        """Prompt as token ids; never empty."""
        text = self.render(prompt)
        # A rendered chat template already holds its special tokens.
        special = isinstance(prompt, str) or not self.use_chat_template
        ids = list(self.tok(text, add_special_tokens=special)["input_ids"])
        if not ids:
            # An empty context is conditioned on the sequence-start token, as lm-evaluation-harness does.
            bos = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            if bos is None:
                raise BadInput("an empty context needs a BOS or EOS token, and the tokenizer has neither")
            ids = [int(bos)]
        return ids

    def encode_context(self, context: Prompt) -> EncodedContext:
        """What ``split`` needs of a context, computed once per distinct context."""
        text = self.render(context)
        plain = list(self.tok(text, add_special_tokens=False)["input_ids"])
        return EncodedContext(tuple(self.encode(context)), text, plain)

    def split(self, context: EncodedContext, continuation: str) -> list[int]:
        """Continuation tokens. Encoding context+continuation together and cutting at the
        context length matches lm-evaluation-harness; fall back to encoding the continuation
        alone when merges cross the boundary (the context must stay a shared prefix)."""
        plain_ctx = context.plain
        whole = list(self.tok(context.text + continuation, add_special_tokens=False)["input_ids"])
        if whole[: len(plain_ctx)] == plain_ctx and len(whole) > len(plain_ctx):
            return whole[len(plain_ctx):]
        return list(self.tok(continuation, add_special_tokens=False)["input_ids"])

    def continuation_ids(self, context: Prompt, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens) exactly as log-likelihood scoring sees them."""
        encoded = self.encode_context(context)
        return list(encoded.ids), self.split(encoded, continuation)


__all__ = ["EncodedContext", "PromptEncoder"]
