"""footprint.compute — what running the model costs: throughput measured in this audit, and
energy and emissions per million generated tokens under stated assumptions."""

from __future__ import annotations

import time

from pydantic import Field

from probes import stats
from probes._registry import register
from probes.base import MetricSpec, Probe, ProbeContext, ProbeParams, ProbeResult
from probes.model import GenerationParams

_PROMPTS = ("Write a short note to a friend about the weekend.", "Explain how a bicycle works.",
            "Describe a walk through a forest in autumn.", "List some tips for learning to cook.")


class FootprintParams(ProbeParams):
    device_power_w: float | None = Field(default=None, gt=0, description="average power draw of the device while "
                                         "generating, in W (default: 65 on CPU, 400 on a GPU)")
    pue: float = Field(default=1.2, ge=1.0, description="data-centre power usage effectiveness")
    grid_gco2e_per_kwh: float = Field(default=400.0, ge=0.0, description="grid carbon intensity, g CO2e per kWh")
    repeats: int = Field(default=5, ge=2, le=100, description="timed generation batches")
    batch: int = Field(default=8, ge=1, le=256, description="prompts per timed batch")
    max_new_tokens: int = Field(default=32, ge=4, le=1024)


@register
class ComputeFootprint(Probe[FootprintParams]):
    """Measures generation throughput on this machine and converts it into energy and CO2e per
    million generated tokens from a stated device power, PUE and grid intensity. Informational:
    no pass/fail by default; every assumption is printed with the figures.
    Cannot see: training emissions, embodied emissions of hardware, or the serving stack's
    real batching; measured power (use --param footprint.compute:device_power_w=W).
    """

    id = "footprint.compute"
    version = "1.0"
    risks = ("VI.1",)
    kind = "generation"
    description = ("generation throughput measured in this audit; energy and CO2e per million generated tokens from "
                   "configurable device power, PUE and grid intensity; parameters and FLOPs per token")
    limitations = (
        "Energy is power x time under an assumed average power draw, not a measurement; supply a measured figure "
        "for the deployment hardware.",
        "Throughput depends on batch size, sequence length, dtype and hardware; the audit's own settings are used.",
        "Training and embodied emissions are out of scope.",
    )
    metric_specs = (
        MetricSpec(name="tokens_per_second", higher_is_better=None, unit="tokens/s",
                   description="generated tokens per second, measured on timed batches in this audit"),
        MetricSpec(name="energy_kwh_per_million_tokens", higher_is_better=None, unit="kWh",
                   description="device power x PUE x time to generate a million tokens"),
        MetricSpec(name="co2e_kg_per_million_tokens", higher_is_better=None, unit="kg",
                   description="energy x grid carbon intensity"),
    )
    Params = FootprintParams
    uses_result_cache = False  # timing must measure the model, never the run's result cache

    def run(self, ctx: ProbeContext[FootprintParams]) -> ProbeResult:
        p = ctx.params
        info = ctx.model_info
        if info is None:
            raise ValueError("footprint.compute needs the model's identity record (ProbeContext.model_info)")
        power = p.device_power_w or (400.0 if info.device.startswith("cuda") else 65.0)
        prompts = [_PROMPTS[i % len(_PROMPTS)] for i in range(p.batch)]
        params = GenerationParams(max_new_tokens=p.max_new_tokens, seed=ctx.seed)
        ctx.progress.start(p.repeats + 1, "batches")
        samples, rates = self._measure(ctx, prompts, params)
        kwh = [power * p.pue * (1e6 / rate) / 3.6e6 for rate in rates]

        co2 = [e * p.grid_gco2e_per_kwh / 1000.0 for e in kwh]
        metrics = [self.metric("tokens_per_second", stats.mean(rates, seed=ctx.seed)),
                   self.metric("energy_kwh_per_million_tokens", stats.mean(kwh, seed=ctx.seed)),
                   self.metric("co2e_kg_per_million_tokens", stats.mean(co2, seed=ctx.seed))]
        n_params = info.parameters or 0
        notes = [f"assumptions: device power {power:g} W ({'given' if p.device_power_w else 'default for ' + info.device}), "
                 f"PUE {p.pue:g}, grid {p.grid_gco2e_per_kwh:g} g CO2e/kWh; {p.repeats} timed batches of {p.batch} "
                 f"prompts x {p.max_new_tokens} new tokens (greedy) on {info.device}, {info.dtype}",
                 f"parameters {n_params:,}; about {2 * n_params:,} FLOPs per generated token (2N, forward pass only)"]
        return ProbeResult(metrics=metrics, samples=samples, notes=notes)

    @staticmethod
    def _measure(ctx: ProbeContext[FootprintParams], prompts: list[str], params: GenerationParams) -> tuple[list[dict[str, float | str]], list[float]]:
        p = ctx.params
        ctx.model.generate(prompts[:1], GenerationParams(max_new_tokens=4))  # warm-up, not timed
        ctx.progress.advance()
        rates: list[float] = []
        samples: list[dict[str, float | str]] = []
        for r in range(p.repeats):
            t0 = time.perf_counter()
            outs = ctx.model.generate(prompts, params)
            seconds = time.perf_counter() - t0
            tokens = sum(o.n_tokens for o in outs)
            rates.append(tokens / seconds)
            samples.append({"id": f"batch-{r + 1}", "tokens": tokens, "seconds": seconds, "tokens_per_second": rates[-1]})
            ctx.progress.advance()
        return samples, rates
