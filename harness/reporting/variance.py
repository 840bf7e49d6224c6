"""Two sources of uncertainty in a cell scored with several demonstration seeds: the examples, and the draw.

The values of one cell form a matrix Y (n examples x s seeds), every example scored once per seed. The model
is two-way crossed random effects without replication:

    y_ij = mu + a_i + b_j + e_ij,   a_i ~ (0, σ²_example), b_j ~ (0, σ²_seed), e_ij ~ (0, σ²_residual),

all independent; a_i is how hard example i is, b_j how good demonstration draw j is for every example, e_ij
the rest (the example x seed interaction, which one observation per pair cannot tell from noise). The cell's
value is the grand mean, whose variance is

    Var(ȳ) = σ²_example / n  +  σ²_seed / s  +  σ²_residual / (n s)
             (from examples)    (from the draw)   (interaction)

More examples shrink the first term only; more seeds the second only. A seed term that dominates says: run
more seeds before reading a difference.

Two estimates (both return these parts):
- anova_split: method of moments from the mean squares (rows, columns, residual), with
  E[MS_example] = σ²_res + s σ²_example, E[MS_seed] = σ²_res + n σ²_seed, E[MS_res] = σ²_res. Components are
  truncated at 0; intervals for them by Satterthwaite's chi-square approximation (exact for σ²_residual), and
  for the mean a t interval with Satterthwaite degrees of freedom (few seeds: few degrees of freedom).
- bootstrap_split: resample examples and seeds independently (the "pigeonhole" bootstrap), seeded and
  vectorised; the seed-only and example-only resamples give the two parts. It shrinks the seed part by
  (s - 1) / s and counts the interaction about twice, so it is a cross-check, not a better estimate.

The difference against ZS (one "seed": a vector of n) pairs by example: D = Y - zs[:, None] has the same seed
and interaction parts as Y, and its example part measures how the per-example gains vary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.reporting.quantiles import chi2_quantile, t_quantile

# significance's level and bootstrap settings (tests/test_analysis.py keeps them equal); not imported, so that
# significance can import this module
ALPHA = 0.05
ITERS = 2000
SEED = 20240607
CHUNK = 500  # bootstrap draws per matrix product: bounds memory for large n


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Split:
    """The grand mean of a cell (or of its difference against ZS) and its variance, by source."""

    method: str  # "anova" or "bootstrap"
    n: int
    seeds: int
    mean: float
    from_examples: float  # variance of the mean due to which examples were drawn
    from_seeds: float  # due to which demonstrations were drawn
    from_interaction: float  # the example x seed residual's share
    low: float  # the (1 - ALPHA) interval of the mean
    high: float
    df: float = math.inf  # degrees of freedom of the t interval (anova); inf for the bootstrap

    @property
    def variance(self) -> float:
        return self.from_examples + self.from_seeds + self.from_interaction

    @property
    def seed_share(self) -> float:
        """The fraction of the mean's variance that comes from the demonstration draw (0 to 1)."""
        return self.from_seeds / self.variance if self.variance > 0 else math.nan


@dataclass(frozen=True)
class Anova:
    """Mean squares and variance components of an (n x s) matrix; the components with (1 - ALPHA) intervals."""

    n: int
    seeds: int
    ms_example: float
    ms_seed: float
    ms_residual: float
    example: Interval  # σ²_example
    seed: Interval  # σ²_seed
    residual: Interval  # σ²_residual


def _check(values) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"need an (examples x seeds) matrix with at least 2 of each, got shape {y.shape}")
    return y


def mean_squares(values) -> tuple[float, float, float]:
    """(MS_example, MS_seed, MS_residual) of the two-way layout without replication."""
    y = _check(values)
    n, s = y.shape
    grand, rows, cols = y.mean(), y.mean(axis=1), y.mean(axis=0)
    residual = y - rows[:, None] - cols[None, :] + grand  # (n, s)
    return (s * float(((rows - grand) ** 2).sum()) / (n - 1), n * float(((cols - grand) ** 2).sum()) / (s - 1),
            float((residual**2).sum()) / ((n - 1) * (s - 1)))


def _component(ms: float, ms_res: float, df: float, df_res: float, scale: int, alpha: float) -> Interval:
    """σ² = (ms - ms_res) / scale with a Satterthwaite interval; below 0 the estimate is 0 and the upper end
    comes from ms alone (σ² <= E[ms] / scale)."""
    estimate = (ms - ms_res) / scale
    if estimate <= 0:
        return Interval(0.0, 0.0, df * ms / chi2_quantile(alpha / 2.0, df) / scale)
    nu = (ms - ms_res) ** 2 / (ms**2 / df + ms_res**2 / df_res)
    return Interval(estimate, nu * estimate / chi2_quantile(1.0 - alpha / 2.0, nu),
                    nu * estimate / chi2_quantile(alpha / 2.0, nu))


def anova(values, alpha: float = ALPHA) -> Anova:
    """Variance components of the matrix by the method of moments (module docstring)."""
    y = _check(values)
    n, s = y.shape
    ms_ex, ms_seed, ms_res = mean_squares(y)
    df_ex, df_seed, df_res = n - 1, s - 1, (n - 1) * (s - 1)
    residual = Interval(ms_res, df_res * ms_res / chi2_quantile(1.0 - alpha / 2.0, df_res),
                        df_res * ms_res / chi2_quantile(alpha / 2.0, df_res))
    return Anova(n, s, ms_ex, ms_seed, ms_res, _component(ms_ex, ms_res, df_ex, df_res, s, alpha),
                 _component(ms_seed, ms_res, df_seed, df_res, n, alpha), residual)


def anova_split(values, alpha: float = ALPHA) -> Split:
    """The grand mean with its variance split by source (method of moments) and a t interval whose degrees of
    freedom (Satterthwaite) reflect how few seeds there are."""
    y = _check(values)
    a = anova(y, alpha)
    n, s = y.shape
    use_ex, use_seed = float(a.example.estimate > 0), float(a.seed.estimate > 0)
    # the variance as a combination of mean squares: sum c_k MS_k / (n s), each part truncated at 0
    coef = np.array([use_ex, use_seed, 1.0 - use_ex - use_seed]) / (n * s)
    ms = np.array([a.ms_example, a.ms_seed, a.ms_residual])
    dfs = np.array([n - 1, s - 1, (n - 1) * (s - 1)], dtype=np.float64)
    variance = float(coef @ ms)
    denominator = float(((coef * ms) ** 2 / dfs).sum())
    df = variance**2 / denominator if denominator > 0 else math.inf
    half = t_quantile(1.0 - alpha / 2.0, df) * math.sqrt(max(variance, 0.0))
    mean = float(y.mean())
    return Split("anova", n, s, mean, a.example.estimate / n, a.seed.estimate / s, a.residual.estimate / (n * s),
                 mean - half, mean + half, df)


def bootstrap_draws(values, iters: int = ITERS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grand means (iters,) over resampled examples only, over resampled seeds only, and over both at once
    (the same example and seed draws reused); seeded, so reruns agree."""
    y = _check(values)
    n, s = y.shape
    rng = np.random.default_rng(seed)
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    examples, seeds, both = [], [], []
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        u = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)  # (B, n) times each example drawn
        v = rng.multinomial(s, np.full(s, 1.0 / s), size=size).astype(np.float64)  # (B, s) times each seed drawn
        examples.append(u @ rows / n)
        seeds.append(v @ cols / s)
        both.append(((u @ y) * v).sum(axis=1) / (n * s))  # (B, s) -> (B,)
    return np.concatenate(examples), np.concatenate(seeds), np.concatenate(both)


def bootstrap_split(values, iters: int = ITERS, seed: int = SEED, alpha: float = ALPHA) -> Split:
    """The grand mean with its variance split by source, by resampling (module docstring): examples only,
    seeds only, the interaction the rest of resampling both; the interval is the percentile one of both."""
    y = _check(values)
    examples, seeds, both = bootstrap_draws(y, iters, seed)
    ex, sd, total = float(np.var(examples, ddof=1)), float(np.var(seeds, ddof=1)), float(np.var(both, ddof=1))
    low, high = np.percentile(both, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Split("bootstrap", y.shape[0], y.shape[1], float(y.mean()), ex, sd, total - ex - sd, float(low),
                 float(high))


def _differences(values, zs) -> np.ndarray:
    y, z = _check(values), np.asarray(zs, dtype=np.float64)
    if z.shape != (y.shape[0],):
        raise ValueError(f"ZS needs one value per example: shape ({y.shape[0]},), got {z.shape}")
    return y - z[:, None]


def difference_anova(values, zs, alpha: float = ALPHA) -> Split:
    """The setting's mean minus ZS's on the same examples, paired by row, its variance split by source (anova)."""
    return anova_split(_differences(values, zs), alpha)


def difference_bootstrap(values, zs, iters: int = ITERS, seed: int = SEED, alpha: float = ALPHA) -> Split:
    """As difference_anova, by the two-level bootstrap (ZS's row resampled with its example)."""
    return bootstrap_split(_differences(values, zs), iters, seed, alpha)
