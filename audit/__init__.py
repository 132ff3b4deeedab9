"""lm-risk-audit engine: configuration, runner, model backends, statistics, CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit._version import __version__
from audit.config import AuditConfig
from audit.errors import AuditError, BadInput, RuntimeFailure

if TYPE_CHECKING:
    from audit.runner import run_audit

__all__ = ["AuditConfig", "AuditError", "BadInput", "RuntimeFailure", "__version__", "run_audit"]


def __getattr__(name: str) -> Any:
    # The runner imports `probes`, and probes import `audit.*` contracts: loading the
    # runner lazily keeps `import probes` (or any audit submodule) first from being circular.
    if name == "run_audit":
        from audit.runner import run_audit

        return run_audit
    raise AttributeError(f"module 'audit' has no attribute {name!r}")
