"""Batched greedy generation over a KV cache (models/generation.py) pinned token for token to transformers'
own greedy `generate(do_sample=False)`, one prompt at a time and unpadded, on tiny random GPT-2 and Llama
models: prompts of different lengths, an empty and an over-long context, per-row max_new_tokens, an
end-of-text token on the way, stop strings inside a token, batch sizes 1, 3 and all, a chunked prefill;
the same for the reference decoder's own KV cache (explicit attention and SDPA); the real SmolLM2-135M
when it is on disk."""

from __future__ import annotations

import random

import pytest
import torch

from harness.errors import HarnessError
from harness.files import user_cache
from harness.models import generation, reference
from harness.models.generation import Job, cut_at_stop, finished
from harness.models.gpt import AttentionImpl
from harness.models.hf import HFModel
from harness.models.kvcache import KVCache
from harness.models.transformers_driver import transformers_cached
from harness.records import GenerateRequest, LoglikelihoodRequest

SMOLLM2 = user_cache() / "models" / "smollm2-135m"
PROMPTS = [
    "Question: what is the capital of France?\nAnswer:",
    "Hello",
    "The quick brown fox jumps over the lazy dog and then runs into the forest, where",
    "",
    "Q: 1 + 1 =\nA: 2\n\nQ: 2 + 3 =\nA:",
    "word " * 150,  # longer than the model's 128 positions: left-truncated
]
MAX_NEW = [20, 7, 20, 13, 1, 20]
BATCHINGS = [  # (rows per batch, prefill tokens per chunk): one row at a time, 3 with one row per prefill chunk, all
    (1, 1024), (3, 1), (256, 1024),
]


def scramble(model, seed: int, std: float = 0.3):
    """Larger random weights than the init: confident argmaxes, so float noise cannot flip a greedy token."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * std)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_dir, gpt2_tokenizer):
    from transformers import AutoModelForCausalLM

    return scramble(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir, dtype=torch.float32), seed=1), gpt2_tokenizer


@pytest.fixture(scope="module")
def tiny_llama(gpt2_tokenizer):
    """Llama-shaped like SmolLM2 (rotary, RMSNorm, SwiGLU, grouped-query attention, untied head), GPT-2's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(2)
    eos = gpt2_tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(gpt2_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    return scramble(LlamaForCausalLM(config), seed=2, std=0.1), gpt2_tokenizer


def expected_tokens(hf, context: list[int], max_new_tokens: int, eos: int) -> list[int]:
    """transformers' greedy generate on one unpadded prompt: the reference every batching must equal."""
    ids = torch.tensor([context])  # (1, T)
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                          pad_token_id=eos, eos_token_id=eos)  # (1, T + n)
    return out[0, len(context) :].tolist()


def jobs_for(model: HFModel, max_new: list[int], stop: tuple[str, ...] = ()) -> list[Job]:
    return [Job(generation.context_ids(model.encode(p), model.prefix_token, model.max_length, n), n, stop)
            for p, n in zip(PROMPTS, max_new, strict=True)]


def cached_lms(hf) -> dict[str, generation.CachedLM]:
    """The transformers backend's stepper and the reference decoder's, on the same weights."""
    return {
        "transformers": transformers_cached(hf),
        "reference-explicit": reference.cached(reference.from_hf(hf, AttentionImpl.EXPLICIT)),
        "reference-sdpa": reference.cached(reference.from_hf(hf, AttentionImpl.SDPA)),
    }


@pytest.mark.parametrize("which", ["tiny_gpt2", "tiny_llama"])
def test_tokens_equal_transformers_generate_at_every_batching(which, request):
    hf, tok = request.getfixturevalue(which)
    model = HFModel(hf, tok, which)
    eos = tok.eos_token_id
    jobs = jobs_for(model, MAX_NEW)
    assert len(jobs[-1].context) == model.max_length - MAX_NEW[-1]  # the over-long prompt was cut on the left
    assert jobs[3].context == (model.prefix_token,)  # the empty one is the prefix token
    want = [expected_tokens(hf, list(j.context), j.max_new_tokens, eos) for j in jobs]
    assert [len(w) for w in want] == MAX_NEW  # no end-of-text on the way: every limit is reached
    for name, lm in cached_lms(hf).items():
        for rows, prefill in BATCHINGS:
            got = generation.generate(lm, jobs, frozenset({eos}), model._decode_new, prefill_tokens=prefill,
                                      max_rows=rows)
            assert got == want, (name, rows, prefill)


@pytest.mark.parametrize("which", ["tiny_gpt2", "tiny_llama"])
def test_end_of_text_ends_a_row(which, request):
    """Pretend a token greedy decoding reaches mid-way is the end of text: each row stops right after it,
    as transformers' generate does, while the other rows of the batch go on."""
    hf, tok = request.getfixturevalue(which)
    model = HFModel(hf, tok, which)
    jobs = jobs_for(model, [20] * len(PROMPTS))
    free = expected_tokens(hf, list(jobs[0].context), 20, tok.eos_token_id)
    eos = free[4]
    want = [expected_tokens(hf, list(j.context), 20, eos) for j in jobs]
    assert len(want[0]) == 5 and any(len(w) == 20 for w in want)
    for name, lm in cached_lms(hf).items():
        for rows, prefill in BATCHINGS:
            got = generation.generate(lm, jobs, frozenset({eos}), model._decode_new, prefill_tokens=prefill,
                                      max_rows=rows)
            assert got == want, (name, rows, prefill)


@pytest.mark.parametrize("which", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("backend", ["transformers", "reference"])
def test_stop_strings_give_the_post_hoc_cut(which, backend, request):
    """The text of a row stopped early equals lm-eval's: decode every token to max_new_tokens, then cut at
    the first stop string; stops that begin inside a token, span two tokens, or never occur."""
    hf, tok = request.getfixturevalue(which)
    driver = reference.DRIVER if backend == "reference" else None
    module = reference.from_hf(hf, AttentionImpl.SDPA) if backend == "reference" else hf
    model = HFModel(module, tok, which, driver=driver)
    full = [tok.decode(expected_tokens(hf, list(j.context), 20, tok.eos_token_id), skip_special_tokens=True)
            for j in jobs_for(model, [20] * len(PROMPTS))]
    first_tokens = [tok.decode(expected_tokens(hf, list(j.context), 1, tok.eos_token_id))
                    for j in jobs_for(model, [1] * len(PROMPTS))]
    stops = []
    for text, first in zip(full, first_tokens, strict=True):
        inside = first[1:3] if len(first) >= 3 else text[1:3]  # begins inside the first token
        spanning = text[len(first) - 1 : len(first) + 2]  # the end of the first token and the start of the next
        stops += [(inside, "\x00never"), (spanning, "zzzz")]
    requests = [GenerateRequest(f"{i}-{k}", p, stop, 20)
                for i, p in enumerate(PROMPTS) for k, stop in enumerate(stops[2 * i : 2 * i + 2])]
    got = model.generate(requests)
    for r in requests:
        i = int(r.id.split("-")[0])
        assert got[r.id].text == cut_at_stop(full[i], r.stop), r.id
    assert any(got[r.id].text != full[int(r.id.split("-")[0])] for r in requests)  # some stop did cut


@pytest.mark.parametrize("which", ["tiny_gpt2", "tiny_llama"])
def test_a_generation_carries_its_log_probability_as_the_scorer_gives_it(which, request):
    """GenerateResult.logprob is log P(text | context) summed by hand from a full forward pass over the exact
    tokens the scorer reads, the same at every batch budget; an empty generation has none."""
    import torch

    hf, tok = request.getfixturevalue(which)
    requests = [GenerateRequest(f"g{i}", p, ("\n",), 8) for i, p in enumerate(PROMPTS)]
    wide, narrow = HFModel(hf, tok, which, batch_tokens=4096), HFModel(hf, tok, which, batch_tokens=64)
    first = wide.generate(requests[:1])["g0"].text[0]  # a stop at the first character leaves nothing
    requests.append(GenerateRequest("empty", PROMPTS[0], (first,), 8))
    got, again = wide.generate(requests), narrow.generate(requests)
    assert got == again and got["empty"].text == "" and got["empty"].logprob is None
    for r in requests[:-1]:
        pair = wide._encode_pair(r.context, got[r.id].text)
        window = (pair.context + pair.continuation)[-(wide.max_length + 1):]  # the long prompt: as lm-eval cuts it
        with torch.no_grad():
            logp = torch.log_softmax(hf(torch.tensor([window[:-1]])).logits[0].double(), -1)  # (T, V)
        start = len(window) - len(pair.continuation)
        hand = sum(float(logp[start + j - 1, t]) for j, t in enumerate(pair.continuation))
        assert got[r.id].n_tokens == len(pair.continuation) > 0
        assert got[r.id].logprob == pytest.approx(hand, abs=1e-4), r.id

def test_finished_never_changes_the_cut():
    """For random texts and stop sets (some stops inside others), every prefix that `finished` accepts has
    the cut of the whole text: stopping there gives the post-hoc text."""
    rng = random.Random(0)
    alphabet = "ab\n "
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        stop = tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3)))
        for end in range(len(text) + 1):
            if finished(text[:end], stop):
                assert cut_at_stop(text[:end], stop) == cut_at_stop(text, stop), (text, stop, end)
                checked += 1
                break
    assert checked > 1000
    assert not finished("xab", ("ab", "xabz")) and finished("xabz", ("ab", "xabz"))
    assert not finished("ab\ufffd", ("b\ufffd\ufffd",))  # a pending UTF-8 character is not settled text


def test_kv_cache_decode_equals_a_full_forward(tiny_llama):
    """Prefill + cached steps, with left padding, a row dropped and pad columns cut, give the logits of an
    unpadded full forward at each row's last position."""
    hf, _ = tiny_llama
    ours = reference.from_hf(hf)
    rows = [[5, 6, 7, 8, 9], [11, 12]]
    ids = torch.tensor([rows[0], [0, 0, 0] + rows[1]])  # (2, 5), left-padded
    mask = torch.tensor([[True] * 5, [False] * 3 + [True] * 2])  # (2, 5)
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)  # (2, 5)
    with torch.inference_mode():
        cache = KVCache.empty(ours.config, 2, 5, ours.wte.weight)  # exactly the prefill's columns
        logits = ours.decode(ids, positions, mask, cache)  # (2, V)
        for b, row in enumerate(rows):
            torch.testing.assert_close(logits[b], ours(torch.tensor([row])).logits[0, -1], atol=1e-5, rtol=0)
        grown = KVCache.merge([cache], 2)
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], 1)  # (2, 6)
        step = ours.decode(torch.tensor([[13], [14]]), torch.tensor([[5], [2]]), mask, grown)  # (2, V)
        for b, row in enumerate([rows[0] + [13], rows[1] + [14]]):
            torch.testing.assert_close(step[b], ours(torch.tensor([row])).logits[0, -1], atol=1e-5, rtol=0)
        kept = grown.select(torch.tensor([1]), 3)  # the short row alone, its 3 pad columns gone
        assert kept.length == 3 and tuple(kept.keys[0].shape) == (1, 2, 4, ours.config.head_size)
        last = ours.decode(torch.tensor([[15]]), torch.tensor([[3]]), torch.ones(1, 4, dtype=torch.bool), kept)
        torch.testing.assert_close(last[0], ours(torch.tensor([rows[1] + [14, 15]])).logits[0, -1], atol=1e-5, rtol=0)


def test_batches_follow_the_budget():
    jobs = [Job((1,) * n, 4, ()) for n in (3, 10, 5, 10, 1)]
    assert generation.batches(jobs, budget=1000) == [[1, 3, 2, 0, 4]]  # longest first, ties by content
    assert generation.batches(jobs, budget=28) == [[1, 3], [2, 0, 4]]  # 2 x (10 + 4) = 28; 3 x (5 + 4) = 27
    assert generation.batches(jobs, budget=1000, max_rows=2) == [[1, 3], [2, 0], [4]]
    with pytest.raises(HarnessError, match="max_new_tokens 128 leaves no room"):
        generation.context_ids([1, 2], 0, 128, 128)


@pytest.mark.skipif(not SMOLLM2.is_dir(), reason="smollm2-135m is not converted on this machine")
def test_smollm2_batched_equals_generate_one_at_a_time():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(SMOLLM2)
    model = HFModel(hf, tok, "smollm2-135m")
    prompts = ["Question: What is the capital of France?\nAnswer:", "The largest planet in the solar system is",
               "Translate to French: The cat sits on the mat.\nFrench:", "Q: Who wrote Hamlet?\nA:", "1, 2, 3, 4,"]
    requests = [GenerateRequest(str(i), p, ("\n",), 10) for i, p in enumerate(prompts)]
    got = model.generate(requests)
    eos = sorted(model.eos_ids)[0]
    for i, p in enumerate(prompts):
        want = tok.decode(expected_tokens(hf, model.encode(p), 10, eos), skip_special_tokens=True)
        assert got[str(i)].text == cut_at_stop(want, ("\n",)), p
    ours = HFModel(reference.from_hf(hf, AttentionImpl.SDPA), tok, "ref", driver=reference.DRIVER)
    assert {k: v.text for k, v in ours.generate(requests).items()} == {k: v.text for k, v in got.items()}


def test_a_sliding_window_model_generates_as_transformers_does(gpt2_tokenizer):
    """Gemma 3's sliding-window layers keep only their window in the cache, which rows leaving a batch cannot cut
    by column: such a model decodes one row at a time, and every text equals transformers' generate, prompts
    longer than the 8-token window included."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(3)
    eos = gpt2_tokenizer.eos_token_id
    config = Gemma3TextConfig(
        vocab_size=len(gpt2_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, head_dim=8,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    hf = scramble(Gemma3ForCausalLM(config), seed=3, std=0.1)
    model = HFModel(hf, gpt2_tokenizer, "tiny-gemma3")
    requests = [GenerateRequest(f"g{i}", p, ("\n\n",), n) for i, (p, n) in enumerate(zip(PROMPTS, MAX_NEW))]
    got = model.generate(requests)
    for r, job in zip(requests, jobs_for(model, MAX_NEW), strict=True):
        want = gpt2_tokenizer.decode(expected_tokens(hf, list(job.context), job.max_new_tokens, eos),
                                     skip_special_tokens=True)
        assert got[r.id].text == cut_at_stop(want, r.stop), r.id


def test_a_sliding_window_model_scores_long_rows_as_a_full_forward_does(gpt2_tokenizer):
    """A row longer than the 8-token window: each layer must attend as transformers' own masks say (the packed
    paths' masks do not know the window), so the scorer's log-likelihood equals a plain forward pass's."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(4)
    eos = gpt2_tokenizer.eos_token_id
    config = Gemma3TextConfig(
        vocab_size=len(gpt2_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, head_dim=8,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    hf = scramble(Gemma3ForCausalLM(config), seed=4, std=0.1)
    model = HFModel(hf, gpt2_tokenizer, "tiny-gemma3")
    context, continuation = PROMPTS[2], " and sleeps under a tall old tree until the morning comes"
    got = model.loglikelihood([LoglikelihoodRequest("r", context, continuation)])["r"]
    pair = model._encode_pair(context, continuation)
    ids = list(pair.context + pair.continuation)
    assert len(ids) > 3 * config.sliding_window
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([ids[:-1]])).logits[0].double(), -1)  # (T, V)
    start = len(pair.context) - 1
    hand = sum(float(logp[start + j, t]) for j, t in enumerate(pair.continuation))
    assert got.logprob == pytest.approx(hand, abs=1e-4) and model.pack_mode.value == "plain"
