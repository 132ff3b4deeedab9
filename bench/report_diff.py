"""Every difference between two audits' reports and sample files, leaving out what differs between any
two runs by nature (clock times, durations, run directory and id, the command line, cache counters,
footprint.compute's timing figures) and, with ``--ignore-source``, each probe's source.

    python bench/report_diff.py RUN_DIR_A RUN_DIR_B [--ignore-source]

Prints one line per difference (a JSON path, then both values) and a closing count; exits 1 when
any remains. ``bench/bench_audit.py --before REF`` calls it on its two runs; it also checks a
refactor that must not change a report (issue 21: built-in probes rewritten as packaged specs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Differ between any two runs of the same audit, whatever the code does.
_RUN_KEYS = {"id", "directory", "started_at", "finished_at", "duration_s", "command", "cache_hits", "cache_misses",
             "model_s", "scoring_s", "resumed", "rescore_of"}
_PROBE_KEYS = {"duration_s", "model_s", "scoring_s"}
_TIMED = {"footprint.compute"}  # its metrics are timings
_CONFIG_KEYS = {"out"}


def _clean(report: dict[str, Any], ignore_source: bool) -> dict[str, Any]:
    r = json.loads(json.dumps(report))
    r["run"] = {k: v for k, v in r.get("run", {}).items() if k not in _RUN_KEYS}
    # files are compared by name and sha256: the trees the two runs came from may sit in different places
    for record in [r.get("taxonomy") or {}, *((p.get("dataset") or {}) for p in r.get("probes", []))]:
        if isinstance(record.get("path"), str):
            record["path"] = Path(record["path"]).name
    r["config"] = {k: v for k, v in (r.get("config") or {}).items() if k not in _CONFIG_KEYS}
    probes = []
    for p in r.get("probes", []):
        p = {k: v for k, v in p.items() if k not in _PROBE_KEYS and not (ignore_source and k == "source")}
        if p["id"] in _TIMED:
            p.pop("metrics", None)
            p.pop("notes", None)
        probes.append(p)
    r["probes"] = probes
    return r


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: {'absent' if k not in a else repr(a[k])[:80]} | "
                           f"{'absent' if k not in b else repr(b[k])[:80]}")
            else:
                _walk(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items | {len(b)} items")
        for k, (x, y) in enumerate(zip(a, b)):
            key = x.get("id") if isinstance(x, dict) and isinstance(x.get("id"), str) else str(k)
            _walk(x, y, f"{path}[{key}]", out)
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {repr(a)[:80]} | {repr(b)[:80]}")


def _samples(run: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for f in sorted((run / "samples").glob("*.jsonl")) if (run / "samples").is_dir() else []:
        if f.stem in _TIMED:
            continue
        out[f.stem] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def differences(a: Path, b: Path, ignore_source: bool = False) -> list[str]:
    """Every difference between run directories ``a`` and ``b`` (report.json, then samples/*.jsonl)."""
    out: list[str] = []
    ra, rb = (json.loads((d / "report.json").read_text(encoding="utf-8")) for d in (a, b))
    _walk(_clean(ra, ignore_source), _clean(rb, ignore_source), "report", out)
    _walk(_samples(a), _samples(b), "samples", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--ignore-source", action="store_true", help="leave each probe's source out")
    args = ap.parse_args()
    found = differences(args.a, args.b, args.ignore_source)
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) between {args.a} and {args.b}"
          + (" (clock times, durations, run paths, footprint timings and probe sources left out)" if args.ignore_source
             else " (clock times, durations, run paths and footprint timings left out)"))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
