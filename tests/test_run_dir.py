"""The run directory is the run's own: --out never overwrites a directory that is not an earlier
run's (and an earlier run's only with --force or --resume), never a model checkpoint; it is
created 0700 with its cache 0600, locked against a second run, and its cache is closed (WAL
checkpointed) however the run ends."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from audit import AuditConfig, BadInput, run_audit
from audit.cache import BatchCache
from audit.runner import LOCK_FILE, RUN_MARKER, new_run_dir
from probes import Generation, GenerationParams, ProgressFn, Prompt
from tests.test_backend_contract import FixedBackend

FAST: dict[str, Any] = {"model": "fixed", "probes": ["interaction.identity"], "limit": 2, "pii": {"nlp_model": "none"}}


def audit(out: Path | None, backend: FixedBackend | None = None, **settings: Any):  # type: ignore[no-untyped-def]
    return run_audit(AuditConfig(**{**FAST, "out": out, **settings}), model=backend or FixedBackend())


def lm_audit_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The CLI in this process: exit code and stderr."""
    from audit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return int(exit_.value.code or 0), capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- what a new run refuses (before the model loads) ---------------------------------------------

def _foreign(d: Path) -> Path:
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    return d


def _earlier_run(d: Path) -> Path:
    audit(d)
    return d


def _checkpoint(name: str, text: str = "") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        _earlier_run(d)  # even a run directory: weights beside it make it a checkpoint
        (d / name).write_text(text)
        return d
    return make


def _under_a_file(d: Path) -> Path:
    d.mkdir()
    (d / "file").write_text("")
    return d / "file" / "run"


def _a_file(d: Path) -> Path:
    d.mkdir()
    (d / "run").write_text("")
    return d / "run"


REFUSED = [
    ("foreign", _foreign, [], "not empty and not a run directory"),
    ("foreign-force", _foreign, ["--force"], "not empty and not a run directory"),
    ("earlier-run", _earlier_run, [], "holds an earlier run; --resume"),
    ("safetensors", _checkpoint("model.safetensors"), ["--force"], "looks like a model checkpoint (model.safetensors)"),
    ("gguf", _checkpoint("m.gguf"), ["--force"], "looks like a model checkpoint (m.gguf)"),
    ("bin", _checkpoint("pytorch_model.bin"), ["--force"], "looks like a model checkpoint (pytorch_model.bin)"),
    ("tokenizer", _checkpoint("tokenizer.json", "{}"), ["--force"], "looks like a model checkpoint (tokenizer.json)"),
    ("model-config", lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "llama"}'), d)[-1],
     ["--force"], "looks like a model checkpoint (config.json, a model configuration)"),
    ("under-a-file", _under_a_file, [], "cannot be created"),
    ("a-file", _a_file, [], "exists and is not a directory"),
]


@pytest.mark.parametrize("make, flags, needle", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_out_that_a_run_must_not_write_into_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      make: Callable[[Path], Path], flags: list[str],
                                                      needle: str) -> None:
    out = make(tmp_path / "out")
    before = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = lm_audit_here(capsys, "run", "--model", "fixed", "--out", str(out), "--quiet", *flags)
    line = one_line(err)
    assert code == 2 and f"error: --out {out}: " in line and needle in line, err
    after = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_directory_without_write_permission_is_bad_input(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(BadInput, match="no permission to write") as exc:
        audit(locked / "run")
    assert exc.value.setting == "out" and exc.value.exit_code == 2


def test_a_failed_start_leaves_no_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput):  # the model does not exist: found out after the directory was claimed
        run_audit(AuditConfig(**{**FAST, "model": str(tmp_path / "no-such-model"), "out": tmp_path / "run"}))
    assert not (tmp_path / "run").exists()


# --- --force and --resume -------------------------------------------------------------------------

def test_force_starts_over_removing_the_earlier_run_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = audit(out, probes=["interaction.identity", "malicious_use.compliance"])
    assert first.run.cache_misses > 0 and (out / "samples" / "malicious_use.compliance.jsonl").is_file()
    (out / "notes.txt").write_text("mine")
    again = audit(out, force=True)
    assert again.run.cache_hits == 0 and again.run.cache_misses > 0  # the old cache went with the run
    assert not (out / "samples" / "malicious_use.compliance.jsonl").exists()
    assert [p.id for p in again.probes] == ["interaction.identity"]
    assert (out / "notes.txt").read_text() == "mine"


def test_force_into_an_empty_or_new_directory_is_a_plain_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "run"):
        assert audit(out, force=True).run.complete and (out / RUN_MARKER).is_file()


def test_resume_continues_an_earlier_run_and_refuses_force(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    audit(out)
    resumed = run_audit(AuditConfig(resume=out), model=FixedBackend())
    assert resumed.run.resumed and resumed.run.cache_hits > 0 and resumed.run.cache_misses == 0
    assert "force" not in json.loads((out / "config.json").read_text())
    code, err = lm_audit_here(capsys, "run", "--resume", str(out), "--force")
    assert code == 2 and "--force cannot be combined with --resume" in one_line(err)


def test_a_run_directory_from_before_the_marker_is_recognised(tmp_path: Path) -> None:
    out = tmp_path / "run"
    audit(out)
    (out / RUN_MARKER).unlink()  # config.json and a report.json of this tool remain
    with pytest.raises(BadInput, match="holds an earlier run"):
        audit(out)
    assert audit(out, force=True).run.cache_hits == 0


# --- permissions, the lock, the cache's end -------------------------------------------------------

def test_run_directory_is_the_owners_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)  # a usual umask would leave 0755 / 0644
    try:
        explicit = tmp_path / "a" / "run"
        audit(explicit)
        default = Path(audit(None).run.directory)
    finally:
        os.umask(old)
    assert default.parent == Path("runs")
    for run_dir in (explicit, default):
        assert run_dir.stat().st_mode & 0o777 == 0o700
        cache = sorted(run_dir.glob("cache.sqlite*"))
        assert cache and all(f.stat().st_mode & 0o777 == 0o600 for f in cache), [
            (f.name, oct(f.stat().st_mode)) for f in cache]


def test_default_run_directories_of_the_same_second_differ(tmp_path: Path) -> None:
    now = datetime(2025, 1, 2, 3, 4, 5)
    made = [new_run_dir("org/My Model", root=tmp_path, now=now) for _ in range(3)]
    assert [p.name for p in made] == ["org_My_Model-20250102-030405", "org_My_Model-20250102-030405-2",
                                      "org_My_Model-20250102-030405-3"]
    assert all(p.is_dir() and p.stat().st_mode & 0o777 == 0o700 for p in made)


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # as the runner does: a longer pid left by the run before must not show through
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(120)
"""


def test_a_directory_locked_by_another_run_is_refused_naming_the_lock(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    audit(out)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for flags in (["--force"], []):
            code, err = lm_audit_here(capsys, "run", "--model", "fixed", "--out", str(out), "--quiet", *flags)
            line = one_line(err)
            assert code == 2 and f"{out / LOCK_FILE}: locked by another lm-audit run (pid {holder.pid})" in line, err
        with pytest.raises(BadInput, match="locked by another lm-audit run") as exc:
            run_audit(AuditConfig(resume=out), model=FixedBackend())
        assert exc.value.setting == "resume"
        assert (out / "report.json").is_file()  # the holder's run is left alone
    finally:
        holder.kill()
        holder.wait()
    assert run_audit(AuditConfig(resume=out), model=FixedBackend()).run.resumed  # the kernel dropped the lock


class Interrupting(FixedBackend):
    def generate(self, prompts: list[Prompt], params: GenerationParams | Sequence[GenerationParams],
                 progress: ProgressFn | None = None, *, cache: BatchCache | None = None) -> list[Generation]:
        raise KeyboardInterrupt


def _unlocked(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("backend", [FixedBackend, Interrupting], ids=["finished", "interrupted"])
def test_the_cache_is_closed_and_the_lock_released_however_the_run_ends(tmp_path: Path,
                                                                        backend: type[FixedBackend]) -> None:
    out = tmp_path / "run"

    def closed() -> None:
        wal = out / "cache.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed into cache.sqlite and closed
        assert _unlocked(out / LOCK_FILE)

    try:
        audit(out, backend())
    except KeyboardInterrupt:
        assert backend is Interrupting
        closed()  # while the traceback keeps the runner's frames (and anything left open) alive
    else:
        closed()
