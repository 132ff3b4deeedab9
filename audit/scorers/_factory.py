"""Which scorer plays which role in a run, built once and validated once per run."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import BadInput
from audit.scorers._base import Scorer
from audit.scorers._validation import validate_on_project_set
from audit.scorers.pii import PIIDetector

log = logging.getLogger(__name__)

ROLES: dict[str, str] = {"toxicity": "profanity", "regard": "regard-lexicon", "refusal": "refusal-patterns",
                         "claims": "claims-patterns", "identity": "identity-patterns"}  # role -> default scorer
SCORER_NAMES = ("profanity", "hf-classifier", "regard-lexicon", "refusal-patterns", "claims-patterns", "identity-patterns")
_MEASURES = {"profanity": "toxicity", "regard-lexicon": "regard", "refusal-patterns": "refusal",
             "claims-patterns": "claims", "identity-patterns": "identity"}


class PIIOptions(BaseModel):
    """PII detection settings: the spaCy pipeline ("auto", a name, or "none"), entity types, score threshold."""

    model_config = ConfigDict(extra="forbid")
    nlp_model: str = "auto"
    entities: list[str] = Field(default_factory=list, description="empty: the default PII and secret types")
    threshold: float = Field(default=0.4, ge=0.0, le=1.0)


class ScorerSpec(BaseModel):
    """A scorer choice for one role: ``name`` and, for hf-classifier, the model and its positive labels."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["profanity", "hf-classifier", "regard-lexicon", "refusal-patterns", "claims-patterns",
                  "identity-patterns"]
    model: str | None = Field(default=None, description="hf-classifier: local directory (or hub id with allow_download)")
    labels: list[str] | None = Field(default=None, description="hf-classifier: labels that count as positive")
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    batch_size: int = Field(default=32, ge=1)


def build_scorer(role: str, spec: ScorerSpec, *, allow_download: bool = False, device: str = "cpu") -> Scorer:
    """A ready scorer for ``role``; BadInput (naming the flag) when the choice cannot work."""
    if role not in ROLES:
        raise BadInput(f"--scorer {role}=...: unknown role (known: {', '.join(ROLES)})")
    if spec.name == "hf-classifier":
        if not spec.model:
            raise BadInput(f"--scorer {role}=hf-classifier: needs a model, as hf-classifier:PATH")
        from audit.scorers.hf_classifier import HFClassifierScorer

        return HFClassifierScorer(spec.model, role=role, labels=spec.labels, threshold=spec.threshold,
                                  batch_size=spec.batch_size, device=device, allow_download=allow_download)
    if _MEASURES[spec.name] != role:
        raise BadInput(f"--scorer {role}={spec.name}: {spec.name} measures {_MEASURES[spec.name]}, not {role}")
    if spec.model or spec.labels:
        raise BadInput(f"--scorer {role}={spec.name}: takes no model or labels")
    if spec.name == "profanity":
        from audit.scorers.profanity import ProfanityScorer

        return ProfanityScorer(threshold=spec.threshold)
    if spec.name in ("claims-patterns", "identity-patterns"):
        from audit.scorers.claims import HumanClaimScorer, IdentityClaimScorer

        cls = HumanClaimScorer if spec.name == "claims-patterns" else IdentityClaimScorer
        return cls(threshold=spec.threshold)
    if spec.name == "refusal-patterns":
        from audit.scorers.refusal import RefusalPatternScorer

        return RefusalPatternScorer(threshold=spec.threshold)
    from audit.scorers.regard_lexicon import RegardLexiconScorer

    return RegardLexiconScorer(threshold=spec.threshold)


class ScorerSet:
    """The run's scorers by role: each built on first use, validated on the project's labelled set
    once, and shared by every probe (so a classifier loads once per run)."""

    def __init__(self, specs: dict[str, ScorerSpec] | None = None, *, allow_download: bool = False,
                 device: str = "cpu", seed: int = 0, validate: bool = True, pii: PIIOptions | None = None) -> None:
        self._specs = {role: ScorerSpec(name=default) for role, default in ROLES.items()}  # type: ignore[arg-type]
        for role, spec in (specs or {}).items():
            if role not in ROLES:
                raise BadInput(f"--scorer {role}=...: unknown role (known: {', '.join(ROLES)})")
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
                scorer.validation = v = validate_on_project_set(scorer, seed=self._seed)
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
