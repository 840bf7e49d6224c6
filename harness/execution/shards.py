"""Shards: the units of a plan cut into pieces of work for a cluster, fixed before any worker starts.

A shard is a run of whole local chunks (executor.model_chunks) of one request kind, in plan order. A worker calls the
model once per chunk, exactly as LocalExecutor does, so the same batches form (the choices of a question side
by side) and every floating-point result equals the local run's bit for bit. Chunks are grouped until a shard
holds about SHARD_CHARS characters (characters: the plan's proxy for token cost, plan.size).

The layout is a function of the plan alone: never of the number of workers alive, the cache or the order in
which shards finish, so a rerun or a restarted worker meets the same shards under the same names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.execution.executor import model_chunks
from harness.execution.plan import Plan, Unit, size
from harness.models.base import LanguageModel
from harness.records import RequestKind

SHARD_CHARS = 80_000  # about two local chunks: a minute of a 135M model on one CPU core, a second on a GPU


@dataclass(frozen=True)
class Shard:
    name: str  # "<kind>/<index within the kind>/<first 8 hex of the hash of its unit keys>"
    kind: RequestKind
    chunks: tuple[tuple[Unit, ...], ...]  # whole local chunks, in plan order: one model call each

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for chunk in self.chunks for u in chunk)

    @property
    def chars(self) -> int:
        return sum(size(u.request) for u in self.units)


def make_shards(plan: Plan, shard_chars: int | None = None, model: LanguageModel | None = None) -> tuple[Shard, ...]:
    """The plan's units as shards: per kind in plan order, consecutive local chunks (those `model` is called on;
    None: the default chunks) up to about `shard_chars` characters (None: SHARD_CHARS; at least one chunk each)."""
    shard_chars = SHARD_CHARS if shard_chars is None else shard_chars
    if shard_chars < 1:
        raise ValueError(f"shard_chars must be positive, got {shard_chars}")
    shards: list[Shard] = []
    for kind in plan.kinds():
        groups: list[list[tuple[Unit, ...]]] = []
        chars = 0
        for chunk in model_chunks(model, kind, plan.of_kind(kind)):
            cost = sum(size(u.request) for u in chunk)
            if not groups or chars + cost > shard_chars:
                groups.append([])
                chars = 0
            groups[-1].append(tuple(chunk))
            chars += cost
        shards += [_shard(kind, i, group) for i, group in enumerate(groups)]
    return tuple(shards)


def _shard(kind: RequestKind, index: int, group: list[tuple[Unit, ...]]) -> Shard:
    digest = hashlib.sha256("|".join(u.key for chunk in group for u in chunk).encode()).hexdigest()
    return Shard(f"{kind.value}/{index}/{digest[:8]}", kind, tuple(group))
