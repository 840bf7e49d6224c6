"""Every fast scoring path (tree-mask packing, context KV-cache reuse, on transformers GPT-2 and Llama and
on the reference decoder) against a naive path written here: one full forward per request, a
full-vocabulary log-softmax at every position, the continuation's entries summed."""

from __future__ import annotations

import pytest
import torch

from harness.models import fastpath, packing, scoring
from harness.models.fastpath import PackMode
from harness.models.hf import HFModel
from harness.records import LoglikelihoodRequest

N_POSITIONS = 1024


@pytest.fixture(scope="module")
def hf_models(gpt2_tokenizer):
    """Tiny random transformers models with the full 1024 positions and GPT-2's vocabulary. A large
    initialisation makes attention peaky, so a token that sees the wrong context changes the numbers."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    vocab = len(gpt2_tokenizer)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=N_POSITIONS, vocab_size=vocab,
                                      initializer_range=0.3))
    llama = LlamaForCausalLM(LlamaConfig(
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32, intermediate_size=64,
        max_position_embeddings=N_POSITIONS, vocab_size=vocab, initializer_range=0.3, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=gpt2_tokenizer.eos_token_id, pad_token_id=None,
    ))
    return {"gpt2": gpt2.eval(), "llama": llama.eval()}


def make(hf_models, gpt2_tokenizer, kind: str, mode: PackMode | None, batch_tokens: int = 4096) -> HFModel:
    from harness.models import reference
    from harness.models.gpt import AttentionImpl
    from harness.models.transformers_driver import TRANSFORMERS

    match kind.split("-"):
        case ["ref", arch, impl]:
            model, driver = reference.from_hf(hf_models[arch], AttentionImpl(impl)), reference.DRIVER
        case [arch]:
            model, driver = hf_models[arch], TRANSFORMERS
    return HFModel(model, gpt2_tokenizer, kind, batch_tokens, pack=mode, driver=driver)


def naive(model: HFModel, requests) -> dict[str, tuple[float, bool, bool]]:
    """One forward per request over (context + continuation)[-(max_length + 1):][:-1]; log-softmax everywhere."""
    out = {}
    for r in requests:
        pair = model._encode_pair(r.context, r.continuation)
        full = (pair.context + pair.continuation)[-(model.max_length + 1) :]
        n = min(len(pair.continuation), len(full) - 1)
        ids = torch.tensor([full[:-1]])  # (1, T)
        with torch.no_grad():
            logprobs = torch.log_softmax(model.module(ids).logits[0].double(), dim=-1)  # (T, V)
        rows = range(len(full) - 1 - n, len(full) - 1)
        targets = full[len(full) - n :]
        greedy = [int(logprobs[t].argmax()) == tok for t, tok in zip(rows, targets, strict=True)]
        out[r.id] = (sum(float(logprobs[t, tok]) for t, tok in zip(rows, targets, strict=True)), all(greedy),
                     greedy[-1])
    return out


def questions(gpt2_tokenizer) -> list[LoglikelihoodRequest]:
    """Multiple-choice questions (choices of different lengths, shared contexts), their unconditional
    requests (empty context), a token spanning the join, one-token continuations, and contexts at and
    beyond the 1024-position limit, so packed rows exceed max_length and truncation differs per choice."""
    long_text = " ".join(f"word{i} and more" for i in range(400))  # ~1400 tokens
    assert len(gpt2_tokenizer.encode(long_text)) > N_POSITIONS + 100
    near = gpt2_tokenizer.decode(gpt2_tokenizer.encode(long_text)[: N_POSITIONS - 12])  # ~1012 tokens
    groups = {
        "q1": ("Question: where does the cat sleep?\nAnswer:",
               [" on the mat", " in a very large old house by the sea", " no"]),
        "q2": ("The quick brow", ["n fox", "n fox jumps over", "se"]),  # " brown" spans the join
        "near": (near, [" yes", " one two three four five six seven", " a b c d e f g h i j",
                        " a much longer answer that will not fit without cutting the context at all now"]),
        "over": (long_text, [" x", " the end of it all"]),
        "one": ("Paris is the capital of", [" France", " Spain", "."]),
        "space": ("Fill in: ", ["blank", "two words"]),
    }
    requests = []
    for name, (context, choices) in groups.items():
        for i, choice in enumerate(choices):
            requests.append(LoglikelihoodRequest(f"{name}/{i}", context, choice))
            requests.append(LoglikelihoodRequest(f"{name}/{i}/u", "", choice))
    return requests


KINDS = ["gpt2", "llama", "ref-gpt2-explicit", "ref-gpt2-sdpa", "ref-llama-explicit", "ref-llama-sdpa"]
CASES = [(k, PackMode.TREE) for k in KINDS] + [("gpt2", PackMode.KV_CACHE), ("llama", PackMode.KV_CACHE)]


@pytest.fixture(scope="module")
def expected(hf_models, gpt2_tokenizer):
    requests = questions(gpt2_tokenizer)
    return requests, {k: naive(make(hf_models, gpt2_tokenizer, k, PackMode.PLAIN), requests) for k in ("gpt2", "llama")}


def assert_same(got: dict, want: dict[str, tuple[float, bool, bool]]) -> None:
    for rid, (lp, greedy, last) in want.items():
        assert got[rid].logprob == pytest.approx(lp, rel=1e-5), rid
        assert (got[rid].is_greedy, got[rid].last_greedy) == (greedy, last), rid
    for question in {rid.split("/")[0] for rid in want}:
        for suffix in ("", "/u"):
            ids = sorted(r for r in want
                         if r.startswith(question + "/") and r.endswith(suffix) and r.count("/") == 1 + bool(suffix))
            assert max(ids, key=lambda r: got[r].logprob) == max(ids, key=lambda r: want[r][0]), question


@pytest.mark.parametrize(("kind", "mode"), CASES)
def test_fast_paths_equal_the_naive_path(hf_models, gpt2_tokenizer, expected, kind, mode):
    requests, want = expected
    model = make(hf_models, gpt2_tokenizer, kind, mode)
    assert_same(model.loglikelihood(requests), want[kind.split("-")[1] if kind.startswith("ref") else kind])


def test_the_cases_reach_the_edges(hf_models, gpt2_tokenizer):
    """The fixture really packs rows longer than max_length, truncates choices of one context differently,
    and splits a spanning-join question's choices off from its siblings."""
    model = make(hf_models, gpt2_tokenizer, "gpt2", PackMode.TREE)
    requests = questions(gpt2_tokenizer)
    rows = [scoring.model_input(model._encode_pair(r.context, r.continuation), model.max_length) for r in requests]
    packed = packing.pack(rows, model.row_limit)
    assert max(len(p.ids) for p in packed) > N_POSITIONS
    assert max(max(p.positions) for p in packed) == N_POSITIONS - 1
    for name in ("over", "near"):
        cut = [row for r, row in zip(requests, rows, strict=True)
               if r.id.startswith(name + "/") and r.context and row.truncated]
        assert cut and len({packing.split(row)[0] for row in cut}) == len(cut)  # each its own context
    # the unconditional requests share the prefix token
    assert any(packing.is_tree(p) and len(p.branches) >= 6 for p in packed)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "ref-gpt2-sdpa"])
def test_probe_picks_the_tree_mask(hf_models, gpt2_tokenizer, kind):
    assert make(hf_models, gpt2_tokenizer, kind, None).pack_mode is PackMode.TREE


def test_results_do_not_depend_on_batch_size(hf_models, gpt2_tokenizer, expected):
    requests, want = expected
    for batch_tokens in (1, 700, 100_000):
        assert_same(make(hf_models, gpt2_tokenizer, "gpt2", PackMode.TREE, batch_tokens).loglikelihood(requests),
                    want["gpt2"])


def test_a_broken_tree_mask_is_caught(hf_models, gpt2_tokenizer, expected, monkeypatch):
    """Branches that see each other (a plain causal mask) change the numbers: the comparison above can
    fail, and the probe then falls back to the KV cache."""
    requests, want = expected
    monkeypatch.setattr(packing, "tree_mask", lambda segment: (
        torch.ones(segment.shape[1], segment.shape[1], dtype=torch.bool).tril().expand(segment.shape[0], -1, -1)))
    with pytest.raises(AssertionError):
        assert_same(make(hf_models, gpt2_tokenizer, "gpt2", PackMode.TREE).loglikelihood(requests), want["gpt2"])
    assert make(hf_models, gpt2_tokenizer, "gpt2", None).pack_mode is PackMode.KV_CACHE


def test_restarted_positions_matter(hf_models, gpt2_tokenizer, expected, monkeypatch):
    """Positions that run on through the row instead of restarting after the context are caught too."""
    requests, want = expected
    real = packing.tensors

    def running_positions(chunk):
        t = real(chunk)
        positions = torch.arange(t.ids.shape[1]).expand_as(t.ids).clamp(max=N_POSITIONS - 1)  # (B, W)
        return packing.Tensors(t.ids, positions, t.allowed, t.rows, t.columns, t.targets)

    monkeypatch.setattr(packing, "tensors", running_positions)
    with pytest.raises(AssertionError):
        assert_same(make(hf_models, gpt2_tokenizer, "llama", PackMode.TREE).loglikelihood(requests), want["llama"])


def test_rolling_windows_use_the_fast_path(hf_models, gpt2_tokenizer):
    from harness.records import RollingRequest

    text = " ".join(f"token{i}" for i in range(1500))  # ~3000 tokens: three windows
    fast = make(hf_models, gpt2_tokenizer, "gpt2", PackMode.TREE).loglikelihood_rolling(
        [RollingRequest("d", text)])["d"]
    plain = make(hf_models, gpt2_tokenizer, "gpt2", PackMode.PLAIN).loglikelihood_rolling(
        [RollingRequest("d", text)])["d"]
    assert fast.n_tokens == plain.n_tokens > 2 * N_POSITIONS
    assert fast.logprob == pytest.approx(plain.logprob, rel=1e-5)


def test_pack_layout():
    rows = [scoring.ModelInput((1, 2, 3, 4, 5), (4, 5, 6), 0), scoring.ModelInput((1, 2, 3), (9,), 0),
            scoring.ModelInput((1, 2, 3, 7), (7, 8), 0), scoring.ModelInput((5, 3, 7), (7, 8), 0)]
    first, other = packing.pack(rows, row_limit=100)
    # the third branch starts ALIGN columns after the second (which ends at 5): gap columns are id 0, position 0
    gap = packing.ALIGN + 3 - 5
    assert first.ids == (1, 2, 3, 4, 5, *[0] * gap, 7) and first.shared == 3
    assert first.positions == (0, 1, 2, 3, 4, *[0] * gap, 3)
    last = 5 + gap
    assert last % packing.ALIGN == first.shared % packing.ALIGN
    assert [first.scored_columns(b) for b in first.branches] == [[2, 3, 4], [2], [2, last]]
    assert first.segments() == [0, 0, 0, 1, 1, *[-1] * gap, 3]
    assert other.ids == (5, 3, 7) and not packing.is_tree(other)
    allowed = packing.tree_mask(torch.tensor([first.segments()]))[0]  # (W, W)
    assert [j for j in range(len(first.ids)) if allowed[last, j]] == [0, 1, 2, last]  # the context and itself
    # the limit splits a context's branches
    assert [len(p.branches) for p in packing.pack(rows, row_limit=5)] == [2, 1, 1]
    assert fastpath.PackMode("tree-mask") is PackMode.TREE
