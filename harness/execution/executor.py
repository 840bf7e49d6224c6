"""Executors run a plan against a model and return results by unit key. Executors never change a number:
the same plan gives the same results whatever runs it.

An executor knows nothing of the result cache: execution/cached.py wraps it, gives it the plan of the units
the cache lacks, and a `save(units, results)` to call with each piece of work as it completes (crash safety:
what was saved stays when a run is killed). A new executor implements `execute` and `finetune`, nothing more.

LocalExecutor runs in this process: one pass per request kind, units in plan order, in chunks of the model's
`preferred_chunk(kind)` requests, or by default at most CHUNK[kind] requests and about CHUNK_CHARS characters,
saving each chunk as it completes.

Executors also make the FT setting's checkpoints (`finetune`): locally one after the other, on a cluster in
parallel. A checkpoint is a folder named by everything that decides its weights (train/finetune.py), written
atomically and reused when it exists, so who trains it never changes it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from harness.execution.plan import Plan, Unit, size
from harness.config import FinetuneConfig
from harness.lineage import Lineage
from harness.models.base import LanguageModel, PrefersChunks, Trainable
from harness.records import RequestKind, Result
from harness.tasks.data import Split
from harness.tasks.spec import TaskSpec
from harness.train.finetune import finetune

CHUNK = {RequestKind.LOGLIKELIHOOD: 64, RequestKind.ROLLING: 2, RequestKind.GENERATE: 8}  # requests per save, at most
CHUNK_CHARS = 40_000  # and characters per save (about half a minute of a 135M model on 2 cores)

Save = Callable[[Sequence[Unit], Mapping[str, Result]], None]  # keeps a finished piece's results (the cache's put)


@dataclass(frozen=True)
class FinetuneJob:
    """One FT checkpoint to make (or reuse): the task, its train and eval splits, the hyperparameters, the folder."""

    spec: TaskSpec
    train: Split
    evaluation: Split
    config: FinetuneConfig
    folder: Path

    def run(self, model: Trainable) -> Lineage:
        """Train `model`'s copy into the folder (or reuse it); the checkpoint's lineage."""
        return finetune(model, self.spec, self.train, self.evaluation, self.config, self.folder)


class Executor(Protocol):
    def execute(self, plan: Plan, model: LanguageModel, save: Save | None = None) -> dict[str, Result]:
        """The result of every unit of `plan`, by unit key; `save` (when results are kept) is called with each
        piece as it completes."""
        ...

    def finetune(self, jobs: Sequence[FinetuneJob], model: Trainable) -> list[Lineage]:
        """The lineage of every job's checkpoint, in job order."""
        ...


class LocalExecutor:
    """Today's loop in this process."""

    def execute(self, plan: Plan, model: LanguageModel, save: Save | None = None) -> dict[str, Result]:
        results: dict[str, Result] = {}
        for kind in plan.kinds():
            results |= self._run_kind(model, kind, plan.of_kind(kind), save)
        return results

    def finetune(self, jobs: Sequence[FinetuneJob], model: Trainable) -> list[Lineage]:
        return [job.run(model) for job in jobs]

    def _run_kind(self, model: LanguageModel, kind: RequestKind, units: list[Unit], save: Save | None):
        results = {}
        # progress in characters, not requests: the longest come first, so a request count would mislead the ETA
        total = sum(size(u.request) for u in units)
        with tqdm(total=total, desc=f"{kind.value} ({len(units)} requests)", unit="char", unit_scale=True,
                  file=sys.stderr) as bar:
            for chunk in model_chunks(model, kind, units):
                got = call_model(model, kind, chunk)
                if save:
                    save(chunk, got)
                results |= got
                bar.update(sum(size(u.request) for u in chunk))
        return results


def chunks(units: Sequence[Unit], most: int, chars: float | None = None) -> Iterator[list[Unit]]:
    """Consecutive runs of at most `most` units and about `chars` characters (None: CHUNK_CHARS), at least
    one unit each."""
    limit = CHUNK_CHARS if chars is None else chars
    chunk, total = [], 0
    for u in units:
        if chunk and (len(chunk) == most or total + size(u.request) > limit):
            yield chunk
            chunk, total = [], 0
        chunk.append(u)
        total += size(u.request)
    if chunk:
        yield chunk


def model_chunks(model: LanguageModel | None, kind: RequestKind, units: Sequence[Unit]) -> Iterator[list[Unit]]:
    """`units` of one kind in the chunks `model` is called on: its preferred_chunk(kind) requests (no limit on
    characters), else CHUNK[kind] requests and CHUNK_CHARS characters (also with no model)."""
    preferred = model.preferred_chunk(kind) if isinstance(model, PrefersChunks) else None
    if preferred is None:
        return chunks(units, CHUNK[kind])
    return chunks(units, preferred, math.inf)


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
