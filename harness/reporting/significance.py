"""Paired comparisons on the same examples: each setting against zero-shot, and one model (or run) against another.

For every (model, task, metric) and every setting (1S, FS(k), FT), the examples scored both in ZS and in
that setting are paired by example id. With several demonstration seeds, each example's value is first
averaged over the seeds; the spread across seeds is reported separately (tables.cells_frame, seed_std).

- Paired bootstrap: resample examples (the same draw for both settings), recompute the metric's own
  aggregate for each, and take the 2.5 / 97.5 percentiles of the difference; seeded and vectorised.
- McNemar's exact test for 0/1 metrics with one seed: only discordant pairs count; b = examples right in
  the setting and wrong in ZS, c = the reverse; p = two-sided binomial(b + c, 1/2) tail, no approximation.
A difference is marked significant when its p-value is below ALPHA (`significant`). One report makes many such
tests, so each family (every setting against ZS; every model against the first) also gets Holm's step-down
correction (`p_holm`, `significant_holm`: the chance of any false finding in the family stays below ALPHA),
and the reading a person wants (`direction`: better / worse / no detectable difference, in the metric's own
direction, after the correction). `mdd` is the minimum detectable difference (power.py): the smallest true
difference the test finds 80% of the time at ALPHA; a difference that is not detectable says "smaller than
about the MDD, probably", never "none".

Between two models or runs (paired_between, model_comparisons) examples are paired by their document
text (the rendered prompt, and the demonstration seed), never by position or id, so runs over differently
ordered or limited data pair correctly; examples only one side has are counted, not tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.reporting import power
from harness.samples import Sample

ALPHA = 0.05
ITERS = 2000
SEED = 20240607
CHUNK = 500  # bootstrap draws per matrix product: bounds memory for large n

COLUMNS = ["model", "task", "metric", "setting", "k", "n", "seeds", "delta", "ci_low", "ci_high", "p_value", "test",
           "significant", "mdd", "p_holm", "significant_holm", "direction"]
NOT_DETECTABLE = "no detectable difference"


@dataclass(frozen=True)
class Paired:
    delta: float  # aggregate(setting) - aggregate(ZS)
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "mcnemar" or "bootstrap"
    mdd: float = math.nan  # minimum detectable difference (power.py), in the metric's units


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def _mean(sums: np.ndarray, n: int) -> np.ndarray:
    return sums[..., 0] / n


def paired_bootstrap(a: np.ndarray, b: np.ndarray, aggregate=_mean, iters: int = ITERS, seed: int = SEED):
    """Differences aggregate(b*) - aggregate(a*) over `iters` shared resamples of the n paired rows of a, b (n, m)."""
    assert a.shape == b.shape and a.ndim == 2, (a.shape, b.shape)
    n = len(a)
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, iters, CHUNK):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(CHUNK, iters - start)).astype(np.float64)  # (B, n)
        diffs.append(aggregate(counts @ b, n) - aggregate(counts @ a, n))  # (B,)
    return np.concatenate(diffs)


def compare_pair(a: np.ndarray, b: np.ndarray, aggregate=_mean, binary: bool = False) -> Paired:
    """Paired comparison of b against a: the difference, its bootstrap CI, and a p-value."""
    delta = float(aggregate(b.sum(axis=0), len(b)) - aggregate(a.sum(axis=0), len(a)))
    draws = paired_bootstrap(a, b, aggregate)
    low, high = np.percentile(draws, [2.5, 97.5])
    if binary:
        better = int(np.sum((b[:, 0] == 1) & (a[:, 0] == 0)))
        worse = int(np.sum((b[:, 0] == 0) & (a[:, 0] == 1)))
        return Paired(delta, float(low), float(high), mcnemar_exact(better, worse), "mcnemar",
                      power.paired_proportions_mdd(a[:, 0], b[:, 0]))
    # two-sided bootstrap p-value: how often the resampled difference falls on the other side of zero
    # (never below 1 / ITERS: that is all the resamples can resolve)
    p = min(1.0, max(2.0 * min(np.mean(draws <= 0), np.mean(draws >= 0)), 1.0 / len(draws))) if delta != 0 else 1.0
    mdd = power.mdd_from_stderr(float(np.std(draws, ddof=1)))
    return Paired(delta, float(low), float(high), float(p), "bootstrap", mdd)


def _aggregate_of(metric: str):
    from harness.metrics import METRICS

    found = METRICS.get(metric)
    return found.aggregate if found else _mean


def higher_is_better(metric: str) -> bool:
    """The metric's direction (harness/metrics.py); a metric it does not know reads as higher-is-better."""
    from harness.metrics import METRICS

    found = METRICS.get(metric)
    return found.higher_is_better if found else True


def with_family(tests: pd.DataFrame) -> pd.DataFrame:
    """The rows of one family of tests with Holm's correction across all of them (untested rows, NaN p, stay
    out of the count) and each difference's reading in its metric's direction, after the correction."""
    p_holm = power.holm(tests["p_value"].to_numpy(dtype=np.float64)) if len(tests) else np.empty(0)
    significant = p_holm < ALPHA  # NaN compares False
    words = [power.direction(float(d), bool(s), higher_is_better(m))
             for d, s, m in zip(tests["delta"], significant, tests["metric"], strict=True)]
    return tests.assign(p_holm=p_holm, significant_holm=significant.astype(bool), direction=words)


def _by_example(rows: pd.DataFrame) -> tuple[pd.Index, np.ndarray, int]:
    """Per-example values (n, m), averaged over demonstration seeds; example ids sorted."""
    values = rows["value"].map(lambda v: np.atleast_1d(np.asarray(v, dtype=np.float64)))
    width = values.map(len).max()
    matrix = pd.DataFrame(np.stack(values.to_numpy()).reshape(len(rows), width), index=rows["example_id"].to_numpy())
    means = matrix.groupby(level=0).mean().sort_index()
    return means.index, means.to_numpy(), int(rows["seed"].nunique())


def paired_comparisons(samples: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (model, task, metric, setting, k) other than ZS: the paired difference against ZS."""
    out = []
    if samples is None or samples.empty:
        return pd.DataFrame(columns=COLUMNS)
    for (model, task, metric), group in samples.groupby(["model", "task", "metric"], sort=False):
        base = group[group["setting"] == "ZS"]
        if base.empty:
            continue
        base_ids, base_values, _ = _by_example(base)
        for (setting, k), rows in group[group["setting"] != "ZS"].groupby(["setting", "k"], sort=False):
            ids, values, seeds = _by_example(rows)
            common = base_ids.intersection(ids)
            if len(common) < 2:
                continue
            a = base_values[base_ids.get_indexer(common)]
            b = values[ids.get_indexer(common)]
            binary = seeds == 1 and a.shape[1] == 1 and bool(np.isin(np.concatenate([a, b]), (0.0, 1.0)).all())
            r = compare_pair(a, b, _aggregate_of(metric), binary)
            out.append({"model": model, "task": task, "metric": metric, "setting": setting, "k": int(k),
                        "n": len(common), "seeds": seeds, "delta": r.delta, "ci_low": r.ci_low, "ci_high": r.ci_high,
                        "p_value": r.p_value, "test": r.test, "significant": r.p_value < ALPHA, "mdd": r.mdd})
    return with_family(_without_fs1_twins(pd.DataFrame(out, columns=COLUMNS)))


def _without_fs1_twins(paired: pd.DataFrame) -> pd.DataFrame:
    """FS(1) draws the same demonstration as 1S (same seed derivation), so where both ran, keep 1S only."""
    one_shot = set(map(tuple, paired.loc[paired["setting"] == "1S", ["model", "task", "metric"]].to_numpy().tolist()))
    twin = [(s == "FS" and k == 1 and (m, t, x) in one_shot)
            for m, t, x, s, k in paired[["model", "task", "metric", "setting", "k"]].itertuples(index=False)]
    return paired[~pd.Series(twin, index=paired.index, dtype=bool)].reset_index(drop=True)


BETWEEN = ["model_a", "model_b", "task", "metric", "setting", "k", "n", "seeds", "delta", "ci_low", "ci_high",
           "p_value", "test", "significant", "only_a", "only_b", "mdd", "p_holm", "significant_holm", "direction"]


def _prompt_keys(rows: pd.DataFrame) -> list[tuple]:
    """(seed, prompt text, occurrence): the same document twice in one run stays two examples. Frames without
    the sample records (built by hand, not read from samples.jsonl) fall back to the example id."""
    seen: dict[tuple, int] = {}
    keys = []
    records = rows["sample"] if "sample" in rows else [None] * len(rows)
    for seed, sample, example in zip(rows["seed"], records, rows["example_id"], strict=True):
        text = sample.prompt if isinstance(sample, Sample) else None
        base = (int(seed), text if text is not None else f"id:{example}")
        seen[base] = seen.get(base, -1) + 1
        keys.append(base + (seen[base],))
    return keys


def _paired_values(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Values of the examples both sides have, paired by prompt text and averaged over seeds per example:
    (a (n, m), b (n, m), seeds, only in a, only in b)."""
    ka, kb = _prompt_keys(a), _prompt_keys(b)
    index_b = {k: i for i, k in enumerate(kb)}
    common = [(i, index_b[k]) for i, k in enumerate(ka) if k in index_b]
    if not common:
        return np.empty((0, 1)), np.empty((0, 1)), 0, len(ka), len(kb)
    va = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in a["value"]]
    vb = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in b["value"]]
    ids = a["example_id"].to_numpy()
    frame_a = pd.DataFrame(np.stack([va[i] for i, _ in common]), index=[ids[i] for i, _ in common])
    frame_b = pd.DataFrame(np.stack([vb[j] for _, j in common]), index=frame_a.index)
    seeds = len({ka[i][0] for i, _ in common})
    return (frame_a.groupby(level=0, sort=False).mean().to_numpy(),
            frame_b.groupby(level=0, sort=False).mean().to_numpy(), seeds, len(ka) - len(common), len(kb) - len(common))


def paired_between(a: pd.DataFrame, b: pd.DataFrame, model_a: str = "A", model_b: str = "B") -> pd.DataFrame:
    """One row per (task, metric, setting, k) both sample frames have: the paired difference b - a."""
    out = []
    groups_b = {key: rows for key, rows in b.groupby(["task", "metric", "setting", "k"], sort=False)}
    for (task, metric, setting, k), rows_a in a.groupby(["task", "metric", "setting", "k"], sort=False):
        rows_b = groups_b.get((task, metric, setting, k))
        if rows_b is None:
            continue
        x, y, seeds, only_a, only_b = _paired_values(rows_a, rows_b)
        base = {"model_a": model_a, "model_b": model_b, "task": task, "metric": metric, "setting": setting,
                "k": int(k), "n": len(x), "seeds": seeds, "only_a": only_a, "only_b": only_b}
        if len(x) < 2:
            out.append(base | {"delta": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
                               "test": "none (fewer than 2 paired examples)", "significant": False, "mdd": math.nan})
            continue
        binary = seeds == 1 and x.shape[1] == 1 and bool(np.isin(np.concatenate([x, y]), (0.0, 1.0)).all())
        r = compare_pair(x, y, _aggregate_of(metric), binary)
        out.append(base | {"delta": r.delta, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value,
                           "test": r.test, "significant": r.p_value < ALPHA, "mdd": r.mdd})
    return with_family(pd.DataFrame(out, columns=BETWEEN))


def model_comparisons(samples: pd.DataFrame | None) -> pd.DataFrame:
    """Every other model against the first, on the examples both scored (a merged report of several runs)."""
    if samples is None or samples.empty or samples["model"].nunique() < 2:
        return pd.DataFrame(columns=BETWEEN)
    models = list(dict.fromkeys(samples["model"]))
    parts = [paired_between(samples[samples["model"] == models[0]], samples[samples["model"] == other],
                            models[0], other) for other in models[1:]]
    return with_family(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame(columns=BETWEEN)
