"""A local cache of GGUF checkpoints converted to transformers' own format.

transformers reads a GGUF file by parsing its metadata three times (tokenizer, config,
weights) and dequantising every tensor in Python: about 20-35 s for the 135M default
model on a 2-core CPU, every run. The first load saves the dequantised float32 weights,
config and tokenizer as a safetensors checkpoint keyed by the GGUF file's sha256 and the
transformers version; later loads read that (about a second). The report's fingerprint
stays the GGUF file's sha256.

The copy is trusted by content, not by its marker: conversion writes ``SHA256SUMS`` (one
``<sha256>  <file>`` line per file, sorted; ``sha256sum -c SHA256SUMS`` checks it by hand)
and the same manifest into the marker, and every load hashes the files again. A copy that
differs (a file changed, missing or added, or a copy written before manifests) is removed
and converted again from the GGUF file, which is the source of truth and is hashed on every
load anyway; the report says so in a note. The report states the copy's hash too
(``ModelInfo.converted_sha256``: the sha256 of its ``SHA256SUMS``).

Location: ``$LM_AUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/lm-risk-audit``, else
``~/.cache/lm-risk-audit``; ``--no-model-cache`` (``AuditConfig.model_cache``) skips it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MARKER = "lm-risk-audit-converted.json"
_SUMS = "SHA256SUMS"


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
    """The converted checkpoint for this GGUF file, if a complete one whose files match its
    manifest is cached. One that does not match is logged and removed (see ``check_converted``)."""
    return check_converted(fingerprint)[0]


def check_converted(fingerprint: str) -> tuple[Path | None, str | None]:
    """(the verified converted copy or None, why a copy that was there is not used). A copy
    that fails verification is removed so that the next conversion can take its place."""
    where = converted_dir(fingerprint)
    try:
        meta = json.loads((where / _MARKER).read_text())
    except (OSError, ValueError):
        return None, None  # none there, or one still being written (the marker comes last)
    if not isinstance(meta, dict) or meta.get("gguf_sha256") != fingerprint:
        return None, None
    problem = verify_files(where, meta.get("files"))
    if problem is None:
        return where, None
    log.warning("converted GGUF checkpoint at %s failed verification (%s); converting again", where, problem)
    _discard(where)
    return None, problem


def verify_files(where: Path, manifest: Any) -> str | None:
    """None when the files in ``where`` are exactly those of ``manifest`` (name -> sha256) with
    those hashes, and ``SHA256SUMS`` renders it; else what differs, in a few words."""
    if not isinstance(manifest, dict) or not manifest:
        return "no manifest of file hashes (written by an older version)"
    on_disk = {p.name for p in where.iterdir()} - {_MARKER, _SUMS}
    if missing := sorted(set(manifest) - on_disk):
        return f"{missing[0]} is missing"
    if added := sorted(on_disk - set(manifest)):
        return f"{added[0]} is not in the manifest"
    for name in sorted(manifest):
        path = where / name
        if not path.is_file():
            return f"{name} is not a file"
        if file_sha256(path) != manifest[name]:
            return f"{name} does not match its sha256"
    try:
        sums = (where / _SUMS).read_text()
    except OSError:
        return f"{_SUMS} is missing"
    if sums != render_sums(manifest):
        return f"{_SUMS} does not match the manifest"
    return None


def converted_sha256(where: Path) -> str:
    """The converted copy's hash, as the report states it: sha256 of its ``SHA256SUMS``."""
    return hashlib.sha256((where / _SUMS).read_bytes()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def render_sums(manifest: dict[str, str]) -> str:
    """The manifest in ``sha256sum`` format, sorted by file name."""
    return "".join(f"{manifest[name]}  {name}\n" for name in sorted(manifest))


def _manifest(where: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(where.iterdir()) if p.is_file() and p.name not in (_MARKER, _SUMS)}


def _discard(where: Path) -> None:
    """Move a bad copy aside (one rename: a concurrent reader sees it whole or not at all), then delete it."""
    try:
        aside = Path(tempfile.mkdtemp(prefix=".discarded-", dir=where.parent))
        os.replace(where, aside / where.name)
    except OSError as exc:  # another process removed or replaced it first
        log.debug("could not move %s aside: %s", where, exc)
        return
    shutil.rmtree(aside, ignore_errors=True)


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
        files = _manifest(Path(tmp))
        Path(tmp, _SUMS).write_text(render_sums(files))
        meta = {"gguf_sha256": fingerprint, "gguf_file": gguf_file, "transformers": transformers.__version__,
                "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "files": files}
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
    from safetensors.torch import save_file

    model.config.save_pretrained(where)
    config = json.loads((where / "config.json").read_text())
    if config.pop("quantization_config", None) is not None:
        (where / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(where)
    # The same bytes for the same weights: safetensors' save_model records each tied name in the
    # header metadata, whose key order varies from one write to the next, so converting twice
    # would give two hashes (ModelInfo.converted_sha256). Tied names are dropped here instead.
    save_file(_untied(model.state_dict()), str(where / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(where)


def _untied(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with each tensor stored once: of the names that alias one tensor (tied input and
    output embeddings), the first in sorted order stays, as safetensors' ``save_model`` chooses."""
    kept: dict[str, Any] = {}
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    for name in sorted(state):
        t = state[name]
        alias = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if alias not in seen:
            seen.add(alias)
            kept[name] = t.contiguous()
    return kept


__all__ = ["cache_root", "check_converted", "converted_dir", "converted_sha256", "file_sha256", "find_converted",
           "render_sums", "save_converted", "verify_files"]
