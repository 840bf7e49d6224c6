"""Token arithmetic and log-likelihoods: boundary rules on the real GPT-2 tokenizer, hand-computed
log-probabilities from a bigram fake, and the tiny GPT-2 against per-request transformers forwards."""

from __future__ import annotations

import math

import pytest
import torch

from harness.models import scoring
from harness.models.hf import HFModel
from harness.records import LoglikelihoodRequest, RollingRequest
from tests.fakes import BigramLM, CharTokenizer, hand_logprob, hand_sequence_logprob

EOT = 50256


def test_real_gpt2_tokenizer(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("Hello world, this is GPT-2.", add_special_tokens=False)
    assert ids == [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13]


def test_trailing_space_moves_to_the_continuation(gpt2_tokenizer):
    pair = scoring.encode_pair(gpt2_tokenizer.encode, "Hello ", "world", EOT)
    assert pair == scoring.TokenPair((15496,), (995,))  # "Hello" | " world"


def test_empty_context_is_end_of_text(gpt2_tokenizer):
    pair = scoring.encode_pair(gpt2_tokenizer.encode, "", " world", EOT)
    assert pair == scoring.TokenPair((EOT,), (995,))


def test_all_space_context(gpt2_tokenizer):
    pair = scoring.encode_pair(gpt2_tokenizer.encode, " ", "world", EOT)
    assert pair == scoring.TokenPair((EOT,), (995,))


def test_token_spanning_the_join_keeps_lm_eval_tail(gpt2_tokenizer):
    encode = gpt2_tokenizer.encode
    whole, context = encode("The quick brown fox"), encode("The quick brow")
    assert whole[: len(context)] != context  # " brown" is one token: the join falls inside it
    pair = scoring.encode_pair(encode, "The quick brow", "n fox", EOT)
    assert pair.continuation == tuple(whole[len(context) :]) and pair.continuation


def test_token_swallowing_the_continuation_falls_back(gpt2_tokenizer):
    encode = gpt2_tokenizer.encode
    assert len(encode("hello")) == 1 and len(encode("hel")) == 1
    pair = scoring.encode_pair(encode, "hel", "lo", EOT)
    assert pair.context == tuple(encode("hel")) and pair.continuation == tuple(encode("lo"))


def test_model_input_truncates_from_the_left():
    row = scoring.model_input(scoring.TokenPair(tuple(range(10)), (10, 11, 12)), max_length=8)
    assert row.ids == (4, 5, 6, 7, 8, 9, 10, 11) and row.targets == (10, 11, 12) and row.truncated == 4


def test_rolling_windows_score_each_token_once_with_full_context():
    tokens = list(range(100, 123))  # 23 tokens, windows of 8
    windows = scoring.rolling_windows(tokens, EOT, 8)
    scored = [t for w in windows for t in w.continuation]
    assert scored == tokens
    assert windows[0] == scoring.TokenPair((EOT,), tuple(tokens[:8]))
    for w in windows[1:]:
        assert len(scoring.model_input(w, 8).ids) == 8  # as much context as fits
        assert w.context[-1] + 1 == w.continuation[0]  # contiguous
    assert scoring.rolling_windows([], EOT, 8) == []


def fake_model(max_length=64, batch_tokens=4096):
    return HFModel(BigramLM(max_length), CharTokenizer(), "bigram", batch_tokens)


CASES = [("the cat", " sat"), ("a", " b c"), ("", "hello"), ("question: why? answer:", " because."), ("x ", "y")]


@pytest.mark.parametrize("batch_tokens", [1, 7, 4096])
def test_loglikelihood_equals_hand_computation(batch_tokens):
    model = fake_model(batch_tokens=batch_tokens)
    tok, table = model.tokenizer, model.module.table.detach()
    requests = [LoglikelihoodRequest(f"r{i}", c, x) for i, (c, x) in enumerate(CASES)]
    results = model.loglikelihood(requests)
    for i, (context, continuation) in enumerate(CASES):
        n_spaces = len(context) - len(context.rstrip())
        ctx, cont = context[: len(context) - n_spaces], context[len(context) - n_spaces :] + continuation
        previous = tok.encode(ctx)[-1] if ctx else 0
        expected = hand_sequence_logprob(table, previous, tok.encode(cont))
        got = results[f"r{i}"]
        assert got.logprob == pytest.approx(expected, abs=1e-5)
        assert got.n_tokens == len(cont)
        flags = [int(table[p].argmax()) == t for p, t in zip([previous, *tok.encode(cont)], tok.encode(cont))]
        assert got.is_greedy == all(flags) and got.last_greedy == flags[-1]


def test_is_greedy_true_when_every_token_is_argmax():
    model = fake_model()
    table = model.module.table.detach()
    tok = model.tokenizer
    chain, previous = [], tok.encode("a")[0]
    for _ in range(4):
        previous = int(table[previous].argmax())
        chain.append(previous)
    cont = tok.decode(chain, skip_special_tokens=False)
    result = model.loglikelihood([LoglikelihoodRequest("g", "a", cont)])["g"]
    assert result.is_greedy
    assert result.logprob == pytest.approx(hand_sequence_logprob(table, tok.encode("a")[0], chain), abs=1e-5)


def test_truncated_context_is_recorded():
    model = fake_model(max_length=8)
    result = model.loglikelihood([LoglikelihoodRequest("t", "abcdefghij", " k")])["t"]
    assert result.truncated == 3  # 10 + 2 tokens, max_length + 1 = 9 kept
    table, tok = model.module.table.detach(), model.tokenizer
    assert result.logprob == pytest.approx(hand_sequence_logprob(table, tok.encode("j")[0], tok.encode(" k")), abs=1e-5)


def test_rolling_equals_hand_computation_across_windows():
    model = fake_model(max_length=8)
    text = "the quick brown fox jumps"
    result = model.loglikelihood_rolling([RollingRequest("doc", text)])["doc"]
    table, tok = model.module.table.detach(), model.tokenizer
    assert result.n_tokens == len(text)
    assert result.logprob == pytest.approx(hand_sequence_logprob(table, 0, tok.encode(text)), abs=1e-4)


def test_tiny_gpt2_matches_per_request_transformers_forward(tiny_gpt2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = HFModel(hf, tok, "tiny", batch_tokens=64)
    cases = [("Question: what is it?\nAnswer:", " a cat"), ("The dog ", "barked loudly."), ("", "Hello world")]
    results = model.loglikelihood([LoglikelihoodRequest(str(i), c, x) for i, (c, x) in enumerate(cases)])
    for i, (context, continuation) in enumerate(cases):
        pair = scoring.encode_pair(lambda s: tok.encode(s, add_special_tokens=False), context, continuation, EOT)
        ids = torch.tensor([pair.context + pair.continuation])
        with torch.no_grad():
            logprobs = torch.log_softmax(hf(ids).logits[0].double(), -1)  # (T, V)
        start = len(pair.context)
        expected = sum(float(logprobs[start - 1 + j, t]) for j, t in enumerate(pair.continuation))
        assert results[str(i)].logprob == pytest.approx(expected, rel=1e-5, abs=1e-5)
        assert math.isfinite(expected)


def test_hand_logprob_sanity():
    table = torch.zeros(3, 3)
    assert hand_logprob(table, 0, 1) == pytest.approx(-math.log(3))


def test_cut_at_stop():
    from harness.models.hf import cut_at_stop

    assert cut_at_stop("Paris.\n\nQuestion", ("\n\n", "Question")) == "Paris."
    assert cut_at_stop("no stop here", ("\n",)) == "no stop here"


def test_generate_is_greedy_and_stops(tiny_gpt2_dir):
    """Our generate equals a hand-rolled argmax loop over transformers logits, cut at the stop string."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models.hf import cut_at_stop
    from harness.records import GenerateRequest

    hf = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = HFModel(hf, tok, "tiny")
    context = "Question: what is the capital of France?\nAnswer:"
    ids = tok.encode(context)
    for _ in range(12):
        with torch.no_grad():
            ids.append(int(hf(torch.tensor([ids])).logits[0, -1].argmax()))
    greedy_text = tok.decode(ids[len(tok.encode(context)) :])
    stop = greedy_text[5:7] if len(greedy_text) > 7 else "\n\n"  # a stop string that occurs in the output
    got = model.generate([GenerateRequest("g", context, (stop,), 12)])["g"].text
    assert got == cut_at_stop(greedy_text, (stop,))
    assert stop not in got
