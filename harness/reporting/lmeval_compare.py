"""A harness run against lm-evaluation-harness output of the same model: per task both metric values, the
per-document agreement (predictions, max |Δ log-likelihood|, differing generations, the first disagreements)
and a paired test of the difference, documents paired by their rendered context, never by position."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import HarnessError, unknown
from harness.reporting.grid import Grid, markdown
from harness.reporting.lmeval_io import ROLLING_KEY, LmevalSample, LmevalTask
from harness.reporting.runs import Run
from harness.reporting.significance import ALPHA, _aggregate_of, compare_pair
from harness.reporting.tables import fmt
from harness.samples import ChoiceAnswer, ClozeAnswer, GenerationAnswer, Sample

SHOWN = 5  # disagreements shown per task
LL_TOLERANCE = 1e-4  # |Δ log-likelihood| counted as the same number (float32 batches differ in the last bits)


def parse_task_map(pairs: list[str] | None) -> dict[str, str]:
    """--task-map lmeval_name=harness_name, repeatable."""
    out = {}
    for pair in pairs or []:
        left, sep, right = pair.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise HarnessError(f"--task-map {pair!r}: write LMEVAL_TASK=HARNESS_TASK, e.g. --task-map piqa_local=piqa")
        out[left.strip()] = right.strip()
    return out


def map_tasks(lmeval: dict[str, LmevalTask], ours: list[str], task_map: dict[str, str]) -> dict[str, str]:
    """lm-eval task -> harness task: --task-map first, then the exact name, then the name without a `_suffix`
    (piqa_local -> piqa) when exactly one harness task is that prefix."""
    for left, right in task_map.items():
        if left not in lmeval:
            raise HarnessError(f"--task-map {left}={right}: {unknown('lm-eval task', left, lmeval)}")
        if right not in ours:
            raise HarnessError(f"--task-map {left}={right}: {unknown('task in the run', right, ours)}")
    out = {}
    for name in lmeval:
        if name in task_map:
            out[name] = task_map[name]
        elif name in ours:
            out[name] = name
        else:
            stems = [t for t in ours if name.startswith(t + "_")]
            if len(stems) == 1:
                out[name] = stems[0]
    return out


@dataclass(frozen=True)
class TaskAgreement:
    lmeval: str
    ours: str
    setting: str
    paired: int
    only_ours: int
    only_lmeval: int
    differing: int  # predictions (or generations) that differ
    max_ll_delta: float  # NaN for generation tasks
    shown: tuple[tuple[str, str, str], ...]  # (context head, ours, lm-eval)
    rows: tuple[dict, ...]  # per metric: values, n, paired test


def _our_prediction(sample: Sample) -> str:
    match a := sample.answer:
        case ChoiceAnswer():
            return f"choice {a.prediction}"
        case ClozeAnswer():
            return f"greedy={a.is_greedy} ll={a.logprob:.4f}"
        case GenerationAnswer():
            return repr(a.prediction)
        case _:
            return "ll=" + ", ".join(f"{x:.4f}" for x in a.loglikelihoods)


def _their_prediction(s: LmevalSample, ours: Sample) -> str:
    if s.generation is not None:
        return repr(s.generation)
    if isinstance(ours.answer, ChoiceAnswer):
        return f"choice {int(np.argmax(s.loglikelihoods))}"
    if s.greedy:
        return f"greedy={s.greedy[0]} ll={s.loglikelihoods[0]:.4f}"
    return f"ll={s.loglikelihoods[0]:.4f}"


def _agrees(ours: Sample, theirs: LmevalSample) -> tuple[bool, float]:
    """Same prediction? and max |Δ log-likelihood| (NaN when there are none)."""
    if theirs.generation is not None:
        return ours.answer.decision == theirs.generation, math.nan
    mine = ours.answer.loglikelihoods
    if len(mine) != len(theirs.loglikelihoods):
        return False, math.inf
    delta = max((abs(a - b) for a, b in zip(mine, theirs.loglikelihoods, strict=True)), default=math.nan)
    return ours.answer.agrees(theirs.loglikelihoods, theirs.greedy, LL_TOLERANCE), delta


def _setting_rows(run: Run, task: str, n_shot: int) -> pd.DataFrame:
    s = run.samples
    rows = s[(s["task"] == task) & ((s["setting"] == "ZS") if n_shot == 0 else
                                    (s["setting"].isin(["1S", "FS"]) & (s["k"] == n_shot)))]
    return rows[rows["seed"] == rows["seed"].min()] if len(rows) else rows


def task_agreement(run: Run, lm: LmevalTask, ours: str) -> TaskAgreement | None:
    rows = _setting_rows(run, ours, lm.n_shot)
    if rows.empty:
        return None
    setting = "ZS" if lm.n_shot == 0 else f"{rows['setting'].iloc[0]}({lm.n_shot})"
    records = {}  # key -> sample record (shared by the rows of its metrics)
    for sample in rows["sample"]:
        key = sample.prompt[:ROLLING_KEY] if lm.output_type == "loglikelihood_rolling" else sample.prompt
        records.setdefault(key, sample)
    theirs = {}
    for s in lm.samples:
        theirs.setdefault(s.key, s)
    common = [k for k in records if k in theirs]
    differing, delta, shown = 0, math.nan, []
    for key in common:
        same, d = _agrees(records[key], theirs[key])
        delta = d if math.isnan(delta) else max(delta, d) if not math.isnan(d) else delta
        if not same:
            differing += 1
            if len(shown) < SHOWN:
                shown.append((key[-60:].replace("\n", "⏎"), _our_prediction(records[key]),
                              _their_prediction(theirs[key], records[key])))
    metric_rows = []
    ours_values = run.scores[(run.scores["task"] == ours) & (run.scores["setting"] == rows["setting"].iloc[0])
                             & (run.scores["k"] == rows["k"].iloc[0]) & (run.scores["seed"] == rows["seed"].iloc[0])]
    for metric in sorted(set(ours_values["metric"]) | set(lm.metrics)):
        mine = ours_values.loc[ours_values["metric"] == metric, "value"]
        row = {"metric": metric, "ours": float(mine.iloc[0]) if len(mine) else math.nan,
               "lmeval": lm.metrics.get(metric, math.nan), "test": "", "p": math.nan, "delta": math.nan}
        pairs = [(records[k].metric(metric), theirs[k].metrics.get(metric)) for k in common]
        pairs = [(a, b) for a, b in pairs if isinstance(a, (int, float)) and b is not None]
        if len(pairs) >= 2:
            a = np.array([[p[0]] for p in pairs], dtype=np.float64)
            b = np.array([[p[1]] for p in pairs], dtype=np.float64)
            binary = bool(np.isin(np.concatenate([a, b]), (0.0, 1.0)).all())
            r = compare_pair(b, a, _aggregate_of(metric), binary)  # delta = harness - lm-eval
            row |= {"test": r.test, "p": r.p_value, "delta": r.delta, "n": len(pairs)}
        metric_rows.append(row)
    return TaskAgreement(lm.name, ours, setting, len(common), len(records) - len(common),
                         len(theirs) - len(common), differing, delta, tuple(shown), tuple(metric_rows))


def compare_lmeval(run: Run, lmeval: dict[str, LmevalTask], task_map: dict[str, str]) -> list[TaskAgreement]:
    if run.samples is None:
        raise HarnessError(f"{run.folder}: no samples.jsonl, so there is nothing to pair with lm-eval's samples")
    ours = list(dict.fromkeys(run.scores["task"]))
    mapping = map_tasks(lmeval, ours, task_map)
    if not mapping:
        raise HarnessError(f"no lm-eval task ({', '.join(lmeval)}) matches a task of {run.folder.name} "
                           f"({', '.join(ours)}); map them with --task-map LMEVAL_TASK=HARNESS_TASK")
    found = [task_agreement(run, lmeval[name], mine) for name, mine in mapping.items()]
    return [f for f in found if f is not None]


def _value(value: float, n: int) -> str:
    return "(not computed)" if math.isnan(value) else f"{fmt(value)} (n {n})"


def compare_lmeval_text(run: Run, lmeval: dict[str, LmevalTask], task_map: dict[str, str], where: str) -> str:
    found = compare_lmeval(run, lmeval, task_map)
    lines = [f"# {run.folder.name} → lm-eval output {where}", ""]
    total = sum(f.differing for f in found)
    lines += [f"{len(found)} tasks paired by rendered context; {total} disagreements in all.", ""]
    unmatched = sorted(set(lmeval) - {f.lmeval for f in found})
    if unmatched:
        lines += ["Not compared (no harness task or setting of that name and n-shot; use --task-map): "
                  + ", ".join(unmatched), ""]
    for f in found:
        name = f.ours if f.ours == f.lmeval else f"{f.ours} (lm-eval {f.lmeval})"
        delta = "" if math.isnan(f.max_ll_delta) else f", max |Δ log-likelihood| {f.max_ll_delta:.3g}"
        lines += [f"## {name}, {f.setting}", "",
                  f"Paired documents: {f.paired} (only in the harness run: {f.only_ours}, only in lm-eval: "
                  f"{f.only_lmeval}); differing predictions: {f.differing}{delta}", ""]
        grid_rows = tuple((r["metric"], _value(r["ours"], f.paired + f.only_ours),
                           _value(r["lmeval"], f.paired + f.only_lmeval),
                           "" if math.isnan(r["delta"]) else f"{r['delta']:+.4g}",
                           r["test"] or "-", "" if math.isnan(r["p"]) else f"{r['p']:.3g}"
                           + (" *" if r["p"] < ALPHA else "")) for r in f.rows)
        lines += [markdown(Grid(("metric", "harness", "lm-eval", "harness − lm-eval (paired)", "test", "p"),
                                grid_rows)), ""]
        if f.paired == 0 and f.setting != "ZS":
            lines += ["No document pairs: few-shot contexts hold the demonstrations each tool drew, so they pair only "
                      "when both drew the same ones.", ""]
        if f.shown:
            lines += [f"First {len(f.shown)} disagreements (end of context | harness | lm-eval):", ""]
            lines += [f"- …{c} | {a} | {b}" for c, a, b in f.shown] + [""]
    return "\n".join(lines)
