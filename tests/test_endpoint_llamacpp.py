"""A real llama.cpp server (llama-cpp-python's OpenAI-compatible server) on the built-in GGUF: its
echoed prompt log-probabilities are off (each prompt token gets the log-probability of the next
position's distribution: ":" after "\\nA" scores −13.6 against −0.06 when the server generates it),
so the start-up check must refuse its log-likelihood probes while generation runs.

Skipped where llama-cpp-python[server] is not installed (`make test` tries to build it; the build
takes minutes and is allowed to fail)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from audit.models import resolve_model

    source = resolve_model("smollm2-135m")
    gguf = Path(source.location) / str(source.gguf_file)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "1024"], stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            for _ in range(240):
                if proc.poll() is not None:
                    pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(f"{url}/models", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.25)
            else:
                pytest.fail("llama.cpp server did not start")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _lm_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_llama_cpp_server_echo_is_refused_and_generation_runs(llama_server: str, tmp_path: Path) -> None:
    proc = _lm_audit("prepare", "--model", f"openai:{llama_server}", "--completions")
    assert proc.returncode == 0, proc.stderr
    assert "log-likelihoods not available" in proc.stdout and "disagree" in proc.stdout, proc.stdout
    out = tmp_path / "run"
    proc = _lm_audit("run", "--model", f"openai:{llama_server}", "--completions", "--probes",
                     "misinformation.truthfulness_mc,toxicity.dialogue", "--limit", "3", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    by_id = {p["id"]: p for p in report["probes"]}
    assert by_id["misinformation.truthfulness_mc"]["status"] == "not_evaluated"
    assert any("disagree" in n for n in by_id["misinformation.truthfulness_mc"]["notes"])
    assert by_id["toxicity.dialogue"]["status"] != "not_evaluated" and by_id["toxicity.dialogue"]["metrics"][0]["n"] == 3
