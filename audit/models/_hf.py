"""The transformers backend: a causal LM and its tokenizer behind ``audit.models.Backend``.

This class holds the model's identity and composes the mechanisms kept in their own
modules: prompt encoding (``_prompts``), log-likelihood batching (``_loglik``) and scoring
(``_score``), generation (``_generate``). Batch sizes come from ``_memory.plan_batches``
(see ``_load``); running out of memory halves them here, for both paths alike.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import transformers

from audit.cache import BatchCache
from audit.errors import BadInput, RuntimeFailure
from audit.models._generate import eos_ids, generate_group, group_by_params
from audit.models._loglik import Batch, loglikelihoods
from audit.models._prompts import PromptEncoder
from audit.models._score import ForwardPass, score_batch
from audit.models._tokens import token_logprobs
from probes.model import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    ProgressFn,
    Prompt,
)
from reports import ModelInfo

log = logging.getLogger(__name__)

T = TypeVar("T")


class HFBackend:
    """A transformers causal LM behind the backend contract (``audit.models.Backend``)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        source: str = "",
        use_chat_template: bool = True,
        batch_size: int = 16,
        max_batch_tokens: int = 16384,
        fingerprint: str | None = None,
        gguf_file: str | None = None,
        converted_sha256: str | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        if batch_size < 1:
            raise BadInput(f"{batch_size}: must be at least 1", setting="batch_size")
        self.model = model.eval()
        self.tok = tokenizer
        self.model_id = model_id
        self.source = source or model_id
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.prompts = PromptEncoder(tokenizer, use_chat_template=use_chat_template)
        self.use_chat_template = self.prompts.use_chat_template
        self.device = next(model.parameters()).device
        self.pad_id = self._pad_id()
        self._fingerprint = fingerprint or self._parameter_fingerprint()
        self._gguf_file = gguf_file
        self._converted_sha256 = converted_sha256
        self._notes = list(notes)
        self._forward = ForwardPass(model)

    # ---- identity -------------------------------------------------------------------------
    def _pad_id(self) -> int:
        for tid in (self.tok.pad_token_id, self.tok.eos_token_id, 0):
            if tid is not None:
                return int(tid)
        return 0  # unreachable; keeps the type checker content

    def _parameter_fingerprint(self) -> str:
        # No weight files to hash (hub download, in-memory model): hash the parameters.
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.model_id,
            backend="transformers",
            source=self.source,
            parameters=sum(p.numel() for p in self.model.parameters()),
            dtype=str(next(self.model.parameters()).dtype).removeprefix("torch."),
            device=str(self.device),
            fingerprint_sha256=self._fingerprint,
            chat_template=self.use_chat_template,
            supports_loglikelihood=True,
            gguf_file=self._gguf_file,
            converted_sha256=self._converted_sha256,
            batch_size=self.batch_size,
            notes=self._notes,
            libraries=_libraries(),
        )

    def capabilities(self) -> Capabilities:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return Capabilities(chat_template=self.use_chat_template, loglikelihood=True, token_logprobs=True,
                            max_context=int(limit) if isinstance(limit, int) else None)

    # ---- prompts (what tests and benchmarks compare the batched paths against) ------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        """Prompt as the text the model sees."""
        return self.prompts.render(prompt, add_generation_prompt)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Prompt as the token ids the model sees."""
        return self.prompts.encode(prompt)

    def continuation_ids(self, context: Prompt, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens) exactly as ``loglikelihood`` scores them."""
        return self.prompts.continuation_ids(context, continuation)

    # ---- log-likelihood -------------------------------------------------------------------
    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        """Scores every request; each computed batch goes to ``cache`` (and is read from it first)."""
        once = _CountedOnce(progress) if progress else None
        return self._backing_off(lambda: loglikelihoods(
            requests, self.prompts, self._score_batch, batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens, progress=once, cache=cache), once)

    def _score_batch(self, batch: Batch) -> list[tuple[int, LoglikResult]]:
        # A method, not a bare call: tests count (and interrupt) the batches computed through it.
        return score_batch(batch, self._forward, pad_id=self.pad_id, device=self.device, model_id=self.model_id)

    def token_logprobs(self, texts: list[str], progress: ProgressFn | None = None, *,
                       cache: BatchCache | None = None) -> list[list[float]]:
        """Each text's token log-probabilities, one forward pass per text (``_tokens``); the
        optional capability ``probes.model.TokenScorer``."""
        once = _CountedOnce(progress) if progress else None
        return self._backing_off(lambda: token_logprobs(
            texts, self.prompts, self._forward, batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens,
            pad_id=self.pad_id, device=self.device, model_id=self.model_id, progress=once, cache=cache), once)

    # ---- generation -----------------------------------------------------------------------
    def generate(
        self,
        prompts: list[Prompt],
        params: GenerationParams | Sequence[GenerationParams],
        progress: ProgressFn | None = None,
        *,
        cache: BatchCache | None = None,
    ) -> list[Generation]:
        """Generate for every prompt, with one set of parameters or one per prompt. Prompts
        with equal parameters share batches (continuous batching: ``_generate``); greedy and
        sampled requests never do. Each request goes to ``cache`` as soon as it ends (and is
        read from it first)."""
        results: list[Generation | None] = [None] * len(prompts)
        for group_params, idxs in group_by_params(len(prompts), params).items():
            group = [prompts[i] for i in idxs]
            once = _CountedOnce(progress) if progress else None
            out = self._backing_off(lambda: generate_group(
                self.model, self.prompts, group, group_params, batch_size=self.batch_size, pad_id=self.pad_id,
                device=self.device, progress=once, cache=cache), once)
            for i, g in zip(idxs, out):
                results[i] = g
        return [g for g in results if g is not None]

    def _eos_ids(self) -> list[int]:
        """The tokens that end a generation (bench/bench_generate.py reads them too)."""
        return eos_ids(self.model, self.tok)

    # ---- out-of-memory back-off -----------------------------------------------------------
    def _backing_off(self, run: Callable[[], T], progress: _CountedOnce | None = None) -> T:
        """Run ``run``; on out-of-memory halve the batch size (and token budget) and retry the
        call, down to one row, instead of crashing. ``run`` reads the sizes afresh on each
        try, and reports to ``progress``, which counts each item once over the tries. Results
        do not depend on the batch (sampled requests are seeded one by one)."""
        while True:
            try:
                return run()
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not _out_of_memory(exc):
                    raise
                if progress is not None:
                    progress.restart()
                if self.batch_size == 1:
                    raise RuntimeFailure(f"model {self.model_id} ran out of memory even at batch size 1 "
                                         "(try dtype bfloat16, --dtype bfloat16, or a smaller model)") from None
                self.batch_size = max(1, self.batch_size // 2)
                self.max_batch_tokens = max(256, self.max_batch_tokens // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("out of memory: retrying with batch size %d", self.batch_size)
                note = f"batch size reduced to {self.batch_size} after running out of memory"
                self._notes = [n for n in self._notes if not n.startswith("batch size reduced")] + [note]


class _CountedOnce:
    """A progress callback for a call that an out-of-memory retry runs again from the start:
    items the retry computes again are not reported again (the bar never passes its total)."""

    def __init__(self, progress: ProgressFn) -> None:
        self._progress = progress
        self._reported = 0
        self._seen = 0

    def restart(self) -> None:
        self._seen = 0

    def __call__(self, n: int) -> None:
        self._seen += n
        if self._seen > self._reported:
            self._progress(self._seen - self._reported)
            self._reported = self._seen


def _libraries() -> dict[str, str]:
    """The versions of the libraries that compute this backend's results."""
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _out_of_memory(exc: BaseException) -> bool:
    """torch's out-of-memory error, or a RuntimeError saying so (what some devices and
    kernels raise instead: "CUDA out of memory", "MPS backend out of memory")."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


__all__ = ["HFBackend"]
