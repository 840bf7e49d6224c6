"""`harness compare` against lm-eval output, paired tests between models, and `harness run --format lm-eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.reporting.build import build_report
from harness.reporting.pages import render_markdown
from harness.reporting.significance import mcnemar_exact, paired_between
from harness.samples import ChoiceAnswer, Sample
from tests.helpers import run_cli

TOOL = Path(__file__).parent / "tools" / "read_lmeval_output.py"
FIXTURE = Path(__file__).parent / "fixtures" / "lmeval_toy"
ALL = ("toy_mc", "toy_cloze", "toy_docs", "toy_gen")


def _export(task_env, model, name="r", tasks=ALL, limit="6"):
    assert run_cli(task_env, model, "--settings", "zs", "--limit", limit, "--format", "lm-eval", tasks=tasks,
                   name=name) == 0
    return task_env["root"] / "results" / name


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_export_has_lmeval_layout_and_compares_with_zero_disagreements(task_env, tiny_gpt2_dir, capsys):
    run = _export(task_env, tiny_gpt2_dir)
    folder = run / "lm-eval" / "zs"
    results = json.loads(next(folder.glob("results_*.json")).read_text())
    for key in ("results", "versions", "n-shot", "configs", "config", "higher_is_better", "n-samples", "task_hashes"):
        assert key in results
    assert results["n-shot"] == dict.fromkeys(ALL, 0)
    scores = pd.read_csv(run / "scores.csv")
    acc = scores[(scores.task == "toy_mc") & (scores.metric == "acc")].value.iloc[0]
    assert (results["results"]["toy_mc"]["acc,none"] == acc
            and results["configs"]["toy_mc"]["output_type"] == "multiple_choice")
    mc = _lines(next(folder.glob("samples_toy_mc_*.jsonl")))
    assert [s["doc_id"] for s in mc] == list(range(6))
    first = mc[0]
    assert set(first) >= {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                          "doc_hash", "prompt_hash", "target_hash", "acc", "acc_norm"}
    assert first["doc"] == {"goal": "Goal number 0?", "sol1": "first answer 0", "sol2": "second answer 0", "label": 0}
    assert first["arguments"]["gen_args_1"] == {"arg_0": "Pick the right answer.\n\nQuestion: Goal number 0?\nAnswer:",
                                                "arg_1": " second answer 0"}
    assert first["target"] == "0" and len(first["filtered_resps"]) == 2
    ll, greedy = first["filtered_resps"][0]  # every leaf a string, as lm-eval's sanitize_list writes them
    assert isinstance(ll, str) and greedy in ("True", "False") and first["resps"][0] == [[ll, greedy]]
    gen = _lines(next(folder.glob("samples_toy_gen_*.jsonl")))[0]
    assert gen["arguments"]["gen_args_0"]["arg_1"]["until"] == ["\n"] and isinstance(gen["filtered_resps"][0], str)

    out = subprocess.run([sys.executable, str(TOOL), str(run / "lm-eval")], capture_output=True, text=True, check=True)
    assert ("toy_mc: 0-shot, acc,none=0.5000, acc_norm,none=" in out.stdout and "6 samples" in out.stdout
            and len(out.stdout.splitlines()) == 4)

    capsys.readouterr()
    assert main(["compare", str(run), str(run / "lm-eval")]) == 0
    text = capsys.readouterr().out
    assert "4 tasks paired by rendered context; 0 disagreements in all." in text
    assert text.count("Paired documents: 6 (only in the harness run: 0, only in lm-eval: 0); "
                      "differing predictions: 0") == 3
    assert "Paired documents: 2 (only in the harness run: 0, only in lm-eval: 0); differing predictions: 0" in text
    assert "max |Δ log-likelihood| 0" in text


def test_compare_pairs_by_text_not_position_and_maps_suffixed_names(task_env, tiny_gpt2_dir, tmp_path, capsys):
    """lm-eval's file reordered, one document dropped, one foreign document added, one choice's log-likelihood
    raised so the prediction flips: exactly that one disagreement, and both unpaired documents are counted."""
    run = _export(task_env, tiny_gpt2_dir, tasks=("toy_mc",))
    source = next((run / "lm-eval" / "zs").glob("samples_toy_mc_*.jsonl"))
    stamp = source.stem.removeprefix("samples_toy_mc_")
    lines = _lines(source)[::-1]  # reversed: pairing by position would mismatch nearly all
    dropped = lines.pop()  # doc 0
    foreign = json.loads(json.dumps(lines[0]))
    foreign["arguments"]["gen_args_0"]["arg_0"] = "Question: not in the harness run?\nAnswer:"
    victim = lines[1]
    lls = [float(x[0]) for x in victim["filtered_resps"]]
    loser = 0 if lls[0] < lls[1] else 1
    victim["filtered_resps"][loser][0] = str(max(lls) + 1.0)
    out = tmp_path / "lmeval" / "model"
    out.mkdir(parents=True)
    results = json.loads(next((run / "lm-eval" / "zs").glob("results_*.json")).read_text())
    results = {k: ({"toy_mc_local": v["toy_mc"]} if isinstance(v, dict) and "toy_mc" in v else v)
               for k, v in results.items()}
    (out / f"results_{stamp}.json").write_text(json.dumps(results))
    (out / f"samples_toy_mc_local_{stamp}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines + [foreign]))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "lmeval"), str(run)]) == 0  # either order; the lm-eval folder is detected
    text = capsys.readouterr().out
    assert "## toy_mc (lm-eval toy_mc_local), ZS" in text
    assert "Paired documents: 5 (only in the harness run: 1, only in lm-eval: 1); differing predictions: 1" in text
    assert "First 1 disagreements" in text and f"choice {loser}" in text
    assert dropped["doc_id"] == 0


def test_task_map_and_its_errors(task_env, tiny_gpt2_dir, tmp_path, capsys):
    run = _export(task_env, tiny_gpt2_dir, tasks=("toy_cloze",), limit="3")
    capsys.readouterr()
    assert main(["compare", str(run), str(run / "lm-eval"), "--task-map", "toy_cloze=toy_cloze"]) == 0
    assert "0 disagreements in all" in capsys.readouterr().out
    for args, message in ((["--task-map", "toy_cloze"], "--task-map 'toy_cloze': write LMEVAL_TASK=HARNESS_TASK"),
                          (["--task-map", "toy_clozee=toy_cloze"],
                           "unknown lm-eval task 'toy_clozee' (did you mean: toy_cloze?)"),
                          (["--task-map", "toy_cloze=nope"], "unknown task in the run 'nope'")):
        assert main(["compare", str(run), str(run / "lm-eval"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert main(["compare", str(run), str(run), "--task-map", "a=b"]) == 2
    assert "--task-map: only when one folder is lm-eval output" in capsys.readouterr().err


def test_unknown_format_is_one_line(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "2", "--format", "csv") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--format csv: not a known output format (known: lm-eval)") and len(err.splitlines()) == 1


def test_reads_a_hand_written_lmeval_folder(tmp_path):
    from harness.reporting.lmeval_io import is_lmeval_folder, load_lmeval

    assert is_lmeval_folder(FIXTURE)
    tasks = load_lmeval(FIXTURE)
    assert set(tasks) == {"arith_local", "trivia_local"}
    arith, trivia = tasks["arith_local"], tasks["trivia_local"]
    assert arith.metrics == {"acc": 0.5} and arith.output_type == "loglikelihood"
    assert [s.loglikelihoods for s in arith.samples] == [(-7.5,), (-1.25,)] and arith.samples[1].greedy == (True,)
    assert trivia.metrics == {"exact_match": 0.5}  # the remove_whitespace filter's, the one its samples carry
    assert [s.generation for s in trivia.samples] == ["Paris", "Onion"]
    assert trivia.samples[0].key == "Question: Capital of France?\nAnswer:"


def _sample(prompt: str) -> Sample:
    answer = ChoiceAnswer(choices=("a", "b"), gold=0, logprobs=(-1.0, -2.0), greedy=(True, False), n_tokens=(1, 1),
                          prediction=0)
    return Sample(task="t", setting="ZS", k=0, k_used=0, seed=0, example_id="e", demo_ids=(), prompt=prompt,
                  answer=answer)


def _samples(model: str, values: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rows = [{"model": model, "task": "t", "setting": "ZS", "k": 0, "seed": seed, "example_id": f"validation-{i}",
             "metric": "acc", "value": float(v), "sample": _sample(prompt)}
            for i, (prompt, v) in enumerate(values.items())]
    return pd.DataFrame(rows)


def test_paired_between_pairs_by_prompt_text_not_id():
    """B's ids are shifted (another --limit offset or order): pairing by id would compare different documents."""
    prompts = [f"Q{i}" for i in range(12)]
    a = _samples("A", {p: int(i < 6) for i, p in enumerate(prompts)})
    b = _samples("B", {p: 1 for p in reversed(prompts[1:] + ["extra"])})
    r = paired_between(a, b).iloc[0]
    assert (r.n, r.only_a, r.only_b) == (11, 1, 1)
    assert r.test == "mcnemar" and r.p_value == pytest.approx(mcnemar_exact(6, 0))  # Q6..Q11 fixed, none broken
    assert r.delta == pytest.approx(1 - 5 / 11)


def test_report_of_two_models_has_paired_tests_between_them():
    prompts = [f"Q{i}" for i in range(40)]
    samples = pd.concat([_samples("small", {p: int(i % 4 == 0) for i, p in enumerate(prompts)}),
                         _samples("large", {p: int(i % 4 != 3) for i, p in enumerate(prompts)})], ignore_index=True)
    frame = pd.DataFrame([{"run": m, "model": m, "task": "t", "setting": "ZS", "k": 0, "k_used_mean": 0, "seed": 0,
                           "metric": "acc", "value": v, "stderr": 0.07, "n": 40, "n_truncated": 0,
                           "higher_is_better": True, "note": ""} for m, v in (("small", 0.25), ("large", 0.75))])
    md = render_markdown(build_report(frame, samples, "Two"))
    assert "Paired tests: not available" not in md
    assert "Between models, on the same examples (paired by prompt text), 1 of 1 paired comparisons significant" in md
    assert "| t | acc | ZS | large − small | 40 | +0.5 |" in md and "mcnemar" in md

    one = render_markdown(build_report(frame[frame.model == "small"], samples[samples.model == "small"], "One"))
    assert "Paired tests: none: nothing to pair against (one model, one setting: ZS)" in one
    assert "no per-example samples" not in one


def test_compare_two_runs_pairs_examples_by_prompt(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "6", tasks=("toy_mc",), name="a") == 0
    assert run_cli(task_env, f"reference:{tiny_gpt2_dir}", "--settings", "zs", "--limit", "4", tasks=("toy_mc",),
                   name="b") == 0
    results = task_env["root"] / "results"
    capsys.readouterr()
    assert main(["compare", str(results / "a"), str(results / "b")]) == 0
    text = capsys.readouterr().out
    assert "## Paired tests on the same examples: 0 of 4 significant at 0.05" in text
    assert "| toy_mc | acc | ZS(0) | 4 | 2/0 | +0 | [+0, +0] | 1 | mcnemar |" in text  # same weights, two backends


def test_fewshot_export_pairs_with_its_run_and_two_variants_need_one_folder(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,fs", "--shots", "2", "--limit", "4",
                   "--format", "lm-eval", tasks=("toy_mc",)) == 0
    run = task_env["root"] / "results" / "r"
    assert sorted(p.name for p in (run / "lm-eval").iterdir()) == ["fs2-s0", "zs"]
    capsys.readouterr()
    assert main(["compare", str(run), str(run / "lm-eval" / "fs2-s0")]) == 0
    text = capsys.readouterr().out
    assert "## toy_mc, FS(2)" in text and "Paired documents: 4 (only in the harness run: 0, only in lm-eval: 0)" in text
    assert main(["compare", str(run), str(run / "lm-eval")]) == 2
    err = capsys.readouterr().err.strip()
    assert "task toy_mc is in both" in err and "give one of the two folders" in err and len(err.splitlines()) == 1
