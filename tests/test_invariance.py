"""The same bytes for any batch budget and thread count (DESIGN.md rule 12): scores.csv and samples.jsonl
of one plan, run under --batch-tokens 256, 1024 and 8192 with 1 and 2 torch threads, on a tiny GPT-2 and a
tiny Llama-style model, in ZS, FS and generation. No variable is set by hand: harness makes MKL's rounding
thread-count invariant itself (harness/invariance.py). The Ray executor's 1 and 2 workers: tests/test_ray.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_cli

TASKS = ("toy_mc", "toy_cloze", "toy_docs", "toy_gen")
BUDGETS = (256, 1024, 8192)


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory, gpt2_tokenizer):
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


def outputs(task_env, name: str) -> dict[str, bytes]:
    folder = task_env["root"] / "results" / name
    return {file: (folder / file).read_bytes() for file in ("scores.csv", "samples.jsonl")}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_scores_and_samples_are_the_same_bytes_for_any_budget_and_thread_count(arch, task_env, tiny_gpt2_dir,
                                                                            tiny_llama_dir, monkeypatch):
    import torch

    from harness import invariance

    model = tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir
    threads = torch.get_num_threads()
    runs = {}
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            for budget in BUDGETS:
                name = f"{arch}-b{budget}-t{n_threads}"
                code = run_cli(task_env, model, "--settings", "zs,fs", "--shots", "2", "--batch-tokens", str(budget),
                               "--no-cache", "--limit", "8", tasks=TASKS, name=name)
                assert code == 0
                runs[name] = outputs(task_env, name)
    finally:
        torch.set_num_threads(threads)
    assert invariance.blas_strict() is not False, "MKL started without thread-count invariant rounding"
    first, *others = runs
    assert runs[first]["samples.jsonl"].count(b"\n") >= 50
    for name in others:
        for file in ("scores.csv", "samples.jsonl"):
            mine, theirs = (runs[n][file].replace(n.encode(), b"RUN") for n in (first, name))
            assert mine == theirs, f"{file} of {name} differs from {first}"


def test_compare_says_when_only_the_numerics_differ_and_when_nothing_they_depend_on_does():
    import pandas as pd

    from harness.reporting.compare import explain

    changed = pd.DataFrame({"task": ["piqa"]})
    numerics = [("numerics.dtype", "torch.float32", "torch.bfloat16"), ("config.batch_tokens", "256", "2048")]
    assert "only in what the numbers are computed with (numerics.dtype)" in explain(changed, numerics)[0]
    assert "bug" in explain(changed, [("config.batch_tokens", "256", "2048"), ("config.workers", "1", "2")])[0]
    assert explain(changed, [("tasks.piqa.sha256", "a", "b")]) == []
    assert explain(changed.iloc[:0], numerics) == []
