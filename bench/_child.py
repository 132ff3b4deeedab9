"""Shared by the benchmarks that compare trees: run a child process and measure it; extract
an earlier commit's tree to run it side by side with this one."""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_child(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
              ok: tuple[int, ...] = (0,)) -> tuple[float, float, str, int]:
    """(wall s, peak RSS GiB, stdout, exit code) of one child process; an exit code outside
    ``ok`` stops the benchmark with the child's last error lines."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - t
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 2**20, out.read(), code


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that makes a child import the project from ``tree``, offline."""
    return dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")


def extract(ref: str, where: Path) -> Path:
    """The tree of commit ``ref`` (git archive) under ``where``."""
    data = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    tar = where / "tree.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as tf:
        tf.extractall(where / "tree", filter="data")
    return where / "tree"
