"""On CUDA the numbers are CPU's: log-likelihoods of a tiny GPT-2 and of smollm2-135m, bf16, shared-prefix packing with
SDPA against unpacked rows, greedy generation, the accelerator batch and the peak CUDA memory in run.json.

Every test here needs a CUDA device and skips without one; tests/tools/gpu_check.sh runs them on a GPU machine.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from harness.config import DType
from harness.models.fastpath import PackMode
from harness.models.hf import DEFAULT_BATCH_TOKENS, HFModel
from harness.models.registry import load_model, model_files
from harness.models.transformers_load import load_transformers
from harness.records import GenerateRequest, LoglikelihoodRequest, RollingRequest

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (tests/tools/gpu_check.sh runs these on a GPU machine)")

CONTEXTS = ["The quick brown fox", "In 1969, the first person to walk on the Moon was",
            "Question: What is the capital of France?\nAnswer:", ""]
CONTINUATIONS = [" jumps over the lazy dog.", " Neil Armstrong", " Paris", " London, the capital of England"]
REQUESTS = [LoglikelihoodRequest(f"r{i}-{j}", c, x)
            for i, c in enumerate(CONTEXTS) for j, x in enumerate(CONTINUATIONS)]
ROLLING = [RollingRequest("doc", "The history of the city begins with a small settlement on the river. " * 40)]
GENERATE = [GenerateRequest(f"g{i}", c, ("\n",), 24) for i, c in enumerate(CONTEXTS[:3])]
SMOLLM2 = "smollm2-135m"


def smollm2_or_skip() -> str:
    if model_files(SMOLLM2) is None:
        pytest.skip(f"{SMOLLM2} is not converted yet: run `harness run --model {SMOLLM2} --limit 1` once")
    return SMOLLM2


def assert_close(got: dict, expected: dict, rel: float, atol: float) -> None:
    assert got.keys() == expected.keys()
    for key, e in expected.items():
        g = got[key]
        assert abs(g.logprob - e.logprob) <= atol + rel * abs(e.logprob), (key, g.logprob, e.logprob)
        for attr in ("n_tokens", "truncated"):
            if hasattr(e, attr):
                assert getattr(g, attr) == getattr(e, attr), (key, attr)


@pytest.fixture(params=["tiny", "smollm2"])
def model_name(request, tiny_gpt2_dir) -> str:
    return str(tiny_gpt2_dir) if request.param == "tiny" else smollm2_or_skip()


def test_loglikelihoods_on_cuda_equal_cpu(model_name):
    cpu, cuda = load_model(model_name, "cpu"), load_model(model_name, "cuda")
    assert cuda.batch_tokens == DEFAULT_BATCH_TOKENS  # the accelerator default: 8192 padded tokens per pass
    assert next(cuda.module.parameters()).device.type == "cuda"
    assert_close(cuda.loglikelihood(REQUESTS), cpu.loglikelihood(REQUESTS), rel=1e-4, atol=1e-3)
    assert_close(cuda.loglikelihood_rolling(ROLLING), cpu.loglikelihood_rolling(ROLLING), rel=1e-4, atol=1e-3)
    assert cuda.fingerprint() == cpu.fingerprint()  # one result cache for both devices


def test_bf16_on_cuda_is_close_to_fp32(model_name):
    fp32, bf16 = load_model(model_name, "cuda"), load_model(model_name, "cuda", dtype=DType.BF16)
    assert bf16.describe()["dtype"] == "torch.bfloat16"
    assert bf16.fingerprint() != fp32.fingerprint()  # bf16 results never answer for fp32 ones
    assert_close(bf16.loglikelihood(REQUESTS), fp32.loglikelihood(REQUESTS), rel=5e-2, atol=5e-2)


@pytest.mark.parametrize("backend", ["transformers", "reference"])
def test_shared_prefix_packing_with_sdpa_on_cuda_equals_unpacked(model_name, backend):
    """Each context once, its choices after it under a tree mask (SDPA kernels on CUDA) = one row per request."""
    from harness.models import reference
    from harness.models.gpt import AttentionImpl
    from harness.models.transformers_load import reference_decoder

    if backend == "transformers":
        module, tokenizer = load_transformers(model_name)
        assert module.config._attn_implementation == "sdpa"
        driver = None
    else:
        module, tokenizer = reference_decoder(model_name, AttentionImpl.SDPA)
        driver = reference.DRIVER
    module = module.to("cuda")
    models = {mode: HFModel(module, tokenizer, model_name, DEFAULT_BATCH_TOKENS, pack=mode, driver=driver)
              for mode in (PackMode.TREE, PackMode.PLAIN)}
    assert PackMode.TREE in models[PackMode.TREE].packable.modes
    assert_close(models[PackMode.TREE].loglikelihood(REQUESTS), models[PackMode.PLAIN].loglikelihood(REQUESTS),
                 rel=1e-4, atol=1e-3)


def test_greedy_generation_on_cuda_equals_cpu():
    name = smollm2_or_skip()  # a trained model: a random one's near-ties could flip an argmax between devices
    cpu, cuda = load_model(name, "cpu"), load_model(name, "cuda")
    assert cuda.generate(GENERATE) == cpu.generate(GENERATE)


def test_cuda_run_records_peak_cuda_memory(task_env, tiny_gpt2_dir, tmp_path, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    tasks = ",".join(str(task_env["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze"))
    assert main(["run", "--model", str(tiny_gpt2_dir), "--tasks", tasks, "--data-dir", str(task_env["data"]),
                 "--settings", "zs", "--limit", "3", "--device", "cuda", "--no-cache",
                 "--output-dir", str(tmp_path / "results"), "--run-name", "r"]) == 0
    memory = json.loads((tmp_path / "results" / "r" / "run.json").read_text())["memory"]
    assert memory["cuda_mib"] > 0
    assert "MiB CUDA at most allocated by torch" in (tmp_path / "results" / "r" / "report.md").read_text()


def test_batch_budgets_change_no_prediction_on_cuda(model_name, capsys):
    """Issue 21 on a GPU: the same requests under three batch budgets. Predictions (the highest log-likelihood
    continuation of each context) must agree; log-likelihoods that differ in any bit are counted and printed,
    because cuBLAS may pick its kernel by a product's row count (invariance.py)."""
    runs = {budget: load_model(model_name, "cuda", budget).loglikelihood(REQUESTS) for budget in (1024, 8192, 32768)}
    base = runs[1024]

    def predictions(results):
        return [max(range(len(CONTINUATIONS)), key=lambda j: results[f"r{i}-{j}"].logprob)
                for i in range(len(CONTEXTS))]

    for budget, results in runs.items():
        differ = sum(results[k].logprob != base[k].logprob for k in base)
        with capsys.disabled():
            print(f"\n{model_name} budget {budget}: {differ} of {len(base)} log-likelihoods differ in some bit "
                  f"from budget 1024; predictions equal: {predictions(results) == predictions(base)}")
        assert predictions(results) == predictions(base)
        assert torch.backends.cudnn.deterministic
