"""Reports for the generative half, from hand-made frames and samples: GPT-3 Table H.1 cells (read from a
CSV outside the repository) as plausibility bands, the score-against-k and score-against-size figures, and
the examples whose prediction changed (HTML <details>, Markdown counts)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.reporting import gpt3
from harness.reporting.build import build_report, model_params
from harness.reporting.changes import Verdict, compare, find_changes
from harness.reporting.pages import render_html, render_markdown, write_report
from harness.reporting.runs import merge_runs, samples_frame
from harness.reporting.trends import kshot_figures, scale_figures, scale_points, shot_curves
from harness.tasks.kinds import read_sample
from tests.helpers import as_samples, band_frame, change_samples, generation_record, hand_csv, row, write_csv


# ---- Table H.1 ------------------------------------------------------------------------------------------


def test_the_shared_csv_maps_every_row_and_reads_the_provenance_spot_cells():
    folder = gpt3.resolve_published_dir()
    if folder is None:
        pytest.skip("no shared/published/gpt3_table_h1.csv beside the checkout")
    table = gpt3.load_table_h1(folder)
    assert len(table) == 1320  # 1512 printed cells less the unmapped rows (multi-bleu, SAT, average)
    cell = {(p.task, p.metric, p.setting, p.model): p.value for p in table}
    assert cell["hellaswag", "acc_per_token", "ZS", "GPT-3 Small (125M)"] == pytest.approx(0.337)
    assert cell["triviaqa", "exact_match", "FS(64)", "GPT-3 Medium (350M)"] == pytest.approx(0.163)
    assert cell["arithmetic_2da", "exact_match", "FS(50)", "GPT-3 175B (175B)"] == pytest.approx(1.0)
    assert cell["lambada_openai", "perplexity", "1S", "GPT-3 Small (125M)"] == pytest.approx(165.0)  # not a percent
    assert cell["wmt14-fr-en", "bleu", "ZS", "GPT-3 175B (175B)"] > 1  # BLEU stays in points
    assert cell["squadv2", "f1", "FS(16)", "GPT-3 175B (175B)"] > 1
    assert cell["race_middle", "acc_gpt3_calibrated", "ZS", "GPT-3 Small (125M)"] == pytest.approx(0.421)
    assert cell["multirc", "em", "ZS", "GPT-3 Small (125M)"] == pytest.approx(0.0472)  # the paper's MultiRC "acc"
    assert cell["multirc", "f1a", "ZS", "GPT-3 Small (125M)"] == pytest.approx(0.570)
    assert cell["wsc273", "acc_per_token", "ZS", "GPT-3 Small (125M)"] == pytest.approx(0.663)  # Winograd
    wanted = {"arithmetic_2da", "arithmetic_2ds", "arithmetic_3da", "arithmetic_3ds", "arithmetic_4da",
              "arithmetic_4ds", "arithmetic_5da", "arithmetic_5ds", "arithmetic_2dm", "arithmetic_1dc", "anagrams1",
              "anagrams2",
              "cycle_letters", "random_insertion", "reversed_words", "triviaqa", "nq_open", "squadv2", "wmt14-fr-en",
              "wmt14-en-fr", "wmt16-de-en", "wmt16-en-de"}
    assert wanted <= {p.task for p in table}
    for task in wanted:  # every size and every setting of every generative task
        here = [p for p in table if p.task == task]
        assert {p.params for p in here} == set(gpt3.SIZES.values())
        assert {p.setting.split("(")[0] for p in here} == {"ZS", "1S", "FS"}


def test_csv_errors_name_the_file_and_line(tmp_path):
    write_csv(tmp_path, ["Made Up Task,acc,dev,ZS,GPT-3 Small,125M,1.0,5,,"])
    with pytest.raises(HarnessError, match=r"gpt3_table_h1.csv:2: Table H.1 row 'Made Up Task' 'acc' is neither"):
        gpt3.load_table_h1(tmp_path)
    write_csv(tmp_path, ["TriviaQA,acc,dev,ZS,GPT-3 Small,125M,n/a,64,,"])
    with pytest.raises(HarnessError, match=r"gpt3_table_h1.csv:2: value 'n/a'"):
        gpt3.load_table_h1(tmp_path)
    (tmp_path / gpt3.CSV_NAME).write_text("task,metric\n")
    with pytest.raises(HarnessError, match="missing columns"):
        gpt3.load_table_h1(tmp_path)
    assert gpt3.load_table_h1(tmp_path / "absent") == () and gpt3.load_table_h1(None) == ()


def test_the_published_folder_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(gpt3.PUBLISHED_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(HarnessError, match=r"\$HARNESS_PUBLISHED_DIR=.*nope: not a directory"):
        gpt3.resolve_published_dir()
    with pytest.raises(HarnessError, match="--published-dir"):
        gpt3.resolve_published_dir(tmp_path / "nope")
    monkeypatch.setenv(gpt3.PUBLISHED_DIR_ENV, str(tmp_path))
    assert gpt3.resolve_published_dir() == tmp_path


def test_bands_replace_the_secondary_gpt3_numbers(tmp_path):
    hand_csv(tmp_path)
    report = build_report(band_frame(), None, "Bands", published_dir=tmp_path)
    bands = report.bands
    assert bands.groups == (("", 2), ("ZS", 4), ("1S", 4), ("FS", 4))
    assert bands.labels[:6] == ("task", "metric", "A", "B", "GPT-3 Small", "GPT-3 Medium")
    trivia = next(r for r in bands.rows if r[0] == "triviaqa")
    assert trivia[1] == "exact_match"  # H.1's acc sits on our exact_match (generation)
    assert trivia[2:6] == ("0.200", "0.300", "0.100", "0.200")  # percent printed, fractions shown; Large not in bands
    assert trivia[10:14] == ("0.280 (k=8)", "0.380 (k=8)", "0.120 (k=64)", "0.220 (k=64)")
    assert [r[0] for r in bands.rows] == ["lambada_openai", "triviaqa"]  # sst2 has no H.1 row
    # the stored secondary GPT-3 LAMBADA cells (published.toml) give way to the table's
    # (the hand-made table has no perplexity row, so those stay)
    assert {r[1] for r in report.published.rows if r[5] == "gpt3-tableH1-lambada"} == {"perplexity"}
    assert {s.id for s in report.sources} == {"gpt2-table3", "lm-eval-gpt2", "gpt3-tableH1-lambada"}
    assert len(report.table_h1) == 2 * 3 * 3  # every size for the scale figures
    md = render_markdown(report)
    assert "## GPT-3 plausibility bands (Table H.1)" in md and "- gpt3-tableH1: Brown et al. 2020" in md
    assert "| triviaqa | exact_match | 0.200 | 0.300 | 0.100 | 0.200 |" in md
    assert render_html(report).count("<table") == 4  # main, sweep (FS at k = 4 and 8), bands, published


def test_without_the_csv_the_report_has_no_bands(tmp_path):
    report = build_report(band_frame(), None, "No CSV", published_dir=tmp_path)
    assert report.bands is None and report.table_h1 == () and report.band_source is None
    assert any(r[5] == "gpt3-tableH1-lambada" for r in report.published.rows)  # the stored numbers stay
    assert "plausibility" not in render_markdown(report)


# ---- figures ----------------------------------------------------------------------------------------------


def sweep_frame() -> pd.DataFrame:
    """Word scramble and arithmetic tasks over k = 0, 1, 2, 4 with three seeds; sst2 only ZS and FS(4)."""
    rows = []
    for task, base in (("anagrams1", 0.1), ("reversed_words", 0.05), ("arithmetic_2da", 0.3)):
        rows.append(row("gpt2", task, "ZS", 0, 0, "exact_match", base))
        for seed in range(3):
            rows.append(row("gpt2", task, "1S", 1, seed, "exact_match", base + 0.01 * seed))
            for k in (1, 2, 4):
                rows.append(row("gpt2", task, "FS", k, seed, "exact_match", base + k / 100 + 0.02 * seed))
    rows += [row("gpt2", "sst2", "ZS", 0, 0, "acc", 0.5), row("gpt2", "sst2", "FS", 4, 0, "acc", 0.6)]
    return pd.DataFrame(rows)


def test_score_against_k_has_the_seed_spread_and_groups_word_scramble(tmp_path):
    report = build_report(sweep_frame(), None, "Sweep", published_dir=tmp_path)
    curves = shot_curves(report.cells)
    assert set(curves["task"]) == {"anagrams1", "reversed_words", "arithmetic_2da"}  # sst2 ran one FS k only
    ana = curves[curves["task"] == "anagrams1"].set_index("x")
    assert list(ana.index) == [0, 1, 2, 4]  # FS(1) stands for k = 1 (the same demonstrations as 1S)
    assert ana.loc[4, "value"] == pytest.approx(0.16) and ana.loc[4, "seed_min"] == pytest.approx(0.14)
    assert ana.loc[4, "seed_max"] == pytest.approx(0.18) and ana.loc[0, "seed_max"] == pytest.approx(0.1)
    assert dict(zip(curves["task"], curves["family"])) == {
        "anagrams1": "word_scramble", "reversed_words": "word_scramble", "arithmetic_2da": "arithmetic"}
    written = kshot_figures(report.cells, tmp_path / "plots")
    assert [p.name for p in written] == ["kshot_word_scramble_exact_match.png", "kshot_arithmetic_exact_match.png"]
    assert all(p.stat().st_size > 5000 for p in written)


def test_score_against_size_with_the_published_curve(tmp_path):
    hand_csv(tmp_path)
    frame = band_frame()
    models = {"gpt2": {"name": "gpt2", "parameters": 124_439_808}, "gpt2-medium": {"parameters": 354_823_168},
              "other": {"parameters": None}}
    assert model_params(models) == {"gpt2": 124_439_808.0, "gpt2-medium": 354_823_168.0}
    report = build_report(frame, None, "Scale", models=models, published_dir=tmp_path)
    points = scale_points(report.cells, report.params)
    fs = points[(points["task"] == "triviaqa") & (points["setting"] == "FS")]
    assert list(fs["params"]) == [124_439_808.0, 354_823_168.0] and list(fs["k"]) == [8, 8]  # largest k per model
    written = scale_figures(report.cells, report.params, report.table_h1, tmp_path / "plots")
    assert [p.name for p in written] == ["scale_triviaqa.png", "scale_lambada_openai.png", "scale_sst2.png"]
    # one size (or two runs of the same weights) is no curve
    assert scale_figures(report.cells, {"gpt2": 1e8, "gpt2-medium": 1e8}, report.table_h1, tmp_path / "p2") == []
    assert scale_figures(report.cells, {"gpt2": 1e8}, report.table_h1, tmp_path / "p3") == []


# ---- the examples behind a difference -----------------------------------------------------------------------


def test_changed_examples_between_zs_and_the_largest_fs():
    samples = samples_frame(as_samples(change_samples()), "gpt2")
    higher = {"acc": True, "acc_norm": True, "exact_match": True}
    piqa, trivia = find_changes(samples, higher)
    assert (piqa.task, piqa.a, piqa.b, piqa.metric, piqa.compared) == ("piqa", "ZS", "FS(4), seed 0", "acc", 30)
    assert piqa.counts == {Verdict.FIXED: 12, Verdict.BROKEN: 12, Verdict.OTHER: 0}
    assert len(piqa.shown) == 20  # capped, taken in turn: fixed, broken, fixed, ...
    assert [c.verdict for c in piqa.shown[:3]] == [Verdict.FIXED, Verdict.BROKEN, Verdict.FIXED]
    assert [c.example_id for c in piqa.shown[:2]] == ["validation-0", "validation-12"]
    fixed = [c.example_id for c in piqa.shown if c.verdict is Verdict.FIXED]
    assert fixed[:3] == ["validation-0", "validation-1", "validation-2"] and len(fixed) == 10  # natural order
    assert (piqa.shown[0].before, piqa.shown[0].after) == (0.0, 1.0)
    assert trivia.metric == "exact_match"  # bleu's per-example values are lists: not a primary metric
    assert trivia.counts == {Verdict.FIXED: 1, Verdict.BROKEN: 0, Verdict.OTHER: 1}
    assert [c.example_id for c in trivia.shown] == ["dev-0", "dev-1"]
    # a lower-is-better metric turns the verdict round
    a, b = ({"x": read_sample({"task": "t", "setting": "ZS", "k": 0, "example_id": "x", "generation": p,
                               "prediction": p, "references": ["v"], "metrics": {"loss": v}}, None)}
            for p, v in (("u", 1.0), ("w", 2.0)))
    assert compare("t", "A", "B", a, b, {"loss": False}).counts[Verdict.BROKEN] == 1
    assert compare("t", "A", "B", b, a, {"loss": False}).counts[Verdict.FIXED] == 1
    assert find_changes(samples.drop(columns=["sample"]), higher) == ()  # hand-made frames without records


def test_changed_examples_between_two_models_and_their_pages(tmp_path):
    other = [dict(r, metrics=dict(r["metrics"])) for r in change_samples() if r["setting"] == "ZS"]
    for r in other:
        if r["task"] == "piqa" and r["example_id"] in ("validation-0", "validation-29"):
            r.update(prediction=1, metrics={"acc": float(r["gold"] == 1), "acc_norm": float(r["gold"] == 1)})
    samples = pd.concat([samples_frame(as_samples(change_samples()), "gpt2"), samples_frame(as_samples(other), "tiny")],
                        ignore_index=True)
    frame = pd.DataFrame([row(m, t, s, k, seed, metric, 0.5) for m in ("gpt2", "tiny")
                          for t, metric in (("piqa", "acc"), ("triviaqa", "exact_match"))
                          for s, k, seed in (("ZS", 0, 0), ("FS", 4, 0), ("FS", 4, 1))])
    report = build_report(frame, samples, "Changes", published_dir=tmp_path)
    models = [(c.task, c.a, c.b, c.counts[Verdict.FIXED], c.counts[Verdict.BROKEN]) for c in report.changes]
    assert ("piqa", "gpt2 ZS", "tiny ZS", 1, 1) in models  # 0 fixed (gold 1), 29 broken (gold 0)
    assert ("piqa", "gpt2 ZS", "gpt2 FS(4), seed 0", 12, 12) in models
    md = render_markdown(report)
    assert "## Examples behind a difference" in md
    assert "| piqa | gpt2 ZS → gpt2 FS(4), seed 0 | acc | 30 | 24 | 12 | 12 | 0 |" in md
    page = render_html(report)
    assert "<script" not in page
    assert page.count('<details class="comparison">') == sum(bool(c.shown) for c in report.changes) == 3
    assert page.count('<details class="example">') == sum(len(c.shown) for c in report.changes)
    assert "Question 0 &lt;b&gt;&amp;&lt;/b&gt;?" in page and "<b>&</b>" not in page  # prompts are escaped
    assert "<td>right</td><td>-1</td><td>gold chosen</td>" in page  # choices' scores, gold and chosen marked
    assert "<p>references:</p><ul><li>Paris</li></ul>" in page and "<pre>Nice</pre>" in page
    assert "details.example" in page.split("</style>")[0]


def test_run_folders_carry_their_samples_to_the_report(tmp_path):
    """samples.jsonl and run.json through load_run: the changed examples and the size figures appear."""
    folders = []
    for name, params, shift in (("small", 124e6, 0), ("medium", 355e6, 1)):
        folder = tmp_path / name
        folder.mkdir()
        records = [generation_record("ZS", 0, 0, i, "Lyon") for i in range(3)]
        records += [generation_record("FS", 4, 0, i, "Paris" if i < 1 + shift else "Lyon") for i in range(3)]
        pd.DataFrame([row(name, "triviaqa", s, k, 0, "exact_match", v) for s, k, v in
                      (("ZS", 0, 0.0), ("FS", 4, (1 + shift) / 3))]).to_csv(folder / "scores.csv", index=False)
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (folder / "run.json").write_text(json.dumps({"model": {"name": name, "parameters": params}}))
        folders.append(folder)
    frame, samples, runs = merge_runs(folders)
    models = {r.manifest["model"]["name"]: r.manifest["model"] for r in runs}
    out = tmp_path / "report"
    written = write_report(out, frame, samples, "Two sizes", models=models, published_dir=tmp_path)
    assert {p.name for p in written} >= {"scale_triviaqa.png", "report.html"}
    page = (out / "report.html").read_text()
    assert "small ZS → small FS(4)" in page and "medium ZS → medium FS(4)" in page
    assert not math.isnan(frame["value"].sum())
