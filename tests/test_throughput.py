"""The batch-size probe (models/probe.py): its choice under a fake clock, its cache file, the --batch-tokens
override, and what run.json records about it."""

from __future__ import annotations

import json

import pytest
import torch

from harness.models import probe
from harness.models.hf import HFModel


class FakeTimer:
    """A clock that advances by cost(budget) during each pass, so rates are exactly what the test says."""

    def __init__(self, seconds_per_token: dict[int, float]):
        self.seconds_per_token = seconds_per_token
        self.now = 0.0
        self.passes: list[int] = []

    def clock(self) -> float:
        return self.now

    def run_pass(self, budget: int) -> None:
        self.passes.append(budget)
        if self.seconds_per_token.get(budget) is None:
            raise MemoryError
        self.now += budget * self.seconds_per_token[budget]


def test_probe_picks_the_smallest_budget_within_the_margin_and_stops_climbing():
    # 1000 tokens/s at 256, 2000 at 512, 2040 at 1024 (within 5% of the best: a bigger batch buys too
    # little), 2100 at 2048, then a clear drop at 4096: nothing bigger runs
    timer = FakeTimer({256: 1 / 1000, 512: 1 / 2000, 1024: 1 / 2040, 2048: 1 / 2100, 4096: 1 / 1500, 8192: 1 / 3000})
    rates, cut_short = probe.measure(timer.run_pass, probe.CPU_CANDIDATES, timer.clock)
    assert sorted(rates) == [256, 512, 1024, 2048, 4096] and not cut_short
    assert 8192 not in timer.passes
    assert rates[512] == pytest.approx(2000)
    assert probe.pick(rates, fallback=1024) == 512


def test_probe_counts_the_faster_of_two_passes():
    timer = FakeTimer({256: 1 / 1000})
    slow_first = iter([1 / 100, 1 / 1000, 1 / 1000])  # warm-up, then a slow pass and a fast one

    def run_pass(budget):
        timer.now += budget * next(slow_first)

    assert probe.measure(run_pass, (256,), timer.clock) == ({256: pytest.approx(1000)}, False)


def test_probe_stops_climbing_after_its_time_limit():
    timer = FakeTimer({256: 1 / 1000, 512: 1 / 2000, 1024: 1 / 4000, 2048: 1 / 8000})
    rates, cut_short = probe.measure(timer.run_pass, (256, 512, 1024, 2048), timer.clock, time_limit=1.5)
    # warm-up 0.256 s, then two passes of 0.256 s at each budget: 1.792 s after 1024, over the limit
    assert sorted(rates) == [256, 512, 1024] and 2048 not in timer.passes and cut_short
    assert probe.pick(rates, fallback=256) == 1024


def test_probe_cut_short_early_keeps_the_default_and_caches_it_so_the_next_run_does_not_probe(tmp_path):
    path = tmp_path / "batch-tokens.json"
    timer = FakeTimer({256: 1 / 10, 512: 1 / 20, 1024: 1 / 40})  # a busy machine: 77 s for the first budget
    choice = probe.choose("k", path, timer.run_pass, (256, 512, 1024), 1024, timer.clock)
    assert (choice.batch_tokens, choice.how) == (1024, "default (probe cut short: machine busy)")
    assert timer.passes == [256, 256, 256]
    again = probe.choose("k", path, timer.run_pass, (256, 512, 1024), 1024, timer.clock)
    assert (again.batch_tokens, again.how) == (1024, "cached (an earlier probe was cut short: machine busy)")
    assert timer.passes == [256, 256, 256]  # no second probe


def test_probe_stops_at_the_first_budget_out_of_memory():
    timer = FakeTimer({1024: 1 / 1000, 2048: 1 / 4000, 4096: None, 8192: 1 / 9000})
    rates, cut_short = probe.measure(timer.run_pass, probe.ACCELERATOR_CANDIDATES, timer.clock)
    assert not cut_short
    assert rates == {1024: pytest.approx(1000), 2048: pytest.approx(4000)}
    assert probe.pick(rates, fallback=8192) == 2048
    assert probe.pick({}, fallback=8192) == 8192


def test_probe_choice_is_cached_and_reused(tmp_path):
    path = tmp_path / "batch-tokens.json"
    timer = FakeTimer({256: 1 / 1000, 512: 1 / 3000, 1024: 1 / 1000, 2048: 1 / 1000, 4096: 1, 8192: 1})
    first = probe.choose("key-a", path, timer.run_pass, probe.CPU_CANDIDATES, 1024, timer.clock)
    assert (first.batch_tokens, first.how) == (512, "probed")
    assert json.loads(path.read_text())["key-a"]["batch_tokens"] == 512
    timer.passes.clear()
    again = probe.choose("key-a", path, timer.run_pass, probe.CPU_CANDIDATES, 1024, timer.clock)
    assert (again.batch_tokens, again.how, timer.passes) == (512, "cached", [])
    other = probe.choose("key-b", path, timer.run_pass, probe.CPU_CANDIDATES, 1024, timer.clock)
    assert other.how == "probed" and timer.passes  # another model, device, dtype or thread count probes
    assert set(json.loads(path.read_text())) == {"key-a", "key-b"}


def test_probe_survives_a_corrupt_cache_file(tmp_path):
    path = tmp_path / "batch-tokens.json"
    path.write_text("{not json")
    timer = FakeTimer({256: 1 / 1000, 512: 1 / 100})
    assert probe.choose("k", path, timer.run_pass, (256, 512), 1024, timer.clock).batch_tokens == 256
    assert json.loads(path.read_text())["k"]["batch_tokens"] == 256


def test_cache_key_separates_device_dtype_and_threads():
    keys = {probe.cache_key("f", "cpu", "torch.float32", 2), probe.cache_key("f", "cpu", "torch.bfloat16", 2),
            probe.cache_key("f", "cpu", "torch.float32", 1), probe.cache_key("f", "cuda:0", "torch.float32", 2),
            probe.cache_key("g", "cpu", "torch.float32", 2)}
    assert len(keys) == 5


@pytest.fixture()
def tiny_llama(gpt2_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, hidden_size=16,
                         intermediate_size=32, max_position_embeddings=128, vocab_size=len(gpt2_tokenizer),
                         bos_token_id=None, eos_token_id=gpt2_tokenizer.eos_token_id, pad_token_id=None)
    return LlamaForCausalLM(config).eval()


def test_model_probes_once_then_reads_the_cache(tiny_llama, gpt2_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULT_CACHE", str(tmp_path / "results.sqlite"))  # the probe's file sits beside it
    monkeypatch.setattr(probe, "CPU_CANDIDATES", (256, 512))
    model = HFModel(tiny_llama, gpt2_tokenizer, "tiny", batch_tokens=None)
    assert model.describe()["batch_tokens_from"] is None  # describe itself never needs a probe
    chosen = model.batch_tokens
    assert chosen in (256, 512)
    assert model.describe()["batch_tokens"] == chosen and model.describe()["batch_tokens_from"] == "probed"
    (entry,) = json.loads((tmp_path / probe.CACHE_FILE).read_text()).values()
    assert entry["batch_tokens"] == chosen and entry["tokens_per_second"]
    again = HFModel(tiny_llama, gpt2_tokenizer, "tiny", batch_tokens=None)
    assert (again.batch_tokens, again.describe()["batch_tokens_from"]) == (chosen, "cached")


def test_batch_tokens_flag_overrides_the_probe(tiny_llama, gpt2_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULT_CACHE", str(tmp_path / "results.sqlite"))
    monkeypatch.setattr(probe, "measure", lambda *a, **k: pytest.fail("--batch-tokens must not probe"))
    model = HFModel(tiny_llama, gpt2_tokenizer, "tiny", batch_tokens=300)
    assert model.batch_tokens == 300
    assert (model.describe()["batch_tokens"], model.describe()["batch_tokens_from"]) == (300, "flag")
    assert not (tmp_path / probe.CACHE_FILE).exists()


# ---------------------------------------------------------------- fused RMSNorm / gated MLP (models/fused.py)


@pytest.fixture()
def tiny_gpt2(gpt2_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=128,
                                      vocab_size=len(gpt2_tokenizer))).eval()


def requests_for_scoring():
    from harness.records import LoglikelihoodRequest

    texts = [("The cat sat on the", " mat"), ("Paris is the capital of", " France, a country"), ("", "Hello world"),
             ("Water boils at one hundred degrees", " Celsius at sea level.")]
    return [LoglikelihoodRequest(f"r{i}", c, x) for i, (c, x) in enumerate(texts)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_llama_scores_bitwise_equal_to_unfused(tiny_llama, gpt2_tokenizer, dtype):
    import copy

    from harness.models import fused

    plain = copy.deepcopy(tiny_llama).to(dtype)
    quick = copy.deepcopy(tiny_llama).to(dtype)
    assert fused.fuse(quick) == 2 * 1 + 1 + 1  # two norms and an MLP per layer, the final norm
    requests = requests_for_scoring()
    expected = HFModel(plain, gpt2_tokenizer, "plain", batch_tokens=256).loglikelihood(requests)
    got = HFModel(quick, gpt2_tokenizer, "fused", batch_tokens=256).loglikelihood(requests)
    assert got == expected
    ids = torch.tensor([[5, 17, 300, 2, 9]])
    with torch.inference_mode():
        assert torch.equal(plain(ids).logits, quick(ids).logits)


def test_fused_model_trains_as_the_unfused_one(tiny_llama):
    import copy

    from harness.models import fused

    quick = copy.deepcopy(tiny_llama)
    fused.fuse(quick)
    copied = copy.deepcopy(quick)  # fine-tuning trains a deep copy: it stays fused and correct
    assert fused.is_fused(copied)
    ids = torch.tensor([[5, 17, 300, 2, 9]])
    losses = [m(ids, labels=ids).loss for m in (tiny_llama, copied)]
    grads = [torch.autograd.grad(loss, m.model.norm.weight)[0]
             for loss, m in zip(losses, (tiny_llama, copied), strict=True)]
    assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])
    assert fused.unfuse(copied) == 4 and not fused.is_fused(copied)


def test_fuse_leaves_gpt2_alone(tiny_gpt2, gpt2_tokenizer):
    from harness.models import fused

    assert fused.fuse(tiny_gpt2) == 0 and not fused.is_fused(tiny_gpt2)


def test_load_model_fuses_unless_told_not_to(tiny_gpt2_dir, tmp_path, gpt2_tokenizer, tiny_llama, monkeypatch):
    from harness.models import fused
    from harness.models.registry import load_model

    folder = tmp_path / "llama"
    tiny_llama.save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    assert fused.is_fused(load_model(str(folder), batch_tokens=256).module)
    assert not fused.is_fused(load_model(str(folder), batch_tokens=256, fuse=False).module)


def test_bf16_refused_on_a_cpu_without_native_bf16(tmp_path, monkeypatch, tiny_llama):
    from harness.config import DType
    from harness.errors import HarnessError
    from harness.models import hf, registry

    tiny_llama.save_pretrained(tmp_path)
    monkeypatch.setattr(hf, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(registry, "load_transformers", lambda spec: pytest.fail("refused before loading weights"))
    with pytest.raises(HarnessError, match=r"^--dtype bf16: this CPU has no native bf16"):
        registry.load_model(str(tmp_path), dtype=DType.BF16)


def test_probe_key_is_the_shape_not_the_weights():
    """A fine-tuned checkpoint (same shapes, new weights) reuses its base model's probe; another shape does not."""
    import torch

    base, tuned, wider = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 8)
    with torch.no_grad():
        tuned.weight.add_(1.0)
    assert probe.shape_of(base) == probe.shape_of(tuned) != probe.shape_of(wider)
