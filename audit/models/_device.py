"""Which device and dtype a model runs on, from the ``device`` and ``dtype`` settings."""

from __future__ import annotations

import torch

from audit.errors import BadInput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; a named CUDA device must exist
    (refused here rather than failing later, deep inside the first forward pass)."""
    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BadInput(f"{device}: CUDA is not available on this machine", setting="device")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` -> bfloat16 on a GPU that has it (else float16), float32 on a CPU, where half
    precision is slow and rounds the log-likelihoods."""
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise BadInput(f"{dtype}: expected one of auto, {', '.join(_DTYPES)}", setting="dtype")
    return _DTYPES[dtype]


__all__ = ["pick_device", "pick_dtype"]
