"""Benchmark: the built-in model audited through a real `transformers serve` at several
concurrencies, beside the in-process backend, in one run on the same machine.

Not a test. Starts `transformers serve` (127.0.0.1, a free port) on the built-in model's converted
checkpoint (`lm-audit prepare` makes it), audits the same generation probes through it with
`--model openai:URL --concurrency N` for each N, and in-process; prints wall time, seconds inside
the model, generated tokens per second, and whether every greedy output and every metric agrees
with the in-process audit. `transformers serve` returns no prompt log-probabilities, so the
log-likelihood probes are not part of it (the endpoint tests check that path on a stub that
computes them with transformers).

    .venv/bin/python bench/bench_endpoint.py [--probes P1,P2] [--concurrency 1,4,16] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def converted_checkpoint() -> Path:
    from audit.models import resolve_model, weights_fingerprint
    from audit.models._converted import converted_dir

    subprocess.run([str(BIN / "lm-audit"), "prepare", "--model", "smollm2-135m"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    digest = weights_fingerprint(resolve_model("smollm2-135m"))
    assert digest is not None
    where = converted_dir(digest)
    if not (where / "config.json").is_file():
        raise SystemExit(f"no converted checkpoint at {where}")
    return where


def servable_copy(ckpt: Path, into: Path) -> Path:
    """The checkpoint as `transformers serve` loads it: it needs `architectures` in config.json, which
    a checkpoint converted from GGUF lacks (the weights are linked, not copied)."""
    into.mkdir()
    for f in ckpt.iterdir():
        (into / f.name).symlink_to(f)
    config = json.loads((ckpt / "config.json").read_text())
    if not config.get("architectures"):
        (into / "config.json").unlink()
        config["architectures"] = [{"llama": "LlamaForCausalLM"}.get(config.get("model_type", ""), "LlamaForCausalLM")]
        (into / "config.json").write_text(json.dumps(config, indent=2))
    return into


def audit(model: str, probes: str, limit: int | None, out: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [str(BIN / "lm-audit"), "run", "--model", model, "--probes", probes, "--out", str(out), "--quiet",
           *(["--limit", str(limit)] if limit else []), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, json.loads((out / "report.json").read_text())


def outputs(run: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in sorted((run / "samples").glob("*.jsonl")):
        texts = []
        for line in f.read_text().splitlines():
            s = json.loads(line)
            texts += [o["text"] for o in s["outputs"]] if "outputs" in s else [s.get("output", "")]
        found[f.stem] = texts
    return found


def generated_tokens(run: Path, served: bool) -> int:
    """Generated tokens, from the run's cache: each generation is in the request log (a dict per
    request); the in-process backend's batch entries are lists, the endpoint backend's per-request
    entries are dicts equal to the log's, so a served run holds each generation twice."""
    db = sqlite3.connect(f"file:{run / 'cache.sqlite'}?mode=ro", uri=True)
    total = 0
    for (value,) in db.execute("SELECT value FROM results"):
        v = json.loads(value)
        if isinstance(v, dict) and "finish_reason" in v:
            total += int(v.get("n_tokens", 0))
    db.close()
    return total // 2 if served else total


def metrics(report: dict) -> dict[tuple[str, str], float | None]:
    return {(p["id"], m["name"]): m["value"] for p in report["probes"] for m in p["metrics"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", default="toxicity.dialogue,malicious_use.compliance,interaction.identity")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--continuous-batching", action="store_true", help="start the server with continuous batching")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    ckpt = servable_copy(converted_checkpoint(), tmp / "ckpt")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server_cmd = [str(BIN / "transformers"), "serve", str(ckpt), "--host", "127.0.0.1", "--port", str(port),
                  "--device", "cpu", "--dtype", "float32"]
    if args.continuous_batching:
        server_cmd.append("--continuous-batching")
    log = open(tmp / "serve.log", "w")
    server = subprocess.Popen(server_cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            if server.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            log.flush()
            raise SystemExit("transformers serve did not start:\n" + (tmp / "serve.log").read_text()[-3000:])
        print(f"machine: {os.cpu_count()} CPUs; model: smollm2-135m (its converted checkpoint); "
              f"probes: {args.probes}; limit: {args.limit or 'none (standard depth)'}")
        base_wall, base = audit("smollm2-135m", args.probes, args.limit, tmp / "inproc", [])
        base_out, base_tok = outputs(tmp / "inproc"), generated_tokens(tmp / "inproc", served=False)
        rows = [("in-process (batched)", base_wall, base["run"]["model_s"], base_tok, "—", "—")]
        for c in [int(x) for x in args.concurrency.split(",")]:
            run = tmp / f"served-{c}"
            wall, rep = audit(f"openai:{url}", args.probes, args.limit, run, ["--concurrency", str(c)])
            out = outputs(run)
            same_text = sum(a == b for p in base_out for a, b in zip(base_out[p], out.get(p, [])))
            total = sum(len(v) for v in base_out.values())
            agree = all(metrics(rep).get(k) == v for k, v in metrics(base).items())
            rows.append((f"transformers serve, concurrency {c}", wall, rep["run"]["model_s"],
                         generated_tokens(run, served=True), f"{same_text}/{total}", "yes" if agree else "no"))
        print("| backend | wall s | model s | generated tokens | tokens/s (model) | greedy outputs identical | "
              "metrics identical |")
        print("|---|---|---|---|---|---|---|")
        for name, wall, model_s, tok, same, agree in rows:
            print(f"| {name} | {wall:.1f} | {model_s:.1f} | {tok} | {tok / model_s:.1f} | {same} | {agree} |")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
