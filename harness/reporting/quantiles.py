"""Quantiles of the normal, Student t and chi-square distributions, without scipy (not a runtime dependency).

- normal: statistics.NormalDist, exact to double precision.
- t with ν degrees of freedom (real ν >= 1): with u = sqrt(ν) tan θ the density becomes c cos^(ν-1) θ on
  [0, π/2), c = Γ((ν+1)/2) / (sqrt(π) Γ(ν/2)), so F(x) = 1/2 + c ∫_0^atan(x/sqrt ν) cos^(ν-1) θ dθ: a smooth
  integrand, taken by Simpson's rule and inverted by bisection on θ. ν below 1 is read as 1 (Satterthwaite
  degrees of freedom can fall there; the interval is then the widest the rule offers, never narrower).
- chi-square with ν degrees of freedom: F(x) = P(ν/2, x/2), the lower regularised gamma function, by its power
  series P(a, y) = Σ_k y^(a+k) e^(-y) / Γ(a+k+1) (each term is at most 1: no overflow), inverted by bisection;
  above LARGE_DF the Wilson-Hilferty cube-root approximation (relative error below 1e-5 there).

tests/test_analysis.py checks every one against scipy.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

SIMPSON_POINTS = 4001  # odd
BISECTIONS = 200  # at most; bisection stops once the bracket is TOLERANCE of its upper end
TOLERANCE = 1e-12
LARGE_DF = 2000.0
NORMAL_DF = 1e7  # beyond this the t distribution is the normal one to double precision


def normal_quantile(p: float) -> float:
    """z with P(Z <= z) = p for a standard normal Z."""
    return NormalDist().inv_cdf(p)


def _t_mass(theta: float, df: float) -> float:
    """P(0 < T <= sqrt(df) tan θ) for T ~ t(df)."""
    grid = np.linspace(0.0, theta, SIMPSON_POINTS)
    f = np.cos(grid) ** (df - 1.0)
    h = theta / (SIMPSON_POINTS - 1)
    integral = h / 3.0 * (f[0] + f[-1] + 4.0 * f[1:-1:2].sum() + 2.0 * f[2:-1:2].sum())
    return math.exp(math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0)) / math.sqrt(math.pi) * integral


def t_quantile(p: float, df: float) -> float:
    """x with P(T <= x) = p for T ~ Student t with `df` degrees of freedom (df < 1 read as 1, inf: normal)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if math.isinf(df) or df > NORMAL_DF:
        return normal_quantile(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    df = max(float(df), 1.0)
    target, low, high = p - 0.5, 0.0, math.pi / 2.0
    for _ in range(BISECTIONS):
        if high - low <= TOLERANCE * high:
            break
        mid = (low + high) / 2.0
        low, high = (mid, high) if _t_mass(mid, df) < target else (low, mid)
    return math.sqrt(df) * math.tan((low + high) / 2.0)


def _gamma_lower(a: float, y: float) -> float:
    """The lower regularised gamma function P(a, y)."""
    if y <= 0.0:
        return 0.0
    terms = int(y + 12.0 * math.sqrt(y) + 50.0)
    k = np.arange(1, terms)
    logs = a * math.log(y) - y - math.lgamma(a + 1.0) + np.concatenate([[0.0], np.cumsum(np.log(y / (a + k)))])
    return float(min(1.0, np.exp(logs).sum()))


def chi2_quantile(p: float, df: float) -> float:
    """x with P(X <= x) = p for X ~ chi-square with `df` (real, > 0) degrees of freedom."""
    if not 0.0 < p < 1.0 or not df > 0.0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if df > LARGE_DF:
        return df * (1.0 - 2.0 / (9.0 * df) + normal_quantile(p) * math.sqrt(2.0 / (9.0 * df))) ** 3
    high = df + 10.0 * math.sqrt(2.0 * df) + 10.0
    while _gamma_lower(df / 2.0, high / 2.0) < p:
        high *= 2.0
    low = 0.0
    for _ in range(BISECTIONS):
        if high - low <= TOLERANCE * high:
            break
        mid = (low + high) / 2.0
        low, high = (mid, high) if _gamma_lower(df / 2.0, mid / 2.0) < p else (low, mid)
    return (low + high) / 2.0
