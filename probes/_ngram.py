"""Test-set leakage the GPT-3 way: which items share an n-gram with a training corpus.

Normalisation (the same for items and corpus, and length-preserving, so a match's offset in the
normalised text is its byte offset in the file): ASCII letters lowercased, ASCII punctuation,
control characters and common Unicode punctuation (curly quotes, dashes, ellipsis, no-break space)
turned into spaces, then words are what whitespace separates. Letters outside ASCII are kept
as they are (no Unicode case folding).

Each item's n-grams are hashed into a set; an item of fewer than n words is one gram, whole.
The corpus is streamed once, in blocks: each block is normalised with ``bytes.translate``, its
words hashed with numpy (a polynomial hash over the bytes by prefix sums, each word's hash
mixed by splitmix64, and every n-word window combined by a second polynomial prefix sum), so
no Python object is made per word; the windows go through a bit-table prefilter and a sorted
search, and the rare hash hits are checked word by word (a match is never a hash collision).
The last n-1 words of a block and its unfinished word are carried into the next, so a window
across a block boundary is tested once. Memory is bounded by the block size, whatever the
corpus size (a JSONL line is read whole).

Corpus files: text (any file not named .jsonl), JSONL (``.jsonl``/``.ndjson``: per line, the
``text`` field when it is a string, else every string in the record, records never joined into
one window), either optionally gzip-compressed (``.gz``: offsets are then into the
decompressed stream); a directory is walked recursively, in sorted order.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 1 << 20
MAX_HITS = 5  # corpus locations kept per item
_MAX_JSONL_LINE = 16 << 20  # a JSONL record longer than this is skipped (and listed), not held in memory
_MAX_CARRY = 1 << 20  # a carry longer than this holds a word no item has: dropped (see _carry)
_MARK = b"\x01"  # a byte items never hold: glued to a dropped word's rest, or between JSONL records
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_U64 = np.uint64

# Unicode punctuation (UTF-8) that becomes spaces, byte for byte: quotes, dashes, ellipsis, primes
# (three bytes); no-break space and guillemets (two).
_UNICODE_PUNCT3 = re.compile(b"\xe2\x80[\x93\x94\x98-\x9f\xa6\xb2\xb3]")
_UNICODE_PUNCT2 = re.compile(b"\xc2[\xa0\xab\xbb]")


def _table() -> bytes:
    t = bytearray(range(256))
    for b in range(256):
        ch = chr(b)
        if b < 128 and (ch.isspace() or not ch.isalnum()) and b != _MARK[0]:
            t[b] = 0x20  # whitespace, punctuation, control characters
        elif 65 <= b <= 90:
            t[b] = b + 32
    return bytes(t)


_TABLE = _table()


def normalise(raw: bytes) -> bytes:
    """Lowercase ASCII, punctuation and control characters to spaces; the same length as ``raw``."""
    if b"\xe2\x80" in raw:
        raw = _UNICODE_PUNCT3.sub(b"   ", raw)
    if b"\xc2" in raw:
        raw = _UNICODE_PUNCT2.sub(b"  ", raw)
    return raw.translate(_TABLE)


def words(text: str) -> list[bytes]:
    """``text``'s words as the scan sees them."""
    return normalise(text.replace("\x01", " ").encode("utf-8", "replace")).split()


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


class _Powers:
    """Powers of an odd 64-bit base and of its inverse mod 2^64, grown on demand."""

    def __init__(self, base: int, size: int) -> None:
        self.base, self.inverse = base, pow(base, -1, 1 << 64)
        self.up = self.down = np.ones(1, dtype=_U64)
        self.grow(size)

    def grow(self, size: int) -> None:
        if len(self.up) > size:
            return
        size = max(size + 1, len(self.up) + len(self.up) // 4)
        with np.errstate(over="ignore"):
            self.up = np.concatenate([[_U64(1)], np.cumprod(np.full(size - 1, self.base, dtype=_U64))])
            self.down = np.concatenate([[_U64(1)], np.cumprod(np.full(size - 1, self.inverse, dtype=_U64))])


_LOW = np.array([0] + [(1 << (8 * i)) - 1 for i in range(1, 8)] + [(1 << 64) - 1] * 57, dtype=_U64)


class _Hasher:
    """Word hashes of a normalised buffer, and window hashes over them by a prefix sum.

    A word's hash mixes its length, its first eight bytes and its last eight (read as unaligned
    64-bit loads, so nothing is computed per byte but the word boundaries). Words longer than 16
    bytes that agree in length, first and last eight bytes share a hash: a match is checked word by
    word, so such a collision costs a check, never a false match."""

    def __init__(self, capacity: int = DEFAULT_BLOCK_BYTES) -> None:
        self.word = _Powers(0xD6E8FEB86659FD93, capacity // 2 + 2)

    def words(self, norm: bytes, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start, end, hash) of each word of ``norm[:length]`` (normalised bytes)."""
        inside = np.zeros(length + 2, dtype=bool)
        inside[1:-1] = np.frombuffer(norm, dtype=np.uint8, count=length) != 0x20
        edges = np.flatnonzero(inside[1:] != inside[:-1])  # bool: several times faster than on integers
        starts, ends = edges[0::2], edges[1::2]  # a word starts where the edges go up, ends where they go down
        if not len(starts):
            return starts, ends, np.empty(0, dtype=_U64)
        # 8 bytes from every byte position: an overlapping, unaligned view over the padded buffer.
        pad = (norm[:length] if len(norm) != length else norm) + b" " * 16
        lanes = np.ndarray(shape=(length + 9,), dtype="<u8", buffer=pad, offset=0, strides=(1,))
        size = ends - starts
        low = _LOW[np.minimum(size, 8)]  # a word under 8 bytes: only its own bytes
        with np.errstate(over="ignore"):
            head = lanes[starts] & low
            tail = lanes[np.maximum(ends - 8, starts)] & low
            hashes = _mix(head * _U64(0x9E3779B97F4A7C15) + (tail ^ size.astype(_U64)) * _U64(0xC2B2AE3D27D4EB4F))
        return starts, ends, hashes

    def prefix(self, hashes: np.ndarray) -> np.ndarray:
        """The prefix sums over the word hashes that every window hash is read from."""
        m = len(hashes)
        self.word.grow(m + 1)
        out = np.empty(m + 1, dtype=_U64)
        out[0] = 0
        with np.errstate(over="ignore"):
            np.multiply(hashes, self.word.up[:m], out=out[1:])
            np.cumsum(out[1:], out=out[1:])
        return out

    def windows(self, prefix: np.ndarray, k: int, lo: int = 0) -> np.ndarray:
        """The hash of every run of ``k`` words from word ``lo`` on (position j: words j .. j+k-1)."""
        hi = len(prefix) - k  # one past the last window's first word
        if hi <= lo:
            return np.empty(0, dtype=_U64)
        with np.errstate(over="ignore"):
            return (prefix[lo + k :] - prefix[lo:hi]) * self.word.down[lo:hi]

    def windows_at(self, prefix: np.ndarray, first: np.ndarray, k: int) -> np.ndarray:
        """The hashes of the runs of ``k`` words that begin at the words ``first``."""
        with np.errstate(over="ignore"):
            return (prefix[first + k] - prefix[first]) * self.word.down[first]

_FILTER_BITS = 22  # bit-table prefilter of window hashes, indexed by their top bits
_FIRST_BITS = 20  # table of the first words of short items
MAX_COUNT = 1000  # matches counted per item; past it the item is no longer tested (its count reads "1000+")


@dataclass
class _Grams:
    """The item grams of one length: the sorted hashes, and where each occurs."""

    k: int
    where: dict[int, list[tuple[int, int]]]  # gram hash -> (item index, first word)
    sorted: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=_U64))
    table: np.ndarray | None = None

    def build(self, retired: set[int], table: bool) -> None:
        keys = [g for g, occ in self.where.items() if any(i not in retired for i, _ in occ)]
        self.sorted = np.array(sorted(keys), dtype=_U64)
        if table:
            self.table = np.zeros(1 << _FILTER_BITS, dtype=bool)
            self.table[(self.sorted >> _U64(64 - _FILTER_BITS)).astype(np.int64)] = True


class GramIndex:
    """The n-grams of item texts by hash (``n`` words; an item of fewer words is one gram, whole)."""

    def __init__(self, texts: Sequence[str], n: int) -> None:
        if n < 1 or n > 63:
            raise ValueError(f"n-gram length must be between 1 and 63 words, got {n}")
        self.n = n
        self.hasher = _Hasher(max((len(t) for t in texts), default=0) * 4 + 16)
        self.item_words: list[list[bytes]] = []
        self.whole: list[bool] = []  # the item has fewer than n words: matched whole
        # Short items by their opening, its first two words (one for a one-word item): opening width ->
        # the opening's window hash -> bit mask of the lengths of the short items that open so.
        self.openings: dict[int, dict[int, int]] = {1: {}, 2: {}}
        by_k: dict[int, dict[int, list[tuple[int, int]]]] = {}
        for idx, text in enumerate(texts):
            norm = normalise(text.replace("\x01", " ").encode("utf-8", "replace"))
            starts, ends, hashes = self.hasher.words(norm, len(norm))
            self.item_words.append([norm[s:e] for s, e in zip(starts.tolist(), ends.tolist())])
            m = len(starts)
            self.whole.append(0 < m < n)
            if m == 0:
                continue  # an empty item matches nothing
            k = min(n, m)
            prefix = self.hasher.prefix(hashes)
            if k < n:
                width = min(k, 2)
                opening = int(self.hasher.windows(prefix, width)[0])
                self.openings[width][opening] = self.openings[width].get(opening, 0) | (1 << k)
            for j, g in enumerate(self.hasher.windows(prefix, k).tolist()):
                by_k.setdefault(k, {}).setdefault(g, []).append((idx, j))
        self.long = _Grams(n, by_k.pop(n, {}))
        self.short = {k: _Grams(k, where) for k, where in sorted(by_k.items())}

    def __len__(self) -> int:
        return len(self.item_words)


@dataclass
class Hit:
    path: str
    offset: int  # byte offset of the match's first word (text) or of its JSON line (JSONL)


@dataclass
class ScanResult:
    """What a scan found: per item, the number of matching windows (at most ``MAX_COUNT``) and the
    first ``MAX_HITS`` places."""

    hits: list[list[Hit]]
    counts: list[int]
    files: int = 0
    bytes: int = 0
    skipped_lines: list[str] = field(default_factory=list)  # JSONL lines that are not JSON ("path:line")


class _Matcher:
    """Tests every window of a normalised buffer against the index and records verified matches."""

    def __init__(self, index: GramIndex, result: ScanResult) -> None:
        self.index, self.result, self.hasher = index, result, index.hasher
        self.retired: set[int] = set()
        self.new_retired = False
        self._build()

    def _build(self) -> None:
        """The prefilter tables, without the grams of items that have matched ``MAX_COUNT`` times."""
        self.index.long.build(self.retired, table=True)
        for grams in self.index.short.values():
            grams.build(self.retired, table=False)
        self.openings: dict[int, np.ndarray] = {}
        dtype = np.uint16 if self.index.n <= 16 else _U64  # a bit per short item length
        for width, openings in self.index.openings.items():
            if openings:
                table = self.openings[width] = np.zeros(1 << _FIRST_BITS, dtype=dtype)
                for g, mask in openings.items():
                    table[g >> (64 - _FIRST_BITS)] |= mask
        self.new_retired = False

    def scan(self, norm: bytes, length: int, first_new: int, locate: Callable[[int], Hit]) -> None:
        """Match the words of ``norm[:length]`` whose windows end at word ``first_new`` or later
        (earlier ones were tested with the previous block)."""
        starts, ends, hashes = self.hasher.words(norm, length)
        m = len(hashes)
        if not m:
            return
        prefix = self.hasher.prefix(hashes)
        grams = self.index.long
        if len(grams.sorted):
            lo = max(0, first_new - grams.k + 1)
            g = self.hasher.windows(prefix, grams.k, lo)
            assert grams.table is not None
            cand = np.flatnonzero(grams.table[(g >> _U64(64 - _FILTER_BITS)).view(np.int64)])
            if len(cand):
                self._check(norm, starts, ends, grams, cand + lo, g[cand], locate)
        for width, table in self.openings.items():
            # Short items are matched whole, tested only where one of them opens (its first two words).
            keys = hashes if width == 1 else self.hasher.windows(prefix, 2)
            bits = table[(keys >> _U64(64 - _FIRST_BITS)).view(np.int64)]
            at = np.flatnonzero(bits)
            if not len(at):
                continue
            masks = bits[at]
            for k, grams in self.index.short.items():
                if (k == 1) != (width == 1):
                    continue
                first = at[(masks & masks.dtype.type(1 << k)) != 0]
                first = first[(first >= first_new - k + 1) & (first <= m - k)]
                if len(first) and len(grams.sorted):
                    self._check(norm, starts, ends, grams, first, self.hasher.windows_at(prefix, first, k), locate)
        if self.new_retired:
            self._build()

    def _check(self, norm: bytes, starts: np.ndarray, ends: np.ndarray, grams: _Grams, first: np.ndarray,
               values: np.ndarray, locate: Callable[[int], Hit]) -> None:
        pos = np.minimum(np.searchsorted(grams.sorted, values), len(grams.sorted) - 1)
        same = grams.sorted[pos] == values
        for j, value in zip(first[same].tolist(), values[same].tolist()):
            self._verify(norm, starts, ends, j, grams, value, locate)

    def _verify(self, norm: bytes, starts: np.ndarray, ends: np.ndarray, j: int, grams: _Grams, value: int,
                locate: Callable[[int], Hit]) -> None:
        """Record the match of the window at word ``j`` for every item whose words it is (never a
        hash collision)."""
        found = [norm[int(starts[j + i]) : int(ends[j + i])] for i in range(grams.k)]
        seen: set[int] = set()
        for idx, first in grams.where.get(value, ()):
            if idx in seen or idx in self.retired or self.index.item_words[idx][first : first + grams.k] != found:
                continue
            seen.add(idx)
            hit, hits = locate(int(starts[j])), self.result.hits[idx]
            if hits and hits[-1] == hit:  # another window of the same JSONL record: one match, not several
                continue
            self.result.counts[idx] += 1
            if len(hits) < MAX_HITS:
                hits.append(hit)
            if self.result.counts[idx] >= MAX_COUNT:
                self.retired.add(idx)
                self.new_retired = True


def corpus_files(paths: Sequence[Path]) -> list[Path]:
    """The files of ``paths`` (a directory walked recursively, sorted; hidden entries skipped)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for root, dirs, names in os.walk(p):  # directory links are not followed
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                # regular files only: a link (which may lead out of the directory, or dangle) or a FIFO
                # or device (which would block or never end) is skipped, and logged
                for n in sorted(names):
                    f = Path(root) / n
                    if n.startswith("."):
                        continue
                    if f.is_symlink() or not stat.S_ISREG(f.lstat().st_mode):
                        log.warning("corpus: skipped %s (not a regular file)", f)
                        continue
                    out.append(f)
        else:
            out.append(p)
    return out


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def _is_jsonl(path: Path) -> bool:
    return path.name.removesuffix(".gz").endswith(_JSONL_SUFFIXES)


def scan(index: GramIndex, paths: Sequence[Path], *, block_bytes: int = DEFAULT_BLOCK_BYTES,
         progress: Callable[[int], None] | None = None) -> ScanResult:
    """Stream every corpus file once against ``index``; ``progress`` gets the bytes read per block."""
    if block_bytes < 1:
        raise ValueError(f"block size must be at least 1 byte, got {block_bytes}")
    result = ScanResult(hits=[[] for _ in range(len(index))], counts=[0] * len(index))
    matcher = _Matcher(index, result)
    index.hasher.word.grow(block_bytes // 2 + _MAX_CARRY + 2)  # once, not block by block
    for path in corpus_files(paths):
        result.files += 1
        with _open(path) as fh:
            blocks = (_jsonl_blocks(fh, path, block_bytes, result) if _is_jsonl(path)
                      else _text_blocks(fh, block_bytes, index.n))
            for buffer, length, first_new, locate, read in blocks:
                if length:
                    matcher.scan(buffer, length, first_new, lambda at, loc=locate: Hit(str(path), loc(at)))
                result.bytes += read
                if progress:
                    progress(read)
    return result


Block = tuple[bytes, int, int, Callable[[int], int], int]  # normalised buffer, length, first new word, offset map, bytes read


def _text_blocks(fh: IO[bytes], block_bytes: int, window: int) -> Iterator[Block]:
    """Normalised buffers of a text stream: each the carry (the last ``window`` - 1 complete words
    of the previous block and its unfinished word) plus the next block, cut after its last separator."""
    carry, carry_at, old_words = b"", 0, 0
    at = 0  # file offset of the next read
    while True:
        chunk = fh.read(block_bytes)
        if not chunk and not carry:
            return
        raw = carry + chunk if carry else chunk
        base = carry_at if carry else at
        at += len(chunk)
        norm = normalise(raw)
        cut = len(norm) if not chunk else norm.rfind(b" ") + 1  # at the end of the file the last word is whole
        if cut == 0:  # no separator in the whole buffer: one unfinished word (so no complete one carried)
            carry, carry_at = (raw, base) if len(raw) <= _MAX_CARRY else (_MARK, at - 1)
            old_words = 0
            yield norm, 0, 0, lambda p, b=base: b + p, len(chunk)
            continue
        yield norm, cut, old_words, lambda p, b=base: b + p, len(chunk)
        if not chunk:
            return
        cs, old_words = _carry_start(norm, cut, window - 1)
        carry, carry_at = raw[cs:], base + cs
        if len(carry) > _MAX_CARRY:
            # The carried words hold one longer than any item's: no window through them can match,
            # so only the unfinished word goes on (its rest glued to a mark when it too is that long).
            tail = raw[cut:]
            carry, carry_at = (tail, base + cut) if len(tail) <= _MAX_CARRY else (_MARK, at - 1)
            old_words = 0


def _word_starts(norm: bytes, begin: int, end: int) -> np.ndarray:
    inside = (np.frombuffer(norm, dtype=np.uint8, count=end - begin, offset=begin) != 0x20).view(np.int8)
    return np.flatnonzero(np.diff(inside, prepend=np.int8(0)) == 1) + begin


def _carry_start(norm: bytes, cut: int, words_kept: int) -> tuple[int, int]:
    """(where the carry starts, how many complete words it holds): the last ``words_kept`` words
    before ``cut``, found in the buffer's tail (the whole buffer only when the tail holds too few)."""
    if words_kept == 0:
        return cut, 0
    span = 1 << 12
    while True:
        begin = max(0, cut - span)
        starts = _word_starts(norm, begin, cut)
        # Past the tail's first word (which may have begun before the tail), every start is a word's.
        if len(starts) > words_kept or begin == 0:
            keep = max(0, len(starts) - words_kept)
            return (int(starts[keep]) if keep < len(starts) else cut), len(starts) - keep
        span *= 8


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _jsonl_blocks(fh: IO[bytes], path: Path, block_bytes: int, result: ScanResult) -> Iterator[Block]:
    """Per block of whole lines: the strings of each record (its ``text`` field, else all its
    strings, in order, joined by spaces), the records joined with an unmatchable separator so no
    window spans two of them."""
    carry, at, lineno, skipping = b"", 0, 0, False
    while True:
        chunk = fh.read(block_bytes)
        eof = not chunk
        if skipping and chunk:  # the rest of a line over _MAX_JSONL_LINE: dropped up to its newline
            nl = chunk.find(b"\n")
            if nl < 0:
                at += len(chunk)
                continue
            at, chunk, skipping = at + nl + 1, chunk[nl + 1:], False
        data = carry + chunk if carry else chunk
        base = at - len(carry)
        at += len(chunk)
        cut = len(data) if eof else data.rfind(b"\n") + 1
        parts: list[bytes] = []
        record_at: list[int] = []  # buffer position of each record
        line_at: list[int] = []  # file offset of each record's line
        pos, size = 0, 0
        lines = data[:cut].split(b"\n") if cut else []
        if lines and not lines[-1]:
            lines.pop()  # what follows the final newline
        for line in lines:
            lineno += 1
            offset = base + pos
            pos += len(line) + 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if len(result.skipped_lines) < 1000:
                    result.skipped_lines.append(f"{path}:{lineno}")
                continue
            text = record.get("text") if isinstance(record, dict) else None
            strings = [text] if isinstance(text, str) else list(_strings(record))
            body = " ".join(strings).replace("\x01", " ").encode("utf-8", "replace")
            record_at.append(size)
            line_at.append(offset)
            parts.append(body)
            size += len(body) + 3
        norm = normalise(b" \x01 ".join(parts))
        starts_arr = np.array(record_at, dtype=np.int64)
        lines_arr = np.array(line_at, dtype=np.int64)
        yield (norm, len(norm), 0,
               lambda p, s=starts_arr, ln=lines_arr: int(ln[np.searchsorted(s, p, side="right") - 1]),
               len(chunk))
        if eof:
            return
        carry = data[cut:]  # an unfinished line: whole into the next block, up to _MAX_JSONL_LINE
        if len(carry) > _MAX_JSONL_LINE:  # memory stays bounded whatever the file (a gz of one endless line)
            lineno += 1
            if len(result.skipped_lines) < 1000:
                result.skipped_lines.append(f"{path}:{lineno} (a line over {_MAX_JSONL_LINE >> 20} MiB)")
            carry, skipping = b"", True


__all__ = ["DEFAULT_BLOCK_BYTES", "GramIndex", "Hit", "ScanResult", "corpus_files", "normalise", "scan", "words"]
