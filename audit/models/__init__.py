"""Model backends: the contract the runner relies on (``Backend``), the wrapper every backend
goes through (``MeteredModel``), and the transformers backend. The transformers backend is
imported on first use (torch is heavy), through ``load_model``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.models._backend import Backend, MeteredModel, check_backend
from audit.models._openai import EndpointOptions, OpenAIBackend, is_endpoint
from audit.models._replay import (
    MissingOutputs,
    OutputsBackend,
    RecordingBackend,
    ReplayBackend,
    is_outputs,
)
from audit.models._resolve import (
    BUILTIN_MODELS,
    ModelSource,
    resolve_model,
    weights_fingerprint,
)

if TYPE_CHECKING:
    from audit.models._hf import HFBackend


def load_model(
    spec: str | ModelSource,
    *,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    chat_template: bool = True,
    batch_size: int | None = None,
    model_cache: bool = True,
) -> HFBackend:
    """Resolve ``spec`` (alias, .gguf, checkpoint dir, or hub id with allow_download) and load it.
    A GGUF checkpoint is converted once and read from the local model cache after (``model_cache``)."""
    source = spec if isinstance(spec, ModelSource) else resolve_model(spec, allow_download=allow_download)
    from audit.models._load import load_hf_backend

    return load_hf_backend(
        source,
        allow_download=allow_download,
        trust_remote_code=trust_remote_code,
        dtype=dtype,
        device=device,
        chat_template=chat_template,
        batch_size=batch_size,
        model_cache=model_cache,
    )


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; a named CUDA device must exist."""
    from audit.models._device import pick_device as pick

    return pick(device)


__all__ = [
    "BUILTIN_MODELS",
    "Backend",
    "check_backend",
    "EndpointOptions",
    "is_endpoint",
    "OpenAIBackend",
    "MissingOutputs",
    "OutputsBackend",
    "RecordingBackend",
    "ReplayBackend",
    "is_outputs",
    "MeteredModel",
    "ModelSource",
    "load_model",
    "pick_device",
    "resolve_model",
    "weights_fingerprint",
]
