"""Benchmark: the full default audit, end to end, with where its time goes — optionally
against an earlier commit on the same items, in the same run.

Not a test. Runs ``lm-audit run`` (every automated probe at full size, as ``make audit``
does) in a child process and prints: wall time, peak resident memory, and the split of
the wall time into model calls, scoring (scorers and PII detection, redaction included)
and everything else (imports, model load, probe code, writing reports), overall and per
probe, from the run's report.json. With ``--before REF`` the same audit runs first from
that commit's tree (``git archive``), and the table puts the two side by side, with the
speed-up and every difference between the two reports and sample files (bench/compare_runs.py).

    .venv/bin/python bench/bench_audit.py [--model smollm2-135m] [--before REF] [--out DIR]
        [-- extra lm-audit args]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from _child import ROOT, extract, run_child, tree_env
from compare_runs import differences


def audit(tree: Path, out: Path, model: str, extra: list[str]) -> dict[str, object]:
    """One audit from ``tree``: its wall time, peak RSS, exit code and report."""
    cmd = [sys.executable, "-m", "audit", "run", "--model", model, "--out", str(out), "--quiet", *extra]
    # 1: the model failed a risk (a finding, not a bench failure)
    wall, rss, _, code = run_child(cmd, tree, tree_env(tree), ok=(0, 1))
    return {"wall": wall, "rss": rss, "code": code, "report": json.loads((out / "report.json").read_text())}


def split(r: dict[str, object]) -> dict[str, float]:
    run = r["report"]["run"]  # type: ignore[index]
    model_s, scoring_s = run["model_s"] or 0.0, run["scoring_s"] or 0.0
    wall = float(r["wall"])  # type: ignore[arg-type]
    return {"wall": wall, "model": model_s, "scoring": scoring_s, "other": wall - model_s - scoring_s,
            "startup": wall - run["duration_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--before", default=None, help="a commit to run the same audit from first (git archive)")
    ap.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: temporary)")
    ap.add_argument("extra", nargs="*", help="further lm-audit run arguments (after --)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        base = args.out or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        runs: list[tuple[str, dict[str, object]]] = []
        if args.before:
            tree = extract(args.before, Path(tmp))
            runs.append((f"before ({args.before})", audit(tree, base / "before", args.model, args.extra)))
        runs.append(("this tree", audit(ROOT, base / "after", args.model, args.extra)))
        found, compared = differences(base / "before", base / "after", ignore_source=True) if args.before \
            else ([], "")
    report = runs[-1][1]["report"]
    print(f"`lm-audit run --model {args.model} {' '.join(args.extra)}`".replace("  ", " "))
    print(f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
          f"model {report['model']['id']} on {report['model']['device']} ({report['model']['dtype']}), "  # type: ignore[index]
          f"batch size {report['model']['batch_size']} · exit codes {[r['code'] for _, r in runs]}")  # type: ignore[index]
    print()
    splits = [(name, split(r)) for name, r in runs]
    print("| | " + " | ".join(f"{name} s | share" for name, _ in splits) + " |")
    print("|---|" + "---|---|" * len(splits))
    for key, label in [("wall", "wall time (process start to exit)"), ("model", "inside model calls"),
                       ("scoring", "scoring (scorers, PII detection and redaction)"),
                       ("other", "everything else (imports, model load, probe code, writing reports)"),
                       ("startup", "of which before the run starts (interpreter start-up, imports)")]:
        print(f"| {label} | " + " | ".join(f"{s[key]:.1f} | {100 * s[key] / s['wall']:.1f}%" for _, s in splits) + " |")
    print("| peak RSS GiB | " + " | ".join(f"{float(r['rss']):.2f} | " for _, r in runs) + " |")  # type: ignore[arg-type]
    if len(runs) == 2:
        (_, a), (_, b) = splits
        print()
        print(f"speed-up: {a['wall'] / b['wall']:.2f}x wall, {a['model'] / b['model']:.2f}x inside model calls; "
              f"{len(found)} difference(s) between the reports and samples outside timings and probe sources "
              f"(bench/compare_runs.py: {compared})")
        for line in found[:40]:
            print(f"    {line}")
        if len(found) > 40:
            print(f"    ... {len(found) - 40} more (bench/compare_runs.py on the two run directories lists them)")
    print()
    print("| probe | samples | " + " | ".join(f"{name} s (model / scoring)" for name, _ in runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    by_id = [{p["id"]: p for p in r["report"]["probes"]} for _, r in runs]  # type: ignore[index]
    for p in report["probes"]:  # type: ignore[index]
        cells = []
        for probes in by_id:
            q = probes.get(p["id"])
            cells.append("—" if q is None else
                         f"{q['duration_s']:.1f} ({q.get('model_s') or 0.0:.1f} / {q.get('scoring_s') or 0.0:.1f})")
        print(f"| {p['id']} | {p['n_samples']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
