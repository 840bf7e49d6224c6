"""Prompt building: per-example demonstration sampling, the prompt text, fitting the context.

The prompt text follows lm-evaluation-harness: description + (demo + separator) * k + query, where a
demo is its query + its kind's gold pair (kinds.py; e.g. target_delimiter + its answer). Templates are
filled once per example by kinds.render (templates.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from harness.errors import HarnessError
from harness.records import Example, Prompt, Rendered, Setting
from harness.tasks.kinds import demo_text, render
from harness.tasks.spec import TaskSpec


def demo_seed(task: str, example_id: str, k: int, seed: int) -> int:
    """The sampling seed of one example's demonstrations: independent of order, limit and batching."""
    digest = hashlib.sha256(f"{task}\x1f{example_id}\x1f{k}\x1f{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sample_demos(task: str, example: Example, pool: Sequence[Example], k: int, seed: int) -> list[Example]:
    """k demonstrations for `example` from `pool`, never the example itself."""
    if k == 0:
        return []
    rng = random.Random(demo_seed(task, example.id, k, seed))
    picked = rng.sample(range(len(pool)), min(k + 1, len(pool)))  # one spare, in case it is the example
    demos = [pool[i] for i in picked if pool[i].id != example.id][:k]
    if len(demos) < k:
        raise HarnessError(f"task {task}: --shots {k} is larger than the demonstration pool ({len(pool)} examples)")
    return demos


def check_pool(task: TaskSpec, pool: Sequence[Example], same_split: bool, k: int) -> None:
    """Fail early when k demonstrations cannot be drawn for every example."""
    size = len(pool) - (1 if same_split else 0)
    if k > size:
        raise HarnessError(
            f"task {task.name}: --shots {k} is larger than the demonstration pool "
            f"({size} examples{' besides the example itself' if same_split else ''})"
        )


def build_prompt(
    task: TaskSpec, example: Example, setting: Setting, k: int, seed: int, pool: Sequence[Example],
    rendered: Callable[[Example], Rendered] | None = None,
) -> Prompt:
    """The prompt of `example` with k demonstrations from `pool`; `rendered` gives an example's Rendered record
    (pass a memo to render each example once per run; default: render now)."""
    rendered = rendered or (lambda ex: render(task, ex))
    demos = sample_demos(task.name, example, pool, k, seed)
    return Prompt(
        task=task.name,
        example_id=example.id,
        setting=setting,
        k=k,
        seed=seed,
        description=task.description,
        demos=tuple(demo_text(task, rendered(d)) for d in demos),
        demo_ids=tuple(d.id for d in demos),
        query=rendered(example).query,
        demo_separator=task.prompt.demo_separator,
    )


def fit_prompt(prompt: Prompt, longest_continuation: str, count_tokens: Callable[[str], int], budget: int) -> Prompt:
    """Drop whole demonstrations from the end until context + continuation fit in `budget` tokens.

    Never cuts text: a prompt whose query alone is too long is returned with no demonstrations, and
    the scorer left-truncates it as lm-evaluation-harness does (recorded per example).
    """
    while prompt.demos and count_tokens(prompt.text + longest_continuation) > budget:
        prompt = replace(prompt, demos=prompt.demos[:-1], demo_ids=prompt.demo_ids[:-1])
    return prompt
