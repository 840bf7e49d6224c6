"""`harness run --overlap DIR` and the report's Contamination section: a study made by `harness overlap` marks some
toy examples dirty; the dirty and clean cells equal the metric computed by hand on those examples (accuracy from
the log-likelihoods, perplexity from the target log-probabilities), the "all" cells equal scores.csv, scores.csv
is what a run without --overlap writes; the section shows the counts and clean %, and `harness report` rebuilds
it from the run folder; a missing or garbled study is one line naming the file. The must-hold test: a reference
decoder pretrained for seconds on tinyshakespeare with planted documents scores the dirty ones far better, and the
section's permutation test says so."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.metrics import METRICS
from harness.reporting.contamination import TITLE, compared_scale, permutation_test
from tests.conftest import CLOZE_ROWS, MC_ROWS, SHARED_DATA, write_jsonl
from tests.helpers import assert_clean_failure, run_cli

MC_DIRTY = ("validation-1", "validation-4", "validation-7", "validation-10")
CLOZE_DIRTY = ("test-2", "test-5")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def mc_text(i: int) -> str:
    r = MC_ROWS[i]
    return f"Question: {r['goal']}\nAnswer: {r['sol1' if r['label'] == 0 else 'sol2']}"


@pytest.fixture()
def study(task_env, tmp_path) -> Path:
    """toy_mc and toy_cloze (not toy_docs) against a corpus holding 4 toy_mc and 2 toy_cloze examples."""
    planted = [mc_text(int(i.split("-")[1])) for i in MC_DIRTY]
    planted += [CLOZE_ROWS[int(i.split("-")[1])]["text"].upper() for i in CLOZE_DIRTY]  # case does not matter
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Some unrelated text.\n" + "\n".join(planted) + "\nmore text, goal number 99\n")
    out = tmp_path / "study"
    tasks = ",".join(str(task_env["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze"))
    assert main(["overlap", "--corpus", str(corpus), "--tasks", tasks, "--out", str(out),
                 "--data-dir", str(task_env["data"])]) == 0
    dirty = {(r["task"], r["example_id"]) for r in read_rows(out / "overlap.csv") if r["dirty"] == "1"}
    assert dirty == {("toy_mc", i) for i in MC_DIRTY} | {("toy_cloze", i) for i in CLOZE_DIRTY}
    return out


def by_hand(sample: dict, metric: str) -> float:
    """A per-example value from the raw log-likelihoods of samples.jsonl, not from its metrics."""
    if metric == "acc" and "logprobs" in sample:
        return float(int(np.argmax(sample["logprobs"])) == sample["gold"])
    if metric == "acc_norm":
        lengths = [len(c) for c in sample["choices"]]
        return float(int(np.argmax(np.array(sample["logprobs"]) / lengths)) == sample["gold"])
    if metric == "acc":
        return float(sample["is_greedy"])
    raise AssertionError(metric)


def test_overlap_run_scores_dirty_and_clean_examples_as_by_hand(task_env, tiny_gpt2_dir, study, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--overlap", str(study)) == 0
    err = capsys.readouterr().err
    assert "does not cover toy_docs" in err
    folder = task_env["root"] / "results" / "r"
    rows = read_rows(folder / "contamination.csv")
    cells = {(r["task"], r["setting"], r["metric"], r["subset"]): r for r in rows}
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows} == {"toy_mc", "toy_cloze"}  # toy_docs is not covered: no rows
    for task, dirty_ids, total in (("toy_mc", MC_DIRTY, 12), ("toy_cloze", CLOZE_DIRTY, 8)):
        for setting in ("ZS", "1S") if task == "toy_mc" else ("ZS",):
            group = [s for s in samples if s["task"] == task and s["setting"] == setting]
            dirty = [s for s in group if s["example_id"] in dirty_ids]
            clean = [s for s in group if s["example_id"] not in dirty_ids]
            assert len(dirty) == len(dirty_ids) and len(clean) == total - len(dirty_ids)
            hand = ["acc", "acc_norm"] if task == "toy_mc" else ["acc"]
            for metric in hand:
                for subset, members in (("dirty", dirty), ("clean", clean)):
                    values = [by_hand(s, metric) for s in members]
                    cell = cells[(task, setting, metric, subset)]
                    assert int(cell["n"]) == len(members)
                    assert float(cell["value"]) == pytest.approx(np.mean(values), abs=1e-12), (task, metric, subset)
                    assert float(cell["stderr"]) == pytest.approx(np.std(values, ddof=1) / math.sqrt(len(values)))
        if task == "toy_cloze":  # perplexity = exp(-mean target log-likelihood), from the raw log-probabilities
            for subset, ids in (("dirty", dirty_ids), ("clean", None)):
                logprobs = [s["logprob"] for s in samples if s["task"] == task and s["setting"] == "ZS"
                            and (s["example_id"] in dirty_ids) == (ids is not None)]
                value = float(cells[(task, "ZS", "perplexity", subset)]["value"])
                assert value == pytest.approx(math.exp(-np.mean(logprobs)), rel=1e-12)
    scores = {(r["task"], r["setting"], r["metric"]): r for r in read_rows(folder / "scores.csv")}
    for (task, setting, metric, subset), cell in cells.items():
        if subset == "all":  # the same aggregate and stderr as the run's own cell, bit for bit
            assert (cell["value"], cell["stderr"], cell["n"]) == tuple(scores[(task, setting, metric)][c]
                                                                      for c in ("value", "stderr", "n"))
    document = json.loads((folder / "run.json").read_text())
    entry = document["contamination"]
    assert entry["overlap_sha256"] == hashlib.sha256((study / "overlap.csv").read_bytes()).hexdigest()
    assert entry["study"] == str(study) and entry["ngram"] == {"toy_mc": 13, "toy_cloze": 13}
    assert [c["path"] for c in entry["corpus"]] == [str(study.parent / "corpus.txt")]
    assert entry["covered"] == ["toy_mc", "toy_cloze"] and entry["uncovered"] == ["toy_docs"]
    assert any("does not cover toy_docs" in w for w in document["warnings"])
    assert document["config"]["overlap"] == str(study)
    labels = read_rows(folder / "overlap.csv")  # the labels of the run's examples, beside the scores
    assert len(labels) == 20 and sum(r["dirty"] == "1" for r in labels) == 6

    report = (folder / "report.md").read_text()
    section = report.split(f"## {TITLE}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| toy_")]
    mc_zs = next(line for line in lines if line.startswith("| toy_mc |") and "| ZS | acc |" in line)
    cells_md = [c.strip() for c in mc_zs.strip("|").split("|")]
    assert cells_md[4:5] == ["13"] and cells_md[6] == "12" and cells_md[8] == "4" and cells_md[10] == "8"
    assert cells_md[11] == "67"  # clean %: 8 of 12
    cloze = next(line for line in lines if line.startswith("| toy_cloze |") and "| ZS | perplexity |" in line)
    assert [c.strip() for c in cloze.strip("|").split("|")][11] == "75"  # 6 of 8
    assert "validation-4" in section and "goal number 4" in section  # a dirty example and its colliding words
    assert "not covered by the study, so no dirty / clean rows: toy_docs" in section
    assert TITLE in (folder / "report.html").read_text()

    # harness report rebuilds the section from the run folder
    assert main(["report", str(folder), "--out", str(task_env["root"] / "again")]) == 0
    again = (task_env["root"] / "again" / "report.md").read_text()
    assert again.split(f"## {TITLE}", 1)[1].split("\n## ", 1)[0] == section

    # without --overlap: the same scores.csv, no contamination files, no section, run.json as before
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", name="plain") == 0
    plain = task_env["root"] / "results" / "plain"
    assert (plain / "scores.csv").read_text().replace("plain", "r") == (folder / "scores.csv").read_text()
    assert not (plain / "contamination.csv").exists() and TITLE not in (plain / "report.md").read_text()
    manifest = json.loads((plain / "run.json").read_text())
    assert "contamination" not in manifest and "overlap" not in manifest["config"]


def _garble(study: Path, how: str) -> str:
    path = study / "overlap.csv"
    match how:
        case "no folder":
            return f"--overlap {study.parent / 'nowhere'}: no such folder"
        case "no csv":
            path.unlink()
            return f"no overlap.csv in it ({path})"
        case "header":
            path.write_text("task,id\ntoy_mc,validation-0\n")
            return f"{path}: not an overlap study"
        case "dirty":
            lines = path.read_text().splitlines()
            fields = lines[2].split(",")
            lines[2] = ",".join(fields[:3] + ["maybe"] + fields[4:])
            path.write_text("\n".join(lines) + "\n")
            return f"{path}:3: dirty is 'maybe', expected 0 or 1"
        case "bytes":
            path.write_bytes(path.read_bytes() + b"toy_mc,caf\xe9,13,0,,,\n")
            return f"{path}: not UTF-8 at byte"
        case "short":
            path.write_text(path.read_text() + "toy_mc,validation-99,13\n")
            return f"{path}:22: 3 fields, expected 7"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["no folder", "no csv", "header", "dirty", "bytes", "short"])
def test_a_missing_or_garbled_study_is_one_line_naming_the_file(task_env, tiny_gpt2_dir, study, capsys, how):
    message = _garble(study, how)
    target = study.parent / "nowhere" if how == "no folder" else study
    capsys.readouterr()
    code = run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--overlap", str(target))
    assert_clean_failure(code, capsys, task_env, message)


def test_the_permutation_test_separates_different_subsets_only():
    aggregate = METRICS["acc"].aggregate
    dirty = np.array([True] * 10 + [False] * 30)
    apart = np.array([[1.0]] * 10 + [[0.0]] * 30)  # every dirty example right, every clean one wrong
    delta, p = permutation_test(apart, dirty, aggregate)
    assert delta == 1.0 and p == pytest.approx(1 / 2001)  # no relabelling is as extreme
    alike = np.array([[float(i % 2)] for i in range(40)])  # the same rate on both sides
    delta, p = permutation_test(alike, dirty, aggregate)
    assert delta == 0.0 and p == 1.0
    assert math.isnan(permutation_test(apart, np.zeros(40, dtype=bool), aggregate)[1])  # nothing dirty: no test
    rng = np.random.default_rng(0)
    docs = np.column_stack([-rng.uniform(20, 40, 40), rng.integers(8, 12, 40)])  # (logprob, words) per document
    docs[dirty, 0] /= 4  # the dirty documents far more likely
    delta, p = permutation_test(docs, dirty, compared_scale("word_perplexity"))  # compared as log perplexities
    assert delta < 0 and p < 0.01


# ---- the must-hold test: memorised documents of a briefly pretrained reference decoder ---------------------

WORDS = ["amber", "basil", "cedar", "delta", "ember", "fable", "garnet", "harbor", "indigo", "juniper", "kestrel",
         "lantern", "meadow", "nectar", "orchid", "pepper", "quartz", "raven", "saffron", "thistle", "umber", "velvet",
         "willow", "yarrow", "zephyr", "anchor", "bramble", "copper", "drift", "falcon", "glacier", "hollow", "ivory",
         "jasmine", "kettle", "lagoon", "marble", "nimbus", "oyster", "pebble", "quiver", "ripple", "sorrel", "timber",
         "violet", "walnut"]
PLANTED, DOCS = 8, 24


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "text_corpus" / "tinyshakespeare.txt").is_file(), reason="no tinyshakespeare")
def test_a_pretrained_decoder_scores_its_memorised_documents_better(tmp_path, capsys):
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(14)) for _ in range(DOCS)]
    write_jsonl(tmp_path / "data" / "planted" / "test.jsonl", [{"text": d} for d in docs])
    task = tmp_path / "planted.toml"
    task.write_text('kind = "perplexity"\n[data]\nlocal = "planted"\neval_split = "test"\n[prompt]\ntext = "$text"\n')
    shakespeare = (SHARED_DATA / "text_corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20_000]
    lines = [docs[i] for i in range(PLANTED) for _ in range(30)]
    rng.shuffle(lines)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "lm"), "--n-layer", "2",
                 "--n-embd", "64", "--n-head", "2", "--context", "32", "--batch-size", "4", "--steps", "100",
                 "--lr", "3e-3", "--min-lr", "3e-4", "--warmup-steps", "10", "--eval-interval", "100",
                 "--eval-batches", "1", "--checkpoint-interval", "100", "--val-fraction", "0.02"]) == 0
    assert main(["overlap", "--corpus", str(corpus), "--tasks", str(task), "--out", str(tmp_path / "study"),
                 "--data-dir", str(tmp_path / "data")]) == 0
    assert main(["run", "--model", f"reference:{tmp_path / 'lm' / 'model'}", "--tasks", str(task), "--data-dir",
                 str(tmp_path / "data"), "--settings", "zs", "--limit", "0", "--overlap", str(tmp_path / "study"),
                 "--output-dir", str(tmp_path / "results"), "--run-name", "r", "--no-cache"]) == 0
    capsys.readouterr()
    folder = tmp_path / "results" / "r"
    cells = {(r["metric"], r["subset"]): r for r in read_rows(folder / "contamination.csv")}
    assert int(cells[("word_perplexity", "dirty")]["n"]) == PLANTED
    dirty, clean = (float(cells[("word_perplexity", s)]["value"]) for s in ("dirty", "clean"))
    assert dirty < clean / 2, (dirty, clean)  # memorised: far less perplexed
    section = (folder / "report.md").read_text().split(f"## {TITLE}", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| planted |") and "word_perplexity" in line)
    cells_md = [c.strip() for c in row.strip("|").split("|")]
    assert cells_md[8] == str(PLANTED) and cells_md[10] == str(DOCS - PLANTED)
    assert cells_md[12].startswith("+")  # clean above all: the dirty documents pull the perplexity down
    p = float(cells_md[14].rstrip("*"))
    assert p < 0.01 and cells_md[14].endswith("*"), row
    print(f"\nmust-hold: word_perplexity dirty {dirty:.1f}, clean {clean:.1f}, permutation p = {p:.2g}\n{row}")


@pytest.mark.skipif(not (SHARED_DATA.parent / "published" / "gpt3_table_c1.csv").is_file(),
                    reason="no shared/published")
def test_gpt3s_table_c1_row_sits_beside_ours_in_our_units():
    from harness.contamination.study import CorpusEntry, Label, StudyFacts
    from harness.contamination.subsets import Contamination, SubsetScore
    from harness.reporting.contamination import GPT3_ROW, contamination_html, contamination_section

    labels = tuple(Label("piqa", f"validation-{i}", 8, i < 3, "a b c d e f g h" if i < 3 else "", "c.txt" if i < 3
                         else "", 10 * i if i < 3 else None) for i in range(10))
    scores = tuple(SubsetScore("m", "piqa", "ZS", 0, 0, metric, subset, value, 0.1, n, True)
                   for metric in ("acc", "acc_norm")
                   for subset, value, n in (("all", 0.6, 10), ("dirty", 1.0, 3), ("clean", 0.4 + 1 / 70, 7)))
    study = Contamination(StudyFacts("study", "ab" * 32, {"piqa": 8}, (CorpusEntry("c.txt", 99),)), labels, scores)
    section = contamination_section((study,), None, SHARED_DATA.parent / "published")
    rows = [r for r in section.grid.rows if r[0] == "piqa"]
    assert [r[1] for r in rows] == ["m", "m", GPT3_ROW]
    assert rows[0][4:13] == ("8", "0.600", "10", "1.000", "3", "0.414", "7", "70", "-31.0%")
    # PIQA's Table C.1 row on acc_norm (GPT-3 scored PIQA by normalised likelihood), percentages as fractions
    assert rows[2][2:13] == ("FS", "acc_norm (acc, dev)", "8", "0.823", "1838", "0.899", "526", "0.793", "1312", "71",
                             "-4%")
    assert rows[0][14] == "" and len(section.examples) == 3  # no samples: no test, the dirty examples still listed
    page = "".join(contamination_html(section))
    assert "a b c d e f g h" in page and "c.txt:20" in page and "Table C.1" in page


def test_examples_the_study_lacks_are_in_neither_subset_and_said_so():
    from harness.contamination.study import Label, OverlapStudy, StudyFacts
    from harness.contamination.subsets import coverage, score_subsets
    from harness.samples import ClozeAnswer, Sample

    labels = {("t", "a"): Label("t", "a", 13, True, "x y", "c.txt", 0), ("t", "b"): Label("t", "b", 13, False)}
    cover = coverage(OverlapStudy(StudyFacts("s", "0" * 64, {"t": 13}, ()), labels), {"t": ["a", "b", "c"], "u": ["z"]})
    assert cover.uncovered == ("u",) and cover.missing == {"t": 1}
    assert "does not cover u" in cover.warnings[0]
    assert "1 evaluated examples of t are not in the study" in cover.warnings[1]
    answer = ClozeAnswer(target="x", logprob=-1.0, is_greedy=True, last_token_greedy=True, n_tokens=1)
    samples = [Sample(task="t", setting="ZS", k=0, k_used=0, seed=0, example_id=i, demo_ids=(), prompt="",
                      answer=answer, metrics={"acc": v}) for i, v in (("a", 1.0), ("b", 0.0), ("c", 1.0))]
    found = score_subsets(cover, {"t": ["acc"]}, samples, "m")
    assert {s.subset: (s.n, s.value) for s in found.scores} == {"all": (3, 2 / 3), "dirty": (1, 1.0), "clean": (1, 0.0)}
    assert found.to_json()["not_in_study"] == {"t": 1} and found.to_json()["uncovered"] == ["u"]
