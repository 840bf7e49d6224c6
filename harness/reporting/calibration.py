"""Does the model know when it is right? Calibration of multiple-choice answers, selective accuracy of any.

Multiple choice: the choices' log-likelihoods, normalised over the choices (softmax), give a probability per
choice; the confidence is the largest, correct means that choice (the argmax, acc's prediction) is gold.
- expected_calibration_error: split [0, 1] into equal-width bins (lo, hi] (the first also holds 0), and
  average |accuracy - mean confidence| over the bins weighted by their counts. 0: a confidence of 0.7 is right
  70% of the time; 0.2: confidences are off by 0.2 on average. The per-bin table is the reliability diagram
  (accuracy against mean confidence; points under the diagonal are overconfident).
Any task (generation too) with a per-example confidence (higher = surer; e.g. a summed log-likelihood):
- selective_accuracy: the accuracy on the most confident fraction q of the examples (ceil(q n), at least 1;
  ties in confidence keep the examples' order). A curve that falls from left to right means the confidence
  ranks right answers first; a flat one, that it carries no information.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.samples import ChoiceAnswer

BINS = 10
FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def choice_probabilities(logprobs: Sequence[float]) -> np.ndarray:
    """softmax over one example's choices: the probability the model gives each, restricted to these choices."""
    lp = np.asarray(logprobs, dtype=np.float64)
    e = np.exp(lp - lp.max())
    return e / e.sum()


def choice_confidence(answers: Sequence[ChoiceAnswer]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence (n,), correct (n,) bool) of multiple-choice answers: the top normalised probability, and
    whether its choice (the first of equal maxima, as acc) is the gold one."""
    confidence = np.array([choice_probabilities(a.logprobs).max() for a in answers], dtype=np.float64)
    correct = np.array([int(np.argmax(a.logprobs)) == a.gold for a in answers], dtype=bool)
    return confidence, correct


@dataclass(frozen=True)
class Reliability:
    """Expected calibration error and the reliability diagram behind it (NaN in bins with no example)."""

    ece: float
    n: int
    edges: tuple[float, ...]  # bins + 1, from 0 to 1
    count: tuple[int, ...]
    confidence: tuple[float, ...]  # mean confidence per bin
    accuracy: tuple[float, ...]  # fraction correct per bin


def bin_index(confidence, bins: int = BINS) -> np.ndarray:
    """The bin (lo, hi] of each confidence among `bins` equal-width bins of [0, 1]; 0 goes to the first."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, np.asarray(confidence, dtype=np.float64), side="left") - 1, 0, bins - 1)


def expected_calibration_error(confidence, correct, bins: int = BINS) -> Reliability:
    """ECE = sum over bins of count/n * |accuracy - mean confidence| (module docstring), with the per-bin table."""
    c, ok = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    assert c.shape == ok.shape and c.ndim == 1 and len(c) > 0, (c.shape, ok.shape)
    assert np.all((c >= 0) & (c <= 1)), "confidences must lie in [0, 1]"
    index = bin_index(c, bins)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=c, minlength=bins) / count
        accuracy = np.bincount(index, weights=ok, minlength=bins) / count
    gaps = np.where(count > 0, np.abs(accuracy - mean_conf), 0.0)
    return Reliability(float((count * gaps).sum() / len(c)), len(c), tuple(np.linspace(0.0, 1.0, bins + 1).tolist()),
                       tuple(int(x) for x in count), tuple(mean_conf.tolist()), tuple(accuracy.tolist()))


def _ranked(confidence, correct) -> np.ndarray:
    """correct, most confident first; equal confidences keep the examples' order."""
    c, ok = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    assert c.shape == ok.shape and c.ndim == 1 and len(c) > 0, (c.shape, ok.shape)
    return ok[np.argsort(-c, kind="stable")]


def kept(n: int, fraction: float) -> int:
    """How many examples the top `fraction` of n keeps: ceil(fraction n), at least 1 (float noise forgiven)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    return max(1, min(n, math.ceil(fraction * n - 1e-9)))


def selective_accuracy(confidence, correct, fraction: float) -> float:
    """Accuracy on the most confident `fraction` of the examples (module docstring)."""
    ranked = _ranked(confidence, correct)
    return float(ranked[: kept(len(ranked), fraction)].mean())


@dataclass(frozen=True)
class SelectiveCurve:
    """Accuracy of the most confident fraction, at each fraction; `area` is the mean of the accuracy of the top
    k over every k = 1..n (the area under the whole step curve against coverage): compare it with `accuracy`,
    which is what a confidence that carries no information would score."""

    fractions: tuple[float, ...]
    kept: tuple[int, ...]
    selective: tuple[float, ...]
    area: float
    accuracy: float  # on every example


def selective_curve(confidence, correct, fractions: Sequence[float] = FRACTIONS) -> SelectiveCurve:
    ranked = _ranked(confidence, correct)
    n = len(ranked)
    running = np.cumsum(ranked) / np.arange(1, n + 1)  # (n,) accuracy of the top k
    counts = tuple(kept(n, q) for q in fractions)
    return SelectiveCurve(tuple(float(q) for q in fractions), counts, tuple(float(running[k - 1]) for k in counts),
                          float(running.mean()), float(ranked.mean()))
