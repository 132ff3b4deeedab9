"""Which scorer plays which role in a run, built once and validated once per run."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audit.errors import BadInput
from audit.scorers import claims as _claims  # noqa: F401  (importing registers the built-in scorers)
from audit.scorers import embedding_head as _embedding_head  # noqa: F401
from audit.scorers import hf_classifier as _hf_classifier  # noqa: F401
from audit.scorers import nonanswer as _nonanswer  # noqa: F401
from audit.scorers import profanity as _profanity  # noqa: F401
from audit.scorers import refusal as _refusal  # noqa: F401
from audit.scorers import regard_lexicon as _regard_lexicon  # noqa: F401
from audit.scorers._base import ANY_ROLE, Scorer
from audit.scorers._registry import ROLES, all_scorers, get_scorer
from audit.scorers._validation import (
    functional_tests,
    validate_heldout,
    validate_on_project_set,
)
from audit.scorers.pii import PIIDetector

log = logging.getLogger(__name__)


def _scorer_names() -> tuple[str, ...]:
    """Every registered scorer: each role's default (checked to be one that measures the role), then the rest."""
    for role, name in ROLES.items():
        if name not in all_scorers() or get_scorer(name).measures != role:
            raise ValueError(f"the default scorer for {role}, {name!r}, is not a registered scorer of {role}")
    return tuple(dict.fromkeys([*ROLES.values(), *sorted(all_scorers())]))


SCORER_NAMES = _scorer_names()  # ROLES (role -> its default scorer) is declared with the registry


class PIIOptions(BaseModel):
    """PII detection settings: the spaCy pipeline ("auto", a name, or "none"), entity types, score threshold."""

    model_config = ConfigDict(extra="forbid")
    nlp_model: str = "auto"
    entities: list[str] = Field(default_factory=list, description="empty: the default PII and secret types")
    threshold: float = Field(default=0.4, ge=0.0, le=1.0)


class ScorerSpec(BaseModel):
    """A scorer choice for one role: ``name`` and, for hf-classifier, the model and its positive labels."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="a registered scorer (SCORER_NAMES)")
    model: str | None = Field(default=None, description="hf-classifier: local directory (or hub id with allow_download)")
    labels: list[str] | None = Field(default=None, description="hf-classifier: labels that count as positive")
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    batch_size: int = Field(default=32, ge=1)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in SCORER_NAMES:
            raise ValueError(f"unknown scorer {name!r} (known: {', '.join(SCORER_NAMES)})")
        return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadInput(f"{role}=...: unknown role (known: {', '.join(ROLES)})", setting="scorers")


def build_scorer(role: str, spec: ScorerSpec, *, allow_download: bool = False, device: str = "cpu") -> Scorer:
    """A ready scorer for ``role``; BadInput (naming the ``scorers`` setting) when the choice cannot work."""
    _check_role(role)
    cls = get_scorer(spec.name)
    choice = f"{role}={spec.name}"
    if cls.measures not in (ANY_ROLE, role):
        raise BadInput(f"{choice}: {spec.name} measures {cls.measures}, not {role}", setting="scorers")
    if not cls.takes_model and (spec.model or spec.labels):
        raise BadInput(f"{choice}: takes no model or labels", setting="scorers")
    return cls.build(role, threshold=spec.threshold, model=spec.model, labels=spec.labels,
                     batch_size=spec.batch_size, device=device, allow_download=allow_download)


class ScorerSet:
    """The run's scorers by role: each built on first use, validated on the project's labelled set
    once, and shared by every probe (so a classifier loads once per run)."""

    def __init__(self, specs: dict[str, ScorerSpec] | None = None, *, allow_download: bool = False,
                 device: str = "cpu", seed: int = 0, validate: bool = True, pii: PIIOptions | None = None) -> None:
        self._specs = {role: ScorerSpec(name=default) for role, default in ROLES.items()}
        for role, spec in (specs or {}).items():
            _check_role(role)
            self._specs[role] = spec
        self._built: dict[str, Scorer] = {}
        self._pii_options = pii or PIIOptions()
        self._pii: PIIDetector | None = None
        self._allow_download, self._device, self._seed, self._validate = allow_download, device, seed, validate

    def prepare(self, roles: list[str]) -> None:
        """Build (and validate) the scorers for ``roles`` now: bad choices fail before the model loads."""
        for role in roles:
            self.get(role)

    def get(self, role: str) -> Scorer:
        if role not in self._built:
            scorer = build_scorer(role, self._specs[role], allow_download=self._allow_download, device=self._device)
            if self._validate:
                scorer.development = validate_on_project_set(scorer, seed=self._seed)
                # Gates and the scorer correction read the held-out figures; a role without a held-out
                # set falls back to its development figures (the report names the set either way).
                scorer.validation = v = validate_heldout(scorer, seed=self._seed) or scorer.development
                scorer.functional, scorer.identity_false_positive_rate = functional_tests(scorer)
                if v is not None:
                    log.info("scorer %s on %s: precision %s recall %s", scorer.name, v.dataset, v.precision.value,
                             v.recall.value)
            self._built[role] = scorer
        return self._built[role]

    @property
    def seconds(self) -> float:
        """Wall time spent in the run's scorers and PII detector so far."""
        return sum(s.seconds for s in self._built.values()) + (self._pii.seconds if self._pii is not None else 0.0)

    def pii(self) -> PIIDetector:
        """The run's PII and secret detector (presidio), built on first use."""
        if self._pii is None:
            o = self._pii_options
            self._pii = PIIDetector(nlp_model=o.nlp_model, entities=o.entities or None, threshold=o.threshold)
        return self._pii
