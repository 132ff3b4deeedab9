"""transformers backend: local checkpoints, GGUF files, the built-in alias, hub ids (opt-in).

Log-likelihoods: requests are grouped by context and batched across groups; in each
batch the prefix every context shares runs once, each context's remainder runs once
(left-padded) on a copy of that cache, and every continuation runs once on a copy of
its context's cache, in chunks of similar length. Generation: length-sorted,
left-padded batches through ``model.generate``, one batch per parameter set. Batch
sizes come from ``_memory.plan_batches``; running out of memory halves them.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from audit.cache import BatchCache
from audit.errors import BadInput, RuntimeFailure
from audit.models._converted import find_converted, save_converted
from audit.models._memory import plan_batches
from audit.models._resolve import ModelSource, weights_fingerprint
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

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str) -> str:
    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BadInput(f"--device {device}: CUDA is not available on this machine")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise BadInput(f"--dtype {dtype}: expected one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        if any(s[k] != first[k] for s in seqs):
            return k
    return n


def _length_chunks(lengths: Sequence[int], ratio: float = 0.75, min_rows: int = 4) -> list[int]:
    """Split lengths sorted longest first into runs whose shortest is at least ``ratio`` of
    their longest (runs of fewer than ``min_rows`` grow instead: a pass has a fixed cost)."""
    sizes: list[int] = []
    width = 0
    for n in lengths:
        if sizes and (n >= ratio * width or sizes[-1] < min_rows):
            sizes[-1] += 1
        else:
            sizes.append(1)
            width = n
    return sizes


def _padded(seqs: Sequence[Sequence[int]], width: int, pad_id: int, device: Any, *,
            left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of ``seqs`` padded to ``width``, built on the host and moved once."""
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, seq in enumerate(seqs):
        if seq:
            cols = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[k, cols] = torch.tensor(seq, dtype=torch.long)
            mask[k, cols] = 1
    return ids.to(device), mask.to(device)


def _select_rows(cache: Any, rows: torch.Tensor, *, in_place: bool) -> Any:
    """The KV cache with its batch rows picked by ``rows`` (repeats allowed). Unless
    ``in_place``, the original is left intact for the next selection."""
    if not in_place:
        if hasattr(cache, "layers"):  # transformers 5: layers re-bind their tensors when selecting
            clone = copy.copy(cache)
            clone.layers = [copy.copy(layer) for layer in cache.layers]
            cache = clone
        else:
            cache = copy.deepcopy(cache)
    cache.batch_select_indices(rows)
    return cache


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
        notes: Sequence[str] = (),
    ) -> None:
        if batch_size < 1:
            raise BadInput(f"--batch-size {batch_size}: must be at least 1")
        self.model = model.eval()
        self.tok = tokenizer
        self.model_id = model_id
        self.source = source or model_id
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.use_chat_template = use_chat_template and bool(getattr(tokenizer, "chat_template", None))
        self.device = next(model.parameters()).device
        self.pad_id = self._pad_id()
        self._fingerprint = fingerprint or self._parameter_fingerprint()
        self._gguf_file = gguf_file
        self._notes = list(notes)
        # transformers 5.x renamed the KV-cache argument and output field to `cache`.
        forward_args = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in forward_args), None)

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
            batch_size=self.batch_size,
            notes=self._notes,
        )

    def capabilities(self) -> Capabilities:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return Capabilities(chat_template=self.use_chat_template, loglikelihood=True,
                            max_context=int(limit) if isinstance(limit, int) else None)

    # ---- prompts ------------------------------------------------------------------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        """Prompt as the text the model sees."""
        if isinstance(prompt, str):
            return prompt
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        if self.use_chat_template:
            return str(self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt))
        text = "".join(f"{m.role.capitalize()}: {m.content}\n" for m in prompt)
        return text + ("Assistant:" if add_generation_prompt else "")

    def encode_prompt(self, prompt: Prompt) -> list[int]:
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

    def _split(self, context_text: str, plain_ctx: list[int], continuation: str) -> list[int]:
        """Continuation tokens. Encoding context+continuation together and cutting at the
        context length matches lm-evaluation-harness; fall back to encoding the continuation
        alone when merges cross the boundary (the context must stay a shared prefix).
        ``plain_ctx`` is the context encoded without special tokens."""
        whole = list(self.tok(context_text + continuation, add_special_tokens=False)["input_ids"])
        if whole[: len(plain_ctx)] == plain_ctx and len(whole) > len(plain_ctx):
            return whole[len(plain_ctx):]
        return list(self.tok(continuation, add_special_tokens=False)["input_ids"])

    def continuation_ids(self, context: Prompt, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens) exactly as ``loglikelihood`` scores them."""
        text = self.render(context)
        plain = list(self.tok(text, add_special_tokens=False)["input_ids"])
        return self.encode_prompt(context), self._split(text, plain, continuation)

    # ---- log-likelihood -------------------------------------------------------------------
    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        """Scores every request; each computed batch goes to ``cache`` (and is read from it first)."""
        return self._backing_off(self._loglikelihood, requests, progress, cache)

    def _loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None,
                       cache: BatchCache | None) -> list[LoglikResult]:
        if not requests:
            return []
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = defaultdict(list)
        # Each distinct context is rendered and encoded once, however many continuations it has.
        ctx_cache: dict[Prompt, tuple[tuple[int, ...], str, list[int]]] = {}
        for i, req in enumerate(requests):
            if req.context not in ctx_cache:
                text = self.render(req.context)
                plain = list(self.tok(text, add_special_tokens=False)["input_ids"])
                ctx_cache[req.context] = (tuple(self.encode_prompt(req.context)), text, plain)
            ctx_ids, ctx_text, plain_ctx = ctx_cache[req.context]
            cont = self._split(ctx_text, plain_ctx, req.continuation)
            if not cont:
                raise BadInput(f"log-likelihood request {i}: continuation {req.continuation!r} encodes to no tokens")
            groups[ctx_ids].append((i, cont))

        results: list[LoglikResult | None] = [None] * len(requests)
        for batch in self._pack(groups):
            for idx, res in self._cached_score_batch(batch, cache):
                results[idx] = res
            if progress:
                progress(sum(len(conts) for _, conts in batch))
        return [r for r in results if r is not None]

    def _pack(
        self, groups: dict[tuple[int, ...], list[tuple[int, list[int]]]]
    ) -> list[list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]]]:
        """Batches of (context, continuations): longest first (an OOM shows at once), rows and
        tokens within budget; a context with more continuations than a batch is split."""
        items: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]] = []
        for ctx, conts in groups.items():
            for start in range(0, len(conts), self.batch_size):
                items.append((ctx, conts[start : start + self.batch_size]))
        # Longest context first: contexts are left-padded together in one pass, while the
        # continuations are re-sorted by length inside the batch (see _score_batch).
        items.sort(key=lambda it: (-len(it[0]), -max(len(c) for _, c in it[1])))
        batches: list[list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]]] = []
        current: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]] = []
        rows = 0
        width = 0
        for ctx, conts in items:
            w = max(width, len(ctx) + max(len(c) for _, c in conts))
            if current and (rows + len(conts) > self.batch_size or (rows + len(conts)) * w > self.max_batch_tokens):
                batches.append(current)
                current, rows, w = [], 0, len(ctx) + max(len(c) for _, c in conts)
            current.append((ctx, conts))
            rows += len(conts)
            width = w
        if current:
            batches.append(current)
        return batches

    def _cached_score_batch(
        self, batch: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]], cache: BatchCache | None
    ) -> list[tuple[int, LoglikResult]]:
        """``_score_batch`` through the run's cache: the key is the batch's exact token layout."""
        if cache is None:
            return self._score_batch(batch)
        key = ("loglikelihood", [[list(ctx), [c for _, c in conts]] for ctx, conts in batch])
        order = [idx for _, conts in batch for idx, _ in conts]
        cached = cache.get(*key)
        if cached is not None:
            return [(idx, LoglikResult.model_validate(r)) for idx, r in zip(order, cached)]
        scored = dict(self._score_batch(batch))
        cache.put([scored[idx].model_dump() for idx in order], *key)
        return [(idx, scored[idx]) for idx in order]

    @torch.inference_mode()
    def _score_batch(
        self, batch: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]]
    ) -> list[tuple[int, LoglikResult]]:
        """Score one batch in up to three passes, each token run once: the prefix every context
        in the batch shares (a chat template's system turn) at batch size one; each context's
        remainder, with the shared prefix's KV cache copied to its row; every continuation,
        with its context's cache copied to its row. The last context token is fed with the
        continuation so that its logits predict the continuation's first token."""
        dev = self.device
        prefixes = [list(ctx[:-1]) for ctx, _ in batch]
        shared = _common_prefix_len(prefixes)  # all of it when the batch has one context
        rests = [p[shared:] for p in prefixes]
        row_group: list[int] = []
        row_inputs: list[list[int]] = []
        row_targets: list[list[int]] = []
        row_req: list[int] = []
        for g, (ctx, conts) in enumerate(batch):
            for req_idx, cont in conts:
                row_group.append(g)
                row_inputs.append([ctx[-1]] + cont[:-1])
                row_targets.append(cont)
                row_req.append(req_idx)

        cache = None
        mask = torch.zeros((1, 0), dtype=torch.long, device=dev)  # attention mask of what is cached
        if shared:
            ids = torch.tensor([prefixes[0][:shared]], dtype=torch.long, device=dev)
            mask = torch.ones_like(ids)
            _, cache = self._forward(ids, mask, torch.arange(shared, device=dev)[None, :], None, logits=False)
        rlen = max(len(r) for r in rests)
        if rlen:
            # Context remainders, left-padded so each context's tokens end where its continuations begin.
            ids, rmask = _padded(rests, rlen, self.pad_id, dev, left=True)
            if cache is not None and len(batch) > 1:
                cache.batch_select_indices(torch.zeros(len(batch), dtype=torch.long, device=dev))
            mask = torch.cat([mask.expand(len(batch), -1), rmask], dim=1)
            pos = shared + (rmask.cumsum(-1) - 1).clamp(min=0)
            _, cache = self._forward(ids, mask, pos, cache, logits=False)
        # Continuations longest first, in chunks of similar length: rows are right-padded
        # to their chunk's longest, so chunking keeps the padding (wasted compute) small.
        owner = [g if rlen else 0 for g in row_group]  # the cache row each continuation extends
        order = sorted(range(len(row_inputs)), key=lambda r: -len(row_inputs[r]))
        chunks = _length_chunks([len(row_inputs[r]) for r in order])
        results: list[LoglikResult | None] = [None] * len(row_inputs)
        start = 0
        for n, size in enumerate(chunks):
            rows = order[start : start + size]
            start += size
            sel = torch.tensor([owner[r] for r in rows], device=dev)
            if cache is None:
                chunk_cache, chunk_mask = None, mask.expand(size, -1)
            else:
                last = n == len(chunks) - 1  # the last chunk may consume the cache itself
                chunk_cache = _select_rows(cache, sel, in_place=last)
                chunk_mask = mask[sel]
            width = len(row_inputs[rows[0]])
            ids, row_mask = _padded([row_inputs[r] for r in rows], width, self.pad_id, dev, left=False)
            pos = chunk_mask.sum(-1)[:, None] + torch.arange(width, device=dev)[None, :]
            logits, _ = self._forward(ids, torch.cat([chunk_mask, row_mask], dim=1), pos, chunk_cache)
            del chunk_cache
            # Only real positions: log p(target) = logit[target] - logsumexp(logits).
            flat = logits[row_mask.bool()].float()
            targets = torch.tensor([t for r in rows for t in row_targets[r]], device=dev)
            lp = flat.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(flat, dim=-1)
            hit = flat.argmax(-1) == targets
            lp, hit = lp.cpu(), hit.cpu()  # one device-to-host copy per chunk, not one per row
            offset = 0
            for r in rows:
                k = len(row_targets[r])
                seg = lp[offset : offset + k]
                if not torch.isfinite(seg).all():
                    raise RuntimeFailure(f"non-finite log-probability for request {row_req[r]} (model {self.model_id})")
                greedy = bool(hit[offset : offset + k].all())
                results[r] = LoglikResult(logprob=float(seg.sum()), n_tokens=k, is_greedy=greedy)
                offset += k
        return [(row_req[r], res) for r, res in enumerate(results) if res is not None]

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any, *, logits: bool = True
    ) -> tuple[torch.Tensor, Any]:
        """One forward pass: (logits, the KV cache extended by ``ids``). Without ``logits`` only
        the cache is wanted, so the output layer runs on the last position alone where the
        model allows it (the vocabulary projection is a fifth of a small model's compute)."""
        kw: dict[str, Any] = {self._cache_arg: cache} if cache is not None else {}
        if not logits and self._keep_arg:
            kw[self._keep_arg] = 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw)
        return out.logits, getattr(out, self._cache_arg)

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
        with equal parameters share batches; greedy and sampled requests never do. Each
        computed batch goes to ``cache`` (and is read from it first)."""
        per_prompt = [params] * len(prompts) if isinstance(params, GenerationParams) else list(params)
        if len(per_prompt) != len(prompts):
            raise BadInput(f"generate: {len(prompts)} prompts but {len(per_prompt)} parameter sets")
        groups: dict[GenerationParams, list[int]] = defaultdict(list)
        for i, p in enumerate(per_prompt):
            groups[p].append(i)
        results: list[Generation | None] = [None] * len(prompts)
        for group_params, idxs in groups.items():
            out = self._backing_off(self._generate, [prompts[i] for i in idxs], group_params, progress, cache)
            for i, g in zip(idxs, out):
                results[i] = g
        return [g for g in results if g is not None]

    def _backing_off(self, fn: Any, *args: Any) -> Any:
        """Run ``fn``; on out-of-memory halve the batch size (and token budget) and retry the
        call, down to one row, instead of crashing. Greedy results do not depend on the batch."""
        while True:
            try:
                return fn(*args)
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise RuntimeFailure(f"model {self.model_id} ran out of memory even at batch size 1 "
                                         "(try --dtype bfloat16 or a smaller model)") from None
                self.batch_size = max(1, self.batch_size // 2)
                self.max_batch_tokens = max(256, self.max_batch_tokens // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("out of memory: retrying with batch size %d", self.batch_size)
                note = f"batch size reduced to {self.batch_size} after running out of memory"
                self._notes = [n for n in self._notes if not n.startswith("batch size reduced")] + [note]

    @torch.inference_mode()
    def _generate(
        self, prompts: list[Prompt], params: GenerationParams, progress: ProgressFn | None,
        cache: BatchCache | None,
    ) -> list[Generation]:
        if not prompts:
            return []
        encoded = [self.encode_prompt(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(prompts)
        eos_ids = self._eos_ids()
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            idxs = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in idxs)
            ids, mask = _padded([encoded[i] for i in idxs], width, self.pad_id, self.device, left=True)
            kwargs: dict[str, Any] = dict(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self.pad_id,
                eos_token_id=eos_ids or None,
            )
            if params.greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                # Seeded per batch: identical runs give identical samples.
                torch.manual_seed(params.seed * 1_000_003 + b)
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tok)
            key = ("generate", [encoded[i] for i in idxs], params.model_dump(mode="json"), b)
            cached = cache.get(*key) if cache is not None else None
            if cached is not None:
                for i, g in zip(idxs, cached):
                    results[i] = Generation.model_validate(g)
            else:
                out = self.model.generate(**kwargs)
                for r, i in enumerate(idxs):
                    results[i] = self._finish(out[r, width:].tolist(), params, eos_ids)
                if cache is not None:
                    cache.put([results[i].model_dump() for i in idxs], *key)  # type: ignore[union-attr]
            if progress:
                progress(len(idxs))
        return [g for g in results if g is not None]

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        for source in (getattr(self.model.generation_config, "eos_token_id", None), self.tok.eos_token_id):
            for tid in source if isinstance(source, list) else [source]:
                if tid is not None and int(tid) not in ids:
                    ids.append(int(tid))
        return ids

    def _finish(self, new_ids: list[int], params: GenerationParams, eos_ids: list[int]) -> Generation:
        reason = "length"
        for k, tid in enumerate(new_ids):
            if tid in eos_ids:
                new_ids, reason = new_ids[:k], "eos"
                break
        text = self.tok.decode(new_ids, skip_special_tokens=True)
        cut = min((text.find(s) for s in params.stop if s in text), default=-1)
        if cut >= 0:
            text, reason = text[:cut], "stop"
        return Generation(text=text, n_tokens=len(new_ids), finish_reason=reason)  # type: ignore[arg-type]


def _gguf_note(gguf_file: str, dtype: torch.dtype, converted: Any) -> str:
    """The same words whether the converted copy was just written or read back."""
    cast = "" if dtype == torch.float32 else f", cast to {str(dtype).removeprefix('torch.')}"
    if converted is None:
        return f"GGUF weights ({gguf_file}) dequantised by transformers to {str(dtype).removeprefix('torch.')}"
    return f"GGUF weights ({gguf_file}) dequantised by transformers to float32{cast}; converted copy in the model cache"


def load_hf_backend(
    source: ModelSource,
    *,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    chat_template: bool = True,
    batch_size: int | None = None,
    model_cache: bool = True,
) -> HFBackend:
    """Load a resolved model source with transformers, offline unless ``allow_download``. A GGUF
    file is read from its converted copy in the local model cache when ``model_cache``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": not allow_download}
    notes: list[str] = []
    fingerprint = weights_fingerprint(source)
    location = source.location
    converted = find_converted(fingerprint) if source.gguf_file and fingerprint and model_cache else None
    try:
        if converted is not None:
            local = {**kwargs, "local_files_only": True}
            tok = AutoTokenizer.from_pretrained(converted, **local)
            model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch_dtype, **local)
            notes.append(_gguf_note(source.gguf_file, torch_dtype, converted))
        elif source.gguf_file:
            gguf = {**kwargs, "gguf_file": source.gguf_file}
            tok = AutoTokenizer.from_pretrained(location, **gguf)
            if fingerprint and model_cache:
                # Dequantise once at float32, cache that, then cast: the cache never holds rounded weights.
                model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **gguf)
                saved = save_converted(model, tok, fingerprint, source.gguf_file)
                model = model.to(torch_dtype)
            else:
                model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, **gguf)
                saved = None
            notes.append(_gguf_note(source.gguf_file, torch_dtype, saved))
        else:
            tok = AutoTokenizer.from_pretrained(location, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"--model {source.spec}: cannot load with transformers: {first}") from exc
    model.to(dev)
    plan = plan_batches(model.config, sum(p.numel() for p in model.parameters()), torch_dtype, dev)
    if batch_size is None:
        batch_size = plan.batch_size
        notes.append(plan.reason)
    else:
        notes.append(f"batch size {batch_size} set by --batch-size; {plan.max_batch_tokens} tokens per "
                     "log-likelihood pass from free memory")
    log.info("%s", notes[-1])
    if fingerprint is None:
        notes.append("fingerprint is the sha256 of the loaded parameters (no local weight files)")
    backend = HFBackend(
        model,
        tok,
        model_id=source.display_id,
        source=source.spec,
        use_chat_template=chat_template,
        batch_size=batch_size,
        max_batch_tokens=plan.max_batch_tokens,
        fingerprint=fingerprint,
        gguf_file=source.gguf_file,
        notes=notes,
    )
    if chat_template and not backend.use_chat_template:
        log.info("tokenizer has no chat template; conversations use a plain 'Role: text' layout")
    return backend


__all__ = ["HFBackend", "load_hf_backend", "pick_device", "pick_dtype"]
