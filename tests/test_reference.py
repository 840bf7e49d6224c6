"""The from-scratch decoder (gpt.py) against transformers on the same weights: logits, greedy tokens,
log-likelihoods through HFModel, generation; explicit attention vs SDPA; logits_to_keep; the reference
folder format and its errors; the real SmolLM2-135M weights when they are on disk."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from harness.errors import HarnessError
from harness.files import user_cache
from harness.models import reference
from harness.models.gpt import GPT, Arch, AttentionImpl, GPTConfig
from harness.models.hf import HFModel
from harness.models.reference import build, from_hf, load_reference, save_reference
from harness.models.registry import load_model
from harness.models.transformers_load import reference_decoder
from harness.records import GenerateRequest, LoglikelihoodRequest, RollingRequest

TOL = 1e-5  # max |delta logit| on random weights, fp32
SMOLLM2 = user_cache() / "models" / "smollm2-135m"


def scramble(model, seed: int = 0, std: float = 0.02):
    """Perturb every parameter (biases and norm weights start at 0 and 1: a mixed-up mapping would hide)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * std)
    return model.eval()


def assert_parity(hf_model, ours: GPT, ids: torch.Tensor, tol: float = TOL, keep: int | torch.Tensor = 0) -> float:
    """Same logits (within tol) and the same argmax at every (kept) position; returns max |delta|."""
    with torch.inference_mode():
        expected = hf_model(ids, logits_to_keep=keep).logits  # (B, T', V)
        got = ours(ids, logits_to_keep=keep).logits  # (B, T', V)
    assert got.shape == expected.shape
    delta = float((got - expected).abs().max())
    assert delta <= tol, f"max |delta logit| {delta:.2e} > {tol:.0e}"
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    return delta


def with_attention(model: GPT, attention: AttentionImpl) -> GPT:
    return build(dataclasses.replace(model.config, attention=attention), model.state_dict(), "test")


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = scramble(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir, dtype=torch.float32), seed=1)
    return hf, from_hf(hf), AutoTokenizer.from_pretrained(tiny_gpt2_dir)


def tiny_llama(tied: bool, seed: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=96, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
        pad_token_id=2,
    )
    return scramble(LlamaForCausalLM(config), seed=seed)


# ---------------------------------------------------------------- parity with transformers


def test_tiny_gpt2_parity(tiny_gpt2):
    hf, ours, tok = tiny_gpt2
    n = hf.config.n_positions
    random_ids = torch.randint(0, hf.config.vocab_size, (2, n), generator=torch.Generator().manual_seed(0))
    assert_parity(hf, ours, random_ids)  # every position up to the last one
    assert_parity(hf, ours, random_ids[:, : n - 3])
    assert_parity(hf, ours, torch.tensor([tok.encode("The quick brown fox jumps over the lazy dog.")]))


@pytest.mark.slow
def test_gpt2_small_shape_parity():
    """gpt2-small's exact shape with transformers' random init, over the full 1024 positions (the LM head
    runs at every 8th position and the last 64, on both sides, to keep the test quick)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    hf = GPT2LMHeadModel(config).eval()
    ours = from_hf(hf)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())
    generator = torch.Generator().manual_seed(3)
    keep = torch.cat([torch.arange(0, 960, 8), torch.arange(960, 1024)])
    assert_parity(hf, ours, torch.randint(0, 50257, (1, 1024), generator=generator), keep=keep)
    assert_parity(hf, ours, torch.randint(0, 50257, (2, 40), generator=generator))


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_llama_gqa_parity(tied):
    hf = tiny_llama(tied)
    ours = from_hf(hf)
    assert ours.config.arch is Arch.LLAMA and ours.config.kv_heads == 2 < ours.config.n_head == 4
    assert (ours.lm_head is None) == tied
    ids = torch.randint(0, 500, (2, 96), generator=torch.Generator().manual_seed(4))
    assert_parity(hf, ours, ids)
    assert_parity(hf, ours, ids[:1, :7])


@pytest.mark.parametrize("arch", [Arch.GPT2, Arch.LLAMA])
def test_sdpa_fast_path_equals_explicit_attention(arch, tiny_gpt2):
    explicit = tiny_gpt2[1] if arch is Arch.GPT2 else from_hf(tiny_llama(tied=True))
    fast = with_attention(explicit, AttentionImpl.SDPA)
    ids = torch.randint(0, 500, (3, explicit.config.n_positions), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        delta = (explicit(ids).logits - fast(ids).logits).abs().max()
    assert float(delta) <= 1e-5


# ---------------------------------------------------------------- the forward's interface


def test_logits_to_keep_semantics(tiny_gpt2):
    _, model, _ = tiny_gpt2
    ids = torch.randint(0, 1000, (2, 20), generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        full = model(ids).logits  # (2, 20, V)
        assert torch.allclose(model(ids, logits_to_keep=0).logits, full, atol=1e-6)
        assert model(ids, logits_to_keep=3).logits.shape == (2, 3, full.shape[-1])
        assert torch.allclose(model(ids, logits_to_keep=3).logits, full[:, -3:], atol=1e-6)
        positions = torch.tensor([0, 4, 5, 19])
        assert torch.allclose(model(ids, logits_to_keep=positions).logits, full[:, positions], atol=1e-6)


def test_attention_mask_right_padding_only(tiny_gpt2):
    _, model, _ = tiny_gpt2
    ids = torch.randint(0, 1000, (2, 6), generator=torch.Generator().manual_seed(7))
    right = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with torch.inference_mode():
        assert torch.equal(model(ids, attention_mask=right).logits, model(ids).logits)
        with pytest.raises(ValueError, match="right padding"):
            model(ids, attention_mask=right.flip(1))
        with pytest.raises(ValueError, match="exceeds"):
            model(torch.zeros(1, model.config.n_positions + 1, dtype=torch.long))


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        GPTConfig(arch=Arch.LLAMA, n_head=4, n_embd=64, n_kv_head=3)
    with pytest.raises(ValueError, match="GPT-2 variant"):
        GPTConfig(arch=Arch.GPT2, n_head=4, n_embd=64, n_kv_head=2)
    small = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=11, n_positions=5))
    assert small.config.model_type == "reference-gpt2"


# ---------------------------------------------------------------- through the harness


def test_hfmodel_scores_reference_like_transformers(tiny_gpt2):
    hf, ours, tok = tiny_gpt2
    theirs, mine = (HFModel(hf, tok, "hf", batch_tokens=64),
                    HFModel(ours, tok, "ref", batch_tokens=64, driver=reference.DRIVER))
    assert mine.max_length == theirs.max_length == 128 and mine._can_keep_logits
    cases = [("Question: what is it?\nAnswer:", " a cat"), ("The dog ", "barked loudly."), ("", "Hello world"),
             ("word " * 150, " end")]  # fmt: skip  (the last is truncated from the left)
    requests = [LoglikelihoodRequest(str(i), c, x) for i, (c, x) in enumerate(cases)]
    expected, got = theirs.loglikelihood(requests), mine.loglikelihood(requests)
    for r in requests:
        assert got[r.id].logprob == pytest.approx(expected[r.id].logprob, abs=1e-4)
        assert (got[r.id].is_greedy, got[r.id].n_tokens, got[r.id].truncated) == (
            expected[r.id].is_greedy, expected[r.id].n_tokens, expected[r.id].truncated,
        )  # fmt: skip
    rolling = [RollingRequest("doc", "A long document. " * 40)]
    assert mine.loglikelihood_rolling(rolling)["doc"].logprob == pytest.approx(
        theirs.loglikelihood_rolling(rolling)["doc"].logprob, abs=1e-3
    )


def test_generate_matches_transformers(tiny_gpt2):
    hf, ours, tok = tiny_gpt2
    theirs, mine = HFModel(hf, tok, "hf"), HFModel(ours, tok, "ref", driver=reference.DRIVER)
    free = [GenerateRequest("free", "Question: what is the capital of France?\nAnswer:", (), 10)]
    text = theirs.generate(free)["free"].text
    assert mine.generate(free)["free"].text == text and text
    stop = text[3:5]
    stopped = [GenerateRequest("stop", free[0].context, (stop,), 10)]
    assert mine.generate(stopped)["stop"].text == theirs.generate(stopped)["stop"].text


def test_reference_greedy_equals_transformers_generate(tiny_gpt2):
    """Token for token, on the same weights: the reference backend's own loop and transformers' generate,
    both for max_new_tokens and for an end-of-text token that arrives on the way."""
    hf, ours, tok = tiny_gpt2
    context = tok.encode("Question: what is the capital of France?\nAnswer:")
    ids = torch.tensor([context])  # (1, T)

    def generate(**kwargs) -> list[int]:
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False, **kwargs)
        return out[0, len(context) :].tolist()

    expected = generate(pad_token_id=tok.eos_token_id)
    assert len(expected) == 20 and reference.greedy(ours, tok, context, 20, (), tok.eos_token_id) == expected
    eos = expected[5]  # pretend the sixth greedy token is the end of text: both stop right after it
    stopped = generate(pad_token_id=eos, eos_token_id=eos)
    assert stopped == expected[: expected.index(eos) + 1]
    assert reference.greedy(ours, SimpleNamespace(eos_token_id=eos, decode=tok.decode), context, 20, (), eos) == stopped


def test_reference_backend_generates_like_the_transformers_backend(tiny_gpt2_dir):
    """Loaded by name through the registry: `reference:<folder>` and `<folder>` give the same text."""
    ours, theirs = load_model(f"reference:{tiny_gpt2_dir}"), load_model(str(tiny_gpt2_dir))
    assert (ours.backend, theirs.backend) == ("reference", "transformers")
    requests = [GenerateRequest("free", "The meaning of life is", (), 12),
                GenerateRequest("stop", "Question: who?\nAnswer:", (" the",), 12)]  # fmt: skip
    assert ({k: v.text for k, v in ours.generate(requests).items()}
            == {k: v.text for k, v in theirs.generate(requests).items()})


# ---------------------------------------------------------------- folders


def test_save_load_round_trip(tiny_gpt2, tmp_path):
    _, ours, tok = tiny_gpt2
    save_reference(ours, tok, tmp_path / "ref")
    assert json.loads((tmp_path / "ref" / "reference.json").read_text())["config"]["arch"] == "gpt2"
    loaded, loaded_tok = load_reference(str(tmp_path / "ref"))
    assert loaded.config == ours.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ours.state_dict().values(), strict=True))
    assert loaded_tok.encode("Hello world") == tok.encode("Hello world")
    fast, _ = load_reference(str(tmp_path / "ref"), attention=AttentionImpl.SDPA)
    assert fast.config.attention is AttentionImpl.SDPA


def test_load_reference_converts_transformers_folders(tiny_gpt2_dir):
    from transformers import AutoModelForCausalLM

    model, tok = reference_decoder(str(tiny_gpt2_dir))
    hf = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir, dtype=torch.float32).eval()
    assert_parity(hf, model, torch.tensor([tok.encode("Round trip through a transformers folder.")]))


def test_bad_inputs_are_one_line_harness_errors(tiny_gpt2, tmp_path):
    _, ours, tok = tiny_gpt2
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"no config.json \(transformers\) or reference.json"):
        reference_decoder(str(tmp_path / "empty"))
    with pytest.raises(HarnessError, match="no such file or folder"):
        reference_decoder(str(tmp_path / "missing"))
    with pytest.raises(HarnessError, match="not a reference folder"):
        load_reference(str(tmp_path / "empty"))
    folder = save_reference(ours, tok, tmp_path / "ref")
    document = json.loads((folder / "reference.json").read_text())
    (folder / "reference.json").write_text(json.dumps(document | {"config": document["config"] | {"n_embd": 64}}))
    with pytest.raises(HarnessError, match=r"wte.weight has shape \(50257, 32\), the config needs \(50257, 64\)"):
        load_reference(str(folder))
    (folder / "reference.json").write_text(json.dumps(document | {"config": document["config"] | {"n_emb": 32}}))
    with pytest.raises(HarnessError, match="unknown config key 'n_emb'"):
        load_reference(str(folder))
    (folder / "reference.json").write_text(json.dumps(document))
    (folder / "model.safetensors").unlink()
    with pytest.raises(HarnessError, match="no model.safetensors"):
        load_reference(str(folder))
    with pytest.raises(HarnessError, match="unsupported architecture 'opt'"):
        from_hf(SimpleNamespace(config=SimpleNamespace(model_type="opt")))


def test_from_hf_checks_tensor_names(tiny_gpt2):
    from harness.models.reference import gpt2_weights

    hf, ours, _ = tiny_gpt2
    source = dict(hf.state_dict())
    with pytest.raises(HarnessError, match="unexpected tensors"):
        gpt2_weights(source | {"transformer.extra.weight": torch.zeros(1)}, ours.config)
    del source["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(HarnessError, match="no tensor 'transformer.h.1.mlp.c_fc.bias'"):
        gpt2_weights(source, ours.config)


# ---------------------------------------------------------------- real weights


@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason=f"no converted SmolLM2-135M at {SMOLLM2}")
def test_smollm2_real_weights():
    """Real SmolLM2-135M (Llama, GQA 9/3 heads, tied head): same logits within 1e-3, same argmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(SMOLLM2)
    ours = from_hf(hf)
    for text in ["The capital of France is Paris, and the capital of Germany is",
                 "def fibonacci(n):\n    if n < 2:\n        return n\n    return"]:  # fmt: skip
        assert_parity(hf, ours, torch.tensor([tok.encode(text)]), tol=1e-3)
