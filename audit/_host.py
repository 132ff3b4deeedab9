"""What the audit ran on, for the report."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from reports import HostInfo

_LIBRARIES = ("torch", "transformers", "tokenizers", "pydantic", "numpy", "gguf", "accelerate", "presidio-analyzer")


def host_info() -> HostInfo:
    libs = {}
    for name in _LIBRARIES:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            continue
    accelerator = None
    try:
        import torch

        if torch.cuda.is_available():
            accelerator = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return HostInfo(
        platform=platform.platform(),
        python=platform.python_version(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        accelerator=accelerator,
        libraries=libs,
    )
