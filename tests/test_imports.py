"""Every public package imports on its own, first, in a fresh interpreter (no import cycles)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["probes", "taxonomy", "reports", "audit", "audit.models", "audit.scorers", "audit.cli"])
def test_package_imports_first(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

