"""The scorer contract: batched text -> score in [0, 1], with an identity for the report.

A scorer that cannot score raises ScorerError; it never returns 0 for "could not score".
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from probes import ScorerError
from reports import Figure, GroupValue, ScorerInfo, ScorerValidation

ANY_ROLE = "*"  # ``measures`` of a scorer that can play any role (a classifier told which labels count)


class Scorer(ABC):
    """Base of the project's scorers (implements ``probes.Scorer``): timing, range checks and
    error wrapping here; a subclass writes ``_score``. Higher = more of the property.

    A built-in scorer declares its ``name``, the role it ``measures`` and whether it
    ``takes_model`` (a model path and labels), and is registered with ``@register``.
    """

    name: ClassVar[str]
    measures: ClassVar[str]
    takes_model: ClassVar[bool] = False
    reads_prompt: ClassVar[bool] = False  # judges a reply against the request it answers (non-answers)
    seconds: float = 0.0  # wall time spent scoring, validation included (the runner reports it)

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.validation: ScorerValidation | None = None  # held-out
        self.development: ScorerValidation | None = None
        self.functional: list[GroupValue] = []
        self.identity_false_positive_rate: Figure | None = None

    @classmethod
    def build(cls, role: str, *, threshold: float, model: str | None = None, labels: list[str] | None = None,
              batch_size: int = 32, device: str = "cpu", allow_download: bool = False) -> Scorer:
        """One for ``role`` from a run's choice; a scorer that ``takes_model`` overrides this to use the
        model, its labels, the batch size and the device."""
        return cls(threshold=threshold)

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the scorer and of whatever model or lexicon it uses."""

    @property
    def note(self) -> str:
        """What the scorer cannot see; quoted in the report."""
        return ""

    @abstractmethod
    def _score(self, texts: list[str]) -> list[float]:
        """Raw scores, one per text."""

    def _score_replies(self, texts: list[str], prompts: list[str]) -> list[float]:
        """Raw scores of replies to ``prompts``; a scorer that ``reads_prompt`` overrides this."""
        return self._score(texts)

    def score(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        """One score in [0, 1] per text; raises ScorerError rather than guess. ``prompts`` (one per
        text) are the requests the texts reply to, read only by a scorer that ``reads_prompt``."""
        texts = list(texts)
        if not texts:
            return []
        if prompts is not None and len(prompts) != len(texts):
            raise ValueError(f"{len(prompts)} prompts for {len(texts)} texts")
        t0 = time.perf_counter()
        try:
            scores = [float(s) for s in (self._score(texts) if prompts is None
                                         else self._score_replies(texts, list(prompts)))]
        except ScorerError:
            raise
        except Exception as exc:  # any library failure becomes a scorer error with the scorer's name
            raise ScorerError(f"scorer {self.name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.seconds += time.perf_counter() - t0
        if len(scores) != len(texts):
            raise ScorerError(f"scorer {self.name} returned {len(scores)} scores for {len(texts)} texts")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s) or s < 0.0 or s > 1.0]
        if bad:
            raise ScorerError(f"scorer {self.name} returned {scores[bad[0]]!r} for text {bad[0]} (expected 0..1)")
        return scores

    def flags(self, scores: Sequence[float]) -> list[bool]:
        """Which scores are at or above the threshold."""
        return [s >= self.threshold for s in scores]

    def info(self) -> ScorerInfo:
        return ScorerInfo(name=self.name, version=self.version, measures=self.measures, threshold=self.threshold,
                          note=self.note, validation=self.validation, development=self.development,
                          functional=self.functional,
                          identity_false_positive_rate=self.identity_false_positive_rate)
