"""The audit runner: select probes, run them against one model, roll up, write the run directory.

Run directory: report.json, report.md, report.html, samples/<probe id>.jsonl, config.json, cache.sqlite,
and the marker ``.lm-audit-run``. The report is rewritten (atomically) after every probe, so an
interrupted run keeps what finished.

A run writes only into a directory of its own: a new one (created 0700), an empty one, or, with
``force``, one of an earlier run (whose report, samples and cache are removed first) — never a
directory holding anything else, and never one that looks like a model checkpoint. An exclusive
lock on ``.lock`` keeps two runs out of one directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked against each other
    fcntl = None  # type: ignore[assignment]

from pydantic import ValidationError

from audit._host import host_info
from audit._version import __version__
from audit.cache import ResultCache, cache_files
from audit.config import (
    AuditConfig,
    explicit_settings,
    read_system_prompt,
    resume_config,
)
from audit.errors import AuditError, BadInput
from audit.models import (
    Backend,
    MeteredModel,
    OpenAIBackend,
    check_backend,
    is_endpoint,
    load_model,
    pick_device,
    resolve_model,
)
from audit.models._replay import MissingOutputs, OutputsBackend, is_outputs
from audit.offline import enforce_offline
from audit.policy import Policy, evaluate, load_policy
from audit.power import detectable_value
from audit.rollup import metric_status, probe_status, roll_up
from audit.scorers import PIIDetector, ScorerSet, redact_tree
from probes import (
    DatasetError,
    Probe,
    ProbeContext,
    ProbeParams,
    ProbeResult,
    Progress,
    all_probes,
    load_probe_specs,
)
from probes.pii import read_canaries
from reports import (
    AuditReport,
    Contamination,
    ModelInfo,
    ProbeReport,
    RunInfo,
    Status,
    Summary,
    TaxonomyInfo,
    ToolInfo,
    atomic_write_text,
    render_html,
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


def _spec_probes(config: AuditConfig) -> tuple[list[type[Probe]], dict[str, str]]:
    """The run's probes written as data (``probe_files``, ``probe_dirs``), each spec and its items read
    now, and the sha256 of every file they came from; a resumed run's must be unchanged. BadInput names
    the setting, the file and the key path."""
    try:
        specs, shas = load_probe_specs(config.probe_files, config.probe_dirs, builtin=all_probes())
    except DatasetError as exc:
        raise BadInput(str(exc), setting="probe_files") from None
    if config.resume is not None and shas != config.probe_file_sha256:
        changed = next((p for p in {**shas, **config.probe_file_sha256}
                        if shas.get(p) != config.probe_file_sha256.get(p)), "")
        was = config.probe_file_sha256.get(changed)
        now = shas.get(changed)
        detail = ("is no longer loaded" if now is None else "is new" if was is None
                  else f"changed (sha256 {now[:16]}, the resumed run loaded {was[:16]})")
        raise BadInput(f"{changed} {detail}: a resume runs the probe specs it started with (start a new run to "
                       "change them)", setting="probe_files")
    return specs, shas


def _attach(tax: Taxonomy, specs: Sequence[type[Probe]]) -> Taxonomy:
    """The taxonomy with each spec probe listed under the risks it declares (so it rolls up into them);
    a risk the taxonomy lacks is BadInput naming the spec and the key."""
    by_risk: dict[str, list[str]] = {}
    for probe in specs:
        for i, rid in enumerate(probe.risks):
            try:
                by_risk.setdefault(tax.risk(rid).id, []).append(probe.id)
            except KeyError:
                raise BadInput(f"{probe.source}: risks[{i}]: unknown risk {rid!r} in taxonomy {tax.name} "
                               "(see `lm-audit taxonomy`)", setting="probe_files") from None
    if not by_risk:
        return tax
    areas = [a.model_copy(update={"risks": [r.model_copy(update={"probes": list(dict.fromkeys(
        [*r.probes, *by_risk.get(r.id, [])]))}) for r in a.risks]}) for a in tax.areas]
    return tax.model_copy(update={"areas": areas})


def _load_taxonomy(config: AuditConfig, specs: Sequence[type[Probe]] = ()) -> Taxonomy:
    try:
        tax = load_taxonomy(config.taxonomy, known_probes=[*all_probes(), *(p.id for p in specs)])
    except TaxonomyError as exc:
        raise BadInput(str(exc), setting="taxonomy" if config.taxonomy else None) from None
    return _attach(tax, specs)


def select_probes(config: AuditConfig, tax: Taxonomy, specs: Sequence[type[Probe]] = ()) -> list[type[Probe]]:
    """Probes to run: ``probes`` as given; else those of ``risks`` and ``areas``; else every probe
    of every automated or partial risk. The probe specs' (``specs``) are run in addition, whatever the
    selection. Unknown names are BadInput naming the setting."""
    registry = all_probes() | {p.id: p for p in specs}
    extra = [p.id for p in specs]
    if config.probes:
        for pid in config.probes:
            if pid not in registry:
                raise BadInput(f"{pid}: unknown probe id (known: {', '.join(registry)})", setting="probes")
        return [registry[p] for p in dict.fromkeys([*config.probes, *extra])]
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
    ids = dict.fromkeys([*(p for r in risks for p in r.probes), *extra])
    return [registry[p] for p in ids]


def _datasets(config: AuditConfig, probes: list[type[Probe]]) -> dict[str, Path]:
    """Each selected probe's user dataset: ``datasets``, plus ``canaries`` for the probes that
    declare ``takes_canaries``. Each file is read through now, before the model loads (a malformed
    one is bad input, not a probe error after an hour of model time). BadInput names the setting."""
    selected = {p.id: p for p in probes}
    for pid, path in config.datasets.items():
        if pid not in selected:
            raise BadInput(f"{pid}={path}: probe is not selected for this run", setting="datasets")
        if selected[pid].dataset_format is None:
            raise BadInput(f"{pid}={path}: this probe does not take a dataset", setting="datasets")
    datasets = dict(config.datasets)
    if config.canaries is not None:
        takers = [pid for pid, p in selected.items() if p.takes_canaries]
        if not takers:
            known = ", ".join(pid for pid, p in all_probes().items() if p.takes_canaries)
            raise BadInput(f"{config.canaries}: no selected probe takes canaries ({known})", setting="canaries")
        for pid in takers:
            if pid in datasets:
                raise BadInput(f"{config.canaries}: {pid} also has a dataset ({datasets[pid]}); give one of the two",
                               setting="canaries")
            datasets[pid] = config.canaries
    for pid, path in datasets.items():
        try:
            selected[pid].check_dataset(Path(path))
        except DatasetError as exc:
            if path == config.canaries:
                raise BadInput(str(exc), setting="canaries") from None
            raise BadInput(f"{pid}={exc}", setting="datasets") from None
    return datasets


def _corpus(config: AuditConfig, probes: list[type[Probe]]) -> tuple[Path, ...]:
    """The run's corpus (``corpus``), checked before the model loads: a selected probe takes it, and
    each path is a readable file or directory. BadInput names the setting."""
    if not config.corpus:
        return ()
    if not any(p.takes_corpus for p in probes):
        known = ", ".join(pid for pid, p in all_probes().items() if p.takes_corpus)
        raise BadInput(f"{config.corpus[0]}: no selected probe takes a corpus ({known})", setting="corpus")
    for path in config.corpus:
        if not path.exists():
            raise BadInput(f"{path}: no such file or directory", setting="corpus")
        if not (path.is_file() or path.is_dir()) or not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise BadInput(f"{path}: not a readable file or directory", setting="corpus")
    return tuple(config.corpus)


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


# The marker a run leaves in its directory; what --force may remove (and nothing else).
RUN_MARKER = ".lm-audit-run"
LOCK_FILE = ".lock"
_RUN_FILES = ("report.json", "report.md", "report.html", "config.json")
# Signs of a model checkpoint: a run never writes into one, not even with force.
_CHECKPOINT_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "generation_config.json",
                     "adapter_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")
_MODEL_CONFIG_KEYS = ("model_type", "architectures", "_name_or_path", "torch_dtype")


def new_run_dir(model_id: str, root: Path = Path("runs"), now: datetime | None = None) -> Path:
    """Create and return a fresh run directory ``root/<model>-<timestamp>`` (mode 0700). Two runs
    started in the same second get ``-2``, ``-3`` ...: each name is claimed by an atomic mkdir."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_") or "model"
    stem = f"{safe}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{root}: cannot create the directory for run directories ({exc.strerror or exc}); "
                       "give --out", setting="out") from None
    for n in range(1, 1000):
        path = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInput(f"{path}: cannot create the run directory ({exc.strerror or exc})", setting="out") from None
        path.chmod(0o700)  # mkdir's mode passes through the umask
        return path
    raise BadInput(f"{root / stem}: too many run directories of this name; give --out", setting="out")


def _checkpoint_sign(path: Path) -> str | None:
    """The file that makes ``path`` look like a model checkpoint, or None."""
    for name in _CHECKPOINT_FILES:
        if (path / name).is_file():
            return name
    weights = sorted(f.name for f in path.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file())
    if weights:
        return weights[0]
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(config, dict) and any(k in config for k in _MODEL_CONFIG_KEYS):
        return "config.json, a model configuration"
    return None


def _is_run_dir(path: Path) -> bool:
    """Written by this tool: its marker, or (runs from before the marker) config.json and a
    report.json that names this tool."""
    if (path / RUN_MARKER).is_file():
        return True
    try:
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    tool = report.get("tool") if isinstance(report, dict) else None
    return (path / "config.json").is_file() and isinstance(tool, dict) and \
        tool.get("name") == ToolInfo.model_fields["name"].default


def _check_out(path: Path, *, force: bool, resume: bool, setting: str, held: bool = False) -> None:
    """BadInput unless a run may write into ``path``: absent but creatable, empty, or (with
    ``force`` or ``resume``) a run directory not locked by another run (``held``: this run holds
    the lock); never a model checkpoint. Reads, writes nothing."""
    if not path.exists():
        ancestor = next(a for a in path.absolute().parents if a.exists())
        if not ancestor.is_dir():
            raise BadInput(f"{path}: cannot be created: {ancestor} is a file", setting=setting)
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise BadInput(f"{path}: cannot be created: no permission to write in {ancestor}", setting=setting)
        return
    if not path.is_dir():
        raise BadInput(f"{path}: exists and is not a directory", setting=setting)
    try:
        sign = _checkpoint_sign(path)
        entries = [e for e in path.iterdir() if e.name != LOCK_FILE]
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the directory ({exc.strerror or exc})", setting=setting) from None
    if sign is not None:
        raise BadInput(f"{path}: looks like a model checkpoint ({sign}); a run never writes into one, not even "
                       "with --force", setting=setting)
    if not held:
        _RunLock.check_free(path / LOCK_FILE, setting)
    if resume or not entries:
        return
    if not _is_run_dir(path):
        raise BadInput(f"{path}: not empty and not a run directory of lm-audit; give a new or empty directory "
                       "(--force removes nothing here)", setting=setting)
    if not force:
        raise BadInput(f"{path}: holds an earlier run; --resume {path} continues it, --force starts over (removing "
                       "its report, samples and cache)", setting=setting)


def _make_dir(path: Path, setting: str) -> bool:
    """Create ``path`` (0700) and its parents; False when it already was there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    except FileExistsError:
        if path.is_dir():
            return False
        raise BadInput(f"{path}: cannot create the run directory (a file is in the way)", setting=setting) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot create the run directory ({exc.strerror or exc})", setting=setting) from None
    path.chmod(0o700)  # mkdir's mode passes through the umask
    return True


class _RunLock:
    """An exclusive lock on RUN_DIR/.lock for the life of a run. The kernel drops it when the
    process ends, however it ends, so a lock is never stale."""

    def __init__(self, path: Path, setting: str) -> None:
        self.path = path
        self.created = not path.exists()  # made by this run (removed again if the run writes nothing)
        self._fd: int | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BadInput(f"{path}: cannot create the run's lock file ({exc.strerror or exc})",
                           setting=setting) from None
        if fcntl is None:
            self._fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BadInput(f"{path}: locked by another lm-audit run (pid {holder}) using this directory; wait for "
                           "it to finish", setting=setting) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @classmethod
    def check_free(cls, path: Path, setting: str) -> None:
        """BadInput naming ``path`` when another run holds it; creates nothing."""
        if fcntl is None or not path.is_file():
            return
        cls(path, setting).release()

    def release(self) -> None:
        if self._fd is None:
            return
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


@contextmanager
def _held(path: Path, *, force: bool = False, resume: bool = False, created: bool = False) -> Iterator[Path]:
    """The run directory ``path``, checked, created if absent, and locked while the block runs.
    If the block fails before the run wrote anything (``_begin``), a directory made here is removed."""
    setting = "resume" if resume else "out"
    if not created:
        _check_out(path, force=force, resume=resume, setting=setting)
        created = _make_dir(path, setting)
    lock = _RunLock(path / LOCK_FILE, setting)
    try:
        if not created:  # again under the lock: another run may have written there since
            _check_out(path, force=force, resume=resume, setting=setting, held=True)
        yield path
    except BaseException:
        if not (path / RUN_MARKER).exists():  # the run wrote nothing: leave no trace of it
            if lock.created:
                lock.path.unlink(missing_ok=True)
            if created:
                try:
                    path.rmdir()
                except OSError:
                    pass
        raise
    finally:
        lock.release()


def _start_over(run_dir: Path) -> None:
    """--force: remove the earlier run's report, settings, samples and cache, and nothing else."""
    removed = [run_dir / name for name in _RUN_FILES if (run_dir / name).is_file()]
    samples = run_dir / "samples"
    if samples.is_dir():
        removed += sorted(samples.glob("*.jsonl"))
    removed += cache_files(run_dir / "cache.sqlite")
    for f in removed:
        f.unlink()
    if samples.is_dir() and not any(samples.iterdir()):
        samples.rmdir()
    log.info("--force: removed %d file(s) of the earlier run in %s", len(removed), run_dir)


def _begin(run_dir: Path, config: AuditConfig) -> None:
    """Claim the directory for this run (force: clear the earlier run first) and record its settings."""
    if config.force:
        _start_over(run_dir)
    if not (run_dir / RUN_MARKER).exists():
        atomic_write_text(run_dir / RUN_MARKER, json.dumps({"tool": ToolInfo.model_fields["name"].default,
                                                             "version": __version__, "created_at": _now()}) + "\n")
    # resume reads it; how this run was started (resume, force) is not a setting of the run it records
    atomic_write_text(run_dir / "config.json", config.model_dump_json(indent=2, exclude={"resume", "force"}))


def _canary_secrets(probes: list[type[Probe]], datasets: dict[str, Path]) -> list[str]:
    """The secrets in the user's canary files (``canaries``, or the dataset of a probe that takes
    canaries): never written anywhere, so every output that holds one is masked. A bad file is
    refused here, before anything is written."""
    return [c.secret for p in probes if p.takes_canaries and p.id in datasets
            for c in read_canaries(datasets[p.id])]


def _probe_report(probe: type[Probe], params: ProbeParams, status: Status) -> ProbeReport:
    return ProbeReport(
        id=probe.id, version=probe.version, description=probe.description, kind=probe.kind,
        risks=list(probe.risks), status=status, params=params.model_dump(mode="json"),
        limitations=list(probe.limitations), source=probe.source or "builtin",
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
    # error when it erred (never a pass), manual when every metric is informational, else the most
    # severe gated status — a gated metric that could not be evaluated never leaves its probe a pass
    report.status = probe_status([m.status for m in result.metrics], errored=bool(result.errors))
    return report


def _redact(result: ProbeResult, detector: PIIDetector | None, secrets: Sequence[str],
            report: AuditReport) -> ProbeResult:
    """The one redaction pass: every sample, example and error of a probe, before anything is
    written. ``detector`` None (--show-pii) still masks the canary ``secrets``."""
    examples = [e.model_dump() for e in result.worst_examples]
    (samples, examples, errors), counts = redact_tree(detector, [result.samples, examples, result.errors],
                                                      blocked=secrets)
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


@dataclass(frozen=True)
class _Plan:
    """A run's checked inputs: everything decided before a scorer or the model is loaded."""

    config: AuditConfig
    taxonomy: Taxonomy
    taxonomy_path: Path
    probes: list[type[Probe]]
    datasets: dict[str, Path]
    params: dict[str, ProbeParams]
    policy: Policy | None
    secrets: list[str]  # the user's canary secrets: never written, masked in every output
    started: float
    started_at: str
    corpus: tuple[Path, ...] = ()  # for the probes that declare takes_corpus


def _plan(config: AuditConfig) -> _Plan:
    """Settings (a resume's recorded ones), taxonomy, probes, datasets, parameters, policy and
    canary secrets, each checked: BadInput before anything is loaded or written."""
    if config.resume is not None and config.force:
        raise BadInput("cannot be combined with --resume: --force starts a run over, --resume continues it",
                       setting="force")
    if config.resume is not None:
        config = resume_config(config.resume, explicit_settings(config))
    config = read_system_prompt(config)  # a config built in code may name only the file
    enforce_offline(config.allow_download)
    started, started_at = time.monotonic(), _now()
    specs, spec_shas = _spec_probes(config)
    config = config.model_copy(update={"probe_file_sha256": spec_shas})
    tax = _load_taxonomy(config, specs)
    probes = select_probes(config, tax, specs)
    if not probes:
        given = next(((k, v) for k, v in (("probes", config.probes), ("risks", config.risks),
                                          ("areas", config.areas)) if v), None)
        if given is None:
            raise BadInput("the taxonomy has no automated probe")
        raise BadInput(f"{','.join(given[1])}: the selection contains no automated probe", setting=given[0])
    datasets = _datasets(config, probes)
    corpus = _corpus(config, probes)
    params = _probe_params(config, probes)
    policy = None
    if config.policy is not None:
        policy = load_policy(None if config.policy == "default" else Path(config.policy))  # bad policy: exit 2 now
    return _Plan(config=config, taxonomy=tax, taxonomy_path=config.taxonomy or DEFAULT_TAXONOMY, probes=probes,
                 datasets=datasets, params=params, policy=policy, secrets=_canary_secrets(probes, datasets),
                 started=started, started_at=started_at, corpus=corpus)


def run_audit(
    config: AuditConfig,
    *,
    model: Backend | None = None,
    progress: ProgressFactory | None = None,
    notify: Callable[[str], None] | None = None,
    rescore_of: str | None = None,
) -> AuditReport:
    """Run an audit and write its run directory; returns the report.

    ``model``: an already-loaded backend (tests, API users, another backend written against
    ``audit.models.Backend``); otherwise ``config.model`` is loaded with transformers.
    ``notify``: receives one-line status messages (the CLI prints them).
    ``config.resume``: continue the run in that directory with its recorded settings
    (``resume_config``; the settings the caller gave explicitly are its overrides).
    ``config.out``: a new or empty directory, or an earlier run's with ``config.force`` (which
    removes that run's report, samples and cache first); default ``runs/<model>-<timestamp>``.
    The directory is locked for the run; its result cache is checkpointed and closed at the end,
    however the run ends.
    Raises BadInput for unusable input before the model is loaded where possible.
    On KeyboardInterrupt the partial report is written, then the interrupt propagates.
    """
    if model is not None:
        check_backend(model)  # a wrong object fails here, not inside every probe
    plan = _plan(config)
    config = plan.config
    with ExitStack() as held:
        # An --out that cannot take this run fails now, before the model loads; a default directory
        # is named after the model, so it is made once the model is loaded.
        run_dir = None if config.out is None else held.enter_context(
            _held(config.out, force=config.force, resume=config.resume is not None))
        say = notify or (lambda msg: log.info("%s", msg))
        assert config.model is not None  # AuditConfig requires it unless resuming, and a resume has restored it
        if model is None and is_outputs(config.model):
            model = OutputsBackend(config.model, chat_template=config.chat_template)
        endpoint = model is None and is_endpoint(config.model)
        source = None if model is not None or endpoint else resolve_model(config.model,
                                                                          allow_download=config.allow_download)
        scorers = ScorerSet(config.scorers, allow_download=config.allow_download, seed=config.seed,
                            device=pick_device(config.device), pii=config.pii)  # a classifier scorer shares the GPU
        # Built and validated now, so that a bad scorer choice fails before the model loads.
        scorers.prepare(list(dict.fromkeys(r for p in plan.probes for r in p.scorer_roles)))
        if endpoint:
            say(f"connecting to {config.model}")
            remote = OpenAIBackend(config.model, config.endpoint, chat_template=config.chat_template)
            held.callback(remote.close)
            model = remote.connect()
        if model is None:
            assert source is not None
            say(f"loading model {config.model}")
            model = load_model(
                source, allow_download=config.allow_download, trust_remote_code=config.trust_remote_code,
                dtype=config.dtype, device=config.device, chat_template=config.chat_template,
                batch_size=config.batch_size, model_cache=config.model_cache,
            )
        minfo: ModelInfo = model.info()
        if run_dir is None:
            run_dir = held.enter_context(_held(new_run_dir(minfo.id), created=True))
        _begin(run_dir, config)
        cache = held.enter_context(ResultCache(run_dir / "cache.sqlite"))  # closed before the lock is released
        return _run(plan, run_dir, model, cache, minfo, scorers, progress, say, rescore_of)


def _peers(plan: _Plan, model: MeteredModel) -> tuple[tuple[type[Probe], ProbeContext], ...]:
    """Every probe of the plan with the context it runs with (for a probe that reads their items)."""
    config = plan.config
    return tuple((p, ProbeContext(model=model, params=plan.params[p.id], seed=config.seed, limit=config.limit,
                                  depth=config.depth, standard_items=p.standard_items,
                                  dataset=plan.datasets.get(p.id)))
                 for p in plan.probes)


def _run(plan: _Plan, run_dir: Path, model: Backend, cache: ResultCache, minfo: ModelInfo, scorers: ScorerSet,
         progress: ProgressFactory | None, say: Callable[[str], None], rescore_of: str | None = None) -> AuditReport:
    """Every probe of the plan against the model, each result redacted before it is written;
    the report is saved after each probe, and once more with the policy at the end."""
    config, tax = plan.config, plan.taxonomy
    # The deployment's system prompt is applied here, before the cache: its results are keyed with it.
    metered = MeteredModel(model, cache, system_prompt=config.system_prompt)
    minfo = metered.info()  # records the system prompt and how it reached the model
    # The PII detector redacts every report unless --show-pii; canary secrets are masked regardless.
    redactor = None if config.show_pii else scorers.pii()
    pii_info = (scorers.pii().info() if redactor is not None or plan.secrets or any(p.uses_pii for p in plan.probes)
                else None)
    caps = metered.capabilities()
    run = RunInfo(id=run_dir.name, directory=str(run_dir), started_at=plan.started_at, seed=config.seed,
                  complete=False, resumed=config.resume is not None, smoke=config.limit is not None,
                  rescore_of=rescore_of,
                  command=shlex.join(["lm-audit", *sys.argv[1:]]) if sys.argv else "")
    report = AuditReport(
        tool=ToolInfo(version=__version__), run=run, host=host_info(), model=minfo,
        taxonomy=TaxonomyInfo(name=tax.name, version=tax.version, path=str(plan.taxonomy_path),
                              sha256=taxonomy_sha256(plan.taxonomy_path), source=tax.source),
        config=config.recorded(), show_pii=config.show_pii,
        pii=pii_info,
        summary=Summary(status=Status.not_evaluated, risks_by_status={}, probes_run=0, probes_errored=0),
        areas=[], probes=[],
    )

    # Probes whose items look seen in training (from a probe that checks_items), attached to each of
    # their reports whatever the order the probes ran in.
    contaminated: dict[str, Contamination] = {}

    def save(complete: bool, interrupted: bool = False) -> None:
        for p in report.probes:
            p.contamination = contaminated.get(p.id)
        report.run.cache_hits, report.run.cache_misses = cache.hits, cache.misses
        if isinstance(model, OutputsBackend):  # which ids matched, known as the run goes
            report.model = metered.info()
        report.run.model_s = round(metered.seconds, 3)
        report.run.scoring_s = round(scorers.seconds, 3)
        report.areas, report.summary = roll_up(tax, report.probes)
        report.run.complete, report.run.interrupted = complete, interrupted
        report.run.finished_at = _now()
        report.run.duration_s = round(time.monotonic() - plan.started, 3)
        write_report(report, run_dir / "report.json")
        atomic_write_text(run_dir / "report.md", render_markdown(report))
        atomic_write_text(run_dir / "report.html", render_html(report))

    try:
        for probe_cls in plan.probes:
            params = plan.params[probe_cls.id]
            preport = _probe_report(probe_cls, params, Status.not_evaluated)
            if probe_cls.needs_loglikelihood(params) and not caps.loglikelihood:
                preport.notes.append("not evaluated: this model backend cannot score log-likelihoods"
                                     + (f" ({caps.loglikelihood_note})" if caps.loglikelihood_note else ""))
                report.probes.append(preport)
                continue
            corpus = plan.corpus if probe_cls.takes_corpus else ()
            if probe_cls.needs_token_logprobs(params, corpus) and not caps.token_logprobs:
                preport.notes.append("not evaluated: this model backend cannot score each token's log-probability "
                                     "(token_logprobs)" + ("; --corpus checks against a corpus instead"
                                                           if probe_cls.takes_corpus else ""))
                report.probes.append(preport)
                continue
            probe_model = metered if probe_cls.uses_result_cache else metered.uncached()
            if probe_cls.manages_system_prompt:  # it sends its own arms, with and without the prompt
                probe_model = probe_model.without_system_prompt()
            ctx = ProbeContext(model=probe_model, system_prompt=config.system_prompt,
                               params=params, seed=config.seed, limit=config.limit,
                               depth=config.depth, standard_items=probe_cls.standard_items,
                               dataset=plan.datasets.get(probe_cls.id),
                               progress=progress(probe_cls.id) if progress else Progress(),
                               log=logging.getLogger(f"probes.{probe_cls.id}"), scorers=scorers, model_info=minfo,
                               corpus=corpus, peers=_peers(plan, metered) if probe_cls.checks_items else ())
            t0 = time.monotonic()
            m0 = metered.seconds
            s0 = scorers.seconds
            say(f"running {probe_cls.id}")
            try:
                result = probe_cls().run(ctx)
            except (AuditError, DatasetError):
                raise
            except MissingOutputs as exc:  # recorded outputs that lack this probe's requests: made up, never
                preport.notes.append(f"not evaluated: {len(exc.ids)} of its requests have no recorded output "
                                     f"(first: {', '.join(exc.ids[:3])})")
                report.probes.append(preport)
                save(complete=False)
                continue
            except Exception as exc:  # one broken probe must not lose the others' results
                log.exception("probe %s failed", probe_cls.id)
                result = ProbeResult(errors=[f"{type(exc).__name__}: {exc}"])
            contaminated.update(result.contamination)
            if redactor is not None or plan.secrets:
                result = _redact(result, redactor, plan.secrets, report)
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
    if plan.policy is not None:
        report.policy = evaluate(plan.policy, report, path=str(config.policy))
    save(complete=True)
    if config.junit is not None:
        atomic_write_text(config.junit, render_junit(report))
    return report
