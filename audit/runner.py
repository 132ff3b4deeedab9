"""The audit runner: select probes, run them against one model, roll up, write the run directory.

Run directory: report.json, report.md, samples/<probe id>.jsonl. The report is
rewritten (atomically) after every probe, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from audit._host import host_info
from audit._version import __version__
from audit.cache import ResultCache
from audit.config import AuditConfig, explicit_settings, resume_config
from audit.errors import AuditError, BadInput
from audit.models import (
    Backend,
    MeteredModel,
    check_backend,
    load_model,
    pick_device,
    resolve_model,
)
from audit.offline import enforce_offline
from audit.policy import evaluate, load_policy
from audit.power import detectable_value
from audit.rollup import metric_status, roll_up, worst
from audit.scorers import PIIDetector, ScorerSet, redact_tree
from probes import (
    DatasetError,
    Probe,
    ProbeContext,
    ProbeParams,
    ProbeResult,
    Progress,
    all_probes,
)
from reports import (
    AuditReport,
    ModelInfo,
    ProbeReport,
    RunInfo,
    Status,
    Summary,
    TaxonomyInfo,
    ToolInfo,
    atomic_write_text,
    render_junit,
    render_markdown,
    write_report,
)
from taxonomy import (
    DEFAULT_TAXONOMY,
    Automation,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
    taxonomy_sha256,
    validation_message,
)

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str], Progress]


def _load_taxonomy(config: AuditConfig) -> Taxonomy:
    try:
        return load_taxonomy(config.taxonomy, known_probes=all_probes())
    except TaxonomyError as exc:
        raise BadInput(str(exc), setting="taxonomy" if config.taxonomy else None) from None


def select_probes(config: AuditConfig, tax: Taxonomy) -> list[type[Probe]]:
    """Probes to run: ``probes`` as given; else those of ``risks`` and ``areas``; else every probe
    of every automated or partial risk. Unknown names are BadInput naming the setting."""
    registry = all_probes()
    if config.probes:
        for pid in config.probes:
            if pid not in registry:
                raise BadInput(f"{pid}: unknown probe id (known: {', '.join(registry)})", setting="probes")
        return [registry[p] for p in dict.fromkeys(config.probes)]
    area_ids = {a.id for a in tax.areas}
    for a in config.areas:
        if a not in area_ids:
            raise BadInput(f"{a}: unknown risk area (known: {', '.join(sorted(area_ids))})", setting="areas")
    risks = []
    for r in config.risks:
        try:
            risks.append(tax.risk(r))
        except KeyError:
            raise BadInput(f"{r}: not a risk id or slug of taxonomy {tax.name}", setting="risks") from None
    for area in tax.areas:
        if area.id in config.areas:
            risks += area.risks
    if not config.risks and not config.areas:
        risks = [r for r in tax.risks() if r.automation is not Automation.manual]
    ids = dict.fromkeys(p for r in risks for p in r.probes)
    return [registry[p] for p in ids]


def _datasets(config: AuditConfig, probes: list[type[Probe]]) -> dict[str, Path]:
    """Each selected probe's user dataset: ``datasets``, plus ``canaries`` for the probes that
    declare ``takes_canaries``. BadInput names the setting."""
    selected = {p.id: p for p in probes}
    for pid, path in config.datasets.items():
        if pid not in selected:
            raise BadInput(f"{pid}={path}: probe is not selected for this run", setting="datasets")
        if selected[pid].dataset_format is None:
            raise BadInput(f"{pid}={path}: this probe does not take a dataset", setting="datasets")
        if not Path(path).is_file():
            raise BadInput(f"{pid}={path}: file not found", setting="datasets")
    datasets = dict(config.datasets)
    if config.canaries is not None:
        if not config.canaries.is_file():
            raise BadInput(f"{config.canaries}: file not found", setting="canaries")
        takers = [pid for pid, p in selected.items() if p.takes_canaries]
        if not takers:
            known = ", ".join(pid for pid, p in all_probes().items() if p.takes_canaries)
            raise BadInput(f"{config.canaries}: no selected probe takes canaries ({known})", setting="canaries")
        for pid in takers:
            if pid in datasets:
                raise BadInput(f"{config.canaries}: {pid} also has a dataset ({datasets[pid]}); give one of the two",
                               setting="canaries")
            datasets[pid] = config.canaries
    return datasets


def _probe_params(config: AuditConfig, probes: list[type[Probe]]) -> dict[str, ProbeParams]:
    selected = {p.id for p in probes}
    for pid in config.probe_params:
        if pid not in selected:
            raise BadInput(f"{pid}: probe is not selected for this run", setting="probe_params")
    params = {}
    for p in probes:
        try:
            params[p.id] = p.Params.model_validate(config.probe_params.get(p.id, {}))
        except ValidationError as exc:
            raise BadInput(f"{p.id}:{validation_message(exc)}", setting="probe_params") from None
    return params


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_run_dir(model_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_") or "model"
    return Path("runs") / f"{safe}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _probe_report(probe: type[Probe], params: ProbeParams, status: Status) -> ProbeReport:
    return ProbeReport(
        id=probe.id, version=probe.version, description=probe.description, kind=probe.kind,
        risks=list(probe.risks), status=status, params=params.model_dump(mode="json"),
        limitations=list(probe.limitations),
    )


def _fill(report: ProbeReport, result: ProbeResult) -> ProbeReport:
    for m in result.metrics:
        m.status = metric_status(m)  # read through the scorer-corrected figure when there is one
        m.detectable = detectable_value(m)
    report.metrics = result.metrics
    report.worst_examples = result.worst_examples
    report.scorers = result.scorers
    report.errors = result.errors
    report.notes = result.notes
    report.dataset = result.dataset
    report.n_samples = len(result.samples)
    if result.errors:
        report.status = Status.error  # a probe that erred is never a pass
    elif result.metrics and all(m.status is None for m in result.metrics):
        report.status = Status.manual  # informational figures only: a person judges them
    else:
        report.status = worst(m.status for m in result.metrics if m.status) or Status.passed
    return report


def _redact(result: ProbeResult, detector: PIIDetector, report: AuditReport) -> ProbeResult:
    """The one redaction pass: every sample, example and error of a probe, before anything is written."""
    examples = [e.model_dump() for e in result.worst_examples]
    (samples, examples, errors), counts = redact_tree(detector, [result.samples, examples, result.errors])
    assert report.pii is not None
    for entity, n in counts.items():
        report.pii.redacted[entity] = report.pii.redacted.get(entity, 0) + n
    return result.model_copy(update={
        "samples": samples, "errors": errors,
        "worst_examples": [type(e).model_validate(d) for e, d in zip(result.worst_examples, examples)],
    })


def _write_samples(run_dir: Path, probe_id: str, result: ProbeResult) -> str:
    rel = f"samples/{probe_id}.jsonl"
    atomic_write_text(run_dir / rel, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in result.samples))
    return rel


def run_audit(
    config: AuditConfig,
    *,
    model: Backend | None = None,
    progress: ProgressFactory | None = None,
    notify: Callable[[str], None] | None = None,
) -> AuditReport:
    """Run an audit and write its run directory; returns the report.

    ``model``: an already-loaded backend (tests, API users, another backend written against
    ``audit.models.Backend``); otherwise ``config.model`` is loaded with transformers.
    ``notify``: receives one-line status messages (the CLI prints them).
    ``config.resume``: continue the run in that directory with its recorded settings
    (``resume_config``; the settings the caller gave explicitly are its overrides).
    Raises BadInput for unusable input before the model is loaded where possible.
    On KeyboardInterrupt the partial report is written, then the interrupt propagates.
    """
    if config.resume is not None:
        config = resume_config(config.resume, explicit_settings(config))
    enforce_offline(config.allow_download)
    if model is not None:
        check_backend(model)  # a wrong object fails here, not inside every probe
    started = time.monotonic()
    started_at = _now()
    tax = _load_taxonomy(config)
    tax_path = config.taxonomy or DEFAULT_TAXONOMY
    probes = select_probes(config, tax)
    if not probes:
        given = next(((k, v) for k, v in (("probes", config.probes), ("risks", config.risks),
                                          ("areas", config.areas)) if v), None)
        if given is None:
            raise BadInput("the taxonomy has no automated probe")
        raise BadInput(f"{','.join(given[1])}: the selection contains no automated probe", setting=given[0])
    datasets = _datasets(config, probes)
    params = _probe_params(config, probes)
    policy = None
    if config.policy is not None:
        policy = load_policy(None if config.policy == "default" else Path(config.policy))  # bad policy: exit 2 now

    say = notify or (lambda msg: log.info("%s", msg))
    assert config.model is not None  # AuditConfig requires it unless resuming, and a resume has restored it
    source = None if model is not None else resolve_model(config.model, allow_download=config.allow_download)
    scorers = ScorerSet(config.scorers, allow_download=config.allow_download, seed=config.seed,
                        device=pick_device(config.device), pii=config.pii)  # a classifier scorer shares the GPU
    # Built and validated now, so that a bad scorer choice fails before the model loads.
    scorers.prepare(list(dict.fromkeys(r for p in probes for r in p.scorer_roles)))
    # The PII detector redacts every report unless --show-pii; it is built once, before the model.
    redactor = None if config.show_pii else scorers.pii()
    pii_info = scorers.pii().info() if redactor is not None or any(p.uses_pii for p in probes) else None
    if model is None:
        assert source is not None
        say(f"loading model {config.model}")
        model = load_model(
            source, allow_download=config.allow_download, trust_remote_code=config.trust_remote_code,
            dtype=config.dtype, device=config.device, chat_template=config.chat_template,
            batch_size=config.batch_size, model_cache=config.model_cache,
        )
    minfo: ModelInfo = model.info()
    run_dir = config.out or default_run_dir(minfo.id)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", config.model_dump_json(indent=2, exclude={"resume"}))  # resume reads it
    cache = ResultCache(run_dir / "cache.sqlite")
    metered = MeteredModel(model, cache)
    caps = metered.capabilities()
    run = RunInfo(id=run_dir.name, directory=str(run_dir), started_at=started_at, seed=config.seed, complete=False,
                  resumed=config.resume is not None, smoke=config.limit is not None,
                  command=shlex.join(["lm-audit", *sys.argv[1:]]) if sys.argv else "")
    report = AuditReport(
        tool=ToolInfo(version=__version__), run=run, host=host_info(), model=minfo,
        taxonomy=TaxonomyInfo(name=tax.name, version=tax.version, path=str(tax_path),
                              sha256=taxonomy_sha256(tax_path), source=tax.source),
        config=config.recorded(), show_pii=config.show_pii,
        pii=pii_info,
        summary=Summary(status=Status.not_evaluated, risks_by_status={}, probes_run=0, probes_errored=0),
        areas=[], probes=[],
    )

    def save(complete: bool, interrupted: bool = False) -> None:
        report.run.cache_hits, report.run.cache_misses = cache.hits, cache.misses
        report.run.model_s = round(metered.seconds, 3)
        report.run.scoring_s = round(scorers.seconds, 3)
        report.areas, report.summary = roll_up(tax, report.probes)
        report.run.complete, report.run.interrupted = complete, interrupted
        report.run.finished_at = _now()
        report.run.duration_s = round(time.monotonic() - started, 3)
        write_report(report, run_dir / "report.json")
        atomic_write_text(run_dir / "report.md", render_markdown(report))

    try:
        for probe_cls in probes:
            preport = _probe_report(probe_cls, params[probe_cls.id], Status.not_evaluated)
            if probe_cls.kind == "loglikelihood" and not caps.loglikelihood:
                preport.notes.append("not evaluated: this model backend cannot score log-likelihoods")
                report.probes.append(preport)
                continue
            ctx = ProbeContext(model=metered if probe_cls.uses_result_cache else metered.uncached(),
                               params=params[probe_cls.id], seed=config.seed, limit=config.limit,
                               depth=config.depth, standard_items=probe_cls.standard_items,
                               dataset=datasets.get(probe_cls.id),
                               progress=progress(probe_cls.id) if progress else Progress(),
                               log=logging.getLogger(f"probes.{probe_cls.id}"), scorers=scorers, model_info=minfo)
            t0 = time.monotonic()
            m0 = metered.seconds
            s0 = scorers.seconds
            say(f"running {probe_cls.id}")
            try:
                result = probe_cls().run(ctx)
            except (AuditError, DatasetError):
                raise
            except Exception as exc:  # one broken probe must not lose the others' results
                log.exception("probe %s failed", probe_cls.id)
                result = ProbeResult(errors=[f"{type(exc).__name__}: {exc}"])
            if redactor is not None:
                result = _redact(result, redactor, report)
            preport = _fill(preport, result)
            preport.duration_s = round(time.monotonic() - t0, 3)
            preport.model_s = round(metered.seconds - m0, 3)
            preport.scoring_s = round(scorers.seconds - s0, 3)
            if result.samples:
                preport.samples_file = _write_samples(run_dir, probe_cls.id, result)
            report.probes.append(preport)
            save(complete=False)
    except KeyboardInterrupt:
        report.errors.append("interrupted by the user; probes that had not finished are not in this report")
        save(complete=False, interrupted=True)
        raise
    except (AuditError, DatasetError) as exc:
        report.errors.append(str(exc))
        save(complete=False)
        raise
    if policy is not None:
        report.policy = evaluate(policy, report, path=str(config.policy))
    save(complete=True)
    if config.junit is not None:
        atomic_write_text(config.junit, render_junit(report))
    return report
