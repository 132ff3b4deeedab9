"""The run's result cache: every model batch's results in SQLite (WAL), keyed by the model
computation's scope (weights fingerprint, dtype, device type, library versions), the exact token batch and the generation parameters — never by the request alone.

Each batch is committed as soon as it is computed, so a run killed at any point (even with
SIGKILL) loses at most the batch in flight; ``--resume`` recomputes nothing else.

The cache holds raw model outputs (unredacted), so its files are the owner's alone (0600:
the database, and its -wal and -shm files, which SQLite creates with the database's mode).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


def cache_key(*parts: Any) -> str:
    """A stable key for JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# The database and the files SQLite keeps beside it in WAL mode.
CACHE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def cache_files(path: Path) -> list[Path]:
    """The cache database at ``path`` and its -wal/-shm/-journal companions that exist."""
    return [f for f in (path.with_name(path.name + s) for s in CACHE_SUFFIXES) if f.exists()]


class ResultCache:
    """A small key -> JSON store. ``hits`` and ``misses`` count lookups in this process.

    ``close`` checkpoints the write-ahead log into the database and closes it (a context
    manager does the same on exit); a closed cache leaves no -wal content behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: its -wal and -shm files take the database's mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for f in cache_files(path):  # an older cache (or one copied in) is tightened too
            f.chmod(0o600)
        self._db: sqlite3.Connection | None = sqlite3.connect(str(path), timeout=30, check_same_thread=False,
                                                              isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError(f"{self.path}: the result cache is closed")
        return self._db

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:  # autocommit: each batch is durable once put returns
            self._conn.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def put_many(self, items: list[tuple[str, Any]]) -> None:
        """Store several values in one transaction; durable once this returns."""
        if not items:
            return
        rows = [(k, json.dumps(v)) for k, v in items]
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the write-ahead log into the database (truncating the -wal file) and close;
        closing twice is harmless."""
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()
                self._db = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BatchCache:
    """A backend's view of the run's result cache, scoped to one model computation (weights
    fingerprint, dtype, device type, library versions).

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
