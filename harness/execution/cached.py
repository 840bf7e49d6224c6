"""The result cache around any executor: the one place that reads and writes it while a plan runs.

    cache.get(plan) -> plan.missing(cached) -> executor.execute(missing, model, save=cache.put) -> cached | new

The executor sees only the units the cache lacks and a `save` it calls with each piece as that completes
(LocalExecutor per chunk, RayExecutor per shard), so a run killed mid-way keeps every finished piece and a rerun
scores only the rest. Results are merged by unit key: whoever ran a unit, its result is the same.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import say
from harness.execution.cache import ResultCache
from harness.execution.executor import Executor
from harness.execution.plan import Plan
from harness.models.base import LanguageModel
from harness.records import Result


def execute(executor: Executor, plan: Plan, model: LanguageModel, cache_path: Path | None) -> dict[str, Result]:
    """The result of every unit of `plan`, by unit key: from the result cache at `cache_path` (None: no cache)
    where it has them, from `executor` for the others. An empty plan touches neither (nor the model)."""
    if not plan.units:
        return {}
    if cache_path is None:
        return executor.execute(plan, model)
    cache = ResultCache(cache_path, model.fingerprint(), model.name)
    try:
        results = cache.get(plan.units)
        for kind in plan.kinds():
            units = plan.of_kind(kind)
            if found := sum(u.key in results for u in units):
                say(f"{kind.value}: {found} of {len(units)} results from the cache")
        missing = plan.missing(results)
        if missing.units:
            results |= executor.execute(missing, model, save=cache.put)
        return results
    finally:
        cache.close()
