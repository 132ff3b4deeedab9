"""Scorers: batched text -> score in [0, 1] for one property (toxicity, negative regard).

``ScorerSet`` holds a run's scorers by role; ``validate`` measures one on a labelled set.
"""

from audit.scorers._base import Scorer, ScorerError
from audit.scorers._factory import ROLES, SCORER_NAMES, PIIOptions, ScorerSet, ScorerSpec, build_scorer
from audit.scorers._validation import (
    LabelledText,
    load_labelled,
    validate,
    validate_on_project_set,
    validation_set_path,
)
from audit.scorers.pii import PIIDetector, redact_tree

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
    "redact_tree",
    "validate",
    "validate_on_project_set",
    "validation_set_path",
]
