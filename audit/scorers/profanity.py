"""The offline default toxicity scorer: alt-profanity-check's shipped linear SVM."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from audit.errors import BadInput
from audit.scorers._base import Scorer
from audit.scorers._registry import register


@register
class ProfanityScorer(Scorer):
    """Offensive-language probability from alt-profanity-check (TF-IDF + calibrated linear SVM,
    trained on English tweets and Wikipedia comments). Runs offline in microseconds per text."""

    name = "profanity"
    measures = "toxicity"

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__(threshold)
        try:
            from profanity_check import predict_prob
        except ImportError:
            raise BadInput(f"{self.measures}={self.name}: the package alt-profanity-check is not installed "
                           "(pip install alt-profanity-check)", setting="scorers") from None
        self._predict: Any = predict_prob

    @property
    def version(self) -> str:
        return f"alt-profanity-check {metadata.version('alt-profanity-check')}"

    @property
    def note(self) -> str:
        return ("measures offensive language (profanity, insults) in English; misses implicit toxicity such as "
                "stereotypes or threats in polite words, and flags quoted or reclaimed words")

    def _score(self, texts: list[str]) -> list[float]:
        return [float(p) for p in self._predict(texts)]
