"""The audit report: one versioned pydantic model; Markdown and JUnit render from it alone."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"


class Status(str, Enum):
    """Outcome of a metric, probe, risk or area. Severity order: ``reports.STATUS_ORDER``; rules and roll-up: ``audit.rollup``.

    ``inconclusive``: the interval straddles the fail bar, so the data cannot rule out a failing
    model. ``incomplete``: an area or the whole audit in which something selected was not
    evaluated; never given to a metric, probe or risk.
    """

    passed = "pass"
    fail = "fail"
    warn = "warn"
    inconclusive = "inconclusive"
    incomplete = "incomplete"
    error = "error"
    not_evaluated = "not_evaluated"
    manual = "manual"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Interval(_Model):
    """A confidence interval."""

    low: float
    high: float
    level: float = 0.95
    method: Literal["wilson", "bootstrap", "newcombe"]
    # What a bootstrap resampled when items share a template, a prompt or a conversation
    # (``template``, ``prompt``); None: items resampled one by one (or no bootstrap).
    clusters: str | None = None

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a point (closed intervals: touching ends overlap)."""
        return self.low <= other.high and other.low <= self.high


class GroupValue(_Model):
    """A metric restricted to one group of samples (a category, a stratum)."""

    group: str
    value: float | None
    ci: Interval | None
    n: int


class Breakdown(_Model):
    by: str
    groups: list[GroupValue]


class Threshold(_Model):
    """Default bars for a metric. With higher_is_better the bars are minimums, else maximums.

    How they give a status (fail / inconclusive / warn / pass): ``audit.rollup.metric_status``.
    """

    warn: float | None = None
    fail: float | None = None
    source: str = "probe default"


class Metric(_Model):
    name: str
    description: str = ""
    value: float | None
    ci: Interval | None
    n: int
    unit: str = "rate"
    higher_is_better: bool | None = None  # None: informational
    ideal: float | None = None
    chance: float | None = None
    breakdowns: list[Breakdown] = Field(default_factory=list)
    threshold: Threshold | None = None
    status: Status | None = None
    # The smallest true value past the fail bar that this n would show as `fail` with 80% power
    # (``audit.power``); None when not computed (no fail bar, not a Wilson-interval rate, n too small).
    detectable: float | None = None
    # The key in this probe's samples file holding each item's outcome (its mean is ``value``),
    # so ``lm-audit diff`` can pair two runs item by item; None when the value is no such mean.
    outcome: str | None = None
    # A rate measured through a scorer, corrected for the scorer's sensitivity and specificity on its
    # labelled set (Rogan-Gladen, bootstrap interval over items and labelled set); its value is None when
    # the scorer is too weak to correct. Gates read it in place of value/ci when present.
    corrected: Figure | None = None
    correction_note: str = ""


class Example(_Model):
    """One sample shown to reviewers (the worst ones per probe). All text is model-controlled or prompt data."""

    sample_id: str
    prompt: str
    output: str = ""
    expected: str = ""
    score: float | None = None
    detail: str = ""


class Figure(_Model):
    """A single estimate with its interval and n (used outside metrics, e.g. scorer validation)."""

    value: float | None
    ci: Interval | None
    n: int


class ScorerValidation(_Model):
    """How a scorer did on a labelled validation set, measured in the same run."""

    dataset: str
    sha256: str
    n: int
    n_positive: int
    threshold: float
    precision: Figure
    recall: Figure
    f1: Figure
    accuracy_by_kind: list[GroupValue] = Field(default_factory=list)
    # specificity (tn / (tn + fp)) and the confusion counts; recall is sensitivity.
    # None in reports written before they were recorded.
    specificity: Figure | None = None
    tp: int | None = None
    fn: int | None = None
    tn: int | None = None
    fp: int | None = None


class ScorerInfo(_Model):
    name: str
    version: str
    measures: str = ""
    threshold: float | None = None
    note: str = ""
    # Figures on the role's held-out labelled set (never used for tuning): the ones gates and the
    # scorer correction use. Reports written before held-out sets existed hold the development figures.
    validation: ScorerValidation | None = None
    # Figures on the development set the scorer was tuned on (optimistic; shown for comparison).
    development: ScorerValidation | None = None
    # Functional tests (HateCheck-style): accuracy per functionality; and, for a toxicity scorer, the
    # share of non-toxic texts that mention an identity group which it flags.
    functional: list[GroupValue] = Field(default_factory=list)
    identity_false_positive_rate: Figure | None = None


class PIIReport(_Model):
    """The PII/secret detector of the run, what it could not detect, and what was redacted."""

    detector: str
    nlp_model: str | None
    entities: list[str]
    threshold: float
    undetectable: list[str] = Field(default_factory=list)
    redacted: dict[str, int] = Field(default_factory=dict)


class CheckResult(_Model):
    """One evaluated policy check: what was compared, the outcome, and a one-line message."""

    name: str
    area: str
    risk: str = ""
    probe: str = ""
    metric: str = ""
    severity: Literal["block", "warn"]
    passed: bool
    value: float | None = None
    ci: Interval | None = None
    n: int | None = None
    bound: str = ""
    message: str


class PolicyReport(_Model):
    """A release policy applied to this report."""

    policy: str
    path: str = ""
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed and c.severity == "block"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed and c.severity == "warn"]

    @property
    def exit_code(self) -> int:
        """1 when a blocking check failed, else 0."""
        return 1 if self.blocking_failures else 0


class DatasetInfo(_Model):
    name: str
    origin: Literal["project", "user"]
    path: str
    sha256: str
    n_items: int


class Contamination(_Model):
    """Evidence that a probe's items were in the model's training data, from ``contamination.membership``:
    a score on items the model saw measures memory, not behaviour. Set on the probe it is about."""

    method: Literal["ngram", "min_k"]  # ngram: shared n-grams with --corpus; min_k: Min-K% Prob vs perturbed copies
    flagged: int  # items of this probe flagged as seen
    n: int  # items of this probe checked
    value: float  # flagged / n
    ci: Interval | None  # Wilson 95% interval of value
    # min_k: the share of freshly generated items (that no model has seen) flagged at the same threshold
    # (the false-positive rate, on a held-out fresh set); None for ngram, which has no false positives.
    baseline: Figure | None = None
    message: str  # one line for a report: what was found, with n and interval


class ProbeReport(_Model):
    id: str
    version: str
    description: str
    kind: Literal["generation", "loglikelihood", "static"]
    risks: list[str]
    status: Status
    params: dict[str, Any] = Field(default_factory=dict)
    dataset: DatasetInfo | None = None
    metrics: list[Metric] = Field(default_factory=list)
    worst_examples: list[Example] = Field(default_factory=list)
    scorers: list[ScorerInfo] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    n_samples: int = 0
    duration_s: float = 0.0
    model_s: float | None = None  # of duration_s, seconds inside the model backend
    scoring_s: float | None = None  # of duration_s, seconds in scorers and PII detection (redaction included)
    samples_file: str | None = None
    # Set when contamination.membership ran in the same audit and found this probe's items look seen
    # in training (its figures may measure memory); None: not checked, or nothing found.
    contamination: Contamination | None = None
    # Where the probe was defined: "builtin" (a probe class), "builtin:probes/data/<id>.yaml" (a probe
    # spec packaged with lm-risk-audit), or the path of the user's probe spec (YAML) it was made from.
    source: str | None = None

    def spec_source(self) -> tuple[str, str] | None:
        """(what, path) for a probe written as data: ("built-in probe spec", its file in the package)
        or ("probe spec", the user's file); None for a probe class."""
        if not self.source or self.source == "builtin":
            return None
        if self.source.startswith("builtin:"):
            return "built-in probe spec", self.source.removeprefix("builtin:")
        return "probe spec", self.source


class RiskReport(_Model):
    id: str
    slug: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str
    automation: Literal["automated", "partial", "manual"]
    status: Status
    status_reason: str = ""
    probes: list[str] = Field(default_factory=list)
    probes_not_run: list[str] = Field(default_factory=list)
    crosswalk: dict[str, list[str]] = Field(default_factory=dict)
    review_questions: list[str] = Field(default_factory=list)


class AreaReport(_Model):
    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    status: Status
    risks: list[RiskReport]


class ModelInfo(_Model):
    id: str
    backend: str
    source: str
    parameters: int | None = None
    dtype: str = ""
    device: str = ""
    fingerprint_sha256: str = ""
    chat_template: bool = False
    supports_loglikelihood: bool = True
    gguf_file: str | None = None
    # sha256 of the converted copy a GGUF model was read from (its SHA256SUMS manifest: one
    # "<sha256>  <file>" line per file, sorted); fingerprint_sha256 stays the GGUF file's.
    converted_sha256: str | None = None
    batch_size: int | None = None
    notes: list[str] = Field(default_factory=list)
    # Libraries that compute this model's results, with their versions (part of the result
    # cache's scope, with the fingerprint, dtype and device type).
    libraries: dict[str, str] = Field(default_factory=dict)
    # The deployment's system prompt (--system-prompt), first message of every conversation the
    # probes sent: the text as given (the user's own), its sha256 (of the UTF-8 text), and how it
    # reached the model ("applied through the chat template" or "prepended as text: no chat template").
    system_prompt: str | None = None
    system_prompt_sha256: str | None = None
    system_prompt_note: str = ""


class ToolInfo(_Model):
    name: str = "lm-risk-audit"
    version: str


class RunInfo(_Model):
    id: str
    directory: str = ""
    started_at: str
    finished_at: str | None = None
    duration_s: float | None = None
    seed: int
    complete: bool
    interrupted: bool = False
    smoke: bool = False  # run with --limit: a quick look, not evidence for a release (a policy blocks it)
    command: str = ""
    resumed: bool = False
    cache_hits: int = 0  # model batches whose results came from the run's cache
    cache_misses: int = 0  # model batches computed in this process
    model_s: float | None = None  # seconds inside the model backend over the whole run (load excluded)
    scoring_s: float | None = None  # seconds in scorers and PII detection over the whole run (validation included)
    # lm-audit rescore: the run whose recorded outputs this report re-scored ("<run id> (<directory>)")
    rescore_of: str | None = None


class HostInfo(_Model):
    platform: str
    python: str
    machine: str
    cpu_count: int | None
    accelerator: str | None
    libraries: dict[str, str] = Field(default_factory=dict)


class TaxonomyInfo(_Model):
    name: str
    version: str
    path: str
    sha256: str
    source: str = ""


class Summary(_Model):
    status: Status
    risks_by_status: dict[str, int]
    probes_run: int
    probes_errored: int


class AuditReport(_Model):
    """A whole audit. ``schema_version`` changes when a field changes meaning or is removed."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    tool: ToolInfo
    run: RunInfo
    host: HostInfo
    model: ModelInfo
    taxonomy: TaxonomyInfo
    config: dict[str, Any] = Field(default_factory=dict)
    show_pii: bool = False
    pii: PIIReport | None = None
    policy: PolicyReport | None = None
    summary: Summary
    areas: list[AreaReport]
    probes: list[ProbeReport]
    errors: list[str] = Field(default_factory=list)

    def probe(self, probe_id: str) -> ProbeReport:
        for p in self.probes:
            if p.id == probe_id:
                return p
        raise KeyError(probe_id)
