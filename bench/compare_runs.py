"""Compare two run directories field by field, ignoring what is expected to differ between
two runs of the same audit (timings, timestamps, the run's own paths and command line).

    python bench/compare_runs.py runs/before runs/after [--ignore-source]

Prints every differing JSON path of report.json (and every differing samples/ file), then a
one-line verdict; exits 1 when anything but the ignored fields differs. Used to show that a
refactor changed no result; ``bench/bench_audit.py --before REF`` runs it on its two runs. Files
(datasets, the taxonomy) are compared by name and sha256, not by the directory the run read them
from; ``--ignore-source`` also leaves out where each probe was defined (a class or a probe spec).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Keys whose values are timings, timestamps or where/how the run was invoked; and pii.canary_extraction's
# per-run salt, with the salted hash of each secret made from it (a fresh salt each run, by design).
IGNORED_KEYS = {"duration_s", "model_s", "scoring_s", "started_at", "finished_at", "directory", "command",
                "tokens_per_second", "secret_salt", "secret_sha256"}
# Whole paths that legitimately differ: the run's name (from its directory) and the host.
IGNORED_PATHS = {"run.id", "host", "config.out"}
# footprint.compute measures wall-clock throughput: its figures differ on every run.
TIMING_PROBES = {"footprint.compute"}


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if path in IGNORED_PATHS:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED_KEYS:
                continue
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{sub}: only in {'new' if key in b else 'old'}")
            else:
                out += diff(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            label = x.get("id") if isinstance(x, dict) and isinstance(x.get("id"), str) else str(i)
            if label in TIMING_PROBES:
                continue
            out += diff(x, y, f"{path}[{label}]")
        return out
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def _report(run: Path, ignore_source: bool) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run / "report.json").read_text(encoding="utf-8"))
    for record in [report.get("taxonomy") or {}, *((p.get("dataset") or {}) for p in report.get("probes", []))]:
        if isinstance(record.get("path"), str):  # the checkout the run came from: compared by name and sha256
            record["path"] = Path(record["path"]).name
    if ignore_source:
        for p in report.get("probes", []):
            p.pop("source", None)
    return report


def _records(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def differences(old_run: Path, new_run: Path, ignore_source: bool = False) -> tuple[list[str], str]:
    """Every difference between two run directories outside timings, and a summary of what was compared."""
    old, new = _report(old_run, ignore_source), _report(new_run, ignore_source)
    found = diff(old, new)
    names = sorted({p.name for d in (old_run, new_run) for p in (d / "samples").glob("*.jsonl")})
    for name in names:
        if name.removesuffix(".jsonl") in TIMING_PROBES:
            continue
        a, b = old_run / "samples" / name, new_run / "samples" / name
        if not a.is_file() or not b.is_file():
            found.append(f"samples/{name}: only in {'new' if b.is_file() else 'old'}")
        elif a.read_bytes() != b.read_bytes():  # record by record, leaving out the ignored keys
            found += diff(_records(a), _records(b), f"samples/{name}")
    n_metrics = sum(len(p.get("metrics", [])) for p in old.get("probes", []))
    return found, f"{len(old.get('probes', []))} probes, {n_metrics} metrics, {len(names)} sample files compared"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--ignore-source", action="store_true", help="leave out where each probe was defined")
    args = ap.parse_args()
    found, compared = differences(args.old, args.new, args.ignore_source)
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) outside timings{' and probe sources' if args.ignore_source else ''}; {compared}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
