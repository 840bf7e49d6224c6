"""Shot sweeps end to end, `harness report` merging runs of two models, `harness compare`, and their errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.records import Setting, Variant
from tests.helpers import run_cli


def test_prompt_plans_of_a_sweep():
    config = RunConfig(settings=(Setting.ZS, Setting.ONE_SHOT, Setting.FS), shots=(0, 1, 4), seeds=2)
    assert config.prompt_plans() == [Variant(Setting.ZS, 0, 0), Variant(Setting.ONE_SHOT, 1, 0),
                                     Variant(Setting.ONE_SHOT, 1, 1), Variant(Setting.FS, 1, 0),
                                     Variant(Setting.FS, 1, 1), Variant(Setting.FS, 4, 0), Variant(Setting.FS, 4, 1)]
    only_fs = RunConfig(settings=(Setting.FS,), shots=(0, 2), seeds=1)  # FS(0) is the zero-shot prompt: run as ZS
    assert only_fs.prompt_plans() == [Variant(Setting.ZS, 0, 0), Variant(Setting.FS, 2, 0)]


def test_sweep_caps_k_by_whole_demonstrations(task_env, tiny_gpt2_dir):
    """n_positions 128: eight toy demonstrations (~15 tokens each) cannot all fit; k_used says how many did."""
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s,fs", "--shots", "0,2,8", "--seeds", "2",
                   "--limit", "4", tasks=("toy_mc",)) == 0
    folder = task_env["root"] / "results" / "r"
    scores = pd.read_csv(folder / "scores.csv")
    acc = scores[scores.metric == "acc"]
    assert list(zip(acc.setting, acc.k, acc.seed)) == [("ZS", 0, 0), ("1S", 1, 0), ("1S", 1, 1), ("FS", 2, 0),
                                                      ("FS", 2, 1), ("FS", 8, 0), ("FS", 8, 1)]
    fs8 = acc[(acc.setting == "FS") & (acc.k == 8)]
    assert (fs8.k_used_mean < 8).all() and (fs8.k_used_mean >= 1).all()
    samples = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
    assert all(s["k_used"] == len(s["demo_ids"]) <= s["k"] for s in samples)
    report = (folder / "report.md").read_text()
    assert "| task | metric | n | ZS | 1S | FS(8) |" in report and "[k_used " in report and "## Shot sweep" in report
    assert (folder / "plots" / "sweep_toy_mc.png").stat().st_size > 1000
    # two seeds on real samples: the variance split by source, the rule atlas and calibration, each once
    assert all(report.count(h) == 1 for h in ("## Where the uncertainty comes from", "## Scoring rules",
                                              "## Calibration"))
    assert "| FS(8) | 4 × 2 |" in report
    assert (folder / "plots" / "reliability_toy_mc.png").stat().st_size > 1000


def test_report_merges_two_models_and_compare_shows_changes(task_env, tiny_gpt2_dir, capsys):
    common = ("--settings", "zs,1s,fs", "--shots", "2", "--limit", "6")
    assert run_cli(task_env, tiny_gpt2_dir, *common, tasks=("toy_mc", "toy_docs"), name="hf") == 0
    assert run_cli(task_env, f"reference:{tiny_gpt2_dir}", *common, "--seeds", "2", tasks=("toy_mc",), name="ref") == 0
    results, out = task_env["root"] / "results", task_env["root"] / "merged"
    capsys.readouterr()
    assert main(["report", str(results / "hf"), str(results / "ref"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert f"Models: A = {tiny_gpt2_dir}; B = reference:{tiny_gpt2_dir}" in md
    assert "| task | metric | n | A: ZS | A: 1S | A: FS(2) | B: ZS | B: 1S | B: FS(2) |" in md
    assert "| toy_docs | word_perplexity |" in md and "| n/a | n/a |" in md  # B did not run toy_docs
    assert "## Is the difference real?" in md and "mcnemar" in md
    # toy_docs: one ZS point, no curve
    assert {p.name for p in (out / "plots").iterdir()} == {"summary.png", "sweep_toy_mc.png", "reliability_toy_mc.png"}
    assert "\\begin{tabular}" in (out / "report.tex").read_text()
    assert "wrote" in capsys.readouterr().out

    assert main(["compare", str(results / "hf"), str(results / "ref")]) == 0
    text = capsys.readouterr().out
    assert "Models differ" in text and "run.json:" in text and "model.backend" in text
    assert "Only in A: toy_docs 1S(1), toy_docs FS(2), toy_docs ZS(0)" in text  # 1S, FS: n/a rows


def test_compare_a_run_with_itself_finds_nothing(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "3", tasks=("toy_mc",)) == 0
    run = task_env["root"] / "results" / "r"
    capsys.readouterr()
    assert main(["compare", str(run), str(run)]) == 0
    assert "Cells whose value changed: 0 of 4 shared, 0 beyond" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{root}/nope"], "nope: no such run folder"),
        (["report", "{root}"], "no scores.csv in this folder"),
        (["report", "{root}", "{root}"], "--out: give a folder for a report that merges several runs"),
        (["compare", "{root}/nope", "{root}"], "nope: no such run folder"),
    ],
)
def test_report_errors_are_one_line(tmp_path, capsys, args, message):
    code = main([a.format(root=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_merging_the_same_cells_twice_is_an_error(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "3", tasks=("toy_mc",)) == 0
    run = str(task_env["root"] / "results" / "r")
    capsys.readouterr()
    assert main(["report", run, run, "--out", str(task_env["root"] / "m")]) == 2
    assert "appears in more than one run" in capsys.readouterr().err
