"""A persistent result cache in SQLite (WAL mode), keyed by content: the model's fingerprint and the plan
unit's content key (request kind and text). Written as each chunk of units completes, so an interrupted
run loses no finished work, and a rerun scores only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from harness.execution.plan import Unit
from harness.records import GenerateResult, LoglikelihoodResult, RequestKind, Result, RollingResult

SCHEMA = 3  # bump when a result record or the content key changes: older entries are then not reused
_RESULT_TYPES = {
    RequestKind.LOGLIKELIHOOD: LoglikelihoodResult,
    RequestKind.ROLLING: RollingResult,
    RequestKind.GENERATE: GenerateResult,
}


class ResultCache:
    def __init__(self, path: Path, fingerprint: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fingerprint = fingerprint
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    def key(self, unit: Unit) -> str:
        return hashlib.sha256(f"{SCHEMA}|{self.fingerprint}|{unit.key}".encode()).hexdigest()

    def get(self, units: Sequence[Unit]) -> dict[str, Result]:
        """Cached results by unit key, for the units that have one."""
        keys = {self.key(u): u for u in units}
        found: dict[str, Result] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                unit = keys[key]
                found[unit.key] = _RESULT_TYPES[unit.request.kind](**json.loads(value))
        return found

    def put(self, units: Sequence[Unit], results: Mapping[str, Result]) -> None:
        rows = [(self.key(u), json.dumps(asdict(results[u.key]))) for u in units]
        with self.db:  # one transaction per completed chunk
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)

    def close(self) -> None:
        self.db.close()
