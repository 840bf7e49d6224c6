"""The score step: results joined to prompts become outcomes (one type per task kind, kinds.py), metric
values, rows of the long table and per-example samples. Seeded and order-free: the same results give the
same bytes whatever executed them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import say
from harness.metrics import METRICS
from harness.records import Prompt, Rendered, Result, Setting
from harness.tasks.kinds import KINDS
from harness.tasks.spec import TaskSpec


SKIPPED_METRIC = "-"  # the metric column of a task that could not run: its metrics may not be known


@dataclass(frozen=True)
class Scored:
    rows: tuple[dict[str, Any], ...]  # rows of the long table (records.SCORE_COLUMNS, without `run`)
    samples: tuple[dict[str, Any], ...]  # one per example x prompt variant


def needs_unconditional(spec: TaskSpec) -> bool:
    """Some metric of the task compares with the choice's log-likelihood after the prefix token alone."""
    return any(METRICS[m].needs_unconditional for m in spec.metrics)


def score_task(spec: TaskSpec, prompts: Sequence[tuple[Prompt, Rendered]], unavailable: Sequence[tuple[Setting, int, str]],
               results: Mapping[str, Result], model_name: str) -> Scored:
    """Metric rows per (setting, k, seed) and a sample per prompt; n/a rows (with the reason) for `unavailable`."""
    rules, unconditional = KINDS[spec.kind], needs_unconditional(spec)
    groups = defaultdict(list)  # (setting, k, seed) -> [(prompt, rendered)]
    for p, r in prompts:
        groups[(p.setting, p.k, p.seed)].append((p, r))
    rows, samples = [], []
    for (setting, k, seed), members in groups.items():
        outcomes = [rules.build_outcome(spec, p, r, results, unconditional) for p, r in members]
        scored = {name: METRICS[name].score(outcomes) for name in spec.metrics}  # values, value, stderr
        group = [
            _common(spec, p) | rules.sample(p, o) | {"metrics": {m: _per_example(values[i]) for m, (values, _, _) in scored.items()}}
            for i, ((p, _), o) in enumerate(zip(members, outcomes, strict=True))
        ]
        samples += group
        n_truncated = sum(s.get("truncated", 0) > 0 for s in group)
        if n_truncated:
            say(f"{spec.name} {setting.label} k={k}: {n_truncated} of {len(group)} inputs exceeded the model's "
                f"context and were cut from the left (see 'truncated' in samples.jsonl)")
        k_used = sum(p.k_used for p, _ in members) / len(members)
        for name, (_, value, stderr) in scored.items():
            rows.append(row(model_name, spec.name, setting, k, seed, name, value, stderr, len(outcomes),
                            k_used=k_used, n_truncated=n_truncated))
    for setting, k, reason in unavailable:  # a row per metric, so every table shows n/a and why
        for name in spec.metrics:
            rows.append(row(model_name, spec.name, setting, k, 0, name, math.nan, math.nan, 0, note=reason))
    return Scored(tuple(rows), tuple(samples))


def skipped_rows(model: str, task: str, reason: str, config) -> list[dict[str, Any]]:
    """n/a rows, one per setting and k the run asked for, for a task that could not run (--skip-invalid)."""
    cells = dict.fromkeys((setting, k) for setting, k, _ in config.prompt_plans())
    note = f"skipped: {reason}"
    return [row(model, task, setting, k, 0, SKIPPED_METRIC, math.nan, math.nan, 0, note=note) for setting, k in cells]


def _common(spec: TaskSpec, p: Prompt) -> dict[str, Any]:
    return {"task": spec.name, "setting": p.setting.label, "k": p.k, "k_used": p.k_used, "seed": p.seed,
            "example_id": p.example_id, "demo_ids": list(p.demo_ids), "prompt": p.text}


def row(model: str, task: str, setting: Setting, k: int, seed: int, metric: str, value: float, stderr: float,
        n: int, k_used: float = math.nan, n_truncated: int = 0, note: str = "") -> dict[str, Any]:
    """One row of the long table (records.SCORE_COLUMNS); `note` says why a cell has no value."""
    return {
        "model": model, "task": task, "setting": setting.label, "k": k, "k_used_mean": k_used, "seed": seed,
        "metric": metric, "value": value, "stderr": stderr, "n": n, "n_truncated": n_truncated,
        "higher_is_better": METRICS[metric].higher_is_better if metric in METRICS else True, "note": note,
    }


def _per_example(values) -> float | list[float]:
    return float(values[0]) if len(values) == 1 else [float(x) for x in values]
