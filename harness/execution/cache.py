"""A persistent result cache in SQLite (WAL mode), keyed by content: the model's fingerprint and the plan
unit's content key (request kind and text). Written as each chunk of units completes, so an interrupted
run loses no finished work, and a rerun scores only what is missing.

One cache per user (files.result_cache_path: <$HARNESS_CACHE or ~/.cache/harness>/results.sqlite), shared by
every output folder: the same requests to the same weights are scored once. Runs at the same time share it
safely: WAL lets readers go on beside a writer, each save is one short transaction, and a writer waits up to
BUSY_SECONDS for another's. `info` and `clear` are `harness cache info | clear`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from harness.columns import format_table
from harness.errors import HarnessError, first_line, suggest
from harness.execution.plan import Unit
from harness.files import CACHE_ENV, RESULT_CACHE_ENV, check_writable
from harness.invariance import ENGINE  # the scoring engine that made a result is part of its key
from harness.records import GenerateResult, LoglikelihoodResult, RequestKind, Result, RollingResult

SCHEMA = 5  # bump when a result record or the content key changes: older entries are then not reused
BUSY_SECONDS = 120  # how long a save waits for another run's transaction on the same cache
_RESULT_TYPES = {
    RequestKind.LOGLIKELIHOOD: LoglikelihoodResult,
    RequestKind.ROLLING: RollingResult,
    RequestKind.GENERATE: GenerateResult,
}
_TABLES = ("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, value TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS entries_by_model ON entries (fingerprint)",
           "CREATE TABLE IF NOT EXISTS models (fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, used TEXT NOT NULL)")
_ADVICE = f"free some space, set ${RESULT_CACHE_ENV} to a file elsewhere, or run with --no-cache"


def _connect(path: Path) -> sqlite3.Connection:
    """Open (and on first use create) the cache. Two runs creating the same new file at once can get `database is
    locked` from the switch to WAL without SQLite's busy wait, so opening retries until BUSY_SECONDS have passed."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _TABLES:
                db.execute(statement)
            db.commit()
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def open_checked(path: Path) -> None:
    """Before any model work: the cache's folder is writable with room to spare, and the file opens as a cache."""
    chosen_by = f"${RESULT_CACHE_ENV}" if os.environ.get(RESULT_CACHE_ENV) else f"${CACHE_ENV}"
    check_writable(path.parent, f"result cache ({chosen_by})", f"set {chosen_by} elsewhere or run with --no-cache")
    try:
        _connect(path).close()
    except sqlite3.Error as e:
        raise HarnessError(f"result cache {path}: cannot open it ({first_line(e)}); {_ADVICE}") from None


class ResultCache:
    def __init__(self, path: Path, fingerprint: str, name: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fingerprint = fingerprint
        self.saved = 0  # results this process saved
        try:
            self.db = _connect(path)
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (fingerprint, name, _now()))
        except sqlite3.Error as e:
            raise HarnessError(f"result cache {path}: cannot open it ({first_line(e)}); {_ADVICE}") from None

    def key(self, unit: Unit) -> str:
        return hashlib.sha256(f"{SCHEMA}|{ENGINE}|{self.fingerprint}|{unit.key}".encode()).hexdigest()

    def get(self, units: Sequence[Unit]) -> dict[str, Result]:
        """Cached results by unit key, for the units that have one."""
        keys = {self.key(u): u for u in units}
        found: dict[str, Result] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                unit = keys[key]
                found[unit.key] = _RESULT_TYPES[unit.request.kind](**json.loads(value))
        return found

    def put(self, units: Sequence[Unit], results: Mapping[str, Result]) -> None:
        """Save one completed chunk in one transaction. A failed save (disk full, file size limit) stops the run in
        one line; every chunk saved before it stays, so the rerun resumes there."""
        rows = [(self.key(u), self.fingerprint, json.dumps(asdict(results[u.key]))) for u in units]
        try:
            self._write(rows)
        except sqlite3.Error as e:
            kept = f"the {self.saved} results this run saved before are kept" if self.saved else "none saved yet"
            raise HarnessError(f"result cache {self.path}: could not save results ({first_line(e)}); {kept}: "
                               f"{_ADVICE}, then rerun the same command to resume") from None
        self.saved += len(rows)

    def _write(self, rows: list[tuple[str, str, str]]) -> None:
        with self.db:  # one transaction per completed chunk
            self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _on_disk(path: Path) -> int:
    """Bytes of the cache file with its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file())


def _mb(size: int) -> str:
    """A size in KB, MB or GB, whichever reads best."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 2**10:.0f} KB"


def info(path: Path) -> str:
    """`harness cache info`: where the cache is, its size on disk, and its entries per model (name, fingerprint)."""
    if not path.is_file():
        return f"result cache: {path} (empty: no file yet)"
    with _reading(path) as db:
        rows = db.execute("SELECT e.fingerprint, COALESCE(m.name, '?'), COALESCE(m.used, '?'), COUNT(*), "
                          "SUM(LENGTH(e.key) + LENGTH(e.value)) FROM entries e LEFT JOIN models m "
                          "ON m.fingerprint = e.fingerprint GROUP BY e.fingerprint ORDER BY 3 DESC").fetchall()
    lines = [f"result cache: {path} ({_mb(_on_disk(path))} on disk, {sum(r[3] for r in rows)} results)"]
    if rows:  # columns as wide as the longest model name or path
        table = [(name, fp[:16], str(n), _mb(size), used) for fp, name, used, n, size in rows]
        lines += format_table(table, ("model", "fingerprint", "results", "data", "last used (UTC)"), right={2, 3})
    return "\n".join(lines)


def clear(path: Path, model: str | None = None) -> str:
    """`harness cache clear [--model NAME]`: remove every result (or those of the model NAME, or of fingerprints
    starting with NAME) and shrink the file; one line saying what was removed."""
    if not path.is_file():
        return f"result cache {path}: nothing to remove (no file yet)"
    before = _on_disk(path)
    with _reading(path) as db:
        models = dict(db.execute("SELECT m.fingerprint, m.name FROM models m WHERE EXISTS "
                                 "(SELECT 1 FROM entries e WHERE e.fingerprint = m.fingerprint)").fetchall())
        if model is None:
            chosen = models
        else:
            chosen = {fp: name for fp, name in models.items() if model in (name, fp) or fp.startswith(model)}
            if not chosen:
                known = sorted(set(models.values()))
                hint = suggest(model, known) or f" (models with results: {', '.join(known) or 'none'})"
                raise HarnessError(f"--model {model}: no results in the cache for it{hint}; see harness cache info")
        which = f"WHERE fingerprint IN ({','.join('?' * len(chosen))})" if model else ""
        with db:
            removed = db.execute(f"DELETE FROM entries {which}", list(chosen) if model else []).rowcount
            db.execute(f"DELETE FROM models {which}", list(chosen) if model else [])
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    names = ", ".join(sorted(set(chosen.values())))
    return (f"removed {removed} results of {len(chosen)} model fingerprint{'s' * (len(chosen) != 1)} ({names}) "
            f"from {path}: {_mb(before)} -> {_mb(_on_disk(path))} on disk")


class _reading:
    """A connection to an existing cache for `info` and `clear`; sqlite errors become one line naming the file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db = _connect(self.path)
        except sqlite3.Error as e:
            raise HarnessError(f"result cache {self.path}: cannot open it ({first_line(e)})") from None
        return self.db

    def __exit__(self, kind, error, trace) -> None:
        self.db.close()
        if isinstance(error, sqlite3.Error):
            raise HarnessError(f"result cache {self.path}: {first_line(error)}") from None
