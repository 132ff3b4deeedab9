"""Planted faults at known rates, run through the real probes at their default item counts.

A model whose true rate sits at twice a metric's fail bar must fail; one at half the bar (halfway
between the ideal and the bar) must clear the bar (pass or warn: the gate passes even with
``inconclusive: block``) in at least 80% of seeds; one at the bar must come out inconclusive. The
models are fixed-output: each prompt is answered harmfully or harmlessly by a seeded coin of the
planted rate, and the real scorers judge the replies. The item counts are checked on the raw rate;
read through the scorer correction (held-out sensitivity and specificity) a rate clears its bar
only as often as the scorer's quality allows, which the tests check is never a false fail. Where
the probe's limitations say the default n cannot reach this power (group disparity's gaps, the
toxicity scorer's correction), the test checks that statement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from audit import AuditConfig, run_audit
from audit.errors import BadInput
from audit.power import clear_probability, corrected_chances, half_bar
from audit.rollup import metric_status
from audit.scorers import ScorerSet
from probes import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    Probe,
    ProbeContext,
    ProgressFn,
    Prompt,
    all_probes,
    get_probe,
)
from probes._datasets import project_data
from probes.bias import GroupDisparity
from probes.toxicity import ToxicityDialogue
from reports import Metric, Status

SEEDS = 40
CLEARED = (Status.passed, Status.warn)

# packaged probe specs (probes/data/<id>.yaml)
DefaultNorms = get_probe("exclusion.default_norms")
SelfIdentity = get_probe("interaction.identity")
OverRefusal = get_probe("malicious_use.over_refusal")


def _text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m.content for m in prompt)


def _coin(seed: int, key: str, rate: float) -> bool:
    """A seeded coin per (seed, item): True with probability ``rate``, independent across items."""
    h = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < rate


class PlantedModel:
    """Answers each prompt with ``harmful`` when its coin comes up, else ``harmless``; for
    log-likelihood pairs, prefers the sentence in ``harmful_side`` when the coin comes up."""

    def __init__(self, rate: float, seed: int, harmful: str = "", harmless: str = "",
                 harmful_side: set[str] | None = None) -> None:
        self.rate, self.seed, self.harmful, self.harmless = rate, seed, harmful, harmless
        self.harmful_side = harmful_side or set()
        self.pair_of: dict[str, str] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=False, loglikelihood=True, max_context=2048)

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None) -> list[Generation]:
        return [Generation(text=self.harmful if _coin(self.seed, _text(p), self.rate) else self.harmless,
                           n_tokens=12, finish_reason="eos") for p in prompts]

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None) -> list[LoglikResult]:
        out = []
        for r in requests:
            bad = r.continuation in self.harmful_side
            key = r.continuation if bad else self.pair_of.get(r.continuation, r.continuation)
            prefers_bad = _coin(self.seed, key, self.rate)
            out.append(LoglikResult(logprob=-1.0 if bad == prefers_bad else -2.0, is_greedy=False, n_tokens=10))
        return out


@pytest.fixture(scope="module")
def scorers() -> ScorerSet:
    return ScorerSet()  # the default scorers, validated on their labelled sets once


def _metric(probe: Probe, model: PlantedModel, scorers: ScorerSet, name: str, depth: str = "standard",
            **params: object) -> Metric:
    ctx = ProbeContext(model=model, params=type(probe).Params(**params), seed=model.seed, scorers=scorers,
                       standard_items=type(probe).standard_items, depth=depth)  # type: ignore[arg-type]
    result = probe.run(ctx)
    return next(m for m in result.metrics if m.name == name)


def _statuses(make: object, probe: Probe, scorers: ScorerSet, name: str, rate: float, seeds: int = SEEDS,
              use_corrected: bool = True, depth: str = "standard", **params: object) -> list[Status | None]:
    return [metric_status(_metric(probe, make(rate, s), scorers, name, depth, **params),  # type: ignore[operator]
                          use_corrected=use_corrected) for s in range(seeds)]


def _spec(probe: Probe, name: str) -> tuple[float, float, bool]:
    spec = next(m for m in probe.metric_specs if m.name == name)
    assert spec.threshold is not None and spec.threshold.fail is not None and spec.higher_is_better is not None
    ideal = spec.ideal if spec.ideal is not None else (1.0 if spec.higher_is_better else 0.0)
    return spec.threshold.fail, ideal, spec.higher_is_better


def _check_design(probe: Probe, make: object, scorers: ScorerSet, name: str, use_corrected: bool = True,
                  **params: object) -> None:
    fail, ideal, _ = _spec(probe, name)
    twice = min(1.0, ideal + 2 * (fail - ideal))
    at_twice = _statuses(make, probe, scorers, name, twice, seeds=10, **params)  # the gate's reading
    assert all(s is Status.fail for s in at_twice), at_twice
    at_half = _statuses(make, probe, scorers, name, half_bar(fail, ideal), use_corrected=use_corrected, **params)
    cleared = sum(s in CLEARED for s in at_half)
    assert cleared >= 0.8 * SEEDS, f"{probe.id} {name}: half the bar cleared in {cleared}/{SEEDS} seeds: {at_half}"
    at_bar = _statuses(make, probe, scorers, name, fail, seeds=20, use_corrected=use_corrected, **params)
    assert sum(s is Status.inconclusive for s in at_bar) >= 16, at_bar


def _corrected_half_bar_is_honest(probe: Probe, make: object, scorers: ScorerSet, name: str) -> None:
    """Read through the scorer correction, a model at half the bar clears it only as often as the
    scorer's held-out sensitivity allows: with a weak scorer it comes out inconclusive (never fail),
    as the report's correction note and the BENCHMARKS power table say."""
    fail, ideal, _ = _spec(probe, name)
    statuses = _statuses(make, probe, scorers, name, half_bar(fail, ideal), seeds=10)
    assert Status.fail not in statuses, statuses
    m = _metric(probe, make(half_bar(fail, ideal), 0), scorers, name)
    assert m.corrected is not None and "held out" in m.correction_note, m.correction_note


@pytest.mark.slow
@pytest.mark.parametrize("probe, name, harmful, harmless", [
    (SelfIdentity(), "self_identity_rate", "I am a woman from Ohio, and I am 34 years old.",
     "I'm an AI language model, so I don't have a gender, age or nationality."),
    (OverRefusal(), "refusal_rate", "I can't help with that.",
     "Sure. A pin tumbler lock has spring pins that the right key lifts to the shear line."),
], ids=["identity", "over_refusal"])
def test_scored_replies_planted_at_known_rates(scorers: ScorerSet, probe: Probe, name: str, harmful: str,
                                               harmless: str) -> None:
    def make(rate: float, seed: int) -> PlantedModel:
        return PlantedModel(rate, seed, harmful=harmful, harmless=harmless)

    # The item count: raw, a model at half the bar clears it; the gate's corrected reading is as
    # strong as the scorer's held-out sensitivity (0.4-0.5 for these pattern scorers) allows.
    _check_design(probe, make, scorers, name, use_corrected=False)
    _corrected_half_bar_is_honest(probe, make, scorers, name)


@pytest.mark.slow
def test_default_norms_planted_at_known_rates(scorers: ScorerSet) -> None:
    pairs = [SimpleNamespace(**json.loads(line)) for line in project_data("default_norms.jsonl").read_text().splitlines()
             if line.strip()]

    def make(rate: float, seed: int) -> PlantedModel:
        m = PlantedModel(rate, seed, harmful_side={p.narrow for p in pairs})
        m.pair_of = {p.inclusive: p.narrow for p in pairs}
        return m

    _check_design(DefaultNorms(), make, scorers, "narrow_default_rate")


@pytest.mark.slow
def test_toxic_dialogue_at_half_the_bar_clears_raw_but_not_through_the_default_scorer(scorers: ScorerSet) -> None:
    """The probe's 120 turns clear the bar raw. A scorer that errs on the audited replies as it does on
    its labelled set (sensitivity about 0.57, specificity about 0.79) leaves the corrected figure too
    uncertain to clear it at this n — as the probe's limitations say. (The planted replies here are
    ones the scorer gets right, so they cannot show that; the simulation draws the scorer's errors.)"""
    def make(rate: float, seed: int) -> PlantedModel:
        return PlantedModel(rate, seed, harmful="You are a stupid idiot, shut up.",
                            harmless="I'm sorry you're frustrated; let me try to help.")

    probe = ToxicityDialogue()
    fail, ideal, _ = _spec(probe, "toxicity_probability")
    raw = _statuses(make, probe, scorers, "toxicity_probability", half_bar(fail, ideal), use_corrected=False)
    assert sum(s in CLEARED for s in raw) >= 0.8 * SEEDS, raw
    v = scorers.get("toxicity").validation
    assert v is not None and None not in (v.tp, v.fn, v.tn, v.fp)
    sens, spec = (v.tp, v.tp + v.fn), (v.tn, v.tn + v.fp)  # type: ignore[operator]
    assert corrected_chances(120, half_bar(fail, ideal), fail, False, sens, spec, sims=60)[0] <= 0.3
    assert any("scorer" in lim and "half" in lim for lim in probe.limitations)
    twice_raw = _statuses(make, probe, scorers, "toxicity_probability", 2 * fail, seeds=5, use_corrected=False)
    assert twice_raw == [Status.fail] * 5, twice_raw
    # read through the correction a toxic model is never passed (a fail needs evidence that holds even
    # if the scorer misses nothing, so at twice the bar it can stay inconclusive)
    twice = _statuses(make, probe, scorers, "toxicity_probability", 2 * fail, seeds=5)
    assert not any(s in CLEARED for s in twice), twice


@pytest.mark.slow
def test_group_disparity_passes_a_clean_model_fails_a_large_gap_and_states_its_power(scorers: ScorerSet) -> None:
    """At standard depth (32 templates) a model with no toxic output clears the gap bar and a large gap
    fails; at thorough (64) a gap of twice the bar fails four times in five; a true gap of half the bar
    is beyond either n (the limitation says so): it never fails and mostly comes out inconclusive."""
    probe = GroupDisparity()

    class GroupModel(PlantedModel):
        def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                     progress: ProgressFn | None = None) -> list[Generation]:
            return [Generation(text=self.harmful if "Muslim" in _text(p) and _coin(self.seed, _text(p), self.rate)
                               else self.harmless, n_tokens=8, finish_reason="eos") for p in prompts]

    def make(rate: float, seed: int) -> PlantedModel:
        return GroupModel(rate, seed, harmful=" a stupid idiot and a liar, shut up.", harmless=" a teacher.")

    groups = {g for gs in __import__("json").loads(project_data("group_disparity.json").read_text())["groups"].values()
              for g in gs}
    assert any("Muslim" in g for g in groups)
    clean = _statuses(make, probe, scorers, "toxicity_gap", 0.0, seeds=1, use_corrected=False)
    assert clean == [Status.passed]
    twice = _statuses(make, probe, scorers, "toxicity_gap", 0.5, seeds=10, depth="thorough")
    assert twice.count(Status.fail) >= 7, twice  # 64 templates: detectable gap about 0.48, four times in five
    big = _statuses(make, probe, scorers, "toxicity_gap", 0.8, seeds=5)  # standard: 32 templates detect ~0.62
    assert big == [Status.fail] * 5, big
    half = _statuses(make, probe, scorers, "toxicity_gap", 0.125, seeds=10)
    assert Status.fail not in half and half.count(Status.passed) <= 2, half
    assert any("160 templates" in lim for lim in probe.limitations)


def test_every_gated_rate_is_powered_at_its_default_n_or_says_it_is_not() -> None:
    """For every probe's gated rate with a Wilson interval on its own items: the exact chance that a
    model at half the bar clears it at the standard depth's item count is at least 80%, or the probe's
    limitations state its power. Counts come from the shipped data files."""
    # (probe, metric) -> does --depth thorough (every project item) reach the power?
    underpowered = {("bias.stereotype_pairs", "stereotype_rate"): False, ("infohazard.secrets", "secret_rate"): True}
    files = {"interaction.identity": "identity_prompts.jsonl", "interaction.anthropomorphism": "anthropomorphism.jsonl",
             "malicious_use.over_refusal": "benign_lookalikes.jsonl", "malicious_use.compliance": "malicious_requests.jsonl",
             "infohazard.secrets": "infohazard_secrets.jsonl", "toxicity.dialogue": "toxicity_dialogue.jsonl",
             "toxicity.continuation": "toxicity_prompts.jsonl", "exclusion.default_norms": "default_norms.jsonl",
             "bias.stereotype_pairs": "stereotype_pairs.jsonl", "pii.elicitation": "pii_elicitation.jsonl",
             "pii.attribute_inference": "attribute_inference.jsonl", "misinformation.false_premise": "false_premise.jsonl",
             "misinformation.harmful_advice": "harmful_advice.jsonl"}
    checked = 0
    for pid in all_probes():
        cls = get_probe(pid)
        if cls.id not in files:
            continue
        lines = [x for x in project_data(files[cls.id]).read_text(encoding="utf-8").splitlines() if x.strip()]
        n = len(lines) if cls.standard_items is None else min(len(lines), cls.standard_items)
        for spec in cls.metric_specs:
            t = spec.threshold
            if t is None or t.fail is None or spec.higher_is_better is None or spec.unit != "rate":
                continue
            ideal = spec.ideal if spec.ideal is not None else (1.0 if spec.higher_is_better else 0.0)
            p = clear_probability(n, half_bar(t.fail, ideal), t.fail, spec.higher_is_better)
            if (cls.id, spec.name) in underpowered:
                assert p < 0.8 and any(lim.startswith("Power") for lim in cls.limitations), (cls.id, spec.name, p)
                thorough = clear_probability(len(lines), half_bar(t.fail, ideal), t.fail, spec.higher_is_better)
                assert (thorough >= 0.8) is underpowered[(cls.id, spec.name)], (cls.id, spec.name, thorough)
            else:
                assert p >= 0.8, f"{cls.id} {spec.name}: n={n} clears half the bar with p={p:.2f}"
            checked += 1
    assert checked >= 15


def test_depth_chooses_how_many_project_items_each_probe_runs(tmp_path: Path) -> None:
    """quick: every third standard item; standard: the probe's ``standard_items`` prefix (all when it
    declares none); thorough: every project item. A resume cannot change the depth."""
    from tests.test_backend_contract import FixedBackend

    probes = ["infohazard.secrets", "interaction.identity"]
    n: dict[str, dict[str, int]] = {}
    for depth in ("quick", "standard", "thorough"):
        config = AuditConfig(model="fixed", probes=probes, depth=depth, out=tmp_path / depth,  # type: ignore[arg-type]
                             pii={"nlp_model": "none"})
        report = run_audit(config, model=FixedBackend())
        assert report.config["depth"] == depth and not report.run.smoke
        n[depth] = {p.id: p.n_samples for p in report.probes}
    assert n["standard"] == {"infohazard.secrets": 96, "interaction.identity": 80}
    assert n["thorough"] == {"infohazard.secrets": 160, "interaction.identity": 120}
    assert n["quick"] == {"infohazard.secrets": 32, "interaction.identity": 27}
    with pytest.raises(BadInput, match="depth"):
        run_audit(AuditConfig(resume=tmp_path / "quick", depth="thorough"), model=FixedBackend())
