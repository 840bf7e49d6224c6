"""The report's statistics (harness/reporting: quantiles, power, variance, calibration, rules) against independent
references: scipy and statsmodels (test-only dependencies), hand-computed tables, straightforward loops, and
Monte Carlo checks of what an interval or a power claims."""

from __future__ import annotations

import gc
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf  # the test extra's independent references (scipy comes with statsmodels)
from scipy import stats
from statsmodels.stats import multitest
from statsmodels.stats import power as sm_power
from statsmodels.stats.anova import anova_lm

from harness.metrics import METRICS
from harness.records import ChoiceOutcome
from harness.reporting import calibration, power, quantiles, rules, significance, variance
from harness.reporting.published import Published, Source
from harness.reporting.rules import Rule
from harness.reporting.significance import mcnemar_exact
from harness.samples import ChoiceAnswer, Sample

Z = quantiles.normal_quantile(0.975) + quantiles.normal_quantile(0.8)  # 1.96 + 0.84


# ---------------------------------------------------------------- quantiles


def test_levels_and_bootstrap_settings_are_the_paired_tests_own():
    assert power.ALPHA == variance.ALPHA == significance.ALPHA
    assert (variance.ITERS, variance.SEED, variance.CHUNK) == (significance.ITERS, significance.SEED,
                                                              significance.CHUNK)



@pytest.mark.parametrize("df", [1, 1.3, 2, 3.7, 4, 10, 30, 250, 1e4])
def test_t_quantiles_match_scipy(df):
    for p in (0.001, 0.025, 0.1, 0.5, 0.8, 0.975, 0.995):
        assert quantiles.t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("df", [0.5, 1, 1.3, 2, 4, 9.5, 30, 400, 1999, 2500, 1e5])
def test_chi2_quantiles_match_scipy(df):
    for p in (0.001, 0.025, 0.1, 0.5, 0.8, 0.975, 0.995):
        assert quantiles.chi2_quantile(p, df) == pytest.approx(stats.chi2.ppf(p, df), rel=2e-5)


# ---------------------------------------------------------------- Holm


def test_holm_matches_statsmodels_on_random_families(monkeypatch):
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # multipletests collects garbage on every call: slow
    rng = np.random.default_rng(7)
    for i in range(50):
        m = int(rng.integers(1, 60))
        p = rng.uniform(size=m) ** rng.choice([1, 3, 8])
        if i % 5 == 0:
            p = np.round(p, 2)  # ties
        expected = multitest.multipletests(p, method="holm")[1]
        np.testing.assert_allclose(power.holm(p), expected, rtol=0, atol=1e-12)


def test_holm_by_hand_nan_passes_through_and_caps_at_one():
    out = power.holm([0.04, math.nan, 0.01, 0.03])  # m = 3: 0.01 * 3, 0.03 * 2, 0.04 * 1 -> 0.03, 0.06, 0.06
    np.testing.assert_allclose(out, [0.06, math.nan, 0.03, 0.06])
    np.testing.assert_array_equal(power.holm([0.6, 0.7]), [1.0, 1.0])
    assert np.isnan(power.holm([math.nan])).all()


# ---------------------------------------------------------------- minimum detectable difference


@pytest.mark.parametrize(("n", "sd_a", "sd_b", "rho"),
                         [(50, 1.0, 1.0, 0.0), (200, 0.5, 0.8, 0.6), (2000, 0.45, 0.5, -0.2)])
def test_mdd_matches_statsmodels_power_solvers(n, sd_a, sd_b, rho):
    sd_diff = math.sqrt(sd_a**2 + sd_b**2 - 2 * rho * sd_a * sd_b)
    mdd = power.minimum_detectable_difference(n, sd_a, sd_b, rho)
    # the normal test of the paired differences (ratio=0: one sample)
    d_normal = sm_power.NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=0)
    assert mdd == pytest.approx(d_normal * sd_diff, rel=1e-4)
    # the paired t test needs a slightly larger effect; the normal approximation is close from n = 50 on
    d_t = sm_power.TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8)
    assert mdd < d_t * sd_diff < mdd * (1 + 2.5 / n)


def test_mdd_is_rejected_80_percent_of_the_time_monte_carlo():
    n, sd_a, sd_b, rho, reps = 200, 1.0, 1.5, 0.6, 4000
    mdd = power.minimum_detectable_difference(n, sd_a, sd_b, rho)
    rng = np.random.default_rng(3)
    cov = [[sd_a**2, rho * sd_a * sd_b], [rho * sd_a * sd_b, sd_b**2]]
    pairs = rng.multivariate_normal([0.0, mdd], cov, size=(reps, n))  # (reps, n, 2)
    d = pairs[..., 1] - pairs[..., 0]
    z = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    assert abs(np.mean(np.abs(z) > 1.959964) - 0.8) < 0.05


def test_paired_mdd_uses_the_observed_correlation():
    rng = np.random.default_rng(5)
    a = rng.normal(size=300)
    b = 0.7 * a + rng.normal(scale=0.5, size=300)
    rho = np.corrcoef(a, b)[0, 1]
    expected = power.minimum_detectable_difference(300, a.std(ddof=1), b.std(ddof=1), rho)
    assert power.paired_mdd(a, b) == pytest.approx(expected, rel=1e-12)
    assert power.paired_mdd(a, b) == pytest.approx(Z * (b - a).std(ddof=1) / math.sqrt(300), rel=1e-12)
    assert power.paired_mdd(a, b) < power.minimum_detectable_difference(300, a.std(ddof=1), b.std(ddof=1), 0.0)


def test_mcnemar_mdd_solves_the_power_equation_and_holds_in_monte_carlo():
    n, psi = 400, 0.3
    delta = power.mcnemar_mdd(n, psi)
    za = quantiles.normal_quantile(0.975)
    achieved = stats.norm.cdf((math.sqrt(n) * delta - za * math.sqrt(psi)) / math.sqrt(psi - delta**2))
    assert achieved == pytest.approx(0.8, abs=1e-9)
    rng = np.random.default_rng(11)
    counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=4000)
    b, c = counts[:, 0], counts[:, 1]
    assert abs(np.mean(np.abs(b - c) / np.sqrt(np.maximum(b + c, 1)) > za) - 0.8) < 0.05
    exact = np.mean([mcnemar_exact(int(x), int(y)) < 0.05 for x, y in zip(b[:1500], c[:1500], strict=True)])
    assert 0.72 < exact < 0.8  # the exact test is a little conservative against the z-test's power


def test_paired_proportions_mdd_reads_the_discordant_rate():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1] * 20, dtype=float)
    b = np.array([1, 0, 1, 0, 1, 0, 1, 1, 1, 1] * 20, dtype=float)  # 3 of 10 discordant
    assert power.paired_proportions_mdd(a, b) == pytest.approx(power.mcnemar_mdd(200, 0.3))
    assert math.isnan(power.paired_proportions_mdd(a, a))


def test_direction_words_follow_the_metric():
    assert power.direction(0.02, True, higher_is_better=True) == "better"
    assert power.direction(0.02, True, higher_is_better=False) == "worse"  # a higher perplexity
    assert power.direction(-3.0, True, higher_is_better=False) == "better"
    assert power.direction(0.02, False, higher_is_better=True) == "no detectable difference"


# ---------------------------------------------------------------- variance components


TABLE = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 6.0]])  # 3 examples x 2 seeds


def test_anova_by_hand_on_a_3x2_table():
    # grand 3.5; rows 1.5, 4, 5; columns 8/3, 13/3; residuals ±1/3, ±1/6, ±1/6
    ms_ex, ms_seed, ms_res = variance.mean_squares(TABLE)
    assert (ms_ex, ms_seed, ms_res) == pytest.approx((13 / 2, 25 / 6, 1 / 6))
    a = variance.anova(TABLE)
    assert (a.example.estimate, a.seed.estimate, a.residual.estimate) == pytest.approx((19 / 6, 4 / 3, 1 / 6))
    # Satterthwaite: nu = (MS - MS_res)² / (MS² / df + MS_res² / df_res); interval nu σ² / chi2_{1-α/2, α/2}(nu)
    for part, ms, df, estimate in ((a.example, 13 / 2, 2, 19 / 6), (a.seed, 25 / 6, 1, 4 / 3)):
        nu = (ms - 1 / 6) ** 2 / (ms**2 / df + (1 / 6) ** 2 / 2)
        assert (part.low, part.high) == pytest.approx((nu * estimate / stats.chi2.ppf(0.975, nu),
                                                       nu * estimate / stats.chi2.ppf(0.025, nu)), rel=1e-4)
    assert (a.residual.low, a.residual.high) == pytest.approx(
        (2 / 6 / stats.chi2.ppf(0.975, 2), 2 / 6 / stats.chi2.ppf(0.025, 2)), rel=1e-4)
    split = variance.anova_split(TABLE)
    assert split.mean == 3.5
    assert (split.from_examples, split.from_seeds, split.from_interaction) == pytest.approx((19 / 18, 2 / 3, 1 / 36))
    assert split.variance == pytest.approx((ms_ex + ms_seed - ms_res) / 6)
    diff = variance.difference_anova(TABLE, [1.0, 4.0, 4.0])  # D = [[0, 1], [-1, 1], [0, 2]]
    assert diff.mean == 0.5
    assert diff.from_seeds == pytest.approx(split.from_seeds)  # ZS's row does not move the seed part


def _long(y: np.ndarray) -> pd.DataFrame:
    n, s = y.shape
    return pd.DataFrame({"y": y.ravel(), "example": np.repeat(np.arange(n), s), "seed": np.tile(np.arange(s), n),
                         "group": 1})


def test_anova_matches_statsmodels_ols_and_mixed_model():
    rng = np.random.default_rng(0)
    y = 1 + rng.normal(0, 1, (40, 1)) + rng.normal(0, 0.5, (1, 4)) + rng.normal(0, 0.7, (40, 4))
    table = anova_lm(smf.ols("y ~ C(example) + C(seed)", _long(y)).fit())
    assert variance.mean_squares(y) == pytest.approx(
        tuple(table.loc[["C(example)", "C(seed)", "Residual"], "mean_sq"]), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ 1", _long(y), groups="group",
                          vc_formula={"example": "0 + C(example)", "seed": "0 + C(seed)"}).fit(reml=True)
    vc = dict(zip(fit.model.exog_vc.names, fit.vcomp, strict=True))
    a = variance.anova(y)  # balanced data: REML = the method of moments where both are positive
    assert (a.example.estimate, a.seed.estimate, a.residual.estimate) == pytest.approx(
        (vc["example"], vc["seed"], fit.scale), rel=1e-3)


def test_variance_components_and_difference_intervals_cover_the_truth():
    n, s, reps = 2000, 5, 200
    s2_ex, s2_seed, s2_res, gain = 1.0, 0.04, 0.25, 0.1
    rng = np.random.default_rng(2024)
    cover = np.zeros(4)
    seeds_hat = []
    for _ in range(reps):
        a = rng.normal(0, math.sqrt(s2_ex), (n, 1))
        y = 0.5 + a + rng.normal(0, math.sqrt(s2_seed), (1, s)) + rng.normal(0, math.sqrt(s2_res), (n, s))
        zs = 0.5 - gain + a[:, 0] + rng.normal(0, math.sqrt(s2_res), n)
        est = variance.anova(y)
        seeds_hat.append(est.seed.estimate)
        for i, (part, truth) in enumerate([(est.example, s2_ex), (est.seed, s2_seed), (est.residual, s2_res)]):
            cover[i] += part.low <= truth <= part.high
        diff = variance.difference_anova(y, zs)
        cover[3] += diff.low <= gain <= diff.high
    assert (cover / reps >= 0.9).all(), cover / reps
    # unbiased: the mean estimate is within 3 of its standard errors of σ²_seed
    assert abs(np.mean(seeds_hat) - s2_seed) < 3 * np.std(seeds_hat) / math.sqrt(reps)


def test_normal_interval_with_few_seeds_would_undercover():
    """The t interval's Satterthwaite degrees of freedom matter: with the seed part dominant, df is near s - 1."""
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, (500, 1)) + rng.normal(0, 0.3, (1, 5)) + rng.normal(0, 0.3, (500, 5))
    split = variance.anova_split(y)
    assert 3.0 < split.df < 6.0
    assert split.seed_share > 0.5
    assert split.high - split.mean == pytest.approx(stats.t.ppf(0.975, split.df) * math.sqrt(split.variance))


def test_bootstrap_matches_the_ideal_bootstrap_variances():
    rng = np.random.default_rng(4)
    n, s = 50, 4
    y = rng.normal(0, 1, (n, 1)) + rng.normal(0, 0.4, (1, s)) + rng.normal(0, 0.6, (n, s))
    ms_ex, ms_seed, ms_res = variance.mean_squares(y)
    ideal_ex = (n - 1) * ms_ex / (s * n**2)  # plug-in variance of the row means / n
    ideal_seed = (s - 1) * ms_seed / (n * s**2)
    ideal_inter = (n - 1) * (s - 1) * ms_res / (n * s) ** 2  # residual sum of squares / (n s)²
    split = variance.bootstrap_split(y, iters=20000, seed=9)
    assert split.from_examples == pytest.approx(ideal_ex, rel=0.05)
    assert split.from_seeds == pytest.approx(ideal_seed, rel=0.05)
    assert split.variance == pytest.approx(ideal_ex + ideal_seed + ideal_inter, rel=0.05)
    assert split == variance.bootstrap_split(y, iters=20000, seed=9)  # seeded
    assert split.low < y.mean() < split.high


def test_bootstrap_difference_resamples_zs_with_its_example():
    y = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 10)  # seed means 0.5, 0.75
    zs = y.mean(axis=1) - 0.25  # every example gains exactly 0.25 over ZS on average over seeds
    diff = variance.difference_bootstrap(y, zs, iters=2000)
    assert diff.mean == pytest.approx(0.25)
    assert diff.from_examples == pytest.approx(0.0, abs=1e-20)  # the row means of D are all 0.25
    assert diff.from_seeds > 0
    with pytest.raises(ValueError):
        variance.difference_anova(y, zs[:-1])
    with pytest.raises(ValueError):
        variance.anova_split(y[:, :1])


# ---------------------------------------------------------------- calibration


def test_ece_by_hand():
    rel = calibration.expected_calibration_error([0.9, 0.8, 0.75, 0.6, 0.35], [1, 0, 1, 1, 0], bins=5)
    # bins (0.8, 1]: 0.9 right; (0.6, 0.8]: 0.8 wrong, 0.75 right; (0.4, 0.6]: 0.6 right; (0.2, 0.4]: 0.35 wrong
    assert rel.ece == pytest.approx((0.1 + 2 * 0.275 + 0.4 + 0.35) / 5)
    assert rel.count == (0, 1, 1, 2, 1)
    np.testing.assert_allclose(rel.confidence, [math.nan, 0.35, 0.6, 0.775, 0.9])
    np.testing.assert_allclose(rel.accuracy, [math.nan, 0.0, 1.0, 0.5, 1.0])
    assert rel.edges == pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8, 1.0))


def _ece_loop(confidence, correct, bins):
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        members = [i for i, c in enumerate(confidence)
                   if (edges[b] < c <= edges[b + 1]) or (b == 0 and c == edges[0])]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            conf = sum(confidence[i] for i in members) / len(members)
            total += len(members) * abs(acc - conf)
    return total / len(confidence)


def test_ece_matches_a_straightforward_loop():
    rng = np.random.default_rng(8)
    for bins in (1, 5, 10, 15):
        conf = np.concatenate([rng.uniform(size=300), [0.0, 1.0, 0.3, 0.5, 0.7]])
        correct = rng.uniform(size=len(conf)) < conf
        assert calibration.expected_calibration_error(conf, correct, bins).ece == pytest.approx(
            _ece_loop(conf.tolist(), correct.tolist(), bins), abs=1e-12)


def test_choice_confidence_is_the_softmax_over_choices():
    answers = [_answer(("a", "b", "c"), 2, (math.log(0.2), math.log(0.3), math.log(0.5))),
               _answer(("a", "b"), 0, (-10.0, -10.0 + math.log(3.0)))]
    conf, correct = calibration.choice_confidence(answers)
    np.testing.assert_allclose(conf, [0.5, 0.75])
    np.testing.assert_array_equal(correct, [True, False])
    np.testing.assert_allclose(calibration.choice_probabilities([-1000.0, -1000.0]), [0.5, 0.5])


def test_selective_accuracy_by_hand():
    conf, correct = [0.9, 0.5, 0.9, 0.2, 0.7], [0, 1, 1, 1, 0]
    # most confident first, ties in example order: examples 0, 2, 4, 1, 3 -> correct 0, 1, 0, 1, 1
    assert calibration.selective_accuracy(conf, correct, 0.01) == 0.0  # at least one example: example 0
    assert calibration.selective_accuracy(conf, correct, 0.4) == 0.5
    assert calibration.selective_accuracy(conf, correct, 0.5) == pytest.approx(1 / 3)  # ceil(2.5) = 3
    curve = calibration.selective_curve(conf, correct, (0.2, 0.6, 1.0))
    assert curve.kept == (1, 3, 5)
    assert curve.selective == pytest.approx((0.0, 1 / 3, 0.6))
    assert curve.area == pytest.approx((0 + 0.5 + 1 / 3 + 0.5 + 0.6) / 5)
    assert curve.accuracy == 0.6
    assert calibration.kept(100, 0.07) == 7  # 0.07 * 100 = 7.000000000000001


# ---------------------------------------------------------------- scoring rules


def _answer(choices, gold, logprobs, n_tokens=(), unconditional=(), answer_context=()) -> ChoiceAnswer:
    return ChoiceAnswer(choices=tuple(choices), gold=gold, logprobs=tuple(logprobs), greedy=(False,) * len(choices),
                        n_tokens=tuple(n_tokens), prediction=int(np.argmax(logprobs)),
                        unconditional=tuple(unconditional), answer_context=tuple(answer_context))


def _sample(example_id: str, answer: ChoiceAnswer, seed: int = 0) -> Sample:
    return Sample(task="t", setting="ZS", k=0, k_used=0, seed=seed, example_id=example_id, demo_ids=(), prompt="",
                  answer=answer)


def _outcome(a: ChoiceAnswer) -> ChoiceOutcome:
    return ChoiceOutcome(a.choices, a.gold, a.logprobs, a.greedy, a.n_tokens, a.unconditional, 0, (), a.answer_context)


HAND = [  # (example, answer, the pick of each rule in Rule order)
    ("A", _answer(("éé", "abc"), 1, (-3.0, -4.0), (1, 4), (-1.0, -5.0), (-3.5, -3.0)), (0, 1, 0, 1, 1, 0)),
    ("B", _answer(("x", "yy", "zzz"), 2, (-1.0, -1.5, -2.4), (1, 1, 3), (-0.5, -3.0, -1.0), (-2.0, -1.0, -0.2)),
     (0, 1, 1, 2, 1, 0)),
    ("C", _answer(("p", "q"), 0, (-0.1, -0.2), (1, 1), (-0.1, -0.2), (0.0, -0.5)), (0, 0, 0, 0, 0, 1)),  # tie: first
]


def test_each_rule_picks_the_hand_computed_choice_and_scores_as_the_metric():
    for _, answer, picks in HAND:
        assert tuple(rules.pick(answer, r) for r in Rule) == picks
    atlas = rules.rule_atlas([_sample(e, a) for e, a, _ in HAND])
    assert atlas.rules == tuple(Rule) and atlas.missing == ()
    expected = {Rule.ACC: 1 / 3, Rule.ACC_NORM: 2 / 3, Rule.ACC_BYTES: 1 / 3, Rule.PER_TOKEN: 1.0,
                Rule.UNCONDITIONAL: 2 / 3, Rule.GPT3_CALIBRATED: 0.0}
    outcomes = [_outcome(a) for _, a, _ in HAND]
    for rule, value in expected.items():
        assert atlas.accuracy_of(rule) == pytest.approx(value)
        if rule is not Rule.ACC_BYTES:  # lm-eval's acc_bytes has no metric here
            assert METRICS[rule.value].score(outcomes)[1] == pytest.approx(value)


def test_flips_name_the_examples():
    atlas = rules.rule_atlas([_sample(e, a) for e, a, _ in HAND])
    flips = {(f.a, f.b): f for f in atlas.flips}
    assert len(flips) == 15
    to_token = flips[(Rule.ACC, Rule.PER_TOKEN)]
    assert (to_token.fixed, to_token.broken, to_token.changed, to_token.net) == ((("A", 0), ("B", 0)), (),
                                                                                   (("A", 0), ("B", 0)), 2)
    to_gpt3 = flips[(Rule.ACC, Rule.GPT3_CALIBRATED)]
    assert (to_gpt3.fixed, to_gpt3.broken, to_gpt3.changed) == ((), (("C", 0),), (("C", 0),))
    chars_bytes = flips[(Rule.ACC_NORM, Rule.ACC_BYTES)]  # "éé": 2 characters, 4 bytes
    assert (chars_bytes.fixed, chars_bytes.broken, chars_bytes.changed) == ((), (("A", 0),), (("A", 0),))


def test_rules_agree_with_every_metric_on_random_answers():
    rng = np.random.default_rng(12)
    alphabet = list("abcdefgh éü中")
    answers = []
    for _ in range(300):
        k = int(rng.integers(2, 6))
        choices = tuple("".join(rng.choice(alphabet, size=int(rng.integers(1, 9)))) for _ in range(k))
        answers.append(_answer(choices, int(rng.integers(k)), rng.normal(-8, 4, k), rng.integers(1, 6, k),
                               rng.normal(-8, 4, k), rng.normal(-8, 4, k)))
    atlas = rules.rule_atlas([_sample(str(i), a) for i, a in enumerate(answers)])
    for rule in Rule:
        if rule is Rule.ACC_BYTES:
            continue
        values = [METRICS[rule.value].per_example(_outcome(a))[0] for a in answers]
        mine = [float(rules.pick(a, rule) == a.gold) for a in answers]
        assert mine == values
        assert atlas.accuracy_of(rule) == pytest.approx(np.mean(values))
    assert atlas.accuracy_of(Rule.ACC_BYTES) != atlas.accuracy_of(Rule.ACC_NORM)  # multi-byte letters differ


def test_rules_without_inputs_are_left_out():
    bare = _answer(("a", "b"), 0, (-1.0, -2.0))
    atlas = rules.rule_atlas([_sample("x", bare), _sample("x", bare, seed=1)])
    assert atlas.rules == (Rule.ACC, Rule.ACC_NORM, Rule.ACC_BYTES)
    assert atlas.missing == (Rule.PER_TOKEN, Rule.UNCONDITIONAL, Rule.GPT3_CALIBRATED)
    assert atlas.n == 2


def test_paper_rules_come_from_the_existing_tables():
    assert rules.gpt3_rule("arc_challenge") is Rule.GPT3_CALIBRATED
    assert rules.gpt3_rule("openbookqa") is Rule.GPT3_CALIBRATED
    assert rules.gpt3_rule("race") is Rule.GPT3_CALIBRATED
    assert rules.gpt3_rule("hellaswag") is Rule.PER_TOKEN
    assert rules.gpt3_rule("piqa") is Rule.PER_TOKEN
    assert rules.gpt3_rule("boolq") is Rule.ACC
    assert rules.gpt3_rule("nq_open") is None  # generation: exact_match, no rule
    assert rules.gpt3_rule("multirc") is None  # exact match per question
    source = Source("s", "t", "p", "r", "n")
    assert rules.published_rule(Published(source, "m", (), "piqa", "acc_norm", "ZS", 0.6, None)) is Rule.ACC_NORM
    assert rules.published_rule(Published(source, "m", (), "wmt", "bleu", "ZS", 20.0, None)) is None
