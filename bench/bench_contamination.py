"""Benchmark (not a test): the contamination probe's corpus scan against ``grep -F -f``.

Generates a corpus of the given size into a temporary directory (filler text: common English words
and invented ones, one paragraph per line, with some of the audit's items planted in it, flattened
to one line), then times, each in a child process of its own (so its peak RSS is its own):

- read: the file read in 1 MiB blocks and nothing else (what the disk or page cache gives);
- scan: ``probes._ngram.scan`` of every project item at standard depth (the items the probe checks,
  those of 4 words or more), 13-grams, the probe's default block size;
- grep: ``grep -F -b -f items.txt`` of the same item strings (each item's text on one line), which
  finds only verbatim, case- and punctuation-exact occurrences of whole items.

Each tool reads the file after it was written (so from the page cache when it fits in memory); every
child is timed by wall clock and its peak RSS read from ``os.wait4``. The parent imports nothing of
the project (the corpus is generated in a child too), so a child's peak RSS is not the parent's
memory inherited at fork.

    .venv/bin/python bench/bench_contamination.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD_SCAN = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from probes._ngram import GramIndex, scan
texts = json.loads(Path({items!r}).read_text())
t0 = time.perf_counter()
index = GramIndex(texts, 13)
t1 = time.perf_counter()
found = scan(index, [Path({corpus!r})])
t2 = time.perf_counter()
print(json.dumps({{"index_s": t1 - t0, "scan_s": t2 - t1, "matched": [i for i, c in enumerate(found.counts) if c],
                  "bytes": found.bytes}}))
"""

_CHILD_READ = """
import sys
with open({corpus!r}, "rb", buffering=0) as fh:
    while fh.read(1 << 20):
        pass
"""


def project_items() -> list[str]:
    """Every registered probe's project items at standard depth, of 4 words or more (as the probe checks)."""
    sys.path.insert(0, str(ROOT))
    from probes import ProbeContext, all_probes
    from probes._ngram import words

    out = []
    for pid, cls in all_probes().items():
        ctx = ProbeContext(model=None, params=cls.Params(), standard_items=cls.standard_items)  # type: ignore[arg-type]
        out += [t for _, t in cls().item_texts(ctx) if len(words(t)) >= 4]
    return out


def _paragraphs(rng: random.Random, n: int) -> list[str]:
    from probes._membership import POOL

    common = [w for ws in POOL.values() for w in ws]
    invented = ["".join(rng.choice(["ka", "lo", "mi", "ten", "ra", "su", "vo", "el", "an", "is", "or", "qua"])
                        for _ in range(rng.randint(1, 4))) for _ in range(20000)]
    out = []
    for _ in range(n):
        sentence_words = []
        for _ in range(rng.randint(40, 160)):
            w = rng.choice(common) if rng.random() < 0.7 else rng.choice(invented)
            sentence_words.append(w.capitalize() if rng.random() < 0.05 else w)
            if rng.random() < 0.08:
                sentence_words[-1] += rng.choice([".", ",", ";", "?"])
        out.append(" ".join(sentence_words))
    return out


def generate(path: Path, size: int, items: list[str], planted: int, seed: int) -> list[int]:
    """Write ``size`` bytes of filler with ``planted`` items (one per line, flattened) at random
    places; returns the indices of the planted items."""
    rng = random.Random(seed)
    chunks = []
    for _ in range(16):  # distinct 4 MiB chunks, written in a random order
        text, n = [], 0
        for p in _paragraphs(rng, 8000):
            text.append(p + "\n")
            n += len(p) + 1
            if n >= 4 << 20:
                break
        chunks.append("".join(text).encode())
    which = rng.sample(range(len(items)), min(planted, len(items)))
    n_chunks = max(1, size // (4 << 20))
    at_chunk = sorted(rng.sample(range(n_chunks), min(len(which), n_chunks)))
    plant = dict(zip(at_chunk, which))
    written = 0
    with open(path, "wb") as fh:
        for k in range(n_chunks):
            chunk = rng.choice(chunks)
            if k in plant:
                cut = chunk.find(b"\n", rng.randrange(len(chunk))) + 1
                line = " ".join(items[plant[k]].split()).encode() + b"\n"
                chunk = chunk[:cut] + line + chunk[cut:]
            fh.write(chunk)
            written += len(chunk)
    return list(plant.values())


def child(command: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # grep exits 1 when nothing matched
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{command[0]} failed ({proc.returncode}): {err[-500:]}")
    return wall, usage.ru_maxrss // 1024, out


def _generate_child(work: Path, size: int, planted: int, seed: int) -> None:
    """The child that writes the items (items.json, items.txt) and the corpus, and the planted indices."""
    items = project_items()
    (work / "items.json").write_text(json.dumps(items))
    (work / "items.txt").write_text("".join(" ".join(t.split()) + "\n" for t in items))
    which = generate(work / "corpus.txt", size, items, planted, seed)
    # What a scan must find: the planted items, and the items that share a 13-gram with one of them
    # (templated items differ in a name only), found by scanning the planted texts alone.
    from probes._ngram import GramIndex, scan

    alone = work / "planted.txt"
    alone.write_text("".join(" ".join(items[i].split()) + "\n" + "zqzq " * 13 + "\n" for i in which))
    expected = [i for i, c in enumerate(scan(GramIndex(items, 13), [alone]).counts) if c]
    alone.unlink()
    (work / "planted.json").write_text(json.dumps({"planted": which, "expected": expected}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="corpus size in MiB (default 1024)")
    ap.add_argument("--planted", type=int, default=20, help="items planted in the corpus (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, help="where to write the corpus (default: a temporary directory, removed)")
    ap.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)  # the generating child
    args = ap.parse_args()
    if args.generate_into is not None:
        _generate_child(args.generate_into, args.size_mb << 20, args.planted, args.seed)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-contamination-", dir=args.dir))
    try:
        corpus = work / "corpus.txt"
        gen_s, _, _ = child([sys.executable, __file__, "--generate-into", str(work), "--size-mb", str(args.size_mb),
                             "--planted", str(args.planted), "--seed", str(args.seed)])
        items = json.loads((work / "items.json").read_text())
        record = json.loads((work / "planted.json").read_text())
        planted, expected = set(record["planted"]), set(record["expected"])
        size = corpus.stat().st_size
        print(f"corpus: {size / 2**20:.0f} MiB written in {gen_s:.1f}s, {len(planted)} of {len(items)} items "
              f"planted; load average before the scans {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)

        read_s, read_rss, _ = child([sys.executable, "-c", _CHILD_READ.format(corpus=str(corpus))])
        scan_wall, scan_rss, out = child([sys.executable, "-c", _CHILD_SCAN.format(
            root=str(ROOT), items=str(work / "items.json"), corpus=str(corpus))])
        got = json.loads(out)
        matched = set(got["matched"])
        grep = shutil.which("grep") or "grep"
        grep_s, grep_rss, grep_out = child([grep, "-F", "-b", "-f", str(work / "items.txt"), str(corpus)])
        grep_lines = len(grep_out.splitlines())
        version = subprocess.run([grep, "--version"], capture_output=True, text=True).stdout.splitlines()[0]

        mb = size / 1e6
        print("\n| tool | wall s | MB/s | peak RSS MiB | found |\n|---|---|---|---|---|")
        print(f"| read only (1 MiB blocks, Python) | {read_s:.2f} | {mb / read_s:.0f} | {read_rss} | — |")
        print(f"| lm-risk-audit n-gram scan (13-grams, {len(items)} items) | {got['scan_s']:.2f} | "
              f"{mb / got['scan_s']:.0f} | {scan_rss} | {len(matched & planted)} of {len(planted)} planted items"
              + (f" (+{len(expected - planted)} sharing a 13-gram with one)" if expected - planted else "")
              + (f", {len(matched - expected)} others" if matched - expected else "") + " |")
        print(f"| {version}: grep -F -b -f items.txt | {grep_s:.2f} | {mb / grep_s:.0f} | {grep_rss} | "
              f"{grep_lines} matching lines |")
        print(f"\nscan: index of {len(items)} items built in {got['index_s']:.2f}s; whole child {scan_wall:.2f}s "
              f"(interpreter start and imports included); load average after {os.getloadavg()[0]:.2f}")
        if matched != expected:
            raise SystemExit(f"the scan found {sorted(matched)}, expected {sorted(expected)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
