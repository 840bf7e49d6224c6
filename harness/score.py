"""The score step: results joined to prompts become outcomes (one type per task kind, kinds.py), metric
values, rows of the long table (records.ScoreRow) and per-example samples (samples.Sample). Seeded and
order-free: the same results give the same bytes whatever executed them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import say
from harness.metrics import METRICS
from harness.records import Prompt, Rendered, Result, ScoreRow, Variant
from harness.samples import Sample
from harness.tasks.kinds import outcome_of, sample_of
from harness.tasks.spec import TaskSpec


SKIPPED_METRIC = "-"  # the metric column of a task that could not run: its metrics may not be known


@dataclass(frozen=True)
class Scored:
    rows: tuple[ScoreRow, ...]  # rows of the long table
    samples: tuple[Sample, ...]  # one per example x prompt variant


@dataclass(frozen=True)
class Unavailable:
    """A variant a task cannot run, and why (shown as n/a rows)."""

    variant: Variant
    reason: str


def score_task(spec: TaskSpec, prompts: Sequence[tuple[Prompt, Rendered]], unavailable: Sequence[Unavailable],
               results: Mapping[str, Result], model_name: str) -> Scored:
    """Metric rows per variant and a sample per prompt; n/a rows (with the reason) for `unavailable`."""
    groups = defaultdict(list)  # variant -> [(prompt, rendered)]
    for p, r in prompts:
        groups[Variant(p.setting, p.k, p.seed)].append((p, r))
    metrics = {name: METRICS[name].for_task(spec.match) for name in spec.metrics}
    rows, samples = [], []
    for variant, members in groups.items():
        outcomes = [outcome_of(spec, p, r, results) for p, r in members]
        scored = {name: metric.score(outcomes) for name, metric in metrics.items()}  # values, value, stderr
        group = [sample_of(spec, p, o, {m: _per_example(values[i]) for m, (values, _, _) in scored.items()})
                 for i, ((p, _), o) in enumerate(zip(members, outcomes, strict=True))]
        samples += group
        n_truncated = sum(s.answer.truncated > 0 for s in group)
        if n_truncated:
            say(f"{spec.name} {variant.setting.label} k={variant.k}: {n_truncated} of {len(group)} inputs exceeded "
                "the model's context and were cut from the left (see 'truncated' in samples.jsonl)")
        k_used = sum(p.k_used for p, _ in members) / len(members)
        for name, (_, value, stderr) in scored.items():
            rows.append(row(model_name, spec.name, variant, name, value, stderr, len(outcomes),
                            k_used=k_used, n_truncated=n_truncated))
    for u in unavailable:  # a row per metric, so every table shows n/a and why
        for name in spec.metrics:
            rows.append(row(model_name, spec.name, u.variant, name, math.nan, math.nan, 0, note=u.reason))
    return Scored(tuple(rows), tuple(samples))


def skipped_rows(model: str, task: str, reason: str, variants: Iterable[Variant]) -> list[ScoreRow]:
    """n/a rows, one per setting and k the run asked for, for a task that could not run (--skip-invalid)."""
    cells = dict.fromkeys(Variant(v.setting, v.k) for v in variants)
    note = f"skipped: {reason}"
    return [row(model, task, v, SKIPPED_METRIC, math.nan, math.nan, 0, note=note) for v in cells]


def row(model: str, task: str, variant: Variant, metric: str, value: float, stderr: float, n: int,
        k_used: float = math.nan, n_truncated: int = 0, note: str = "") -> ScoreRow:
    """One row of the long table; `note` says why a cell has no value."""
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    return ScoreRow(model, task, variant.setting.label, variant.k, k_used, variant.seed, metric, value, stderr, n,
                    n_truncated, higher, note)


def _per_example(values) -> float | list[float]:
    return float(values[0]) if len(values) == 1 else [float(x) for x in values]
