"""The examples behind a difference: per task, the examples whose prediction changed between two prompt
variants of the same examples, with both samples (prompt, choices' scores or generation and references,
per-example metrics) so a reader can see what a number is made of.

Compared: each model's ZS against its largest-k 1S/FS (the first demonstration seed), and, in a report
merging models, the first model's ZS against every other model's ZS. An example counts when its prediction
differs (an answer with a decision: the chosen index, or the filtered generation) or, without one, when its
0/1 primary metric differs. Fixed / broken: the primary metric (the task's first per-example scalar metric)
got better / worse in the direction of the metric; other: the prediction changed, the metric did not.
At most CAP examples are kept per comparison, taken in turn from fixed, broken and other; counts are whole.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from itertools import zip_longest

import pandas as pd

from harness.reporting.grid import Grid
from harness.samples import Sample

CAP = 20
PROMPT_KEYS = ["model", "task", "setting", "k", "seed", "example_id"]


class Verdict(enum.Enum):
    FIXED = "fixed"
    BROKEN = "broken"
    OTHER = "other"


@dataclass(frozen=True)
class Change:
    example_id: str
    verdict: Verdict
    before: float | None  # the primary metric's per-example value on side A (None without one)
    after: float | None
    a: Sample  # the samples.jsonl record of side A
    b: Sample


@dataclass(frozen=True)
class Comparison:
    task: str
    a: str  # "smollm2-135m ZS"
    b: str  # "smollm2-135m FS(32), seed 0"
    metric: str  # the primary metric deciding fixed / broken ("" when there is none)
    compared: int  # examples present on both sides
    counts: dict  # Verdict -> number of examples
    shown: tuple[Change, ...]  # at most CAP


def natural(example_id) -> tuple:
    """validation-2 before validation-10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(example_id)))


def primary_metric(records: list[Sample], higher: dict[str, bool]) -> str:
    """The first metric, higher-is-better first, whose per-example values are scalars in every record."""
    names = list(dict.fromkeys(n for r in records for n in r.metrics))
    scalar = [n for n in names if all(r.scalar(n) is not None for r in records)]
    return next((n for n in scalar if higher.get(n, True)), scalar[0] if scalar else "")


def _verdict(a: Sample, b: Sample, metric: str, higher: bool) -> Verdict | None:
    before, after = a.metric(metric), b.metric(metric)
    if a.answer.decision is not None and b.answer.decision is not None:
        if a.answer.decision == b.answer.decision:
            return None
    elif not (metric and before in (0, 1) and after in (0, 1) and before != after):
        return None  # no prediction to compare: only a 0/1 metric that flipped counts
    if not metric or before == after:
        return Verdict.OTHER
    return Verdict.FIXED if (after > before) == higher else Verdict.BROKEN


def compare(task: str, a_label: str, b_label: str, a: dict[str, Sample], b: dict[str, Sample], higher: dict[str, bool],
            cap: int = CAP) -> Comparison:
    """The changed examples of one task between two prompt variants (records by example id)."""
    common = sorted(set(a) & set(b), key=natural)
    metric = primary_metric([a[i] for i in common] + [b[i] for i in common], higher)
    found = {v: [] for v in Verdict}
    for i in common:
        verdict = _verdict(a[i], b[i], metric, higher.get(metric, True))
        if verdict is not None:
            m = (a[i].metric(metric), b[i].metric(metric))
            found[verdict].append(Change(i, verdict, m[0] if metric else None, m[1] if metric else None, a[i], b[i]))
    turns = [c for group in zip_longest(*found.values()) for c in group if c is not None]
    return Comparison(task, a_label, b_label, metric, len(common), {v: len(found[v]) for v in Verdict},
                      tuple(turns[:cap]))


def _records(samples: pd.DataFrame) -> dict[tuple, dict]:
    """One record per prompt variant: (model, task, setting, k, seed) -> example id -> record."""
    out: dict[tuple, dict] = {}
    first = samples.drop_duplicates(PROMPT_KEYS)
    for model, task, setting, k, seed, example, record in first[PROMPT_KEYS + ["sample"]].itertuples(index=False):
        if isinstance(record, Sample):
            out.setdefault((model, task, setting, int(k), int(seed)), {})[example] = record
    return out


def _variant(variants: dict[tuple, dict], model: str, task: str, settings: tuple[str, ...]) -> tuple | None:
    """The variant of largest k among `settings` (lowest seed), as a key of `variants`."""
    keys = [key for key in variants if key[0] == model and key[1] == task and key[2] in settings]
    return max(keys, key=lambda key: (key[3], key[2] == "FS", -key[4])) if keys else None


def _label(key: tuple, with_model: bool, seeds: int) -> str:
    model, _, setting, k, seed = key
    text = f"FS({k})" if setting == "FS" else setting
    if seeds > 1:
        text += f", seed {seed}"
    return f"{model} {text}" if with_model else text


def find_changes(samples: pd.DataFrame | None, higher: dict[str, bool], cap: int = CAP) -> tuple[Comparison, ...]:
    """Every comparison this report can make; () without samples that carry their records ("sample" column)."""
    if samples is None or samples.empty or "sample" not in samples:
        return ()
    variants = _records(samples)
    models = list(dict.fromkeys(key[0] for key in variants))
    tasks = list(dict.fromkeys(key[1] for key in variants))
    several = len(models) > 1
    out = []
    for task in tasks:
        pairs = []
        for model in models:
            zs, shots = _variant(variants, model, task, ("ZS",)), _variant(variants, model, task, ("1S", "FS"))
            if zs and shots:
                pairs.append((zs, shots))
        first = _variant(variants, models[0], task, ("ZS",))
        pairs += [(first, other) for model in models[1:]
                  if first and (other := _variant(variants, model, task, ("ZS",)))]
        for a, b in pairs:
            seeds = len({key[4] for key in variants if key[:4] == b[:4]})
            out.append(compare(task, _label(a, several, 1), _label(b, several, seeds), variants[a], variants[b],
                               higher, cap))
    return tuple(c for c in out if c.compared)


def changes_table(comparisons: tuple[Comparison, ...]) -> Grid:
    """Counts per task and comparison: the Markdown summary (the HTML report lists the examples)."""
    rows = tuple((c.task, f"{c.a} → {c.b}", c.metric or "–", str(c.compared),
                  str(sum(c.counts.values())), *(str(c.counts[v]) for v in Verdict)) for c in comparisons)
    return Grid(("task", "comparison", "metric", "examples", "changed", "fixed", "broken", "other"), rows)
