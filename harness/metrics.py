"""Metrics as objects: a per-example function, an aggregation, its direction and what it needs.

Every aggregation here is a function of the column sums of per-example values, so the standard
error of a mean is sample std / sqrt(n) and every other one is a fast multinomial bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.tasks.spec import TaskKind

BOOTSTRAP_ITERS = 1000
BOOTSTRAP_SEED = 1234


@dataclass(frozen=True)
class Outcome:
    """What the model produced for one example, as the metrics see it."""

    choices: tuple[str, ...] = ()  # multiple choice: the choice texts (no delimiter)
    gold: int = 0
    logprobs: tuple[float, ...] = ()  # per choice; cloze and perplexity: one value
    greedy: tuple[bool, ...] = ()
    last_greedy: tuple[bool, ...] = ()  # cloze: the target's final token is the argmax
    n_tokens: tuple[int, ...] = ()
    unconditional: tuple[float, ...] = ()  # per choice, after the end-of-text token alone
    generated: str = ""
    target: str = ""
    words: int = 0  # perplexity: whitespace-separated words of the document
    bytes: int = 0  # perplexity: UTF-8 bytes of the document


Aggregate = Callable[[np.ndarray, int], np.ndarray]  # (..., m) column sums, n -> (...)


@dataclass(frozen=True)
class Metric:
    name: str
    kinds: frozenset[TaskKind]
    per_example: Callable[[Outcome], tuple[float, ...]]
    aggregate: Aggregate
    higher_is_better: bool
    is_mean: bool  # stderr = sample std / sqrt(n); otherwise bootstrap
    needs_unconditional: bool = False

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


def _pick(outcome: Outcome, scores: np.ndarray) -> tuple[float]:
    return (float(int(np.argmax(scores)) == outcome.gold),)


def _acc(o: Outcome) -> tuple[float]:
    if o.choices:  # multiple choice: the highest log-likelihood is the answer
        return _pick(o, np.array(o.logprobs))
    return (float(all(o.greedy)),)  # cloze: the whole target is the greedy continuation


def _acc_norm(o: Outcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) / np.array([len(c) for c in o.choices]))


def _acc_per_token(o: Outcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) / np.maximum(np.array(o.n_tokens), 1))


def _acc_calibrated(o: Outcome) -> tuple[float]:
    return _pick(o, np.array(o.logprobs) - np.array(o.unconditional))


def _mean(s, n):
    return s[..., 0] / n


_MC = frozenset({TaskKind.MULTIPLE_CHOICE})
_PPL = frozenset({TaskKind.PERPLEXITY})

METRICS: dict[str, Metric] = {
    "acc": Metric("acc", _MC | {TaskKind.CLOZE}, _acc, _mean, True, True),
    # lm-evaluation-harness: log-likelihood divided by the choice's length in characters
    "acc_norm": Metric("acc_norm", _MC, _acc_norm, _mean, True, True),
    "acc_per_token": Metric("acc_per_token", _MC, _acc_per_token, _mean, True, True),
    # lm-evaluation-harness's acc_mutual_info: log p(choice | prompt) - log p(choice | end-of-text)
    "acc_calibrated": Metric("acc_calibrated", _MC, _acc_calibrated, _mean, True, True, needs_unconditional=True),
    # the GPT-2 paper's LAMBADA rule: only the final token of the target must be the argmax, given the
    # context and the target's earlier tokens (lm-evaluation-harness's acc needs every token)
    "acc_last_token": Metric(
        "acc_last_token", frozenset({TaskKind.CLOZE}), lambda o: (float(all(o.last_greedy)),), _mean, True, True,
    ),
    "perplexity": Metric(
        "perplexity", frozenset({TaskKind.CLOZE}), lambda o: (o.logprobs[0],),
        lambda s, n: np.exp(-s[..., 0] / n), False, False,
    ),
    "word_perplexity": Metric(
        "word_perplexity", _PPL, lambda o: (o.logprobs[0], o.words),
        lambda s, n: np.exp(-s[..., 0] / s[..., 1]), False, False,
    ),
    "byte_perplexity": Metric(
        "byte_perplexity", _PPL, lambda o: (o.logprobs[0], o.bytes),
        lambda s, n: np.exp(-s[..., 0] / s[..., 1]), False, False,
    ),
    "bits_per_byte": Metric(
        "bits_per_byte", _PPL, lambda o: (o.logprobs[0], o.bytes),
        lambda s, n: -s[..., 0] / s[..., 1] / math.log(2), False, False,
    ),
    "exact_match": Metric(
        "exact_match", frozenset({TaskKind.GENERATE}), lambda o: (float(o.generated.strip() == o.target.strip()),),
        _mean, True, True,
    ),
}

DEFAULT_METRICS: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.MULTIPLE_CHOICE: ("acc", "acc_norm"),
    TaskKind.CLOZE: ("acc", "perplexity"),
    TaskKind.PERPLEXITY: ("word_perplexity", "byte_perplexity", "bits_per_byte"),
    TaskKind.GENERATE: ("exact_match",),
}
