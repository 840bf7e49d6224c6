"""Per-example values and aggregations of the generation metrics (metrics.py registers them as Metrics).

Every aggregation is a function of column sums of per-example values, as metrics.py requires:
- exact_match (lm-evaluation-harness, with the task's options), exact_str_match (BIG-bench), SQuAD exact / f1
  and rouge: one value per example, the mean.
- bleu / chrf / ter are corpus-level: each example contributes sacrebleu's sufficient statistics (n-gram
  matches and totals, lengths, edits), which sum over the corpus; the corpus formula of sacrebleu then
  reads the sums. So the value equals sacrebleu.corpus_bleu / corpus_chrf / corpus_ter on the same texts,
  and a bootstrap resample is a multinomial reweighting of the same statistics.
"""

from __future__ import annotations

import collections
import functools
import re
import string

import numpy as np

from harness.records import GenerationOutcome, MatchOptions

_PUNCTUATION = str.maketrans("", "", string.punctuation)

# ---------------------------------------------------------------- exact matches


def _normalize_for_match(text: str, options: MatchOptions) -> str:
    """lm-evaluation-harness's exact_match: regexes removed, then lower case, then punctuation removed."""
    for pattern in options.regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if options.ignore_case:
        text = text.lower()
    if options.ignore_punctuation:
        text = text.translate(_PUNCTUATION)
    return text


def exact_match(o: GenerationOutcome, options: MatchOptions = MatchOptions()) -> tuple[float]:
    """1 when the prediction equals any reference after the task's options (lm-evaluation-harness)."""
    prediction = _normalize_for_match(o.predicted, options)
    return (float(any(prediction == _normalize_for_match(ref, options) for ref in o.references)),)


def exact_str_match(o: GenerationOutcome) -> tuple[float]:
    """BIG-bench: 1 when the prediction is one of the targets, character for character."""
    return (float(o.predicted in o.references),)


# ---------------------------------------------------------------- SQuAD (the official v2.0 evaluation script)


def squad_normalize(text: str) -> str:
    """Lower case, punctuation and the articles a/an/the removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)
    return " ".join(text.split())


def _squad_golds(o: GenerationOutcome) -> list[str]:
    """References that normalise to text; none means unanswerable, scored against the empty string."""
    return [r for r in o.references if squad_normalize(r)] or [""]


def squad_exact(o: GenerationOutcome) -> tuple[float]:
    prediction = squad_normalize(o.predicted)
    return (100.0 * max(float(squad_normalize(g) == prediction) for g in _squad_golds(o)),)


def _f1(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = squad_normalize(gold).split(), squad_normalize(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((collections.Counter(gold_tokens) & collections.Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_f1(o: GenerationOutcome) -> tuple[float]:
    return (100.0 * max(_f1(g, o.predicted) for g in _squad_golds(o)),)


# ---------------------------------------------------------------- ROUGE (rouge-score, as BIG-bench calls it)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES))


def rouge(kind: str):
    """F-measure x 100 against the best reference (BIG-bench picks the best reference per example and type)."""

    def per_example(o: GenerationOutcome) -> tuple[float]:
        scores = [_rouge_scorer().score(ref, o.predicted)[kind].fmeasure for ref in o.references]
        return (100.0 * max(scores),)

    return per_example


# ---------------------------------------------------------------- sacrebleu: corpus statistics per example


@functools.cache
def _sacrebleu(name: str):
    from sacrebleu.metrics import BLEU, CHRF, TER

    return {"bleu": BLEU, "chrf": CHRF, "ter": TER}[name]()


def corpus_statistics(name: str):
    """Per example: sacrebleu's segment statistics of the prediction against all its references."""

    def per_example(o: GenerationOutcome) -> tuple[float, ...]:
        streams = [[ref] for ref in o.references]  # sacrebleu: one stream per reference
        stats = _sacrebleu(name)._extract_corpus_statistics([o.predicted], streams)
        return tuple(float(x) for x in stats[0])

    return per_example


def corpus_score(name: str):
    """The corpus score from summed statistics (..., m) -> (...): sacrebleu's own formula, row by row."""

    def aggregate(sums: np.ndarray, n: int) -> np.ndarray:
        metric = _sacrebleu(name)
        rows = np.asarray(sums, dtype=np.float64).reshape(-1, sums.shape[-1])
        scores = [metric._compute_score_from_stats(_integral(row)).score for row in rows]
        return np.array(scores).reshape(sums.shape[:-1])

    return aggregate


def _integral(row: np.ndarray) -> list:
    """Counts back as ints where they are whole (BLEU and chrF count n-grams; TER's edits may be fractional)."""
    return [int(x) if float(x).is_integer() else float(x) for x in row]
