"""The run's result cache: every model batch's results in SQLite (WAL), keyed by the model
fingerprint, the exact token batch and the generation parameters — never by the request alone.

Each batch is committed as soon as it is computed, so a run killed at any point (even with
SIGKILL) loses at most the batch in flight; ``--resume`` recomputes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


def cache_key(*parts: Any) -> str:
    """A stable key for JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ResultCache:
    """A small key -> JSON store. ``hits`` and ``misses`` count lookups in this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:  # autocommit: each batch is durable once put returns
            self._db.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class BatchCache:
    """A backend's view of the run's result cache, scoped to one model (its weights fingerprint).

    A backend keys a batch by what decides its results (``"generate"``, the token layout,
    the parameters, ...); the scope is prepended, so two models never share an entry.
    """

    def __init__(self, store: ResultCache, scope: str) -> None:
        self._store = store
        self._scope = scope

    def get(self, *parts: Any) -> Any | None:
        """The stored value for ``parts``, or None."""
        return self._store.get(cache_key(self._scope, *parts))

    def put(self, value: Any, *parts: Any) -> None:
        """Store ``value`` under ``parts``; durable once this returns."""
        self._store.put(cache_key(self._scope, *parts), value)
