"""The report's analysis wired in, on hand-made samples (tests/analysis_data.py): Holm's correction and the minimum
detectable difference of every paired test, direction words for lower-is-better metrics, and the sections on where
the uncertainty comes from, scoring rules and calibration, each number against an independent computation."""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import multitest

from harness.reporting import calibration, power, significance, variance
from harness.reporting.build import build_report
from harness.reporting.diagnostics import TOP, diagnose
from harness.reporting.pages import render_latex, render_markdown, terminal_summary
from harness.reporting.plots import counts_label
from harness.reporting.rules import Rule
from harness.reporting.tables import fmt, signed
from harness.samples import GenerationAnswer, Sample
from tests.analysis_data import analysis_inputs, generation_sample
from tests.helpers import row, synthetic_frame, synthetic_samples

SECTIONS = ("## Where the uncertainty comes from", "## Scoring rules", "## Calibration")


@pytest.fixture(autouse=True)
def no_table_h1(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_PUBLISHED_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def built():
    frame, samples, records = analysis_inputs()
    return build_report(frame, samples, "Analysis"), samples, records


def _column(grid, label: str) -> list[str]:
    return [r[grid.labels.index(label)] for r in grid.rows]


def test_holm_column_equals_statsmodels(built, monkeypatch):
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # multipletests collects garbage on every call: slow
    report = built[0]
    reject, expected, _, _ = multitest.multipletests(report.paired["p_value"], alpha=significance.ALPHA,
                                                     method="holm")
    np.testing.assert_allclose(report.paired["p_holm"], expected, rtol=0, atol=1e-12)
    assert list(report.paired["significant_holm"]) == list(reject)
    assert sum(reject) < report.paired["significant"].sum()  # the correction changed a conclusion here
    assert _column(report.significance, "p (Holm)") == [f"{p:.3g}" for p in expected]
    between = significance.model_comparisons(synthetic_samples())  # gpt2 against tiny: its own family
    np.testing.assert_allclose(between["p_holm"], multitest.multipletests(between["p_value"], method="holm")[1])


def _paired_columns(samples: pd.DataFrame, metric: str, setting: str, k: int, task: str):
    """ZS and the setting's per-example values (n, m) (seed means; m = 2 for BLEU's sums), examples in both."""
    here = samples[(samples["metric"] == metric) & (samples["task"] == task)]

    def by_id(rows):
        wide = pd.DataFrame([np.atleast_1d(v).astype(float) for v in rows["value"]], index=rows["example_id"])
        return wide.groupby(level=0).mean()

    zs = by_id(here[here["setting"] == "ZS"])
    other = by_id(here[(here["setting"] == setting) & (here["k"] == k)])
    common = zs.index.intersection(other.index)
    return zs.loc[common].to_numpy(), other.loc[common].to_numpy()


def test_mdd_column_equals_the_power_functions(built):
    report, samples, _ = built
    for i, r in enumerate(report.paired.to_dict("records")):
        a, b = _paired_columns(samples, r["metric"], r["setting"], r["k"], r["task"])
        if r["test"] == "mcnemar":
            expected = power.paired_proportions_mdd(a[:, 0], b[:, 0])
        else:
            aggregate = significance._aggregate_of(r["metric"])
            draws = significance.paired_bootstrap(a, b, aggregate)
            expected = power.mdd_from_stderr(float(np.std(draws, ddof=1)))
        assert r["mdd"] == pytest.approx(expected, rel=1e-12), r
        shown = report.significance.rows[i][report.significance.labels.index("MDD")]
        assert shown == fmt(expected, r["delta"] if abs(r["delta"]) >= 10 else None)
    assert {"mcnemar", "bootstrap"} <= set(report.paired["test"])


def _per_example(metric: str, values_by_setting: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "task": "t", "setting": s, "k": k, "seed": 0, "example_id": f"e{i}",
                          "metric": metric, "value": float(v)}
                         for (s, k), values in values_by_setting.items() for i, v in enumerate(values)])


def _frame(metric: str, samples: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([row("m", "t", s, int(k), 0, metric, 1.0) | {"higher_is_better": metric != "perplexity"}
                         for s, k in samples[["setting", "k"]].drop_duplicates().itertuples(index=False)])


@pytest.mark.parametrize(("metric", "shift", "word"), [("perplexity", -0.5, "worse"), ("perplexity", +0.5, "better"),
                                                        ("acc", None, "better")])
def test_direction_words_follow_the_metric(metric, shift, word):
    rng = np.random.default_rng(0)
    if shift is None:  # 25 of 40 examples fixed, none broken
        zs = np.array([1.0] * 10 + [0.0] * 30)
        other = np.array([1.0] * 35 + [0.0] * 5)
    else:  # log-likelihoods: lower is a higher perplexity, so -0.5 is worse
        zs = rng.normal(-3.0, 1.0, 40)
        other = zs + shift + 0.05 * rng.normal(size=40)
    samples = _per_example(metric, {("ZS", 0): zs, ("1S", 1): other})
    report = build_report(_frame(metric, samples), samples, "Direction")
    r = report.paired.iloc[0]
    assert r["direction"] == word and bool(r["significant_holm"])
    assert (r["delta"] > 0) == (word == "worse" if metric == "perplexity" else word == "better")
    assert report.findings[0].startswith(f"m, t: 1S − ZS = {signed(r['delta'])} {metric} ({word}; 95% CI")
    assert _column(report.significance, "reading") == [word]
    quiet = _per_example(metric, {("ZS", 0): zs, ("1S", 1): zs[::-1]})  # the same values, shuffled: nothing to see
    r = build_report(_frame(metric, quiet), quiet, "Quiet").paired.iloc[0]
    assert r["direction"] == "no detectable difference" and r["mdd"] > 0


def test_summary_lines_name_holm_and_the_mdds(built):
    report = built[0]
    md = render_markdown(report)
    m = len(report.paired)
    assert f"{m} paired comparisons against ZS, with Holm's correction across all {m}" in md
    quiet = report.paired[~report.paired["significant_holm"] & (report.paired["mdd"] > 0)]
    acc = quiet[quiet["metric"] == "acc"]["mdd"]
    assert f"piqa acc ±{fmt(acc.min())} to ±{fmt(acc.max())}" in md
    assert "Not detectable (9): these tests could not have seen a true difference smaller than their MDD" in md
    assert "+13.4 perplexity (worse; 95% CI [+9.5, +19.1]" in md
    assert "p (Holm): Holm's step-down adjustment" in md and "MDD: the minimum detectable difference" in md
    text = terminal_summary(report)
    lines = [line for line in text.splitlines() if "Holm" in line and not line.startswith("- ")]
    assert len(text.splitlines()) < 30 and len(lines) == 2  # the cell legend and one summary line
    assert not any(s in text for s in SECTIONS) and not any(w in text for w in ("Not detectable", "ECE", "acc_bytes"))


def test_summary_figure_counts_better_and_worse():
    d = pd.DataFrame({"delta": [0.2, -0.1, 0.05], "significant": [True, True, False]})
    assert counts_label(d) == "1 better, 1 worse of 3"


def _matrix(samples: pd.DataFrame, metric: str, setting: str, k: int) -> pd.DataFrame:
    rows = samples[(samples["metric"] == metric) & (samples["setting"] == setting) & (samples["k"] == k)]
    return rows.assign(value=rows["value"].astype(float)).pivot(index="example_id", columns="seed", values="value")


def test_the_uncertainty_section_needs_two_seeds(built):
    report, samples, _ = built
    splits = report.diagnostics.uncertainty
    assert [(s.cell.task, s.metric, s.cell.label) for s in splits] == [
        ("piqa", m, "FS(2)") for m in ("acc", "acc_norm", "acc_per_token", "acc_calibrated")]
    for s in splits:
        y = _matrix(samples, s.metric, "FS", 2)
        zs = _matrix(samples, s.metric, "ZS", 0)[0].loc[y.index]
        assert s.anova == variance.anova_split(y.to_numpy()) and s.bootstrap == variance.bootstrap_split(y.to_numpy())
        assert s.vs_zs_anova == variance.difference_anova(y.to_numpy(), zs.to_numpy())
        assert s.vs_zs_bootstrap == variance.difference_bootstrap(y.to_numpy(), zs.to_numpy())
        cell = report.cells[(report.cells["metric"] == s.metric) & (report.cells["setting"] == "FS")]
        assert s.anova.mean == pytest.approx(float(cell["value"].iloc[0]))  # the scores table's cell
    md = render_markdown(report)
    assert "## Where the uncertainty comes from\n\nHow to read it:" in md
    assert "| piqa | acc | gpt2 | FS(2) | 40 × 3 |" in md
    assert "'Where the uncertainty comes from' in report.md splits the two" in md  # σ_seed points to it
    tex = render_latex(report)
    assert "draw share (ANOVA / bootstrap)" in tex and r"40 $\times$ 3" in tex and "acc\\_per\\_token" in tex

    frame, one_seed, _ = analysis_inputs(seeds=(0,))
    single = build_report(frame, one_seed, "One seed")
    assert single.diagnostics.uncertainty == ()
    md = render_markdown(single)
    assert SECTIONS[0] not in md and "splits the two" not in md and SECTIONS[1] in md
    bare = build_report(synthetic_frame(), None, "No samples")
    assert bare.diagnostics is None and not any(s in render_markdown(bare) for s in SECTIONS)


def test_rule_atlas_accuracies_equal_the_metric_columns(built):
    report, samples, _ = built
    atlases = report.diagnostics.atlases
    assert [c.cell.label for c in atlases] == ["ZS", "1S", "FS(2)"]
    for c in atlases:
        here = samples[(samples["task"] == "piqa") & (samples["setting"] == c.cell.setting)
                       & (samples["k"] == c.cell.k)]
        assert c.atlas.rules == (Rule.ACC, Rule.ACC_NORM, Rule.ACC_BYTES, Rule.PER_TOKEN, Rule.UNCONDITIONAL)
        assert c.atlas.missing == (Rule.GPT3_CALIBRATED,) and c.paper is Rule.PER_TOKEN  # GPT-3's piqa rule
        for rule in (Rule.ACC, Rule.ACC_NORM, Rule.PER_TOKEN, Rule.UNCONDITIONAL):
            metric = here[here["metric"] == rule.value]
            assert c.atlas.accuracy_of(rule) == pytest.approx(metric["value"].astype(float).mean())
            cell = report.cells[(report.cells["metric"] == rule.value) & (report.cells["setting"] == c.cell.setting)]
            assert c.atlas.accuracy_of(rule) == pytest.approx(float(cell["value"].iloc[0]))
        wide = here.pivot_table(index=["example_id", "seed"], columns="metric", values="value")
        flip = next(f for f in c.atlas.flips if (f.a, f.b) == (Rule.ACC, Rule.ACC_NORM))
        assert len(flip.fixed) == int(((wide["acc"] == 0) & (wide["acc_norm"] == 1)).sum())
        assert len(flip.broken) == int(((wide["acc"] == 1) & (wide["acc_norm"] == 0)).sum())
        assert flip.fixed and flip.broken
    grid_row = next(r for r in render_markdown(report).splitlines() if r.startswith("| piqa | gpt2 | FS(2) | 40 × 3 |"))
    fs = atlases[2]
    flip = next(f for f in fs.atlas.flips if (f.a, f.b) == (Rule.ACC, Rule.ACC_NORM))
    assert f"| {fmt(fs.atlas.accuracy_of(Rule.ACC_NORM))} (+{len(flip.fixed)}/−{len(flip.broken)}) |" in grid_row
    assert grid_row.endswith("| acc_per_token |")


def test_ece_equals_the_calibration_function_on_the_same_samples(built):
    report, _, records = built
    for c in report.diagnostics.reliability:
        rs = [r for r in records if (r.task, r.setting, r.k) == (c.cell.task, c.cell.setting, c.cell.k)]
        lp = np.array([r.answer.logprobs for r in rs])  # (n, 2)
        confidence = np.exp(lp).max(axis=1) / np.exp(lp).sum(axis=1)
        correct = np.array([r.metrics["acc"] for r in rs])
        expected = calibration.expected_calibration_error(confidence, correct)
        assert c.reliability.ece == pytest.approx(expected.ece) and c.reliability.count == expected.count
        assert c.accuracy == pytest.approx(correct.mean()) and len(rs) == c.reliability.n
    row_fs = f"| piqa | gpt2 | FS(2) | 120 | {fmt(report.diagnostics.reliability[2].accuracy)} |"
    assert row_fs in render_markdown(report)


def _gen(i: int, right: bool, logprob: float | None) -> Sample:
    return generation_sample("ZS", 0, i, right, logprob)


def test_selective_accuracy_ranks_by_logprob_and_missing_ones_last():
    # the two answers without a log-probability are right: ranked first (None read as 0 or +inf), top 10% would be 1
    records = [_gen(0, True, None), _gen(1, True, None), _gen(2, False, -0.5)]
    records += [_gen(i, i % 2 == 0, -1.0 - i) for i in range(3, 10)]
    from harness.reporting.runs import samples_frame

    found = diagnose(samples_frame(records, "m")).selective
    assert len(found) == 1 and found[0].metric == "exact_match" and found[0].scored == 8
    ranked = sorted(range(10), key=lambda i: (records[i].answer.logprob is None, -(records[i].answer.logprob or 0)))
    right = [records[i].metrics["exact_match"] for i in ranked]
    for q, got in zip(TOP, found[0].top, strict=True):
        assert got == pytest.approx(np.mean(right[: math.ceil(q * 10)]))
    assert found[0].top[:2] == (0.0, 0.0)  # the most confident answer (-0.5) is wrong
    confidence = np.array([np.nan if r.answer.logprob is None else r.answer.logprob for r in records])
    correct = np.array([r.metrics["exact_match"] for r in records])
    assert found[0].top == tuple(calibration.selective_accuracy(confidence, correct, q) for q in TOP)
    assert isinstance(records[0].answer, GenerationAnswer)


def test_selective_numbers_in_the_report_equal_the_calibration_functions(built):
    report, _, records = built
    cells = report.diagnostics.selective
    assert [(c.cell.task, c.cell.label) for c in cells] == [("nq_open", "ZS"), ("nq_open", "FS(2)")]
    md = render_markdown(report)
    for c in cells:
        rs = [r for r in records if (r.task, r.setting) == ("nq_open", c.cell.setting)]
        confidence = np.array([np.nan if r.answer.logprob is None else r.answer.logprob for r in rs])
        correct = np.array([r.metrics["exact_match"] for r in rs])
        expected = calibration.selective_curve(confidence, correct, (0.01, 0.1, 0.5, 1.0))
        assert c.top == expected.selective[:3] and c.curve.accuracy == expected.accuracy
        assert (f"| {fmt(c.top[0])} (1) | {fmt(c.top[1])} (5) | {fmt(c.top[2])} (25) |" in md)
    assert "## Calibration\n\nHow to read it:" in md and "63.1%" in md


def test_empty_sections_leave_no_heading():
    frame = synthetic_frame()
    md = render_markdown(build_report(frame, synthetic_samples(), "No records"))  # values only, no sample records
    assert not any(s in md for s in SECTIONS)


def test_a_single_cell_per_task_gets_its_tables_but_no_figure(tmp_path):
    """Zero-shot alone: the calibration numbers are in the tables; a figure would import matplotlib for one line."""
    from harness.reporting.pages import write_report

    frame, samples, _ = analysis_inputs(seeds=(0,))
    zs = samples[samples["setting"] == "ZS"]
    written = write_report(tmp_path, frame[frame["setting"] == "ZS"], zs, "ZS only")
    assert [p.name for p in written] == ["report.md", "report.tex", "report.html"]
    md = (tmp_path / "report.md").read_text()
    assert "## Calibration" in md and "## Scoring rules" in md and "| nq_open | gpt2 | ZS | exact_match |" in md
    full = write_report(tmp_path / "full", *analysis_inputs()[:2], "All")
    assert {"reliability_piqa.png", "selective_nq_open.png"} <= {p.name for p in full}
