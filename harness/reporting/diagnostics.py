"""Three looks at the per-example samples behind a report's cells; glue from the samples frame (runs.samples_frame)
to the statistics of variance.py, rules.py and calibration.py, which this module only calls.

- uncertainty: every (model, task, metric, 1S or FS(k)) cell scored with two or more demonstration seeds, on a
  mean metric with one number per example, not the same everywhere (else there is nothing to split): its
  (examples x seeds) matrix (examples every seed scored) split into the variance from the examples and from the
  demonstration draw (variance.anova_split and bootstrap_split), and, where ZS scored the same examples, the
  difference against ZS split the same way (difference_anova / _bootstrap). Perplexities are no means: left out.
- atlases: every multiple-choice cell (model, task, setting, k) whose samples carry their records and are scored
  by a scoring rule (acc, acc_norm, ...): rules.rule_atlas over its samples, seeds pooled (an (example, seed) pair
  is one entry), beside the rule of GPT-3's Table H.1 number for the task (rules.gpt3_rule).
- reliability: the same cells' calibration: the softmax over the choices as the confidence of acc's pick,
  calibration.expected_calibration_error, seeds pooled.
- selective: every generation cell with answer log-probabilities (samples.GenerationAnswer.logprob): answers
  ranked by log P(generation | prompt), most confident first, those without one last; correct = the task's first
  0/1 metric (a metric all of whose values are 0 or 1, or 0 or 100 as SQuAD's exact, read as 0/1).
FS(1) is 1S's twin (the same demonstration draw) and is left out where 1S ran, as in the paired tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.reporting.calibration import (
    Reliability,
    SelectiveCurve,
    choice_confidence,
    expected_calibration_error,
    selective_accuracy,
    selective_curve,
)
from harness.reporting.rules import RULE_OF_METRIC, Atlas, Rule, gpt3_rule, rule_atlas
from harness.reporting.tables import column_label
from harness.reporting.variance import Split, anova_split, bootstrap_split, difference_anova, difference_bootstrap
from harness.samples import ChoiceAnswer, GenerationAnswer, Sample

SHOT_SETTINGS = ("1S", "FS")  # the settings with demonstrations: the only ones a seed changes
TOP = (0.01, 0.1, 0.5)  # the selective accuracies a table shows (the GPT-2 paper's 1%, then 10% and half)
CURVE = tuple(i / 100 for i in range(1, 101))  # the fractions a selective figure draws
PROMPT_KEYS = ["model", "task", "setting", "k", "seed", "example_id"]


@dataclass(frozen=True)
class Cell:
    model: str
    task: str
    setting: str
    k: int

    @property
    def label(self) -> str:
        return column_label(self.setting, self.k)


@dataclass(frozen=True)
class SeedSplit:
    """A cell's mean, and its difference against ZS, with the variance split into examples and demonstration draw."""

    cell: Cell
    metric: str
    anova: Split
    bootstrap: Split
    vs_zs_anova: Split | None  # None where ZS did not score two or more of the same examples
    vs_zs_bootstrap: Split | None


@dataclass(frozen=True)
class CellAtlas:
    cell: Cell
    atlas: Atlas
    seeds: int
    paper: Rule | None  # the rule of GPT-3's Table H.1 number for this task; None when it has none


@dataclass(frozen=True)
class CellReliability:
    cell: Cell
    reliability: Reliability
    accuracy: float
    confidence: float  # mean confidence


@dataclass(frozen=True)
class CellSelective:
    cell: Cell
    metric: str  # the 0/1 metric that says an answer is right
    curve: SelectiveCurve  # at CURVE
    top: tuple[float, ...]  # selective accuracy at TOP
    scored: int  # answers with a log-probability (the others rank last)


@dataclass(frozen=True)
class Diagnostics:
    uncertainty: tuple[SeedSplit, ...] = ()
    atlases: tuple[CellAtlas, ...] = ()
    reliability: tuple[CellReliability, ...] = ()
    selective: tuple[CellSelective, ...] = ()


def _is_mean(metric: str) -> bool:
    from harness.metrics import METRICS

    found = METRICS.get(metric)
    return found.is_mean if found else True


def _scalar(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _twin(setting: str, k: int, shots: set) -> bool:
    """FS(1) where 1S ran: the same draw twice."""
    return setting == "FS" and int(k) == 1 and ("1S", 1) in shots


def seed_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """(examples x seeds) of one cell's scalar values, examples that every seed scored, ids sorted; a value scored
    twice for one (example, seed) is averaged."""
    values = rows.assign(value=rows["value"].astype(np.float64))
    matrix = values.pivot_table(index="example_id", columns="seed", values="value", aggfunc="mean")
    return matrix.dropna().sort_index()


def _zs_values(group: pd.DataFrame) -> pd.Series | None:
    zs = group[group["setting"] == "ZS"]
    if zs.empty or not zs["value"].map(_scalar).all():
        return None
    return zs.assign(value=zs["value"].astype(np.float64)).groupby("example_id")["value"].mean()


def uncertainty(samples: pd.DataFrame) -> tuple[SeedSplit, ...]:
    """Every 1S / FS cell with two or more seeds on a mean metric (module docstring)."""
    out = []
    for (model, task, metric), group in samples.groupby(["model", "task", "metric"], sort=False):
        if not _is_mean(metric) or not group["value"].map(_scalar).all():
            continue
        zs = _zs_values(group)
        shots = group[group["setting"].isin(SHOT_SETTINGS)]
        present = set(zip(shots["setting"], shots["k"].astype(int), strict=True))
        for (setting, k), rows in shots.groupby(["setting", "k"], sort=False):
            matrix = seed_matrix(rows)
            if matrix.shape[1] < 2 or matrix.shape[0] < 2 or _twin(setting, k, present):
                continue
            y = matrix.to_numpy()  # (n, s)
            if np.ptp(y) == 0:
                continue
            common = matrix.index.intersection(zs.index) if zs is not None else pd.Index([])
            d_anova = d_boot = None
            if len(common) >= 2:
                paired, base = matrix.loc[common].to_numpy(), zs.loc[common].to_numpy()
                d_anova, d_boot = difference_anova(paired, base), difference_bootstrap(paired, base)
            out.append(SeedSplit(Cell(model, task, setting, int(k)), metric, anova_split(y), bootstrap_split(y),
                                 d_anova, d_boot))
    return tuple(out)


def cell_records(samples: pd.DataFrame) -> dict[Cell, list[Sample]]:
    """One record per (example, seed) of every cell whose rows carry their samples.jsonl records."""
    if "sample" not in samples:
        return {}
    out: dict[Cell, list[Sample]] = {}
    first = samples.drop_duplicates(PROMPT_KEYS)
    for model, task, setting, k, record in first[["model", "task", "setting", "k", "sample"]].itertuples(index=False):
        if isinstance(record, Sample):
            out.setdefault(Cell(model, task, setting, int(k)), []).append(record)
    one_shot = {(c.model, c.task) for c in out if c.setting == "1S"}
    return {c: r for c, r in out.items() if not (c.setting == "FS" and c.k == 1 and (c.model, c.task) in one_shot)}


def _rule_scored(records: list[Sample]) -> bool:
    """Multiple-choice records scored by a scoring rule (not MultiRC's per-question judgements, say)."""
    return (all(isinstance(r.answer, ChoiceAnswer) and len(r.answer.logprobs) >= 2 for r in records)
            and any(name in RULE_OF_METRIC for name in records[0].metrics))


def atlases(records: dict[Cell, list[Sample]]) -> tuple[CellAtlas, ...]:
    return tuple(CellAtlas(cell, rule_atlas(rs), len({r.seed for r in rs}), gpt3_rule(cell.task))
                 for cell, rs in records.items() if _rule_scored(rs))


def reliability(records: dict[Cell, list[Sample]]) -> tuple[CellReliability, ...]:
    out = []
    for cell, rs in records.items():
        if not _rule_scored(rs) or not all(np.isfinite(r.answer.logprobs).all() for r in rs):
            continue
        confidence, correct = choice_confidence([r.answer for r in rs])
        out.append(CellReliability(cell, expected_calibration_error(confidence, correct), float(correct.mean()),
                                   float(confidence.mean())))
    return tuple(out)


def zero_one_metric(records: list[Sample]) -> tuple[str, float] | None:
    """(name, scale) of the records' first metric whose values are all 0 or 1 (scale 1) or all 0 or 100 (scale
    100: SQuAD's exact); None when no metric is one."""
    for name in dict.fromkeys(n for r in records for n in r.metrics):
        values = {r.scalar(name) for r in records}
        if values <= {0, 1}:
            return name, 1.0
        if values <= {0, 100}:
            return name, 100.0
    return None


def selective(records: dict[Cell, list[Sample]]) -> tuple[CellSelective, ...]:
    out = []
    for cell, rs in records.items():
        if not all(isinstance(r.answer, GenerationAnswer) for r in rs):
            continue
        found = zero_one_metric(rs)
        confidence = np.array([math.nan if r.answer.logprob is None else r.answer.logprob for r in rs])
        scored = int(np.isfinite(confidence).sum())
        if found is None or scored == 0:
            continue
        name, scale = found
        correct = np.array([r.scalar(name) / scale for r in rs])
        out.append(CellSelective(cell, name, selective_curve(confidence, correct, CURVE),
                                 tuple(selective_accuracy(confidence, correct, q) for q in TOP), scored))
    return tuple(out)


def diagnose(samples: pd.DataFrame | None) -> Diagnostics | None:
    """The three looks at a report's samples; None without samples."""
    if samples is None:
        return None
    if samples.empty:
        return Diagnostics()
    records = cell_records(samples)
    return Diagnostics(uncertainty(samples), atlases(records), reliability(records), selective(records))
