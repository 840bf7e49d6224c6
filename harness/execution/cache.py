"""A persistent result cache in SQLite (WAL mode), keyed by content: the model's fingerprint, the
request kind and the request's text. Written as each chunk of requests completes, so an interrupted
run loses no finished work, and a rerun scores only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from harness.records import GenerateResult, LoglikelihoodResult, Request, RequestKind, Result, RollingResult

SCHEMA = 2  # bump when a result record gains or changes a field: older entries are then not reused
_RESULT_TYPES = {
    RequestKind.LOGLIKELIHOOD: LoglikelihoodResult,
    RequestKind.ROLLING: RollingResult,
    RequestKind.GENERATE: GenerateResult,
}


def payload(request: Request) -> tuple:
    """What a request asks of the model, without its id."""
    return tuple(v for k, v in vars(request).items() if k not in ("id", "kind"))


class ResultCache:
    def __init__(self, path: Path, fingerprint: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fingerprint = fingerprint
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    def key(self, request: Request) -> str:
        text = json.dumps([SCHEMA, self.fingerprint, request.kind.value, *payload(request)], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, requests: Sequence[Request]) -> dict[str, Result]:
        """Cached results by request id, for the requests that have one."""
        keys = {self.key(r): r for r in requests}
        found: dict[str, Result] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                request = keys[key]
                found[request.id] = _RESULT_TYPES[request.kind](**json.loads(value))
        return found

    def put(self, requests: Iterable[Request], results: dict[str, Result]) -> None:
        rows = [(self.key(r), json.dumps(asdict(results[r.id]))) for r in requests]
        with self.db:  # one transaction per completed chunk
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)

    def close(self) -> None:
        self.db.close()
