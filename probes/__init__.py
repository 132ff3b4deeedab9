"""Probes: each gathers evidence about one or more taxonomy risks. Importing this package
registers every built-in probe."""

from probes import access as _access  # noqa: F401  (importing registers the probes)
from probes import bias as _bias  # noqa: F401
from probes import disparity as _disparity  # noqa: F401
from probes import footprint as _footprint  # noqa: F401
from probes import interaction as _interaction  # noqa: F401
from probes import malicious as _malicious  # noqa: F401
from probes import misinformation as _misinformation  # noqa: F401
from probes import privacy as _privacy  # noqa: F401
from probes import toxicity as _toxicity  # noqa: F401
from probes import truthfulness as _truthfulness  # noqa: F401
from probes._datasets import project_data
from probes._registry import all_probes, get_probe, register
from probes.base import MetricSpec, Probe, ProbeContext, ProbeParams, ProbeResult, Progress

__all__ = [
    "MetricSpec",
    "Probe",
    "ProbeContext",
    "ProbeParams",
    "ProbeResult",
    "Progress",
    "all_probes",
    "get_probe",
    "project_data",
    "register",
]
