"""What a comparison of two settings could have seen, and p-values adjusted for making many comparisons.

- holm: Holm-Bonferroni step-down adjustment of a family of p-values (every paired test of one report, say):
  reject where the adjusted value is below alpha and the chance of any false rejection in the family stays
  below alpha.
- Minimum detectable difference (MDD): the smallest true difference that a two-sided test at level alpha
  finds with probability `power`, given how noisy the paired per-example values are. A non-significant
  difference with an MDD of 0.05 says "no difference of 0.05 or more, probably"; it never says "no difference".
  Normal approximation throughout: for n below about 30 the t distribution makes the true MDD a little larger.
- direction: the word a reader wants (better / worse / no detectable difference), from the metric's direction.
"""

from __future__ import annotations

import math

import numpy as np

from harness.reporting.quantiles import normal_quantile

# significance.ALPHA's level (tests/test_analysis.py keeps them equal); not imported, so significance can import this
ALPHA = 0.05
POWER = 0.8


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order: sort ascending, multiply the i-th smallest (1-based) by
    m - i + 1, carry the running maximum forward (step-down monotonicity), cap at 1. NaN entries are not tested:
    they pass through as NaN and do not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = p[order] * (m - np.arange(m))  # (m,)
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def mdd_from_stderr(stderr: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDD of any estimate whose standard error is `stderr` (a paired bootstrap's std, say):
    (z_{1-alpha/2} + z_{power}) * stderr."""
    return (normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power)) * stderr


def minimum_detectable_difference(n: int, sd_a: float, sd_b: float, rho: float, alpha: float = ALPHA,
                                  power: float = POWER) -> float:
    """The MDD of a difference of two means measured on the same n examples: per-example standard deviations
    sd_a, sd_b and their correlation rho (pairing helps exactly when rho > 0):
    (z_{1-alpha/2} + z_{power}) * sqrt((sd_a² + sd_b² - 2 rho sd_a sd_b) / n)."""
    variance = sd_a**2 + sd_b**2 - 2.0 * rho * sd_a * sd_b
    return mdd_from_stderr(math.sqrt(max(variance, 0.0) / n), alpha, power)


def observed_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the paired columns; 0 when either is constant (its term then vanishes anyway)."""
    sd_a, sd_b = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
    if sd_a == 0.0 or sd_b == 0.0:
        return 0.0
    return float(np.cov(a, b, ddof=1)[0, 1] / (sd_a * sd_b))


def paired_mdd(a, b, alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDD of mean(b) - mean(a) from the paired per-example values (n,) of two settings, with their sample
    standard deviations and observed correlation."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and a.ndim == 1 and len(a) >= 2, (a.shape, b.shape)
    rho = observed_correlation(a, b)
    return minimum_detectable_difference(len(a), float(np.std(a, ddof=1)), float(np.std(b, ddof=1)), rho,
                                         alpha, power)


def mcnemar_mdd(n: int, discordant: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDD of an accuracy difference of two 0/1 metrics on the same n examples, as McNemar's test sees it.

    Only discordant examples (right in one setting, wrong in the other) carry information. With psi the
    discordant rate and delta = p_b - p_c the accuracy difference (p_b: right only in the second setting,
    p_c: right only in the first), McNemar's z-test (b - c) / sqrt(b + c) has power
    Phi((sqrt(n) |delta| - z_{1-alpha/2} sqrt(psi)) / sqrt(psi - delta²)) (Connor 1987), psi held at its value.
    Setting that to `power` and solving the quadratic in delta gives
        delta = (sqrt(n) z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi (n - z_{1-alpha/2}² + z_{power}²)))
                / (n + z_{power}²).
    The exact binomial test of significance.mcnemar_exact is slightly conservative against it (its power at
    this delta is a few points lower). NaN when psi is 0 (no discordant pair: nothing tells the rate).
    """
    if not discordant > 0.0:
        return math.nan
    za, zb = normal_quantile(1.0 - alpha / 2.0), normal_quantile(power)
    spread = discordant * (n - za**2 + zb**2)
    if spread < 0.0:
        return math.inf
    return (math.sqrt(n) * za * math.sqrt(discordant) + zb * math.sqrt(spread)) / (n + zb**2)


def paired_proportions_mdd(a, b, alpha: float = ALPHA, power: float = POWER) -> float:
    """mcnemar_mdd from the paired 0/1 values (n,) of two settings, at their observed discordant rate."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and a.ndim == 1, (a.shape, b.shape)
    return mcnemar_mdd(len(a), float(np.mean(a != b)), alpha, power)


def direction(delta: float, significant: bool, higher_is_better: bool) -> str:
    """'better' / 'worse' for a significant difference (the second setting against the first, in the metric's
    own direction: a lower perplexity is better), else 'no detectable difference'."""
    if not significant or math.isnan(delta) or delta == 0.0:
        return "no detectable difference"
    return "better" if (delta > 0) == higher_is_better else "worse"
