"""The FT setting: contamination checks, training data built exactly as the scorer scores it, a loss
that equals the scorer's log-likelihoods, training that learns deterministically, reusable checkpoints,
and FT beside ZS in runs (n/a with the reason where a task has no train split)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.cli import main
from harness.config import FinetuneConfig
from harness.tasks.data import Split, load_task_data
from harness.errors import HarnessError
from harness.train.finetune import NoTrainSplit, answer_loss, finetune, load_train, select_examples, training_rows
from harness.train.overlap import EvalIndex, Hit
from harness.tasks.prompts import build_prompt
from harness.records import Example, Setting
from harness.tasks.kinds import requests_for, render
from harness.tasks.taskfile import load_task
from tests.conftest import TOY_MC
from tests.helpers import run_cli

TOY_FT = TOY_MC.replace('demo_split = "train"\n', 'demo_split = "train"\ntrain_split = "train"\n')
WORDS = " ".join(f"w{i}" for i in range(20))


@pytest.fixture()
def ft_env(task_env):
    (task_env["tasks"] / "toy_ft.toml").write_text(TOY_FT)
    return task_env


def toy_ft(env):
    spec = load_task(env["tasks"] / "toy_ft.toml")
    return spec, load_task_data(spec, env["data"])


def test_overlap_finds_exact_duplicates_and_shared_13_grams():
    index = EvalIndex({"e1": "The quick brown fox, jumps!", "e2": WORDS})
    assert index.find("t1", "the QUICK  brown fox jumps") == Hit("t1", "e1", "exact")
    assert (index.find("t2", "before " + " ".join(f"w{i}" for i in range(5, 18)) + " after")
            == Hit("t2", "e2", "13-gram"))
    assert index.find("t3", " ".join(f"w{i}" for i in range(5, 17))) is None  # only 12 words shared
    assert index.find("t4", "the quick brown fox") is None


def test_selection_drops_overlapping_examples_and_is_seeded(ft_env):
    spec, data = toy_ft(ft_env)
    clean = [Example(f"train-{i}", {"goal": f"Another goal {i}?", "sol1": "a", "sol2": "b", "label": 0})
             for i in range(10)]
    copies = [Example(f"train-{10 + i}", dict(data.eval.examples[i].fields)) for i in range(3)]  # eval rows
    train = Split("train", tuple(clean + copies), "test", None)
    chosen, hits = select_examples(spec, train, data.eval, FinetuneConfig(max_examples=0, seed=1))
    assert sorted(e.id for e in chosen) == sorted(e.id for e in clean)
    assert sorted((h.train_id, h.eval_id, h.kind) for h in hits) == [
        ("train-10", "validation-0", "exact"), ("train-11", "validation-1", "exact"),
        ("train-12", "validation-2", "exact")]
    first = [e.id for e in select_examples(spec, train, data.eval, FinetuneConfig(max_examples=4, seed=1))[0]]
    assert first == [e.id for e in select_examples(spec, train, data.eval, FinetuneConfig(max_examples=4, seed=1))[0]]
    assert first != [e.id for e in select_examples(spec, train, data.eval, FinetuneConfig(max_examples=4, seed=2))[0]]
    forced, _ = select_examples(spec, train, data.eval, FinetuneConfig(max_examples=0, force=True))
    assert len(forced) == 13


def test_train_split_reasons_and_refusal(ft_env):
    env = ft_env
    docs = load_task(env["tasks"] / "toy_docs.toml")
    with pytest.raises(NoTrainSplit, match="perplexity tasks are not fine-tuned"):
        load_train(docs, env["data"], load_task_data(docs, env["data"]).eval)
    plain = load_task(env["tasks"] / "toy_mc.toml")
    with pytest.raises(NoTrainSplit, match="no train split"):
        load_train(plain, env["data"], load_task_data(plain, env["data"]).eval)
    (env["tasks"] / "same.toml").write_text(TOY_FT.replace('train_split = "train"', 'train_split = "validation"'))
    same = load_task(env["tasks"] / "same.toml")
    evaluation = load_task_data(same, env["data"]).eval
    with pytest.raises(HarnessError, match="is the eval split.*--force"):
        load_train(same, env["data"], evaluation)
    assert len(load_train(same, env["data"], evaluation, force=True).examples) == 12
    (env["tasks"] / "absent.toml").write_text(TOY_FT.replace('train_split = "train"', 'train_split = "extra"'))
    absent = load_task(env["tasks"] / "absent.toml")
    with pytest.raises(NoTrainSplit, match="'extra' is not in the data dir"):
        load_train(absent, env["data"], evaluation)


@pytest.mark.parametrize("reference", [False, True])
def test_training_loss_is_the_scorers_log_likelihood_of_the_gold_answer(ft_env, tiny_gpt2_dir, reference):
    """Same tokens as the scorer: the loss is -(sum of gold log-probs) / (gold tokens) of ZS requests."""
    import torch

    from harness.models import load_model

    model = load_model(("reference:" if reference else "") + str(tiny_gpt2_dir))
    spec, data = toy_ft(ft_env)
    examples = list(data.demos.examples[:6])
    rows = training_rows(spec, examples, model)
    gold = []
    for ex in examples:
        prompt = build_prompt(spec, ex, Setting.ZS, 0, 0, ())
        gold.append(requests_for(spec, prompt, render(spec, ex))[ex.fields["label"]])
    results = model.loglikelihood(gold).values()
    expected = -sum(r.logprob for r in results) / sum(r.n_tokens for r in results)
    with torch.no_grad():
        assert float(answer_loss(model.module, rows)) == pytest.approx(expected, rel=1e-5)


def test_finetuning_learns_is_deterministic_and_is_reused(ft_env, tiny_gpt2_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from harness.train import finetune as ft
    from harness.models import load_model

    model = load_model(str(tiny_gpt2_dir))
    spec, data = toy_ft(ft_env)
    train = load_train(spec, ft_env["data"], data.eval)
    config = FinetuneConfig(steps=24, lr=3e-3, batch_size=4, max_examples=8)
    lineage = finetune(model, spec, train, data.eval, config, tmp_path / "a")
    loss = lineage.loss
    assert len(loss) == 24 and sum(loss[-4:]) / 4 < 0.9 * sum(loss[:4]) / 4
    assert lineage.train.used == 8 and len(lineage.train.example_ids) == 8
    assert lineage.task["sha256"] == spec.sha256 and lineage.overlap.found == 0
    assert lineage.identity["base_fingerprint"] == model.fingerprint()
    finetune(model, spec, train, data.eval, config, tmp_path / "b")
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(a[name].equal(b[name]) for name in a)
    base = load_file(tiny_gpt2_dir / "model.safetensors")
    assert not all(a[name].equal(base[name]) for name in a)

    monkeypatch.setattr(ft, "train", lambda *args, **kwargs: pytest.fail("a finished fine-tuning was retrained"))
    assert finetune(model, spec, train, data.eval, config, tmp_path / "a") == lineage
    with pytest.raises(HarnessError, match="holds a fine-tuning of other inputs"):
        finetune(model, spec, train, data.eval, FinetuneConfig(steps=3), tmp_path / "a")


def test_run_puts_ft_beside_zs_and_reuses_the_checkpoint(ft_env, tiny_gpt2_dir, capsys):
    tasks = ("toy_ft", "toy_cloze", "toy_docs")
    flags = ("--settings", "zs,ft", "--limit", "4", "--ft-steps", "3", "--ft-lr", "1e-3")
    assert run_cli(ft_env, tiny_gpt2_dir, *flags, tasks=tasks, name="one") == 0
    assert "finetune toy_ft" in capsys.readouterr().err
    folder = ft_env["root"] / "results" / "one"
    scores = pd.read_csv(folder / "scores.csv", keep_default_na=False, na_values=[""])
    ft = scores[scores.setting == "FT"].set_index("task")
    assert (ft.loc["toy_ft", "n"] == 4).all() and ft.loc["toy_ft", "value"].notna().all()
    assert (ft.loc["toy_ft", "k"] == 0).all()
    assert set(ft.loc["toy_cloze", "note"]) == {"no train split: the task file names no data.train_split"}
    assert set(ft.loc["toy_docs", "note"]) == {"perplexity tasks are not fine-tuned"}
    report = (folder / "report.md").read_text()
    assert "| task | metric | n | ZS | FT |" in report and "n/a (perplexity tasks are not fine-tuned)" in report
    assert "FT checkpoint of " in report and "toy_ft: 12 of 12 train examples, 3 steps, final loss" in report

    manifest = json.loads((folder / "run.json").read_text())
    lineage = manifest["finetune"]["toy_ft"]
    assert lineage["task"]["sha256"] == manifest["tasks"]["toy_ft"]["sha256"] and lineage["steps"] == 3
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    by_setting = {s["setting"]: s for s in samples if s["task"] == "toy_ft" and s["example_id"] == "validation-0"}
    assert by_setting["FT"]["prompt"] == by_setting["ZS"]["prompt"]  # the zero-shot prompt...
    assert by_setting["FT"]["logprobs"] != by_setting["ZS"]["logprobs"]  # ...scored by other weights

    assert run_cli(ft_env, tiny_gpt2_dir, *flags, "--no-cache", tasks=tasks, name="two") == 0
    err = capsys.readouterr().err
    assert "reusing" in err and "finetune toy_ft" not in err
    again = pd.read_csv(ft_env["root"] / "results" / "two" / "scores.csv")
    assert again["value"].to_numpy() == pytest.approx(scores["value"].to_numpy(), rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("prefix", ["", "reference:"])
def test_finetune_command_writes_a_loadable_folder(ft_env, tiny_gpt2_dir, tmp_path, capsys, prefix):
    from harness.models import load_model

    out = tmp_path / "tuned"
    args = ["finetune", "--model", prefix + str(tiny_gpt2_dir), "--task", str(ft_env["tasks"] / "toy_ft.toml"),
            "--out", str(out), "--data-dir", str(ft_env["data"]), "--steps", "2", "--max-examples", "5"]
    assert main(args) == 0
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["model"] == prefix + str(out) and lineage["train"]["used"] == 5
    assert lineage["base_model"]["backend"] == ("reference" if prefix else "transformers")
    assert "trained on 5 of 12 examples" in capsys.readouterr().out
    assert load_model(lineage["model"]).max_length == 128


def test_finetune_command_refuses_the_eval_split(ft_env, tiny_gpt2_dir, tmp_path, capsys):
    (ft_env["tasks"] / "same.toml").write_text(TOY_FT.replace('train_split = "train"', 'train_split = "validation"'))
    args = ["finetune", "--model", str(tiny_gpt2_dir), "--task", str(ft_env["tasks"] / "same.toml"),
            "--out", str(tmp_path / "x"), "--data-dir", str(ft_env["data"]), "--steps", "1"]
    assert main(args) == 2
    assert "is the eval split" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["finetune", "--model", str(tiny_gpt2_dir), "--task", "copa", "--out", str(tmp_path / "y"),
                 "--lr", "0"]) == 2
    assert "--lr (--ft-lr): need a positive learning rate" in capsys.readouterr().err
