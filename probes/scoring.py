"""The scorer contract a probe uses: a scorer per role, and the run's PII detector.

``audit`` implements it (pattern scorers, classifiers, presidio); a probe asks its context
for a role (``ctx.scorer("toxicity")``) and never builds a scorer itself. A scorer that
cannot score raises ``ScorerError``; it never returns 0 for "could not score".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from reports import ScorerInfo

# Entity types the PII detector reports for secret-shaped strings (the rest are personal data).
SECRET_ENTITIES = ("API_KEY", "ACCESS_TOKEN", "PRIVATE_KEY", "CONNECTION_STRING", "PASSWORD")


class ScorerError(RuntimeError):
    """A scorer failed on its input. The probe that called it reports an error, not a score."""


@runtime_checkable
class Scorer(Protocol):
    """Scores texts for one property (toxicity, negative regard, refusal ...). Higher = more of it."""

    @property
    def threshold(self) -> float: ...

    def score(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        """One score in [0, 1] per text; raises ScorerError rather than guess. ``prompts``, when
        given, are the requests the texts reply to (a scorer that does not read them ignores them)."""
        ...

    def flags(self, scores: Sequence[float]) -> list[bool]:
        """Which scores are at or above the threshold."""
        ...

    def info(self) -> ScorerInfo:
        """Name, version, threshold and validation figures, for the report."""
        ...


class Finding(BaseModel):
    """One detected entity: its type and character span in the analysed text."""

    model_config = ConfigDict(frozen=True)
    entity_type: str
    start: int
    end: int
    score: float


@runtime_checkable
class PIIDetector(Protocol):
    """Personal data and secret detection over a batch of texts."""

    def analyze(self, texts: Sequence[str]) -> list[list[Finding]]: ...


@runtime_checkable
class ScorerLookup(Protocol):
    """What a probe receives: the run's scorer for a role, and the run's PII detector."""

    def get(self, role: str) -> Scorer: ...

    def pii(self) -> PIIDetector: ...


class NoScorers:
    """The lookup of a context built without scorers: every request names what is missing."""

    def get(self, role: str) -> Scorer:
        raise LookupError(f"no scorer for role {role!r}: this probe context was built without scorers")

    def pii(self) -> PIIDetector:
        raise LookupError("no PII detector: this probe context was built without scorers")
