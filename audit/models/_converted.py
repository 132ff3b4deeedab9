"""A local cache of GGUF checkpoints converted to transformers' own format.

transformers reads a GGUF file by parsing its metadata three times (tokenizer, config,
weights) and dequantising every tensor in Python: about 20-35 s for the 135M default
model on a 2-core CPU, every run. The first load saves the dequantised float32 weights,
config and tokenizer as a safetensors checkpoint keyed by the GGUF file's sha256 and the
transformers version; later loads read that (about a second). The report's fingerprint
stays the GGUF file's sha256.

Location: ``$LM_AUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/lm-risk-audit``, else
``~/.cache/lm-risk-audit``; ``--no-model-cache`` (``AuditConfig.model_cache``) skips it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MARKER = "lm-risk-audit-converted.json"


def cache_root() -> Path:
    explicit = os.environ.get("LM_AUDIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lm-risk-audit"


def converted_dir(fingerprint: str) -> Path:
    import transformers

    return cache_root() / "gguf" / f"{fingerprint[:32]}-transformers-{transformers.__version__}"


def find_converted(fingerprint: str) -> Path | None:
    """The converted checkpoint for this GGUF file, if a complete one is cached."""
    where = converted_dir(fingerprint)
    try:
        meta = json.loads((where / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    return where if meta.get("gguf_sha256") == fingerprint else None


def save_converted(model: Any, tokenizer: Any, fingerprint: str, gguf_file: str) -> Path | None:
    """Write the converted checkpoint atomically (a temporary directory renamed into place).
    A cache that cannot be written is logged and skipped: the audit goes on without it."""
    import transformers

    target = converted_dir(fingerprint)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".converting-", dir=target.parent)
        _save_checkpoint(model, tokenizer, Path(tmp))
        meta = {"gguf_sha256": fingerprint, "gguf_file": gguf_file, "transformers": transformers.__version__,
                "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
        Path(tmp, _MARKER).write_text(json.dumps(meta, indent=2) + "\n")  # last: marks the copy complete
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it first
            if find_converted(fingerprint) is None:
                raise
        else:
            tmp = None
        log.info("converted %s to %s", gguf_file, target)
        return target
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("could not cache the converted GGUF checkpoint at %s: %s", target, exc)
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _save_checkpoint(model: Any, tokenizer: Any, where: Path) -> None:
    """config, weights (safetensors) and tokenizer. ``save_pretrained`` refuses a model loaded
    from GGUF (it still carries the GGUF quantizer) although its weights are plain tensors by
    now, so the weights are written directly; tied tensors are stored once."""
    from safetensors.torch import save_model

    model.config.save_pretrained(where)
    config = json.loads((where / "config.json").read_text())
    if config.pop("quantization_config", None) is not None:
        (where / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(where)
    save_model(model, str(where / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(where)


__all__ = ["cache_root", "converted_dir", "find_converted", "save_converted"]
