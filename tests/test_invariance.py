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


@pytest.fixture(scope="module")
def llama_head64_dir(tmp_path_factory, gpt2_tokenizer):
    """A tiny Llama with 64-wide heads, as real models have: attention's key blocks then round by row width."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(4)
    eos = gpt2_tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(gpt2_tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    folder = tmp_path_factory.mktemp("llama_head64")
    LlamaForCausalLM(config).save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("fuse", [True, False])
def test_requests_of_many_lengths_score_the_same_bits_under_any_budget(llama_head64_dir, fuse):
    """CPU flash attention splits keys into blocks of the row width (up to 512): a short row batched with longer
    ones, padded to their width, rounds differently than in a batch of its own width. Batches hold rows of one
    padded width, so no budget moves a bit (with 64-wide heads this fails when batches mix widths)."""
    from harness.models.registry import LoadOptions, load_model
    from harness.records import LoglikelihoodRequest

    words = "the jar lid twist hot water open a slowly with cloth grip and turn it then".split()
    requests = [LoglikelihoodRequest(f"q{q}c{c}", "Question: " + " ".join(words[(q * 7 + k) % len(words)]
                                                                          for k in range(3 + 9 * q)) + "\nAnswer:",
                                     " " + " ".join(words[(q + c + k) % len(words)] for k in range(2 + 5 * c + q)))
                for q in range(24) for c in range(2)]
    scores = {budget: load_model(LoadOptions(str(llama_head64_dir), "cpu", budget, fuse=fuse)).loglikelihood(requests)
              for budget in (256, 1024, 8192)}
    first = {k: r.logprob for k, r in scores[256].items()}
    for budget in (1024, 8192):
        assert {k: r.logprob for k, r in scores[budget].items()} == first, budget
