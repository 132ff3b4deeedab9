"""Loading a resolved model source with transformers: offline unless allowed, GGUF files
read through the converted-checkpoint cache, batch sizes planned from free memory."""

from __future__ import annotations

import logging
from typing import Any

import torch

from audit.errors import BadInput
from audit.models._converted import check_converted, converted_sha256, save_converted
from audit.models._device import pick_device, pick_dtype
from audit.models._hf import HFBackend
from audit.models._memory import plan_batches
from audit.models._resolve import ModelSource, weights_fingerprint

log = logging.getLogger(__name__)


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
    converted, problem = (check_converted(fingerprint) if source.gguf_file and fingerprint and model_cache
                          else (None, None))
    converted_hash: str | None = None
    if problem is not None:
        notes.append(f"the converted copy in the model cache failed verification ({problem}); "
                     "converted again from the GGUF file")
    try:
        if converted is not None:
            converted_hash = converted_sha256(converted)
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
                converted_hash = converted_sha256(saved) if saved is not None else None
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
        raise BadInput(f"{source.spec}: cannot load with transformers: {first}", setting="model") from exc
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
        converted_sha256=converted_hash,
        notes=notes,
    )
    if chat_template and not backend.use_chat_template:
        log.info("tokenizer has no chat template; conversations use a plain 'Role: text' layout")
    return backend


__all__ = ["load_hf_backend"]
