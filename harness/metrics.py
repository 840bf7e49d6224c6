"""Metrics as objects: per-example functions by the outcome type they read, an aggregation, a direction.

A metric reads outcomes (records.py: one outcome type per task kind) and declares which types: a task
may list a metric when its kind's outcome type is among them.

Every aggregation here is a function of the column sums of per-example values, so the standard
error of a mean is sample std / sqrt(n) and every other one is a fast multinomial bootstrap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness import metrics_generation as gen
from harness.errors import HarnessError
from harness.records import ChoiceOutcome, ClozeOutcome, DocumentOutcome, GenerationOutcome, MatchOptions, Outcome

BOOTSTRAP_ITERS = 1000
BOOTSTRAP_SEED = 1234


Aggregate = Callable[[np.ndarray, int], np.ndarray]  # (..., m) column sums, n -> (...)


@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str
    reads: Mapping[type, Callable[[Any], tuple[float, ...]]]  # outcome type -> per-example values
    aggregate: Aggregate
    higher_is_better: bool
    is_mean: bool  # stderr = sample std / sqrt(n); otherwise bootstrap
    needs_unconditional: bool = False
    needs_answer_context: bool = False  # reads ChoiceOutcome.answer_context (the task's prompt.answer_context)
    # the task's [metric_options.exact_match] -> `reads` for that task; None: the metric takes no options
    with_match: Callable[[MatchOptions], Mapping[type, Callable[[Any], tuple[float, ...]]]] | None = None

    def for_task(self, match: MatchOptions) -> Metric:
        """The metric as a task with these options scores it."""
        return self if self.with_match is None else replace(self, reads=self.with_match(match))

    def per_example(self, outcome: Outcome) -> tuple[float, ...]:
        return self.reads[type(outcome)](outcome)

    def score(self, outcomes: list[Outcome]) -> tuple[np.ndarray, float, float]:
        """Per-example values (n, m), the aggregate, and its standard error."""
        values = np.array([self.per_example(o) for o in outcomes], dtype=np.float64).reshape(len(outcomes), -1)
        n = len(values)
        value = float(self.aggregate(values.sum(axis=0), n))
        if n < 2:
            return values, value, math.nan
        if self.is_mean:
            return values, value, float(values[:, 0].std(ddof=1) / math.sqrt(n))
        return values, value, bootstrap_stderr(values, self.aggregate)


def bootstrap_stderr(values: np.ndarray, aggregate: Aggregate, iters: int = BOOTSTRAP_ITERS) -> float:
    """Std of the aggregate over resamples of the examples; seeded, so reruns agree."""
    n = len(values)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=iters)  # (B, n) times each example is drawn
    stats = aggregate(counts @ values, n)  # (B,)
    return float(np.std(stats, ddof=1))


def _pick(outcome: ChoiceOutcome, scores: np.ndarray) -> tuple[float]:
    return (float(int(np.argmax(scores)) == outcome.gold),)


def _acc(o: ChoiceOutcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs))  # the highest log-likelihood is the answer


def _acc_norm(o: ChoiceOutcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) / np.array([len(c) for c in o.choices]))


def _acc_per_token(o: ChoiceOutcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) / np.maximum(np.array(o.n_tokens), 1))


def _acc_calibrated(o: ChoiceOutcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) - np.array(o.unconditional))


def _acc_gpt3_calibrated(o: ChoiceOutcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) - np.array(o.answer_context))


def _judgements(o: ChoiceOutcome) -> tuple[np.ndarray, np.ndarray]:
    """(predicted yes, gold yes) per answer option of a question whose choices are (yes, no) judgement pairs and
    whose credit marks the right judgement of each (MultiRC); the pair's argmax is the prediction, a tie says yes."""
    if not o.credit or len(o.credit) % 2 or len(o.credit) != len(o.logprobs):
        raise HarnessError(f"em / f1a / acc_per_option read the choices as (yes, no) pairs with a credit per choice "
                           f"(prompt.choice_scores); got {len(o.logprobs)} choices and credit {o.credit!r}")
    lls, credit = np.array(o.logprobs).reshape(-1, 2), np.array(o.credit).reshape(-1, 2)  # (options, 2)
    return lls[:, 0] >= lls[:, 1], credit[:, 0] > 0


def _multirc_em(o: ChoiceOutcome) -> tuple[float]:
    predicted, gold = _judgements(o)
    return (float(bool(np.all(predicted == gold))),)


def _multirc_counts(o: ChoiceOutcome) -> tuple[float, float, float]:
    """(true positives, false positives, false negatives) over the question's options, 'yes' the positive class."""
    predicted, gold = _judgements(o)
    return float(np.sum(predicted & gold)), float(np.sum(predicted & ~gold)), float(np.sum(~predicted & gold))


def _multirc_options(o: ChoiceOutcome) -> tuple[float, float]:
    predicted, gold = _judgements(o)
    return float(np.sum(predicted == gold)), float(len(gold))


def _f1a(s, n):
    """SuperGLUE's F1a: binary F1 over every answer option, 2 TP / (2 TP + FP + FN); 0 when there is no positive."""
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1e-300), 0.0)


def _choice_exact_match(o: ChoiceOutcome) -> tuple[float]:
    """lm-evaluation-harness's exact_match of a multiple-choice task with several gold choices (webqs): some
    accepted choice (credit > 0; without credit, the gold one) is the model's greedy continuation, every token."""
    accepted = [i for i, c in enumerate(o.credit) if c > 0] if o.credit else [o.gold]
    return (float(any(o.greedy[i] for i in accepted)),)


def _multiple_choice_grade(o: ChoiceOutcome) -> tuple[float]:
    """BIG-bench's multiple_choice_grade: the score (target_scores) of the choice with the highest log-likelihood.

    Any top-scored choice earns full credit and a fractional target score gives partial credit. BIG-bench
    breaks an exact tie in log-likelihood by a pseudorandom pick seeded from the scores' bytes; here a tie
    earns the mean credit of the tied choices (that pick's expected value), so the value never depends on
    float bytes. Without target scores the credit is 1 for the gold choice and 0 for the others.
    """
    credit = np.array(o.credit) if o.credit else np.eye(len(o.logprobs))[o.gold]
    logprobs = np.array(o.logprobs)
    top = logprobs == logprobs.max()
    return (float(credit[top].mean()),)


def _mean(s, n):
    return s[..., 0] / n


def _per_word_or_byte(s, n):
    return np.exp(-s[..., 0] / s[..., 1])


def _mean_metric(name: str, reads: Mapping[type, Callable], **kw) -> Metric:
    """A per-example score whose aggregate is the mean (stderr: sample std / sqrt(n)), higher is better."""
    return Metric(name=name, reads=reads, aggregate=_mean, higher_is_better=True, is_mean=True, **kw)


def _summed(name: str, reads: Mapping[type, Callable], aggregate: Aggregate, higher_is_better: bool) -> Metric:
    """An aggregate of summed terms (perplexities, corpus BLEU): its stderr is a bootstrap."""
    return Metric(name=name, reads=reads, aggregate=aggregate, higher_is_better=higher_is_better, is_mean=False)


def _exact_match_with(match: MatchOptions) -> Mapping[type, Callable]:
    return {GenerationOutcome: functools.partial(gen.exact_match, options=match), ChoiceOutcome: _choice_exact_match}


METRICS: dict[str, Metric] = {
    # multiple choice: argmax of the log-likelihoods; cloze: the whole target is the greedy continuation
    "acc": _mean_metric("acc", {ChoiceOutcome: _acc, ClozeOutcome: lambda o: (float(o.greedy),)}),
    # lm-evaluation-harness: log-likelihood divided by the choice's length in characters
    "acc_norm": _mean_metric("acc_norm", {ChoiceOutcome: _acc_norm}),
    # BIG-bench: the target score of the argmax choice (fractional credit; ties in log-likelihood averaged)
    "multiple_choice_grade": _mean_metric("multiple_choice_grade", {ChoiceOutcome: _multiple_choice_grade}),
    "acc_per_token": _mean_metric("acc_per_token", {ChoiceOutcome: _acc_per_token}),
    # lm-evaluation-harness's acc_mutual_info: log p(choice | prompt) - log p(choice | end-of-text)
    "acc_calibrated": _mean_metric("acc_calibrated", {ChoiceOutcome: _acc_calibrated}, needs_unconditional=True),
    # the GPT-2 paper's LAMBADA rule: only the final token of the target must be the argmax, given the
    # context and the target's earlier tokens (lm-evaluation-harness's acc needs every token)
    "acc_last_token": _mean_metric("acc_last_token", {ClozeOutcome: lambda o: (float(o.last_greedy),)}),
    "perplexity": _summed("perplexity", {ClozeOutcome: lambda o: (o.logprob,)}, lambda s, n: np.exp(-s[..., 0] / n),
                          False),
    "word_perplexity": _summed("word_perplexity", {DocumentOutcome: lambda o: (o.logprob, o.words)},
                               _per_word_or_byte, False),
    # the GPT-2 paper's normalisation (Table 3, as the SOTA row counts): per token of the tokenized dataset, one
    # <eos> per line included; lm-eval's word_perplexity above counts re.split words of the units text, no <eos>
    "token_perplexity": _summed("token_perplexity", {DocumentOutcome: lambda o: (o.logprob, o.dataset_tokens)},
                                _per_word_or_byte, False),
    "byte_perplexity": _summed("byte_perplexity", {DocumentOutcome: lambda o: (o.logprob, o.bytes)},
                               _per_word_or_byte, False),
    "bits_per_byte": _summed("bits_per_byte", {DocumentOutcome: lambda o: (o.logprob, o.bytes)},
                             lambda s, n: -s[..., 0] / s[..., 1] / math.log(2), False),
    # generation (metrics_generation.py): the prediction is the continuation after the task's filters
    # lm-evaluation-harness: equal to any reference after the task's [metric_options.exact_match]
    "exact_match": _mean_metric("exact_match", _exact_match_with(MatchOptions()), with_match=_exact_match_with),
    "exact_str_match": _mean_metric("exact_str_match", {GenerationOutcome: gen.exact_str_match}),  # BIG-bench
    # SQuAD 2.0's official exact and f1 (x 100), best over the references; unanswerable: the empty string
    "exact": _mean_metric("exact", {GenerationOutcome: gen.squad_exact}),
    "f1": _mean_metric("f1", {GenerationOutcome: gen.squad_f1}),
    # corpus-level through sacrebleu's default settings, from summed per-example statistics
    **{name: _summed(name, {GenerationOutcome: gen.corpus_statistics(name)}, gen.corpus_score(name), name != "ter")
       for name in ("bleu", "chrf", "ter")},
    **{kind: _mean_metric(kind, {GenerationOutcome: gen.rouge(kind)}) for kind in gen.ROUGE_TYPES},
    # the GPT-3 paper's calibration (its section 2.4; ARC, OpenBookQA, RACE): log p(choice | prompt) minus
    # log p(choice | prompt.answer_context), the answer context being "Answer:" (lm-eval's acc_mutual_info,
    # acc_calibrated above, conditions on the end-of-text token alone instead)
    "acc_gpt3_calibrated": _mean_metric("acc_gpt3_calibrated", {ChoiceOutcome: _acc_gpt3_calibrated},
                                        needs_answer_context=True),
    # MultiRC (one example a question, its options as (yes, no) judgement pairs): exact match per question (every
    # option judged right; the GPT-3 paper's "acc"), SuperGLUE's F1a over all options, and accuracy per option
    # (lm-evaluation-harness's multirc acc) as summed counts
    "em": _mean_metric("em", {ChoiceOutcome: _multirc_em}),
    "f1a": _summed("f1a", {ChoiceOutcome: _multirc_counts}, _f1a, True),
    "acc_per_option": _summed("acc_per_option", {ChoiceOutcome: _multirc_options}, lambda s, n: s[..., 0] / s[..., 1],
                              True),
}
