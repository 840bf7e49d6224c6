"""The backend registry: `<backend>:<spec>` names read without loading anything (or importing torch),
declared request kinds checked before any work, FT only through the Trainable protocol, and a new backend
added with one registry line and driven through the real pipeline."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.cli import main
from harness.config import FinetuneConfig
from harness.errors import HarnessError
from harness.models import (
    BACKENDS,
    Trainable,
    backend_for,
    check_serves,
    load_model,
    reference,
    registry,
)
from harness.records import RequestKind
from harness.tasks.data import load_task_data
from harness.tasks.taskfile import load_task
from harness.train.finetune import finetune
from tests.backends import bigram
from tests.conftest import write_jsonl
from tests.fakes import hand_sequence_logprob
from tests.helpers import assert_clean_failure

SEED = 3


@pytest.fixture()
def with_bigram(monkeypatch):
    monkeypatch.setitem(BACKENDS, "bigram", bigram.BACKEND)  # the one line a new backend needs


def test_names_pick_backends_without_loading(tiny_gpt2_dir, tmp_path):
    assert (backend_for("gpt2").name == "transformers"
            and backend_for(f"transformers:{tiny_gpt2_dir}").name == "transformers")
    assert (backend_for(f"reference:{tiny_gpt2_dir}").name == "reference"
            and backend_for("reference:gpt2").name == "reference")
    colon = tmp_path / "a:b"  # an existing path is a spec, even with a colon in it
    colon.mkdir()
    (colon / "config.json").write_text("{}")
    (colon / "model.safetensors").write_bytes(b"")
    assert backend_for(str(colon)).name == "transformers"
    with pytest.raises(HarnessError,
                       match=r"^--model refrence:gpt2: unknown backend 'refrence' \(did you mean: reference\?\)$"):
        backend_for("refrence:gpt2")
    with pytest.raises(HarnessError, match="unknown model 'gtp2'"):
        backend_for("reference:gtp2")


def test_reading_a_name_imports_no_torch():
    code = ("import sys; from harness.models import check_serves; from harness.records import RequestKind; "
            "check_serves('reference:gpt2', set(RequestKind), finetune=True); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_reference_config_matches_the_reference_module():
    assert registry.REFERENCE_CONFIG == reference.CONFIG_FILE


@pytest.mark.parametrize("prefix", ["", "reference:"])
def test_loaded_models_declare_what_their_backend_declares(tiny_gpt2_dir, tmp_path, prefix):
    model = load_model(prefix + str(tiny_gpt2_dir))
    backend = backend_for(prefix + str(tiny_gpt2_dir))
    assert model.kinds == backend.kinds == frozenset(RequestKind)
    assert isinstance(model, Trainable) and backend.trainable and model.backend == backend.name
    assert model.loadable_name(tmp_path / "x") == prefix + str(tmp_path / "x")


def test_check_serves_fails_in_one_line_before_loading(with_bigram, monkeypatch):
    monkeypatch.setattr(bigram, "load", lambda *a: pytest.fail("loaded"))
    assert check_serves(f"bigram:{SEED}", {RequestKind.LOGLIKELIHOOD}) is bigram.BACKEND
    with pytest.raises(HarnessError, match=rf"^--model bigram:{SEED}: the bigram backend does not serve generate, "
                                           r"rolling requests, which the tasks need \(it serves: loglikelihood\)"):
        check_serves(f"bigram:{SEED}", set(RequestKind))
    with pytest.raises(HarnessError,
                       match=rf"^--settings ft: the bigram backend of --model bigram:{SEED} has no trainable"):
        check_serves(f"bigram:{SEED}", {RequestKind.LOGLIKELIHOOD}, finetune=True)
    with pytest.raises(HarnessError, match=r"takes a seed"):
        check_serves("bigram:x", set())


LOWER_MC = """
kind = "multiple_choice"
metrics = ["acc"]
[data]
local = "lower_mc"
eval_split = "validation"
[prompt]
query = "question: $goal?\\nanswer:"
choices = ["$sol1", "$sol2"]
answer = "$label"
"""
LETTERS = "abcdefghijkl"  # the bigram tokenizer's alphabet: lower case, space and a little punctuation


@pytest.fixture()
def lower_mc(task_env):
    rows = [{"goal": f"goal {c}", "sol1": f"first {c}", "sol2": f"second {c}", "label": i % 2}
            for i, c in enumerate(LETTERS)]
    write_jsonl(task_env["data"] / "lower_mc" / "validation.jsonl", rows)
    (task_env["tasks"] / "lower_mc.toml").write_text(LOWER_MC)
    return task_env


def test_a_new_backend_is_scored_through_the_real_pipeline(with_bigram, lower_mc):
    env = lower_mc
    args = ["run", "--model", f"bigram:{SEED}", "--tasks", str(env["tasks"] / "lower_mc.toml"), "--settings", "zs",
            "--data-dir", str(env["data"]), "--output-dir", str(env["root"] / "results"), "--run-name", "b"]
    assert main(args) == 0
    folder = env["root"] / "results" / "b"
    assert json.loads((folder / "run.json").read_text())["model"]["backend"] == "bigram"
    model = load_model(f"bigram:{SEED}")
    encode = model.tokenizer.encode
    samples = {s["example_id"]: s for s in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}
    correct = 0
    for i, c in enumerate(LETTERS):  # every choice's log-probability by hand, and acc from them
        context = f"question: goal {c}?\nanswer:"
        expected = [hand_sequence_logprob(model.table, encode(context)[-1], encode(f" {w} {c}"))
                    for w in ("first", "second")]
        assert samples[f"validation-{i}"]["logprobs"] == pytest.approx(expected, abs=1e-4)
        correct += max(range(2), key=lambda j: expected[j]) == i % 2
    scores = pd.read_csv(folder / "scores.csv").set_index("metric")
    assert (scores.loc["acc", "value"] == pytest.approx(correct / len(LETTERS))
            and scores.loc["acc", "n"] == len(LETTERS))


def test_a_backend_without_rolling_fails_a_perplexity_task_before_loading(with_bigram, task_env, monkeypatch, capsys):
    monkeypatch.setattr(bigram, "load", lambda *a: pytest.fail("loaded"))
    code = main(["run", "--model", f"bigram:{SEED}", "--tasks", str(task_env["tasks"] / "toy_docs.toml"),
                 "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / "results")])
    assert_clean_failure(code, capsys, task_env, f"--model bigram:{SEED}: the bigram backend does not serve rolling")


def test_finetuning_needs_a_trainable_model(with_bigram, task_env):
    spec = load_task(task_env["tasks"] / "toy_mc.toml")
    data = load_task_data(spec, task_env["data"])
    model = load_model(f"bigram:{SEED}")
    assert not isinstance(model, Trainable)
    with pytest.raises(HarnessError, match=rf"^--settings ft: bigram:{SEED} \(BigramModel\) has no trainable weights$"):
        finetune(model, spec, data.eval, data.eval, FinetuneConfig(), task_env["root"] / "ft")
    assert not (task_env["root"] / "ft").exists()


def test_the_ft_setting_refuses_a_backend_without_trainable_weights(with_bigram, lower_mc, monkeypatch, capsys):
    env = lower_mc
    monkeypatch.setattr(bigram, "load", lambda *a: pytest.fail("loaded"))  # refused from the name, before loading
    write_jsonl(env["data"] / "lower_mc" / "train.jsonl", [{"goal": "goal z", "sol1": "z", "sol2": "y", "label": 0}])
    (env["tasks"] / "lower_mc.toml").write_text(
        LOWER_MC.replace('eval_split = "validation"', 'eval_split = "validation"\ntrain_split = "train"'))
    code = main(["run", "--model", f"bigram:{SEED}", "--tasks", str(env["tasks"] / "lower_mc.toml"),
                 "--settings", "zs,ft", "--data-dir", str(env["data"]), "--output-dir", str(env["root"] / "results")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    message = (f"error: --settings ft: the bigram backend of --model bigram:{SEED} has no trainable weights "
               "(trainable backends: transformers, reference)")
    assert code == 2 and errors == [message]
