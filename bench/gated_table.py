"""Every gated metric of an audit, before and after: n, detectable value, raw and corrected figure,
and status in each report.

    .venv/bin/python bench/gated_table.py BEFORE/report.json AFTER/report.json

Prints a Markdown table keyed on the AFTER report's gated metrics (a metric absent before shows
"—"). Used for the closing note of a change that moves statuses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _fig(value: float | None, ci: dict[str, Any] | None) -> str:
    if value is None:
        return "—"
    if not ci:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _metrics(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["id"], m["name"]): m for p in report["probes"] for m in p["metrics"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    before, after = (_metrics(json.loads(p.read_text())) for p in (args.before, args.after))
    print("| probe | metric | n before → after | bars warn/fail | detects (80%) | raw value after | corrected after "
          "| status before | status after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (pid, name), m in after.items():
        t = m.get("threshold") or {}
        if t.get("fail") is None or m.get("higher_is_better") is None:
            continue
        b = before.get((pid, name), {})
        c = m.get("corrected")
        corrected = "—" if c is None else ("too weak" if c.get("value") is None else _fig(c["value"], c.get("ci")))
        det = m.get("detectable")
        print(f"| {pid} | {name} | {b.get('n', '—')} → {m['n']} | {t.get('warn')}/{t['fail']} | "
              f"{'—' if det is None else f'{det:.3g}'} | {_fig(m['value'], m.get('ci'))} | {corrected} | "
              f"{b.get('status', '—')} | {m.get('status')} |")


if __name__ == "__main__":
    main()
