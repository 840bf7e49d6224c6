"""Paired tests against hand-computed values: McNemar's exact p-values, bootstrap CIs, seed averaging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.metrics import METRICS
from harness.reporting.significance import compare_pair, mcnemar_exact, paired_bootstrap, paired_comparisons


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (8, 2, 2 * (1 + 10 + 45) / 1024),  # n = 10: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 0.109375
        (10, 0, 2 / 1024),  # all ten discordant pairs one way
        (2, 8, 2 * (1 + 10 + 45) / 1024),  # symmetric
        (3, 3, 1.0),  # 2 * 42/64 > 1: capped
        (0, 0, 1.0),  # no discordant pairs: no evidence
        (1, 0, 1.0),  # 2 * 1/2
    ],
)
def test_mcnemar_exact_by_hand(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-12)


def test_significant_and_not():
    rng = np.random.default_rng(0)
    zs = (rng.random(200) < 0.5).astype(float)
    better = zs.copy()
    better[np.flatnonzero(zs == 0)[:30]] = 1.0  # 30 examples fixed, none broken: delta = +0.15
    r = compare_pair(zs[:, None], better[:, None], binary=True)
    assert r.test == "mcnemar" and r.delta == pytest.approx(0.15)
    assert r.p_value == pytest.approx(2 / 2**30) and r.ci_low > 0  # the CI excludes zero too

    same = compare_pair(zs[:, None], zs[:, None], binary=True)
    assert same.delta == 0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0

    swapped = zs.copy()  # 5 fixed and 5 broken: no net difference
    swapped[np.flatnonzero(zs == 0)[:5]] = 1.0
    swapped[np.flatnonzero(zs == 1)[:5]] = 0.0
    r = compare_pair(zs[:, None], swapped[:, None], binary=True)
    assert r.delta == 0 and r.p_value == pytest.approx(mcnemar_exact(5, 5)) and r.p_value > 0.05


def test_bootstrap_ci_contains_the_true_difference():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(500, 1))
    b = a + 0.3 + rng.normal(0.0, 0.2, size=(500, 1))  # true paired difference 0.3
    r = compare_pair(a, b)
    assert r.test == "bootstrap" and r.ci_low < 0.3 < r.ci_high and r.p_value < 0.01
    draws = paired_bootstrap(a, b, iters=3000)
    assert draws.shape == (3000,) and draws.std() == pytest.approx(0.2 / np.sqrt(500), rel=0.15)  # paired: small


def test_bootstrap_uses_the_metric_aggregate():
    """Perplexity: exp(-mean log p); the difference is in perplexity units, resampled pairwise."""
    ppl = METRICS["perplexity"].aggregate
    a = np.log(np.full((50, 1), 0.1))  # perplexity 10
    b = np.log(np.full((50, 1), 0.2))  # perplexity 5
    r = compare_pair(a, b, ppl)
    assert r.delta == pytest.approx(-5.0) and r.ci_low == pytest.approx(-5.0) and r.ci_high == pytest.approx(-5.0)


def _samples(values_by_variant: dict) -> pd.DataFrame:
    rows = []
    for (setting, k, seed), values in values_by_variant.items():
        rows += [{"model": "m", "task": "t", "setting": setting, "k": k, "seed": seed, "example_id": f"e{i}",
                  "metric": "acc", "value": float(v)} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_paired_comparisons_average_seeds_and_pair_by_id():
    zs = [0, 0, 0, 0, 1, 1]
    samples = _samples({("ZS", 0, 0): zs, ("FS", 2, 0): [1, 1, 0, 0, 1, 1], ("FS", 2, 1): [1, 0, 1, 0, 1, 1],
                        ("1S", 1, 0): zs, ("FS", 1, 0): zs})
    samples = samples.sample(frac=1.0, random_state=0)  # order must not matter: joined by example id
    paired = paired_comparisons(samples)
    assert set(zip(paired["setting"], paired["k"])) == {("FS", 2), ("1S", 1)}  # FS(1) is 1S's twin: dropped
    fs = paired[paired["setting"] == "FS"].iloc[0]
    # per example, seed means: [1, .5, .5, 0, 1, 1] against ZS [0, 0, 0, 0, 1, 1]: delta = 2/6
    assert fs["seeds"] == 2 and fs["n"] == 6 and fs["delta"] == pytest.approx(2 / 6)
    assert fs["test"] == "bootstrap"  # seed means are not 0/1: no McNemar
    one = paired[paired["setting"] == "1S"].iloc[0]
    assert one["test"] == "mcnemar" and one["delta"] == 0 and one["p_value"] == 1.0 and not one["significant"]


def test_no_samples_no_comparisons():
    assert paired_comparisons(None).empty
    only_fs = _samples({("FS", 2, 0): [1, 0, 1]})
    assert paired_comparisons(only_fs).empty  # nothing to pair with
