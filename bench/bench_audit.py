"""Benchmark: the full default audit, end to end, with where its time goes.

Not a test. Runs ``lm-audit run`` (every automated probe at full size, as ``make audit``
does) in a child process and prints: wall time, peak resident memory, and the split of
the wall time into model calls, scoring (scorers + PII detection) and everything else
(imports, model load, reports), overall and per probe, from the run's report.json.

    .venv/bin/python bench/bench_audit.py [--model smollm2-135m] [--out DIR] [-- extra lm-audit args]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    ap.add_argument("extra", nargs="*", help="further lm-audit run arguments (after --)")
    args = ap.parse_args()
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="bench-audit-")
        out = Path(tmp) / "run"
    lm_audit = shutil.which("lm-audit", path=str(Path(sys.executable).parent)) or "lm-audit"
    cmd = [lm_audit, "run", "--model", args.model, "--out", str(out), *args.extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if proc.returncode not in (0, 1):  # 1: the model failed a risk (a finding, not a bench failure)
        sys.exit(f"lm-audit exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out / "report.json").read_text())
    run = report["run"]
    model_s, scoring_s, run_s = run["model_s"] or 0.0, run["scoring_s"] or 0.0, run["duration_s"]
    other = wall - model_s - scoring_s

    print(f"`{' '.join(['lm-audit', *cmd[1:]])}`")
    print(f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
          f"model {report['model']['id']} on {report['model']['device']} ({report['model']['dtype']}), "
          f"batch size {report['model']['batch_size']} · exit code {proc.returncode}")
    print()
    print("| | seconds | share of wall |")
    print("|---|---|---|")
    print(f"| wall time (process start to exit) | {wall:.1f} | 100% |")
    print(f"| inside model calls | {model_s:.1f} | {100 * model_s / wall:.1f}% |")
    print(f"| scoring (scorers + PII detection, validation included) | {scoring_s:.1f} | {100 * scoring_s / wall:.1f}% |")
    print(f"| everything else (imports, model load, probe code, reports) | {other:.1f} | {100 * other / wall:.1f}% |")
    print(f"| of which before the run starts (interpreter start-up and imports) | {wall - run_s:.1f} | "
          f"{100 * (wall - run_s) / wall:.1f}% |")
    print()
    print(f"peak RSS {peak_kib / 2**20:.2f} GiB")
    print()
    print("| probe | status | samples | seconds | model s | scoring s | other s |")
    print("|---|---|---|---|---|---|---|")
    for p in report["probes"]:
        m, s = p.get("model_s") or 0.0, p.get("scoring_s") or 0.0
        print(f"| {p['id']} | {p['status']} | {p['n_samples']} | {p['duration_s']:.1f} | {m:.1f} | {s:.1f} | "
              f"{p['duration_s'] - m - s:.1f} |")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
