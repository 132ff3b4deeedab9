"""Probes: each gathers evidence about one or more taxonomy risks, and the contracts they use.

A probe sees a ``Model`` (generate, loglikelihood, capabilities), a ``ScorerLookup`` (a
scorer per role, the PII detector), the statistics in ``probes.stats``, and raises
``DatasetError`` for an unusable prompt set. ``audit`` implements the model and scorer
contracts and runs probes; nothing here imports ``audit``. Importing this package registers
every built-in probe: those written as code (one module per probe-id prefix: ``probes/bias.py``
holds ``bias.group_disparity``) and those written as data, the packaged probe specs
``probes/data/<probe id>.yaml`` (``probes._spec``, the engine a user's spec runs on).
"""

from probes import access as _access  # noqa: F401  (importing registers the probes)
from probes import bias as _bias  # noqa: F401
from probes import contamination as _contamination  # noqa: F401
from probes import footprint as _footprint  # noqa: F401
from probes import infohazard as _infohazard  # noqa: F401
from probes import malicious_use as _malicious_use  # noqa: F401
from probes import misinformation as _misinformation  # noqa: F401
from probes import mitigation as _mitigation  # noqa: F401
from probes import pii as _pii  # noqa: F401
from probes import toxicity as _toxicity  # noqa: F401
from probes._datasets import project_data, read_jsonl
from probes._registry import all_probes, get_probe, register
from probes._spec import (
    METRIC_KINDS,
    SHAPES,
    SPEC_ROLES,
    ProbeSpec,
    SpecError,
    load_probe_spec,
    load_probe_specs,
    packaged_specs,
    register_packaged,
    spec_files,
)
from probes.base import (
    DEPTHS,
    Depth,
    ItemText,
    MetricSpec,
    Probe,
    ProbeContext,
    ProbeParams,
    ProbeResult,
    Progress,
)
from probes.errors import DatasetError
from probes.model import (
    Capabilities,
    ChatMessage,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    Model,
    ProgressFn,
    Prompt,
    TokenScorer,
    chat,
)
from probes.scoring import (
    SECRET_ENTITIES,
    Finding,
    NoScorers,
    PIIDetector,
    Scorer,
    ScorerError,
    ScorerLookup,
)

register_packaged()  # the built-in probes written as data (probes/data/<id>.yaml)

__all__ = [
    "DEPTHS",
    "METRIC_KINDS",
    "SECRET_ENTITIES",
    "SHAPES",
    "SPEC_ROLES",
    "Depth",
    "Capabilities",
    "ChatMessage",
    "DatasetError",
    "Finding",
    "Generation",
    "GenerationParams",
    "ItemText",
    "LoglikRequest",
    "LoglikResult",
    "MetricSpec",
    "Model",
    "NoScorers",
    "PIIDetector",
    "Probe",
    "ProbeContext",
    "ProbeParams",
    "ProbeResult",
    "ProbeSpec",
    "Progress",
    "ProgressFn",
    "Prompt",
    "Scorer",
    "ScorerError",
    "ScorerLookup",
    "SpecError",
    "TokenScorer",
    "all_probes",
    "chat",
    "get_probe",
    "load_probe_spec",
    "load_probe_specs",
    "packaged_specs",
    "project_data",
    "read_jsonl",
    "register",
    "spec_files",
]
