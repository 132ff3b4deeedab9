"""access.language_disparity — how much worse does the model model other languages and dialects
than English, on the same sentences?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from probes._datasets import dataset_info, project_data, read_json
from probes._registry import register
from probes.base import (
    ItemText,
    MetricSpec,
    Probe,
    ProbeContext,
    ProbeParams,
    ProbeResult,
)
from probes.model import LoglikRequest
from reports import Breakdown, GroupValue, Interval, Threshold

_RESAMPLES = 2000


class ParallelSet(BaseModel):
    """The same sentences in several languages; ``reference`` is the one the others are compared with."""

    model_config = ConfigDict(extra="forbid")
    reference: str
    names: dict[str, str] = Field(min_length=2)
    sentences: list[dict[str, str]] = Field(min_length=2)

    @model_validator(mode="after")
    def _complete(self) -> ParallelSet:
        if self.reference not in self.names:
            raise ValueError(f"reference {self.reference!r} is not one of the languages in names")
        for i, s in enumerate(self.sentences):
            missing = [lang for lang in self.names if not s.get(lang, "").strip()]
            if missing or "id" not in s:
                raise ValueError(f"sentence {i} lacks {', '.join(missing) or 'an id'}")
        return self


def load_parallel(path: Path) -> ParallelSet:
    return read_json(path, ParallelSet)


class LanguageParams(ProbeParams):
    pass


def _ci(samples: np.ndarray) -> Interval:
    low, high = np.quantile(samples, [0.025, 0.975])
    return Interval(low=float(low), high=float(high), method="bootstrap")


@register
class LanguageDisparity(Probe[LanguageParams]):
    """Parallel sentences in 10 languages and 2 English dialects, scored by log-likelihood.

    Measures: each language's negative log-likelihood per character relative to English on
    the same sentences (1.0 = as well modelled as English), the worst ratio and the spread.
    Cannot see: quality of generated text in each language; characters differ in information
    across scripts, so ratios between scripts are indicative, not exact.
    """

    id = "access.language_disparity"
    version = "1.0"
    risks = ("I.4", "VI.4")
    kind = "loglikelihood"
    description = ("10 project-written sentences in English, 2 English dialects and 10 languages (fr, es, de, pt, "
                   "pl, tr, sw, vi, id, hi): per-character log-likelihood relative to English")
    limitations = (
        "Per-character normalisation favours scripts with more information per character; compare languages of "
        "the same script with most confidence.",
        "Ten sentences per language: the intervals (bootstrap over sentences) are wide.",
        "Likelihood is a proxy: a model can model a language's text and still answer badly in it.",
    )
    metric_specs = (
        MetricSpec(name="worst_ratio", higher_is_better=False, ideal=1.0, unit="ratio",
                   threshold=Threshold(warn=1.5, fail=2.5),
                   description="largest per-character NLL ratio to English over the languages and dialects"),
        MetricSpec(name="spread", higher_is_better=None, ideal=0.0, unit="ratio",
                   description="largest minus smallest ratio among the non-reference languages"),
    )
    Params = LanguageParams
    dataset_format = "JSON with reference, names {code: name}, sentences [{id, <code>: text, ...}]"

    def item_texts(self, ctx: ProbeContext[LanguageParams]) -> list[ItemText]:
        """Each sentence in each language, as its own item (``<sentence id>:<language code>``)."""
        spec = load_parallel(ctx.dataset or project_data("parallel_sentences.json"))
        return [(f"{s['id']}:{lang}", s[lang]) for s in ctx.take(spec.sentences) for lang in spec.names]

    def run(self, ctx: ProbeContext[LanguageParams]) -> ProbeResult:
        path = ctx.dataset or project_data("parallel_sentences.json")
        spec = load_parallel(path)
        sentences = ctx.take(spec.sentences)
        langs = list(spec.names)
        requests = [LoglikRequest(context="", continuation=s[lang]) for s in sentences for lang in langs]
        ctx.progress.start(len(requests), "sentences")
        res = ctx.model.loglikelihood(requests, progress=ctx.progress.advance)
        nll = np.array([[-res[i * len(langs) + j].logprob for j in range(len(langs))] for i in range(len(sentences))])
        chars = np.array([[len(s[lang]) for lang in langs] for s in sentences], dtype=np.float64)
        ref = langs.index(spec.reference)
        others = [j for j in range(len(langs)) if j != ref]

        def ratios(idx: np.ndarray) -> np.ndarray:  # (resamples, languages)
            per_char = nll[idx].sum(axis=-2) / chars[idx].sum(axis=-2)
            return per_char / per_char[..., ref : ref + 1]

        point = ratios(np.arange(len(sentences)))
        rng = np.random.default_rng(ctx.seed)
        boot = ratios(rng.integers(0, len(sentences), size=(_RESAMPLES, len(sentences))))
        worst_j = others[int(np.argmax(point[others]))]
        n = len(sentences)
        by_lang = Breakdown(by="language (per-character NLL ratio to English)", groups=[
            GroupValue(group=f"{spec.names[langs[j]]} ({langs[j]})", value=float(point[j]), ci=_ci(boot[:, j]), n=n)
            for j in sorted(others, key=lambda j: -point[j])])
        worst = self.metric("worst_ratio", (float(point[worst_j]), _ci(boot[:, others].max(axis=1)), n), [by_lang])
        spread = self.metric("spread", (float(point[others].max() - point[others].min()),
                                        _ci(boot[:, others].max(axis=1) - boot[:, others].min(axis=1)), n))
        # "id" is also Indonesian's language code: where it is one, a sentence's "id" is its Indonesian
        # text, so the item id is the sentence's position, and the languages sit under their own key.
        samples = [{"id": f"sentence-{i + 1}" if "id" in spec.names else s["id"],
                    "languages": {lang: {"text": s[lang], "nll": float(nll[i, j]), "chars": int(chars[i, j])}
                                  for j, lang in enumerate(langs)}} for i, s in enumerate(sentences)]
        per_char_ref = float(nll[:, ref].sum() / chars[:, ref].sum())
        return ProbeResult(metrics=[worst, spread], samples=samples,
                           dataset=dataset_info(path, len(sentences), user=ctx.dataset is not None),
                           notes=[f"worst: {spec.names[langs[worst_j]]} at {point[worst_j]:.2f}x English's "
                                  f"{per_char_ref:.3f} nats per character; each sentence scored whole, conditioned on "
                                  "BOS only; intervals resample sentences (paired across languages)"])
