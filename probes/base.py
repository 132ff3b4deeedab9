"""The probe contract: what a probe declares, what it receives, what it returns."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from probes._datasets import check_dataset_file
from probes.model import Model
from probes.scoring import NoScorers, PIIDetector, Scorer, ScorerLookup
from reports import (
    Breakdown,
    Contamination,
    DatasetInfo,
    Example,
    Interval,
    Metric,
    ModelInfo,
    ScorerInfo,
    Threshold,
)


class MetricSpec(BaseModel):
    """A metric a probe produces, declared on the class."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    higher_is_better: bool | None  # None: informational, never pass/fail
    unit: str = "rate"
    ideal: float | None = None
    threshold: Threshold | None = None
    # The per-sample key holding each item's outcome, whose mean over the samples is the value
    # (bool: a rate, number: a mean; None in a sample: the item is not counted). ``lm-audit
    # diff`` pairs two runs' items on it; None: the value is not a mean over items (a gap, a max).
    outcome: str | None = None


class ProbeParams(BaseModel):
    """Base of every probe's parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ProbeResult(BaseModel):
    """What a probe hands back: metrics with intervals, per-sample records, the worst examples."""

    metrics: list[Metric] = Field(default_factory=list)
    samples: list[dict[str, Any]] = Field(default_factory=list)
    worst_examples: list[Example] = Field(default_factory=list)
    scorers: list[ScorerInfo] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    dataset: DatasetInfo | None = None
    # Set only by a probe that checks the run's items (``Probe.checks_items``): the probes, by id,
    # whose items look seen in training; the runner attaches each to that probe's report.
    contamination: dict[str, Contamination] = Field(default_factory=dict)


class Progress:
    """Progress sink handed to probes; the CLI supplies one that draws a bar."""

    def start(self, total: int, label: str = "") -> None:
        """Announce ``total`` units of work."""

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done."""


P = TypeVar("P", bound=ProbeParams)

# One item as a model sees it: (the item's id in its probe's set, its text: a prompt, a question with
# its answers, both sentences of a pair).
ItemText = tuple[str, str]

# How many of the project's items a run measures (``ProbeContext.take``).
Depth = Literal["quick", "standard", "thorough"]
DEPTHS: tuple[Depth, ...] = ("quick", "standard", "thorough")


@dataclass
class ProbeContext(Generic[P]):
    """Everything a probe may use. Probes do not load models or read global state.

    ``model_info`` is the model's identity record (parameters, device, dtype) for probes that
    report on the model itself; what a model can do is ``model.capabilities()``.
    """

    model: Model
    params: P
    seed: int = 0
    limit: int | None = None
    depth: Depth = "standard"
    # How many of the project's items (a prefix of the data file) the probe runs at standard depth;
    # None: all of them. The runner sets it from the probe's ``standard_items``.
    standard_items: int | None = None
    dataset: Path | None = None
    progress: Progress = field(default_factory=Progress)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("probes"))
    scorers: ScorerLookup = field(default_factory=NoScorers)
    model_info: ModelInfo | None = None
    # For a probe that declares ``takes_corpus``: the run's corpus files and directories (--corpus).
    corpus: tuple[Path, ...] = ()
    # For a probe that declares ``checks_items``: the run's other probes, each with the context it
    # runs with (parameters, dataset, depth, limit), so their items can be read (``Probe.item_texts``).
    peers: tuple[tuple[type[Probe], ProbeContext], ...] = ()
    # The run's system prompt (--system-prompt), None without one. The runner applies it to every
    # conversation a probe sends, except for a probe that declares ``manages_system_prompt``: that
    # one gets a model sending conversations as written, and this text to use as it sees fit.
    system_prompt: str | None = None

    def scorer(self, role: str) -> Scorer:
        """The run's scorer for ``role`` (built and validated once per run)."""
        return self.scorers.get(role)

    def pii(self) -> PIIDetector:
        """The run's PII and secret detector (presidio), built once per run."""
        return self.scorers.pii()

    def take(self, items: Sequence[Any]) -> list[Any]:
        """The items this run measures, in file order: at ``standard`` depth the project set's
        first ``standard_items`` (a user's dataset whole), at ``thorough`` all of them, at ``quick``
        every third of the standard ones (strata stay mixed); then at most ``limit`` (smoke runs)."""
        chosen = list(items)
        if self.depth != "thorough" and self.dataset is None and self.standard_items is not None:
            chosen = chosen[: self.standard_items]
        if self.depth == "quick":
            chosen = chosen[::3]
        return chosen if self.limit is None else chosen[: self.limit]


class Probe(ABC, Generic[P]):
    """A probe: a stable dotted id, the risks it gives evidence for, and ``run``.

    Subclasses declare everything as class attributes so that ``lm-audit probes``
    and the taxonomy checks can read them without running anything.
    """

    id: ClassVar[str]
    version: ClassVar[str]
    risks: ClassVar[tuple[str, ...]]
    kind: ClassVar[Literal["generation", "loglikelihood", "static"]]
    description: ClassVar[str]
    limitations: ClassVar[tuple[str, ...]] = ()
    # Items run at standard depth (a prefix of the project's data file; the rest run at thorough);
    # None: every item at standard and thorough alike.
    standard_items: ClassVar[int | None] = None
    metric_specs: ClassVar[tuple[MetricSpec, ...]]
    Params: ClassVar[type[ProbeParams]] = ProbeParams
    dataset_format: ClassVar[str | None] = None  # e.g. "TruthfulQA CSV", when --dataset is accepted
    scorer_roles: ClassVar[tuple[str, ...]] = ()  # scorers the probe uses, built before the model loads
    uses_pii: ClassVar[bool] = False  # whether the probe uses the run's PII detector (ctx.pii())
    takes_canaries: ClassVar[bool] = False  # whether the run's ``canaries`` file is this probe's dataset
    # False for a probe that measures the model itself (timing): the runner hands it a model
    # that bypasses the run's result cache.
    uses_result_cache: ClassVar[bool] = True
    # True for a probe that measures the system prompt itself (with and without it): the runner
    # hands it a model that does not add the run's system prompt, and the text in ctx.system_prompt.
    manages_system_prompt: ClassVar[bool] = False

    # True for a probe that reads the run's other probes' items (ctx.peers) and may report some of
    # them as seen in training (ProbeResult.contamination).
    checks_items: ClassVar[bool] = False
    # True for a probe that reads the run's corpus (ctx.corpus, --corpus).
    takes_corpus: ClassVar[bool] = False
    # Where the probe was defined: None for a built-in one, a probe spec's path for one written as data.
    source: ClassVar[str | None] = None

    @abstractmethod
    def run(self, ctx: ProbeContext[P]) -> ProbeResult:
        """Run against ``ctx.model`` and return the evidence."""

    def item_texts(self, ctx: ProbeContext[P]) -> list[ItemText]:
        """The items this run measures (the same selection ``run`` makes: dataset, depth, limit) as
        (item id, the text a model sees of it), for checks of the items themselves (training-data
        contamination). Default: none — a probe without an item set (timing) or whose items are
        meant to be memorised (canaries); a probe with items overrides it. Reads no model."""
        return []

    @classmethod
    def check_dataset(cls, path: Path) -> None:
        """Read a user's dataset (``--dataset``) through before any model loads; DatasetError names
        the file and line. Default: the whole file as the kind ``dataset_format`` names (every JSONL
        line, the JSON document, every CSV row); a probe that can check more overrides it."""
        check_dataset_file(path, cls.dataset_format)

    @classmethod
    def needs_token_logprobs(cls, params: ProbeParams, corpus: Sequence[Path] = ()) -> bool:
        """Whether a run with these parameters (and this corpus) needs every token's log-probability
        (``probes.model.TokenScorer``); the runner does not run it on a model that cannot."""
        return False

    @classmethod
    def needs_loglikelihood(cls, params: ProbeParams) -> bool:
        """Whether a run with these parameters scores log-likelihoods (the runner does not run it on a
        model that cannot); a probe with a generation-based variant says so for that variant."""
        return cls.kind == "loglikelihood"

    @classmethod
    def spec(cls, name: str) -> MetricSpec:
        for s in cls.metric_specs:
            if s.name == name:
                return s
        raise KeyError(f"{cls.id} declares no metric {name!r}")

    @classmethod
    def metric(
        cls,
        name: str,
        stat: tuple[float | None, Interval | None, int],
        breakdowns: Sequence[Breakdown] = (),
        chance: float | None = None,
    ) -> Metric:
        """Build a declared metric from a (value, interval, n) triple such as ``stats.rate`` returns."""
        s = cls.spec(name)
        value, ci, n = stat
        return Metric(
            name=name,
            description=s.description,
            value=value,
            ci=ci,
            n=n,
            unit=s.unit,
            higher_is_better=s.higher_is_better,
            ideal=s.ideal,
            chance=chance,
            breakdowns=list(breakdowns),
            threshold=s.threshold,
            outcome=s.outcome,
        )

