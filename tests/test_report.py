"""Reports from synthetic long tables: Table H.1 layout, FT rows, n/a cells with reasons, older tables
without `note`, seeds, k_used, published numbers, and the three renderings carrying the same numbers."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import harness.reporting
from harness.reporting.build import build_report
from harness.reporting.grid import Grid, latex_escape, markdown
from harness.reporting.pages import render_latex, render_markdown, write_report
from harness.reporting.published import for_cell, load_published
from harness.lineage import Lineage, OverlapFound, TrainUse
from harness.samples import ClozeAnswer, Sample
from tests.helpers import synthetic_frame, synthetic_samples


@pytest.fixture(autouse=True)
def no_table_h1(tmp_path, monkeypatch):
    """These reports are pinned without the GPT-3 Table H.1 CSV (tests/test_report_generative.py has it)."""
    monkeypatch.setenv("HARNESS_PUBLISHED_DIR", str(tmp_path))


def test_table_h1_layout_with_ft_na_and_seeds():
    report = build_report(synthetic_frame(), synthetic_samples(), "Synthetic")
    grid = report.main
    assert grid.groups == (("", 3), ("A", 5), ("B", 4))  # gpt2 has a 'published' column, tiny none
    assert grid.labels == ("task", "metric", "n", "ZS", "1S", "FS(4)", "FT", "published", "ZS", "1S", "FS(4)", "FT")
    assert report.legend == {"A": "gpt2", "B": "tiny"}
    piqa = next(r for r in grid.rows if r[0] == "piqa")
    assert piqa[3] == "0.500 ± 0.050"
    assert piqa[4].startswith("0.530 ± 0.050 σ_seed 0.014") and piqa[4].endswith("Δ +0.030")  # mean of .52, .54
    assert "[k_used 3.5]" in piqa[5] and "Δ +0.120" in piqa[5]  # FS(4): mean of .60, .64 against .50
    assert piqa[6] == "0.700 ± 0.050 Δ +0.200*"  # FT: 20 of 40 fixed, McNemar p = 2/2^20
    wiki = next(r for r in grid.rows if r[0] == "wikitext2")
    assert wiki[4] == "n/a (no demonstrations for perplexity tasks)" and wiki[6] == "n/a (no train split)"
    assert "29.41 (GPT-2 117M, gpt2-table3)" in wiki[7]
    # the paired test reads the per-example samples (FT right on all 40, ZS on 20): one finding per model
    assert [f.split("; 95% CI")[0] for f in report.findings] == ["gpt2, piqa: FT − ZS = +0.500 acc (better",
                                                                  "tiny, piqa: FT − ZS = +0.500 acc (better"]
    # 2 / 2**20, and Holm's x 4 across the report's four tests against ZS (two 1S, two FT)
    assert all("p = 1.91e-06, Holm p = 7.63e-06, mcnemar, n = 40" in f for f in report.findings)


def test_renderings_carry_the_same_numbers(tmp_path):
    report = build_report(synthetic_frame(), synthetic_samples(), "Synthetic_report & co")
    md = render_markdown(report)
    assert "| task | metric | n | A: ZS | A: 1S | A: FS(4) | A: FT | A: published | B: ZS |" in md
    assert "n/a (no train split)" in md and "## Shot sweep" in md
    assert ("4 paired comparisons against ZS, with Holm's correction across all 4 (the chance of any false finding "
            "among them stays below 0.05): 2 significant after it:") in md
    tex = render_latex(report)
    assert r"\toprule" in tex and r"\cmidrule(lr){4-8}" in tex and r"\multicolumn{5}{c}{A}" in tex
    assert r"0.700 $\pm$ 0.050 $\Delta$ +0.200*" in tex and r"\textbf{" in tex  # significant cell in bold
    written = write_report(tmp_path, synthetic_frame(), synthetic_samples(), "Synthetic")
    assert {p.name for p in written} >= {"report.md", "report.tex", "report.html", "summary.png", "sweep_piqa.png"}
    page = (tmp_path / "report.html").read_text()
    assert page.count("<table") == 5 and page.count('src="data:image/png;base64,') == len(written) - 3
    assert "<script" not in page and "http://" not in page.split("<h2>Published")[0]
    assert 'class="sig">0.700 ± 0.050 Δ +0.200*' in page


def test_older_scores_without_note_and_without_samples():
    old = synthetic_frame().drop(columns=["note"])
    old = old[old["value"].notna()]
    report = build_report(old, None, "Old")
    md = render_markdown(report)
    assert "Paired tests: not available" in md and "No samples.jsonl" in md
    assert "*" not in "".join(c for r in report.main.rows for c in r)  # no significance marks without samples


def test_published_numbers_load_and_match():
    numbers = load_published()
    assert {p.source.id for p in numbers} == {"gpt2-table3", "gpt3-tableH1-lambada", "lm-eval-gpt2"}
    hit = for_cell("gpt2", "lambada_openai", "acc_last_token", numbers)
    assert [(p.model, p.value) for p in hit] == [("GPT-2 117M", pytest.approx(0.4599))]
    assert for_cell("reference:gpt2", "lambada_openai", "perplexity", numbers)  # same weights, our decoder
    assert not for_cell("smollm2-135m", "lambada_openai", "perplexity", numbers)
    assert all(p.source.read_at and p.source.notes for p in numbers)  # every number says where it was read


def test_published_file_errors_name_the_key(tmp_path):
    from harness.errors import HarnessError

    bad = tmp_path / "p.toml"
    bad.write_text('[[source]]\nid = "s"\n[[number]]\nsource = "s"\nmodel = "m"\ntask = "t"\nvalues = { acc = 1 }\n'
                   'unit = "x"\n')
    with pytest.raises(HarnessError, match=r"p.toml: number\[0\]: unknown keys \['unit'\]"):
        load_published(bad)


def test_latex_escaping_and_markdown_pipes():
    assert latex_escape("acc_norm 50% & $x ± 0.1 Δ") == r"acc\_norm 50\% \& \$x $\pm$ 0.1 $\Delta$"
    assert markdown(Grid(("a", "b"), (("x|y", "1"),))).splitlines()[-1] == r"| x\|y | 1 |"
    with pytest.raises(AssertionError):
        Grid(("a", "b"), (("only one",),))


def test_ft_lineage_notes_are_formatted_from_the_lineage_record():
    train = TrainUse(split="train", source="data/toy", sha256="0" * 64, available=20, used=12, example_ids=())
    overlap = OverlapFound(eval_split="validation", eval_examples=10, checked="exact and 13-gram", found=2,
                           action="dropped", hits=())
    lineage = Lineage(identity={}, created="", base_model={}, task={}, train=train, overlap=overlap, steps=3,
                      answer_tokens=6, loss=(0.2, 0.15, 0.12345), final_loss=0.12345, seconds=4.4, model="ft/piqa")
    report = build_report(synthetic_frame(), None, "FT", finetune={"gpt2": {"piqa": lineage}})
    assert report.notes[-1] == ("FT checkpoint of gpt2, piqa: 12 of 20 train examples, 3 steps, final loss 0.123, "
                                "4 s; 2 overlapping the eval split (dropped) (lineage in run.json)")


def _harness_imports(path: Path) -> set[str]:
    """Every harness module `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] == "harness"}


def test_reporting_imports_go_one_way_and_never_reach_training():
    folder = Path(harness.reporting.__file__).parent
    graph = {f"harness.reporting.{p.stem}": _harness_imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    assert not any(n.startswith("harness.train") for names in graph.values() for n in names)
    assert "harness.reporting.pages" not in graph["harness.reporting.build"]
    order = list(graphlib.TopologicalSorter({m: names & graph.keys() for m, names in graph.items()}).static_order())
    # static_order raises graphlib.CycleError on an import circle
    assert order.index("harness.reporting.build") < order.index("harness.reporting.pages")


def _cloze_sample(prompt: str, truncated: int) -> Sample:
    answer = ClozeAnswer(target=" x", logprob=-1.0, is_greedy=True, last_token_greedy=True, n_tokens=1,
                         truncated=truncated)
    return Sample(task="piqa", setting="ZS", k=0, k_used=0, seed=0, example_id="e", demo_ids=(), prompt=prompt,
                  answer=answer)


def test_truncated_inputs_are_counted_and_described_in_md_and_html(tmp_path):
    """Per task and setting: how many examples were cut, how many tokens, and the start of the most-cut prompt."""
    frame = synthetic_frame()
    frame.loc[(frame.model == "gpt2") & (frame.setting == "ZS") & (frame.task == "piqa"), "n_truncated"] = 2
    samples = synthetic_samples()
    cut = {"validation-3": 7, "validation-5": 12}
    samples["sample"] = [_cloze_sample(f"Goal: {e}\nAnswer:", cut.get(e, 0) if (m, s) == ("gpt2", "ZS") else 0)
                         for m, s, e in zip(samples.model, samples.setting, samples.example_id, strict=True)]
    expected = ("Truncated inputs: gpt2 piqa ZS: 2 of 40 examples were longer than the model's context and lost the "
                "start of their prompt; tokens cut per example: max 12, mean 9.5; the most-cut prompt, "
                "whose first 12 tokens were dropped, began "
                "“Goal: validation-5\\nAnswer:”")
    written = write_report(tmp_path, frame, samples, "Truncated")
    assert (expected in (tmp_path / "report.md").read_text()
            and {"report.md", "report.html"} <= {p.name for p in written})
    assert "Truncated inputs: gpt2 piqa ZS: 2 of 40 examples" in (tmp_path / "report.html").read_text()
    assert not any("tiny piqa" in n for n in build_report(frame, samples).notes if n.startswith("Truncated"))
