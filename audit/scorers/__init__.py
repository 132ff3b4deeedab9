"""Scorers: batched text -> score in [0, 1] for one property (toxicity, negative regard).

``ScorerSet`` holds a run's scorers by role; ``validate`` measures one on a labelled set.
Each built-in scorer registers under its name (``SCORER_NAMES``) with the role it measures;
``ROLES`` maps each role to the scorer a run uses unless told otherwise.
"""

from audit.scorers._base import Scorer
from audit.scorers._factory import (
    ROLES,
    SCORER_NAMES,
    PIIOptions,
    ScorerSet,
    ScorerSpec,
    build_scorer,
)
from audit.scorers._validation import (
    LabelledText,
    load_labelled,
    scorer_data,
    validate,
    validate_on_project_set,
    validation_set_path,
)
from audit.scorers.pii import PIIDetector, redact_tree
from probes import ScorerError  # the contract's error, re-exported for scorer authors

__all__ = [
    "ROLES",
    "SCORER_NAMES",
    "LabelledText",
    "PIIDetector",
    "PIIOptions",
    "Scorer",
    "ScorerError",
    "ScorerSet",
    "ScorerSpec",
    "build_scorer",
    "load_labelled",
    "scorer_data",
    "redact_tree",
    "validate",
    "validate_on_project_set",
    "validation_set_path",
]
