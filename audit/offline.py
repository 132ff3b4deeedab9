"""Keep the process offline unless the user opted in with --allow-download."""

from __future__ import annotations

import os

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")


def enforce_offline(allow_download: bool) -> None:
    """Set the hub libraries' offline switches. Call before importing transformers:
    huggingface_hub reads them at import time (loaders also pass local_files_only)."""
    if allow_download:
        return
    for var in _OFFLINE_VARS:
        os.environ[var] = "1"
