"""Metrics against hand-computed values; standard errors by formula and by a seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import METRICS, bootstrap_stderr
from harness.records import ChoiceOutcome, ClozeOutcome, DocumentOutcome, GenerationOutcome


def mc(logprobs, gold, choices=None, n_tokens=None, unconditional=()):
    choices = choices or tuple("x" * (i + 1) for i in range(len(logprobs)))
    return ChoiceOutcome(choices=tuple(choices), gold=gold, logprobs=tuple(logprobs), greedy=(False,) * len(logprobs),
                         n_tokens=tuple(n_tokens or [1] * len(logprobs)), unconditional=tuple(unconditional))


def cloze(logprob, greedy=False, last_greedy=False):
    return ClozeOutcome(target="", logprob=logprob, greedy=greedy, last_greedy=last_greedy, n_tokens=1)


def test_acc_and_acc_norm_by_hand():
    # choice lengths 1 and 10 characters: raw log-likelihood prefers choice 0, per character choice 1
    o = mc([-2.0, -5.0], gold=1, choices=("a", "b" * 10))
    assert METRICS["acc"].per_example(o) == (0.0,)
    assert METRICS["acc_norm"].per_example(o) == (1.0,)  # -2/1 < -5/10


def test_acc_per_token_and_calibrated():
    o = mc([-6.0, -4.0], gold=0, n_tokens=[6, 2], unconditional=[-9.0, -4.5])
    assert METRICS["acc"].per_example(o) == (0.0,)
    assert METRICS["acc_per_token"].per_example(o) == (1.0,)  # -1.0 > -2.0
    assert METRICS["acc_calibrated"].per_example(o) == (1.0,)  # +3.0 > +0.5


def test_ties_go_to_the_first_choice():
    assert METRICS["acc"].per_example(mc([-1.0, -1.0], gold=0)) == (1.0,)


def test_mean_with_sample_stderr():
    outcomes = [mc([-1.0, -2.0], gold=g) for g in (0, 0, 0, 1)]  # acc 1, 1, 1, 0
    values, value, stderr = METRICS["acc"].score(outcomes)
    assert value == 0.75
    assert stderr == pytest.approx(math.sqrt(0.75 * 0.25 * 4 / 3) / 2)  # std(ddof=1) / sqrt(n) = 0.25
    assert values.shape == (4, 1)


def test_cloze_acc_and_perplexity():
    outcomes = [cloze(-1.0, greedy=True), cloze(-3.0, greedy=False)]
    assert METRICS["acc"].score(outcomes)[1] == 0.5
    assert METRICS["perplexity"].score(outcomes)[1] == pytest.approx(math.exp(2.0))


def test_document_perplexities_by_hand():
    outcomes = [DocumentOutcome(logprob=-10.0, n_tokens=0, words=4, bytes=20),
                DocumentOutcome(logprob=-30.0, n_tokens=0, words=6, bytes=30)]
    assert METRICS["word_perplexity"].score(outcomes)[1] == pytest.approx(math.exp(40 / 10))
    assert METRICS["byte_perplexity"].score(outcomes)[1] == pytest.approx(math.exp(40 / 50))
    assert METRICS["bits_per_byte"].score(outcomes)[1] == pytest.approx(40 / 50 / math.log(2))


def test_exact_match_compares_as_is_unless_filtered():
    """lm-evaluation-harness: no stripping in the metric; the task's filters make the prediction."""
    assert METRICS["exact_match"].per_example(GenerationOutcome(" Paris\n", ("Paris",))) == (0.0,)
    assert METRICS["exact_match"].per_example(GenerationOutcome(" Paris\n", ("Paris",), prediction="Paris")) == (1.0,)
    assert METRICS["exact_match"].per_example(GenerationOutcome("paris", ("Paris",))) == (0.0,)


def test_bootstrap_is_seeded_and_close_to_the_formula_for_a_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(400, 1))
    mean = lambda s, n: s[..., 0] / n  # noqa: E731
    first, again = bootstrap_stderr(values, mean), bootstrap_stderr(values, mean)
    assert first == again
    assert first == pytest.approx(values[:, 0].std(ddof=1) / math.sqrt(400), rel=0.1)


def test_single_example_has_no_stderr():
    _, value, stderr = METRICS["perplexity"].score([cloze(-2.0)])
    assert value == pytest.approx(math.exp(2)) and math.isnan(stderr)


def test_acc_last_token_needs_only_the_final_token():
    o = cloze(-3.0, greedy=False, last_greedy=True)
    assert METRICS["acc"].per_example(o) == (0.0,)
    assert METRICS["acc_last_token"].per_example(o) == (1.0,)
