"""The padded tokens per forward pass (--batch-tokens) that run a model fastest on this machine, measured once.

The best budget depends on the model's shapes and the hardware: on CPU a batch whose activations stay in
cache beats bigger matmuls for a wide, shallow model, while a deep, narrow one wants bigger batches to keep
its small matmuls efficient; on an accelerator bigger is better until memory runs out. So on first use a
model runs a few forward passes on synthetic tokens at growing budgets (`CPU_CANDIDATES` or
`ACCELERATOR_CANDIDATES`), each timed twice (the faster counts), and keeps the smallest budget within
`MARGIN` of the best tokens per second: a smaller batch wastes less padding on real, uneven rows. The climb
stops at the first budget clearly slower than the best so far, or that runs out of memory, or once the
probe has taken `TIME_LIMIT` seconds; a probe cut short before it measured `ENOUGH` budgets (a machine
too busy to measure) keeps the device's default and caches that, so later runs do not probe again (the
budget changes speed only: the scoring engine's numbers do not depend on it). The choice is kept in
<cache dir>/batch-tokens.json under the model's shape (class, parameter names and shapes: a fine-tuned
checkpoint reuses its base's choice), the device, the dtype and the number of torch threads;
`--batch-tokens N` skips all of this.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CPU_CANDIDATES = (256, 512, 1024, 2048, 4096, 8192)
ACCELERATOR_CANDIDATES = (1024, 2048, 4096, 8192, 16384, 32768)
MARGIN = 1.05  # a bigger budget must be more than 5% faster to be chosen
TIME_LIMIT = 30.0  # seconds: no bigger budget is tried once the probe has run this long
ENOUGH = 3  # budgets a probe cut short by TIME_LIMIT must have measured for its pick to count
ROW_WIDTH = 256  # synthetic rows are this wide (or the budget, if smaller): a packed few-shot row's size
CACHE_FILE = "batch-tokens.json"


@dataclass(frozen=True)
class Choice:
    batch_tokens: int
    how: str  # "probed", "cached" (a probe of an earlier run), "flag" (--batch-tokens) or "default (...)"
    rates: dict[int, float]  # tokens per second measured at each budget tried ({} unless probed)


def candidates(device: str) -> tuple[int, ...]:
    return CPU_CANDIDATES if str(device).startswith("cpu") else ACCELERATOR_CANDIDATES


def measure(run_pass: Callable[[int], None], budgets: Sequence[int], clock: Callable[[], float] = time.perf_counter,
            out_of_memory: tuple[type[BaseException], ...] = (MemoryError,), time_limit: float = TIME_LIMIT,
            ) -> tuple[dict[int, float], bool]:
    """Tokens per second of run_pass(budget) at each budget, smallest first: the faster of two passes after
    one warm-up pass at the first budget; stops after the first budget slower than the best so far by more
    than MARGIN, or that runs out of memory, or once time_limit seconds have passed (then True)."""
    rates: dict[int, float] = {}
    started = clock()
    try:
        run_pass(budgets[0])  # warm-up: allocator, kernel selection, lazy initialisation
    except out_of_memory:
        return rates, False
    for budget in budgets:
        seconds = []
        try:
            for _ in range(2):
                start = clock()
                run_pass(budget)
                seconds.append(clock() - start)
        except out_of_memory:
            break
        rates[budget] = budget / max(min(seconds), 1e-9)
        if rates[budget] * MARGIN < max(rates.values()):
            break
        if clock() - started >= time_limit:
            return rates, budget != budgets[-1]
    return rates, False


def pick(rates: dict[int, float], fallback: int) -> int:
    """The smallest budget within MARGIN of the best rate; `fallback` when nothing was measured."""
    if not rates:
        return fallback
    best = max(rates.values())
    return min(b for b, rate in rates.items() if rate * MARGIN >= best)


def shape_of(module) -> str:
    """What a forward pass's speed depends on: the module's class and every parameter's name and shape, not
    the weights' values, so a fine-tuned checkpoint reuses its base model's probe."""
    shapes = ";".join(f"{name}:{tuple(p.shape)}" for name, p in module.named_parameters())
    return f"{type(module).__name__}|{hashlib.sha256(shapes.encode()).hexdigest()}"


def cache_key(shape: str, device: str, dtype: str, threads: int) -> str:
    return hashlib.sha256(f"{shape}|{device}|{dtype}|{threads}".encode()).hexdigest()[:32]


def read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or half-written: probe again
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, key: str, entry: dict) -> None:
    """Adds one entry; a cache that cannot be written only costs a probe next time."""
    data = read_cache(path)
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True))
        partial.replace(path)
    except OSError:
        pass


def choose(key: str, path: Path, run_pass: Callable[[int], None], budgets: Sequence[int], fallback: int,
           clock: Callable[[], float] = time.perf_counter,
           out_of_memory: tuple[type[BaseException], ...] = (MemoryError,)) -> Choice:
    """The cached budget for `key`, else a probe's pick (then cached)."""
    entry = read_cache(path).get(key)
    if isinstance(entry, dict) and isinstance(entry.get("batch_tokens"), int) and entry["batch_tokens"] > 0:
        how = "cached (an earlier probe was cut short: machine busy)" if entry.get("cut_short") else "cached"
        return Choice(entry["batch_tokens"], how, {})
    rates, cut_short = measure(run_pass, budgets, clock, out_of_memory)
    if cut_short and len(rates) < ENOUGH:  # cached as such: the budget changes speed only, never a number
        write_cache(path, key, {"batch_tokens": fallback, "cut_short": True,
                                "tokens_per_second": {str(b): round(r, 1) for b, r in rates.items()}})
        return Choice(fallback, "default (probe cut short: machine busy)", rates)
    chosen = pick(rates, fallback)
    if rates:
        write_cache(path, key, {"batch_tokens": chosen,
                                "tokens_per_second": {str(b): round(r, 1) for b, r in rates.items()}})
    return Choice(chosen, "probed", rates)


def synthetic_ids(budget: int, vocab: int, max_width: int):
    """(rows, width) token ids filling `budget`, rows no wider than max_width, deterministic, spread over the
    vocabulary."""
    import torch

    width = min(budget, ROW_WIDTH, max_width)
    rows = max(budget // width, 1)
    generator = torch.Generator().manual_seed(budget)
    return torch.randint(0, max(vocab, 1), (rows, width), generator=generator)  # (B, W)


def clock_for(device) -> Callable[[], float]:
    """time.perf_counter, read after the device's queued work has finished (CUDA runs asynchronously)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return clock
