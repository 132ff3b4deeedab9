"""lm-risk-audit engine: implements the probes' contracts (model backends, scorers, PII
detection) and runs probes: settings, runner, roll-up, policy, result cache, CLI."""

from __future__ import annotations

from audit._version import __version__
from audit.config import AuditConfig
from audit.errors import AuditError, BadInput, RuntimeFailure
from audit.runner import run_audit

__all__ = ["AuditConfig", "AuditError", "BadInput", "RuntimeFailure", "__version__", "run_audit"]
