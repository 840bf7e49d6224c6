"""A run's scores on the dirty and the clean examples of an overlap study (`harness run --overlap DIR`).

For every task the study covers, every prompt variant (setting, k, seed) and every metric of the task: the metric
on all evaluated examples, on the dirty ones and on the clean ones. Each is the metric's own aggregate over the
subset's per-example values (the values samples.jsonl holds; metrics.py aggregates from column sums), with the
standard error Metric.score gives (sample std / sqrt(n) for a mean, else its seeded bootstrap), so the "all" row
equals the run's scores.csv row bit for bit. Examples are joined to labels by task + example_id; an evaluated
example the study lacks (a study made with a smaller --limit) is in neither subset, and said so in a warning; a task
the study does not cover has no rows, and is named in a warning.

The rows go to contamination.csv in the run folder (runfiles.py): scores.csv stays as a run without --overlap
writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.contamination.study import Label, OverlapStudy, StudyFacts
from harness.metrics import METRICS, Metric, bootstrap_stderr
from harness.samples import Sample

SUBSETS = ("all", "dirty", "clean")


@dataclass(frozen=True)
class SubsetScore:
    """One contamination.csv row: a metric of a prompt variant on one subset of the examples."""

    model: str
    task: str
    setting: str  # the setting's label: ZS, 1S, FS, FT
    k: int
    seed: int
    metric: str
    subset: str  # one of SUBSETS
    value: float  # NaN when the subset is empty
    stderr: float  # NaN below 2 examples
    n: int
    higher_is_better: bool


@dataclass(frozen=True)
class Coverage:
    """Which of a run's tasks and examples the study labels, checked before any model work."""

    study: OverlapStudy
    labels: Mapping[str, tuple[Label, ...]]  # covered task -> the labels of its evaluated examples, in run order
    uncovered: tuple[str, ...]  # the run's tasks the study has no row of
    missing: Mapping[str, int] = field(default_factory=dict)  # covered task -> evaluated examples it lacks

    @property
    def warnings(self) -> tuple[str, ...]:
        study = self.study.facts.path
        them = "it" if len(self.uncovered) == 1 else "them"
        out = [(f"--overlap {study}: the study does not cover {', '.join(self.uncovered)}: no dirty/clean scores for "
                f"{them} (make the study with these tasks too)")] if self.uncovered else []
        out += [(f"--overlap {study}: {count} evaluated examples of {task} are not in the study (made with a smaller "
                 "--limit?): they are in neither the dirty nor the clean subset")
                for task, count in self.missing.items()]
        return tuple(out)


@dataclass(frozen=True)
class Contamination:
    """What --overlap adds to a run: the study used, the labels of its evaluated examples, the subset scores."""

    facts: StudyFacts
    labels: tuple[Label, ...]  # every covered task's evaluated examples that the study labels
    scores: tuple[SubsetScore, ...]
    uncovered: tuple[str, ...] = ()
    missing: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        """run.json's "contamination": the study (path, sha256 of overlap.csv, N per task, corpus files) and what
        it covered of this run."""
        covered = list(dict.fromkeys(label.task for label in self.labels))
        return self.facts.to_json() | {"covered": covered, "uncovered": list(self.uncovered),
                                       "not_in_study": dict(self.missing)}

    @classmethod
    def from_json(cls, d: Mapping, labels: tuple[Label, ...], scores: tuple[SubsetScore, ...]) -> Contamination:
        return cls(StudyFacts.from_json(d), labels, scores, tuple(d.get("uncovered", ())),
                   {str(k): int(v) for k, v in (d.get("not_in_study") or {}).items()})


def coverage(study: OverlapStudy, evaluated: Mapping[str, Sequence[str]]) -> Coverage:
    """The study's labels of each task's evaluated example ids (task -> ids, in run order)."""
    covered = set(study.tasks)
    labels, missing = {}, {}
    for task, ids in evaluated.items():
        if task not in covered:
            continue
        found = tuple(study.labels[(task, i)] for i in ids if (task, i) in study.labels)
        labels[task] = found
        if len(found) < len(ids):
            missing[task] = len(ids) - len(found)
    return Coverage(study, labels, tuple(t for t in evaluated if t not in covered), missing)


def score_subsets(cover: Coverage, metrics: Mapping[str, Sequence[str]], samples: Sequence[Sample],
                  model: str) -> Contamination:
    """Every metric (task -> metric names) of every covered task and variant on all / dirty / clean examples."""
    groups: dict[tuple, list[Sample]] = {}  # (task, setting, k, seed) -> its samples, in run order
    for s in samples:
        if s.task in cover.labels:
            groups.setdefault((s.task, s.setting, s.k, s.seed), []).append(s)
    dirty = {task: {label.example_id: label.dirty for label in labels} for task, labels in cover.labels.items()}
    rows = []
    for (task, setting, k, seed), members in groups.items():
        marks = [dirty[task].get(s.example_id) for s in members]  # True, False, or None (not in the study)
        masks = {"all": np.ones(len(members), dtype=bool), "dirty": np.array([m is True for m in marks]),
                 "clean": np.array([m is False for m in marks])}
        for name in metrics[task]:
            metric = METRICS[name]
            values = per_example(members, name)
            for subset in SUBSETS:
                value, stderr = subset_score(metric, values[masks[subset]])
                rows.append(SubsetScore(model, task, setting, k, seed, name, subset, value, stderr,
                                        int(masks[subset].sum()), metric.higher_is_better))
    labels = tuple(label for task_labels in cover.labels.values() for label in task_labels)
    return Contamination(cover.study.facts, labels, tuple(rows), cover.uncovered, dict(cover.missing))


def per_example(samples: Sequence[Sample], metric: str) -> np.ndarray:
    """(n, m) the metric's per-example values (m > 1 for metrics summed from several terms)."""
    rows = [np.atleast_1d(np.asarray(s.metrics[metric], dtype=np.float64)) for s in samples]
    return np.array(rows, dtype=np.float64).reshape(len(samples), -1)


def subset_score(metric: Metric, values: np.ndarray) -> tuple[float, float]:
    """(aggregate, standard error) of (n, m) per-example values, as Metric.score computes them."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    value = float(metric.aggregate(values.sum(axis=0), n))
    if n < 2:
        return value, math.nan
    if metric.is_mean:
        return value, float(values[:, 0].std(ddof=1) / math.sqrt(n))
    return value, bootstrap_stderr(values, metric.aggregate)
