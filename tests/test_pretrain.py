"""Pretraining from scratch (harness/train/pretrain.py) on a tiny model and a small generated text: the loss
falls, every output exists, the saved folder reproduces the trained model, stopping and resuming gives
the weights of an uninterrupted run bit for bit, the lr schedule by hand, and bad input as one-line errors."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import cli
from harness.train import pretrain as P
from harness.models.tokenizer import SANITY
from harness.errors import HarnessError
from harness.models import reference


def corpus_text(sentences: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    subjects = ["The cat", "A dog", "My friend", "The old king", "Her brother", "The farmer"]
    verbs = ["sat on", "looked at", "walked to", "talked about", "dreamed of"]
    objects = ["the mat", "the river", "the castle", "a small house", "the garden", "the hill"]
    return "\n".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(sentences))


def write_corpus(folder: Path, text: str | None = None, name: str = "corpus.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(corpus_text() if text is None else text)
    return path


TINY = dict(n_layer=2, n_embd=32, n_head=2, context=32, batch_size=4, steps=20, lr=1e-2, min_lr=1e-3, warmup_steps=5,
            eval_interval=5, eval_batches=2, val_fraction=0.1, checkpoint_interval=10, threads=1)  # fmt: skip


def tiny(corpus: Path, out: Path, **overrides) -> P.PretrainConfig:
    return P.PretrainConfig(corpus=(corpus,), out=out, **(TINY | overrides))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def weights(model_folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(model_folder / reference.WEIGHTS_FILE)


def cli_args(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness")
    cli.add_pretrain_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["pretrain", *map(str, argv)])


def tiny_flags() -> list[str]:
    return [f"--{name.replace('_', '-')}={value}" for name, value in TINY.items()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 20-step run through the command line; the in-memory model is caught on its way to save_reference."""
    root = tmp_path_factory.mktemp("pretrain")
    corpus, out, caught = write_corpus(root), root / "out", []

    def spy(model, tokenizer, folder):
        caught.append(model)
        return save_reference(model, tokenizer, folder)

    save_reference = reference.save_reference
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference, "save_reference", spy)
        assert cli.cmd_pretrain(cli_args("--corpus", corpus, "--out", out, *tiny_flags())) == 0
    return {"corpus": corpus, "out": out, "model": caught[0]}


@pytest.fixture(scope="module")
def uninterrupted(trained):
    """The 20-step run's model folder: the reference for runs that stop and resume on the way."""
    return trained["out"] / "model"


def test_training_lowers_the_loss_and_writes_every_output(trained):
    out = trained["out"]
    for name in ("loss.csv", "loss.png", "checkpoint.pt", "tokens.npy", "tokens.json", "tokenizer/vocab.json",
                 "model/reference.json", "model/model.safetensors", "model/tokenizer.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp")) and not (out / "model.partial").exists()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(out / "loss.csv")
    assert list(rows[0]) == list(P.COLUMNS)
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]
    assert rows[0]["train_loss"] == ""  # nothing trained yet at step 0
    val = [float(r["val_loss"]) for r in rows]
    assert val[0] == pytest.approx(math.log(50257), abs=0.3)  # uniform over the vocabulary at the start
    assert val[-1] < val[0] - 3.0 and val[-1] < val[1]
    assert float(rows[-1]["train_loss"]) < float(rows[1]["train_loss"])
    for r in rows:
        assert float(r["val_perplexity"]) == pytest.approx(math.exp(float(r["val_loss"])), rel=1e-4)
    assert float(rows[-1]["seconds"]) > float(rows[1]["seconds"]) > 0
    config = tiny(trained["corpus"], out)
    assert float(rows[-1]["lr"]) == pytest.approx(P.lr_at(19, config), rel=1e-5)  # the lr of the last step


def test_saved_model_reproduces_the_in_memory_model(trained):
    model, tokenizer = reference.load_reference(str(trained["out"] / "model"))
    assert tokenizer.encode(SANITY[0]) == SANITY[1]
    ids = torch.tensor([tokenizer.encode(corpus_text(3, seed=5))[:32]])  # (1, T)
    with torch.inference_mode():
        expected, got = trained["model"](ids).logits, model(ids).logits  # (1, T, V) each
    assert torch.equal(got, expected)
    assert model.config.n_positions == 32 and model.config.n_layer == 2 and model.config.vocab_size == 50257


def test_tokens_are_gpt2_ids_with_end_of_text_and_are_cached(trained, gpt2_tokenizer, monkeypatch):
    config = tiny(trained["corpus"], trained["out"])
    tokens, hashes = P.load_tokens(config, gpt2_tokenizer)
    assert tokens.dtype.name == "uint16"
    assert tokens.tolist() == gpt2_tokenizer.encode(corpus_text()) + [gpt2_tokenizer.eos_token_id]
    monkeypatch.setattr(P, "encode", lambda *a: pytest.fail("tokenized again despite the cache"))
    assert P.load_tokens(config, gpt2_tokenizer)[0].tolist() == tokens.tolist()
    train, val = P.split_tokens(tokens, config)
    assert len(val) == int(len(tokens) * 0.1) and train.tolist() + val.tolist() == tokens.tolist()  # val = the tail


def test_windows_are_next_token_pairs_and_depend_on_seed_and_step_only(tmp_path):
    import numpy as np

    config = tiny(write_corpus(tmp_path), tmp_path / "out")
    stream = np.arange(1000, dtype=np.uint16)
    x, y = P.train_batch(stream, 7, config)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y, x + 1)
    assert torch.equal(P.train_batch(stream, 7, config)[0], x)
    assert not torch.equal(P.train_batch(stream, 8, config)[0], x)


def test_stopping_and_extending_gives_the_uninterrupted_weights(tmp_path, uninterrupted):
    config = tiny(write_corpus(tmp_path), tmp_path / "out", steps=10, lr_decay_steps=20)
    P.pretrain(config)
    folder = P.pretrain(dataclasses.replace(config, steps=20))
    expected, got = weights(uninterrupted), weights(folder)
    assert expected.keys() == got.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    drop_seconds = [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(folder.parent / "loss.csv")]
    assert drop_seconds == [{k: v for k, v in r.items() if k != "seconds"}
                            for r in read_csv(uninterrupted.parent / "loss.csv")]  # fmt: skip


def test_a_crashed_run_resumes_from_its_last_checkpoint(tmp_path, uninterrupted, monkeypatch):
    config = tiny(write_corpus(tmp_path), tmp_path / "out")
    real_step, calls = P.train_step, []

    def crash_on_13th(*args):
        calls.append(1)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(P, "train_step", crash_on_13th)
    with pytest.raises(KeyboardInterrupt):
        P.pretrain(config)
    state = torch.load(config.out / P.CHECKPOINT, weights_only=True)
    assert state["progress"]["step"] == 10 and not (config.out / "model").exists()
    monkeypatch.setattr(P, "train_step", real_step)
    folder = P.pretrain(config)
    expected, got = weights(uninterrupted), weights(folder)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert [int(r["step"]) for r in read_csv(config.out / "loss.csv")] == [0, 5, 10, 15, 20]


def test_time_limit_stops_early_with_a_checkpoint_and_a_model(tmp_path, capsys):
    config = tiny(write_corpus(tmp_path), tmp_path / "out", steps=10_000, time_limit=0.03, eval_interval=10_000,
                  checkpoint_interval=10_000)  # fmt: skip
    folder = P.pretrain(config)  # about 2 s of training
    step = torch.load(config.out / P.CHECKPOINT, weights_only=True)["progress"]["step"]
    assert 0 < step < 10_000 and [int(r["step"]) for r in read_csv(config.out / "loss.csv")] == [0, step]
    assert reference.is_reference_folder(folder)
    assert f"stopped by --time-limit at step {step} of 10000: rerun to continue" in capsys.readouterr().err


def test_lr_schedule_by_hand(tmp_path):
    config = tiny(write_corpus(tmp_path), tmp_path / "out", lr=1e-3, min_lr=1e-4, warmup_steps=10,
                  steps=200, lr_decay_steps=110)  # fmt: skip
    cos_135 = 1e-4 + 0.9e-3 * (1 - 2**0.5 / 2) / 2  # three quarters of the way: 0.5 (1 + cos(3 pi / 4))
    expected = {0: 1e-4, 4: 5e-4, 9: 1e-3, 10: 1e-3, 60: 5.5e-4, 85: cos_135, 110: 1e-4, 199: 1e-4}
    for step, lr in expected.items():
        assert P.lr_at(step, config) == pytest.approx(lr, rel=1e-9), step
    no_length = dataclasses.replace(config, lr_decay_steps=0)
    assert P.lr_at(105, no_length) == pytest.approx(5.5e-4) and P.lr_at(200, no_length) == pytest.approx(1e-4)


def test_every_flag_maps_to_a_field_and_defaults_need_only_corpus_and_out(tmp_path):
    corpus = write_corpus(tmp_path)
    config = cli.pretrain_config_from_args(cli_args("--corpus", corpus, "--out", tmp_path / "out"))
    assert config == P.PretrainConfig(corpus=(corpus,), out=tmp_path / "out")
    assert config.steps > 0 and config.threads == 1 and config.decay_steps == config.steps
    assert (cli.pretrain_config_from_args(cli_args("--corpus", corpus, "--out", tmp_path, *tiny_flags()))
            == tiny(corpus, tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_embd": 33}, "--n-embd: must be divisible by --n-head 2"),
        ({"steps": 0}, "--steps: need a positive integer"),
        ({"min_lr": 1.0}, "--min-lr: need 0 <= --min-lr <= --lr"),
        ({"val_fraction": 1.0}, "--val-fraction: need a fraction strictly between 0 and 1"),
        ({"warmup_steps": 40}, "--warmup-steps: must not exceed the decay, 20"),
        ({"grad_clip": -1.0}, "--grad-clip: must not be negative"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(HarnessError, match=message.replace("+", r"\+")) as error:
        tiny(write_corpus(tmp_path), tmp_path / "out", **overrides)
    assert "\n" not in str(error.value)


def test_bad_corpus_is_a_one_line_error(tmp_path):
    with pytest.raises(HarnessError, match="--corpus .*missing.txt: no such file"):
        cli.pretrain_config_from_args(cli_args("--corpus", tmp_path / "missing.txt", "--out", tmp_path / "out"))
    empty = write_corpus(tmp_path, text=" \n\n", name="empty.txt")
    with pytest.raises(HarnessError, match="empty.txt: the file holds no text"):
        P.pretrain(tiny(empty, tmp_path / "out"))
    short = write_corpus(tmp_path, text="Only a few words here.", name="short.txt")
    with pytest.raises(HarnessError, match="--corpus: 7 tokens leave 7 for training and 0 for validation"):
        P.pretrain(tiny(short, tmp_path / "out"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(HarnessError, match="binary.txt: not UTF-8 text"):
        P.pretrain(tiny(binary, tmp_path / "out"))


def test_a_checkpoint_from_another_config_is_refused(trained, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained["out"], out)
    with pytest.raises(HarnessError, match=r"comes from a different config \(--n-embd: 32 there, 48 now\)"):
        P.pretrain(tiny(trained["corpus"], out, n_embd=48))
    with pytest.raises(HarnessError, match=r"\(--corpus: the text differs\)"):
        P.pretrain(tiny(write_corpus(tmp_path, corpus_text(seed=1)), out))
    with pytest.raises(HarnessError, match="is at step 20, past --steps 10"):
        P.pretrain(tiny(trained["corpus"], out, steps=10, lr_decay_steps=20))
    (out / P.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(HarnessError, match="unreadable checkpoint .*delete it to start over"):
        P.pretrain(tiny(trained["corpus"], out))


def test_importing_the_module_does_not_import_torch():
    code = "import sys, harness.train.pretrain; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
