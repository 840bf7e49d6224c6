"""The CLI end to end on a tiny random GPT-2 with the real tokenizer, and every bad input as a
one-line error with exit code 2 that leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.cli import main
from harness.records import RequestKind
from tests.conftest import write_jsonl
from tests.helpers import assert_clean_failure, run_cli


def test_run_writes_the_run_folder(task_env, tiny_gpt2_dir, capsys):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s,fs", "--shots", "2", "--limit", "5") == 0
    folder = task_env["root"] / "results" / "r"
    assert sorted(p.name for p in folder.iterdir()) == ["plots", "report.html", "report.md", "report.tex", "run.json",
                                                        "samples.jsonl", "scores.csv"]
    scores = pd.read_csv(folder / "scores.csv")
    assert list(scores.columns[:11]) == ["run", "model", "task", "setting", "k", "k_used_mean", "seed", "metric",
                                         "value", "stderr", "n"]
    assert len(scores) == 4 * 3 + 2 * 3 + 3 * 3  # toy_mc 4 metrics x 3 settings, cloze 2 x 3, docs 3 x 3
    docs = scores[scores.task == "toy_docs"].set_index("setting")
    assert docs.loc["1S", "note"].iloc[0] == "no demonstrations: perplexity over documents"
    assert docs.loc[["1S", "FS"], "value"].isna().all() and (docs.loc[["1S", "FS"], "n"] == 0).all()
    assert set(scores[scores.task == "toy_mc"].setting) == {"ZS", "1S", "FS"}
    assert (scores[scores.task != "toy_docs"].n == 5).all() and (docs.loc["ZS", "n"] == 2).all()
    fs = scores[(scores.task == "toy_mc") & (scores.setting == "FS")]
    assert (fs.k == 2).all() and (fs.k_used_mean == 2).all()

    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 * 3 + 5 * 3 + 2
    first_fs = next(s for s in samples if s["task"] == "toy_mc" and s["setting"] == "FS")
    assert len(first_fs["demo_ids"]) == 2 and first_fs["example_id"] not in first_fs["demo_ids"]
    assert first_fs["prompt"].startswith("Pick the right answer.\n\nQuestion: Train Goal")
    assert len(first_fs["logprobs"]) == 2 and first_fs["prediction"] in (0, 1)
    assert set(first_fs["metrics"]) == {"acc", "acc_norm", "acc_per_token", "acc_calibrated"}

    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["config"]["shots"] == [2] and manifest["model"]["model_type"] == "gpt2"
    assert len(manifest["tasks"]["toy_mc"]["sha256"]) == 64
    assert len(manifest["tasks"]["toy_mc"]["eval"]["sha256"]) == 64
    assert {"torch", "transformers", "datasets", "pandas"} <= set(manifest["versions"])
    report = (folder / "report.md").read_text()
    assert "| task | metric | n | ZS | 1S | FS(2) |" in report and "## Is the difference real?" in report
    assert ("| toy_docs | bits_per_byte | 2 |" in report
            and "n/a (no demonstrations: perplexity over documents)" in report)
    assert "wrote" in capsys.readouterr().out


def test_generate_task_end_to_end(task_env, tiny_gpt2_dir):
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "3", tasks=("toy_gen",)) == 0
    folder = task_env["root"] / "results" / "r"
    scores = pd.read_csv(folder / "scores.csv")
    assert list(scores.metric) == ["exact_match", "exact_match"] and (scores.n == 3).all()
    samples = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
    assert all("\n" not in s["prediction"] and s["target"].startswith("first answer") for s in samples)
    assert samples[3]["prompt"].count("Answer: first answer") == 1  # the one-shot demo carries its target


def test_python_api_equals_cli_and_ignores_batch_size(task_env, tiny_gpt2_dir):
    import harness

    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,fs", "--shots", "3", "--limit", "6") == 0
    cli = pd.read_csv(task_env["root"] / "results" / "r" / "scores.csv")
    tasks = [str(task_env["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze", "toy_docs")]
    for batch_tokens in (8, 100_000):
        api = harness.evaluate(str(tiny_gpt2_dir), tasks=tasks, settings=["zs", "fs"], shots=3, limit=6,
                               data_dir=task_env["data"], batch_tokens=batch_tokens)
        assert api["value"].to_numpy() == pytest.approx(cli["value"].to_numpy(), rel=1e-6, nan_ok=True)


def test_samples_do_not_depend_on_limit(task_env, tiny_gpt2_dir):
    run_cli(task_env, tiny_gpt2_dir, "--settings", "fs", "--shots", "3", "--limit", "3", tasks=("toy_mc",), name="a")
    run_cli(task_env, tiny_gpt2_dir, "--settings", "fs", "--shots", "3", "--limit", "8", tasks=("toy_mc",), name="b")
    read = lambda n: [  # noqa: E731
        json.loads(x) for x in (task_env["root"] / "results" / n / "samples.jsonl").read_text().splitlines()]
    small, large = read("a"), read("b")
    for s, l in zip(small, large[:3], strict=True):
        assert s["demo_ids"] == l["demo_ids"] and s["prompt"] == l["prompt"]
        assert s["logprobs"] == pytest.approx(l["logprobs"], abs=1e-5)


@pytest.mark.parametrize(
    ("extra", "tasks", "message"),
    [
        (("--shots", "20"), ("toy_mc",), "--shots 20 is larger than the demonstration pool (12 examples)"),
        (("--settings", "zs,2s"), ("toy_mc",), "unknown setting '2s'"),
        (("--shots", "a"), ("toy_mc",), "--shots: expected comma-separated integers"),
        (("--limit", "-3"), ("toy_mc",), "--limit: need a positive number"),
    ],
)
def test_bad_flags(task_env, tiny_gpt2_dir, capsys, extra, tasks, message):
    assert_clean_failure(run_cli(task_env, tiny_gpt2_dir, *extra, tasks=tasks), capsys, task_env, message)


def test_unknown_task_and_model_suggest_close_matches(task_env, capsys):
    assert_clean_failure(main(["run", "--tasks", "piqqa", "--output-dir", str(task_env["root"] / "results")]),
                         capsys, task_env, "unknown task 'piqqa' (did you mean: piqa")
    code = main(["run", "--model", "gpt2-mediun", "--tasks", str(task_env["tasks"] / "toy_mc.toml"),
                 "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / "results")])
    assert_clean_failure(code, capsys, task_env, "unknown model 'gpt2-mediun' (did you mean: gpt2-medium")


def test_bad_data(task_env, tiny_gpt2_dir, capsys):
    rows = [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}, {"goal": "g", "sol1": "a", "sol2": "b", "label": 2}]
    write_jsonl(task_env["data"] / "toy_mc" / "validation.jsonl", rows)
    code = run_cli(task_env, tiny_gpt2_dir, tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env,
                         "prompt.answer: gold label 2 out of range for example validation-1 (2 choices)")


def test_empty_choice_list(task_env, tiny_gpt2_dir, capsys):
    toml = (task_env["tasks"] / "toy_mc.toml").read_text().replace(
        'choices = ["$sol1", "$sol2"]', 'choices = "$options"')
    (task_env["tasks"] / "toy_mc.toml").write_text(toml)
    write_jsonl(task_env["data"] / "toy_mc" / "validation.jsonl", [{"goal": "g", "options": [], "label": 0}])
    (task_env["data"] / "toy_mc" / "train.jsonl").unlink()
    code = run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "prompt.choices: example validation-0 has an empty choice list")


def test_model_folder_without_weights(task_env, tmp_path, capsys):
    folder = tmp_path / "no_weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    code = run_cli(task_env, folder, "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "no weights (*.safetensors or *.bin) in the folder")


def test_corrupted_weights(task_env, tiny_gpt2_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_gpt2_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code = run_cli(task_env, folder, "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "could not load")


def test_list_and_validate(task_env, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "piqa" in out and "multiple_choice" in out and "wikitext2" in out
    assert main(["validate", str(task_env["tasks"] / "toy_mc.toml"), "--data-dir", str(task_env["data"])]) == 0
    out = capsys.readouterr().out
    assert "task file ok" in out and "Question: Goal number 0?\nAnswer:" in out
    bad = task_env["tasks"] / "bad.toml"
    bad.write_text((task_env["tasks"] / "toy_mc.toml").read_text().replace("query", "qeury"))
    assert main(["validate", str(bad)]) == 2
    assert "bad.toml: prompt.qeury: unknown key (did you mean: query?)" in capsys.readouterr().err


def test_module_entry_point_and_import_stays_light():
    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True)
    assert "run" in out.stdout and "validate" in out.stdout
    code = "import harness, sys; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_interrupted_run_resumes_from_the_cache(task_env, tiny_gpt2_dir, monkeypatch, capsys):
    """Kill the run after two saved chunks; the rerun scores only what is missing and equals a clean run."""
    from harness.models import hf

    real = hf.HFModel.loglikelihood
    calls = {"n": 0}

    def flaky(self, requests):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, requests)

    monkeypatch.setattr("harness.execution.executor.CHUNK", {kind: 4 for kind in RequestKind})
    monkeypatch.setattr(hf.HFModel, "loglikelihood", flaky)
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "5", tasks=("toy_mc",)) == 130
    assert not (task_env["root"] / "results" / "r").exists()

    seen = []
    monkeypatch.setattr(hf.HFModel, "loglikelihood", lambda self, rs: seen.extend(rs) or real(self, rs))
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "5", tasks=("toy_mc",)) == 0
    total = 5 * 2 * 2 * 2  # examples x settings x choices x (conditional, unconditional) ...
    assert 0 < len(seen) <= total - 8  # ... less the two chunks of 4 saved before the interruption
    assert "results from the cache" in capsys.readouterr().err
    resumed = pd.read_csv(task_env["root"] / "results" / "r" / "scores.csv")

    clean = run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "5", "--no-cache",
                    tasks=("toy_mc",), name="clean")
    assert clean == 0
    fresh = pd.read_csv(task_env["root"] / "results" / "clean" / "scores.csv")
    assert resumed["value"].to_numpy() == pytest.approx(fresh["value"].to_numpy(), rel=1e-6)
    seen.clear()
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "5", tasks=("toy_mc",), name="again") == 0
    assert seen == []  # a finished run is served entirely from the cache


def test_prompts_longer_than_the_context_are_reported(task_env, tmp_path, gpt2_tokenizer, capsys):
    """A model with 16 positions: demonstrations are dropped first, then inputs are cut and counted."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path / "short_gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=16,
                               vocab_size=len(gpt2_tokenizer))).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    assert run_cli(task_env, folder, "--settings", "zs,fs", "--shots", "2", "--limit", "4", tasks=("toy_mc",)) == 0
    scores = pd.read_csv(task_env["root"] / "results" / "r" / "scores.csv")
    assert (scores.k_used_mean == 0).all()  # no demonstration fits in 16 tokens
    assert (scores.n_truncated == 4).all()  # "Pick the right answer." + question + answer > 16 tokens
    report = (task_env["root"] / "results" / "r" / "report.md").read_text()
    assert "Demonstrations dropped to fit the context" in report and "cut from the left" in report
    assert "exceeded the model's context" in capsys.readouterr().err


def test_reference_backend_gives_the_same_task_results(task_env, tiny_gpt2_dir):
    """`reference:<folder>` converts the weights into our decoder and scores through the same path."""
    common = ("--settings", "zs,fs", "--shots", "2", "--limit", "4", "--no-cache")
    assert run_cli(task_env, tiny_gpt2_dir, *common, name="hf") == 0
    assert run_cli(task_env, f"reference:{tiny_gpt2_dir}", *common, name="ref") == 0
    hf = pd.read_csv(task_env["root"] / "results" / "hf" / "scores.csv")
    ref = pd.read_csv(task_env["root"] / "results" / "ref" / "scores.csv")
    assert ref["value"].to_numpy() == pytest.approx(hf["value"].to_numpy(), rel=1e-5, nan_ok=True)
    manifest = json.loads((task_env["root"] / "results" / "ref" / "run.json").read_text())
    assert manifest["model"]["backend"] == "reference" and manifest["model"]["model_type"] == "reference-gpt2"


def test_a_generation_longer_than_the_window_fails_before_any_request_is_scored(task_env, tiny_gpt2_dir, capsys):
    """The tiny GPT-2 has 128 positions: max_new_tokens 128 leaves no room for a context, found when prompts are
    fitted (the model's length known), before the other tasks' requests run."""
    gen = task_env["tasks"] / "toy_gen.toml"
    gen.write_text(gen.read_text().replace("max_new_tokens = 8", "max_new_tokens = 128"))
    code = run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "2", tasks=("toy_mc", "toy_gen"))
    err = capsys.readouterr().err
    assert code == 2 and err.endswith("\n") and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"error: {gen}: prompt.max_new_tokens 128 leaves no room for a context "
                                           "in the 128 positions of")
    assert "loglikelihood (" not in err and not (task_env["root"] / "results" / "r").exists()  # nothing scored
