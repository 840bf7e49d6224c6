"""Executors run a plan against a model and return results by unit key. Executors never change a number:
the same plan gives the same results whatever runs it.

LocalExecutor runs in this process: one pass per request kind, units in plan order, in chunks of at most
CHUNK[kind] requests and about CHUNK_CHARS characters, each chunk saved to the result cache as it completes.

Executors also make the FT setting's checkpoints (`finetune`): locally one after the other, on a cluster in
parallel. A checkpoint is a folder named by everything that decides its weights (train/finetune.py), written
atomically and reused when it exists, so who trains it never changes it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from harness.errors import say
from harness.execution.cache import ResultCache
from harness.execution.plan import Plan, Unit, size
from harness.config import FinetuneConfig
from harness.models.base import LanguageModel, Trainable
from harness.records import RequestKind, Result
from harness.tasks.data import Split
from harness.tasks.spec import TaskSpec
from harness.train.finetune import finetune

CHUNK = {RequestKind.LOGLIKELIHOOD: 64, RequestKind.ROLLING: 2, RequestKind.GENERATE: 8}  # requests per save, at most
CHUNK_CHARS = 40_000  # and characters per save (about half a minute of a 135M model on 2 cores)


@dataclass(frozen=True)
class FinetuneJob:
    """One FT checkpoint to make (or reuse): the task, its train and eval splits, the hyperparameters, the folder."""

    spec: TaskSpec
    train: Split
    evaluation: Split
    config: FinetuneConfig
    folder: Path

    def run(self, model: Trainable) -> dict:
        """Train `model`'s copy into the folder (or reuse it); the checkpoint's lineage."""
        return finetune(model, self.spec, self.train, self.evaluation, self.config, self.folder)


class Executor(Protocol):
    def execute(self, plan: Plan, model: LanguageModel) -> dict[str, Result]:
        """The result of every unit of `plan`, by unit key."""
        ...

    def finetune(self, jobs: Sequence[FinetuneJob], model: Trainable) -> list[dict]:
        """The lineage of every job's checkpoint, in job order."""
        ...


class LocalExecutor:
    """Today's loop in this process, through the result cache at `cache_path` (None: no cache)."""

    def __init__(self, cache_path: Path | None):
        self.cache_path = cache_path

    def execute(self, plan: Plan, model: LanguageModel) -> dict[str, Result]:
        use = self.cache_path and plan.units
        cache = ResultCache(self.cache_path, model.fingerprint(), model.name) if use else None
        try:
            results: dict[str, Result] = {}
            for kind in plan.kinds():
                results |= self._run_kind(model, kind, plan.of_kind(kind), cache)
            return results
        finally:
            if cache:
                cache.close()

    def finetune(self, jobs: Sequence[FinetuneJob], model: Trainable) -> list[dict]:
        return [job.run(model) for job in jobs]

    def _run_kind(self, model: LanguageModel, kind: RequestKind, units: list[Unit], cache: ResultCache | None):
        results = cache.get(units) if cache else {}
        missing = [u for u in units if u.key not in results]
        if results:
            say(f"{kind.value}: {len(results)} of {len(units)} results from the cache")
        # progress in characters, not requests: the longest come first, so a request count would mislead the ETA
        total = sum(size(u.request) for u in missing)
        with tqdm(total=total, desc=f"{kind.value} ({len(missing)} requests)", unit="char", unit_scale=True,
                  file=sys.stderr) as bar:
            for chunk in chunks(missing, CHUNK[kind]):
                got = call_model(model, kind, chunk)
                if cache:
                    cache.put(chunk, got)
                results |= got
                bar.update(sum(size(u.request) for u in chunk))
        return results


def chunks(units: Sequence[Unit], most: int) -> Iterator[list[Unit]]:
    """Consecutive runs of at most `most` units and about CHUNK_CHARS characters (at least one unit)."""
    chunk, chars = [], 0
    for u in units:
        if chunk and (len(chunk) == most or chars + size(u.request) > CHUNK_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(u)
        chars += size(u.request)
    if chunk:
        yield chunk


def call_model(model: LanguageModel, kind: RequestKind, units: Sequence[Unit]) -> dict[str, Result]:
    """One model call for units of one kind; results by unit key."""
    requests = [u.request for u in units]
    match kind:
        case RequestKind.LOGLIKELIHOOD:
            got = model.loglikelihood(requests)
        case RequestKind.ROLLING:
            got = model.loglikelihood_rolling(requests)
        case RequestKind.GENERATE:
            got = model.generate(requests)
    return {u.key: got[u.request.id] for u in units}
