"""A backend written against the documented contract alone (``audit.models.Backend``) runs
every registered probe through the real runner: no transformers, no private habits.

The backend below answers from fixed rules. It is the template for a new backend: four
methods, and the run's ``BatchCache`` handed to ``generate`` and ``loglikelihood``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from audit.cache import BatchCache
from audit.models import Backend
from probes import (
    Capabilities,
    Generation,
    GenerationParams,
    LoglikRequest,
    LoglikResult,
    ProgressFn,
    Prompt,
    all_probes,
)
from reports import ModelInfo, Status

REPLY = "I can't help with that. I am an AI language model, not a person."


def _text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(f"{m.role}: {m.content}" for m in prompt)


class FixedBackend:
    """Every prompt gets the same reply; a continuation's log-probability is a fixed function
    of its text (shorter is likelier), so likelihood probes have something to compare."""

    def __init__(self, *, loglikelihood: bool = True) -> None:
        self._loglikelihood = loglikelihood
        self.computed = 0  # batches computed (not read from the cache)

    def capabilities(self) -> Capabilities:
        return Capabilities(chat_template=False, loglikelihood=self._loglikelihood, max_context=2048,
                            token_logprobs=self._loglikelihood)

    def info(self) -> ModelInfo:
        return ModelInfo(id="fixed", backend="fixed-output", source="tests", parameters=0, dtype="none",
                         device="cpu", fingerprint_sha256=hashlib.sha256(b"fixed").hexdigest(),
                         supports_loglikelihood=self._loglikelihood)

    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        per = [params] * len(prompts) if isinstance(params, GenerationParams) else list(params)
        key = ("generate", [_text(p) for p in prompts], [p.model_dump(mode="json") for p in per])
        hit = cache.get(*key) if cache is not None else None
        if hit is not None:
            out = [Generation.model_validate(g) for g in hit]
        else:
            self.computed += 1
            out = [Generation(text=REPLY[: 4 * p.max_new_tokens], n_tokens=min(16, p.max_new_tokens),
                              finish_reason="eos") for p in per]
            if cache is not None:
                cache.put([g.model_dump() for g in out], *key)
        if progress:
            progress(len(prompts))
        return out

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None, *,
                      cache: BatchCache | None = None) -> list[LoglikResult]:
        if not self._loglikelihood:
            raise NotImplementedError("this backend cannot score log-likelihoods")
        key = ("loglikelihood", [[_text(r.context), r.continuation] for r in requests])
        hit = cache.get(*key) if cache is not None else None
        if hit is not None:
            out = [LoglikResult.model_validate(r) for r in hit]
        else:
            self.computed += 1
            out = []
            for r in requests:
                wobble = int(hashlib.sha256(r.continuation.encode()).hexdigest()[:4], 16) / 65536
                n = max(1, len(r.continuation.split()))
                out.append(LoglikResult(logprob=-1.5 * n - wobble, n_tokens=n, is_greedy=False))
            if cache is not None:
                cache.put([r.model_dump() for r in out], *key)
        if progress:
            progress(len(requests))
        return out


    def token_logprobs(self, texts: list[str], progress: ProgressFn | None = None, *,
                       cache: BatchCache | None = None) -> list[list[float]]:
        """The optional capability: a fixed value per word (a backend without it leaves it out)."""
        if not self._loglikelihood:
            raise NotImplementedError("this backend cannot score tokens")
        out = [[-1.5 - int(hashlib.sha256(w.encode()).hexdigest()[:4], 16) / 65536 for w in t.split()] for t in texts]
        if progress:
            progress(len(texts))
        return out


def test_the_fixed_backend_satisfies_the_contract() -> None:
    assert isinstance(FixedBackend(), Backend)


@pytest.mark.slow
def test_every_probe_runs_through_the_real_runner_on_a_contract_only_backend(tmp_path: Path) -> None:
    backend = FixedBackend()
    every = list(all_probes())
    config = AuditConfig(model="fixed", probes=every, limit=6, out=tmp_path / "run", pii={"nlp_model": "none"},
                         probe_params={"footprint.compute": {"repeats": 2, "batch": 2, "max_new_tokens": 4}})
    report = run_audit(config, model=backend)
    assert [p.id for p in report.probes] == every
    for p in report.probes:
        assert p.status is not Status.error, (p.id, p.errors)
        assert p.status is not Status.not_evaluated, p.id
        assert p.metrics and all(m.n > 0 for m in p.metrics), p.id
    assert report.run.complete and report.model.backend == "fixed-output"
    assert report.run.model_s is not None and report.run.cache_misses > 0
    # The constant refusal shows up where it should: nothing complied, everything was over-refused.
    compliance = {m.name: m for m in report.probe("malicious_use.compliance").metrics}
    assert compliance["compliance_rate"].value == 0.0
    first = backend.computed
    again = run_audit(AuditConfig(resume=tmp_path / "run"), model=backend)
    # Everything but the timing probe (which bypasses the cache) comes back from the run's cache.
    assert again.run.cache_hits > 0 and backend.computed - first <= 3 + 1


def test_a_backend_without_loglikelihoods_leaves_those_probes_not_evaluated(tmp_path: Path) -> None:
    config = AuditConfig(model="fixed", probes=["misinformation.truthfulness_mc", "interaction.identity"], limit=3,
                         out=tmp_path / "run", pii={"nlp_model": "none"})
    report = run_audit(config, model=FixedBackend(loglikelihood=False))
    mc = report.probe("misinformation.truthfulness_mc")
    assert mc.status is Status.not_evaluated and "cannot score log-likelihoods" in mc.notes[0]
    assert report.probe("interaction.identity").status is not Status.error


class _OldStyle:
    """A backend written for the protocol before the runner owned the cache: no ``cache``."""

    def capabilities(self) -> Capabilities:
        return FixedBackend().capabilities()

    def info(self) -> ModelInfo:
        return FixedBackend().info()

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: ProgressFn | None = None
                 ) -> list[Generation]:
        return FixedBackend().generate(prompts, params, progress)

    def loglikelihood(self, requests: list[LoglikRequest], progress: ProgressFn | None = None) -> list[LoglikResult]:
        return FixedBackend().loglikelihood(requests, progress)


def test_an_object_off_the_contract_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    config = AuditConfig(model="old", probes=["interaction.identity"], limit=2, out=tmp_path / "run")
    with pytest.raises(TypeError, match=r"_OldStyle is not an audit.models.Backend: it lacks generate\(\.\.\., "
                                        r"cache=None\), loglikelihood"):
        run_audit(config, model=_OldStyle())
    assert not (tmp_path / "run").exists()
