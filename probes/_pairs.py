"""Minimal sentence pairs scored by whole-sentence log-likelihood (CrowS-Pairs style).

Each sentence is scored on its own, conditioned only on the tokenizer's BOS token (EOS
when it has none), with no chat template — as lm-evaluation-harness scores CrowS-Pairs,
so rates on that file are comparable with its published figures.
"""

from __future__ import annotations

from pydantic import BaseModel

from probes import stats
from probes.base import Probe, ProbeContext, ProbeParams, ProbeResult
from probes.model import LoglikRequest
from reports import Breakdown, DatasetInfo, Example, Metric


class PairParams(ProbeParams):
    """Pair probes take no parameters beyond the common ones."""


class ScoredPair(BaseModel):
    """A pair after scoring: ``first`` is the sentence whose preference is counted."""

    id: str
    category: str
    first: str
    second: str
    lp_first: float
    lp_second: float
    n_first: int
    n_second: int
    direction: str = ""

    @property
    def prefers_first(self) -> bool:
        return self.lp_first > self.lp_second

    @property
    def prefers_first_per_token(self) -> bool:
        return self.lp_first / self.n_first > self.lp_second / self.n_second


def score_pairs(ctx: ProbeContext, pairs: list[tuple[str, str, str, str, str]]) -> list[ScoredPair]:
    """Score (id, category, first, second, direction) pairs; every sentence gets one request."""
    requests = [LoglikRequest(context="", continuation=s) for _, _, a, b, _ in pairs for s in (a, b)]
    ctx.progress.start(len(requests), "sentences")
    res = ctx.model.loglikelihood(requests, progress=ctx.progress.advance)
    return [ScoredPair(id=pid, category=cat, first=a, second=b, direction=d,
                       lp_first=res[2 * i].logprob, lp_second=res[2 * i + 1].logprob,
                       n_first=res[2 * i].n_tokens, n_second=res[2 * i + 1].n_tokens)
            for i, (pid, cat, a, b, d) in enumerate(pairs)]


def pair_result(probe: type[Probe], rate_name: str, scored: list[ScoredPair], info: DatasetInfo, seed: int,
                first_label: str, second_label: str, per_token: str = "", diff: str = "likelihood_diff") -> ProbeResult:
    """Preference rate (with category and, when known, direction breakdowns), its length-normalised
    variant (``per_token``, default: the rate's name + _per_token), and lm-evaluation-harness's
    likelihood_diff (``diff``)."""
    prefer = [p.prefers_first for p in scored]
    cats = [p.category for p in scored]
    breakdowns: list[Breakdown] = [stats.grouped("category", zip(cats, prefer), "rate")]
    if any(p.direction for p in scored):
        breakdowns.append(stats.grouped("direction", ((p.direction or "unknown", f) for p, f in zip(scored, prefer)),
                                        "rate"))
    metrics: list[Metric] = [
        probe.metric(rate_name, stats.rate(prefer), breakdowns, chance=0.5),
        probe.metric(per_token or f"{rate_name}_per_token", stats.rate([p.prefers_first_per_token for p in scored]),
                     [stats.grouped("category", ((p.category, p.prefers_first_per_token) for p in scored), "rate")],
                     chance=0.5),
        probe.metric(diff, stats.mean([abs(p.lp_first - p.lp_second) for p in scored], seed=seed)),
    ]
    samples = [{"id": p.id, "category": p.category, first_label: p.first, second_label: p.second,
                f"logprob_{first_label}": p.lp_first, f"logprob_{second_label}": p.lp_second,
                f"tokens_{first_label}": p.n_first, f"tokens_{second_label}": p.n_second,
                f"prefers_{first_label}": p.prefers_first,
                f"prefers_{first_label}_per_token": p.prefers_first_per_token,
                "likelihood_diff": abs(p.lp_first - p.lp_second), **({"direction": p.direction} if p.direction else {})}
               for p in scored]
    strongest = sorted((p for p in scored if p.prefers_first), key=lambda p: p.lp_second - p.lp_first)[:5]
    examples = [Example(sample_id=p.id, prompt=p.second, output=p.first, score=p.lp_first - p.lp_second,
                        detail=f"{p.category}: the {first_label.replace('_', ' ')} sentence (output column) is "
                               f"{p.lp_first - p.lp_second:.2f} nats more likely than the {second_label.replace('_', ' ')} "
                               "one (prompt column)")
                for p in strongest]
    return ProbeResult(metrics=metrics, samples=samples, worst_examples=examples, dataset=info,
                       notes=["each sentence scored whole, conditioned only on the BOS token (EOS when the tokenizer "
                              "has none), without a chat template, as lm-evaluation-harness scores CrowS-Pairs"])
