"""Generation metrics pinned against their references: sacrebleu's corpus scores, lm-evaluation-harness's
exact_match options, the official SQuAD 2.0 rules (hand-computed), BIG-bench's exact_str_match."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import METRICS, bootstrap_stderr
from harness.records import GenerationOutcome, MatchOptions

HYPS = ["The cat sat on the mat.", "A quick brown fox", "", "Il pleut des cordes aujourd'hui !", "same same same"]
REFS = [["The cat is on the mat."], ["The quick brown fox jumps"], ["Nothing was said."],
        ["It is raining cats and dogs today!"], ["same same"]]


def _outcomes(hyps=HYPS, refs=REFS):
    return [GenerationOutcome(h, tuple(r)) for h, r in zip(hyps, refs, strict=True)]


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_corpus_metrics_equal_sacrebleu(name):
    import sacrebleu

    corpus = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf, "ter": sacrebleu.corpus_ter}[name]
    streams = [list(s) for s in zip(*REFS, strict=True)]
    _, value, stderr = METRICS[name].score(_outcomes())
    assert value == pytest.approx(corpus(HYPS, streams).score, abs=1e-9)
    assert np.isfinite(stderr) and stderr > 0
    # a subset is a different corpus: the sums, not a mean of sentence scores
    _, sub, _ = METRICS[name].score(_outcomes()[:2])
    assert sub == pytest.approx(corpus(HYPS[:2], [s[:2] for s in streams]).score, abs=1e-9)


def test_bleu_with_several_references_per_example_equals_sacrebleu():
    import sacrebleu

    refs = [["The cat is on the mat.", "There is a cat on the mat."], ["The quick brown fox", "A fast brown fox"]]
    _, value, _ = METRICS["bleu"].score(_outcomes(HYPS[:2], refs))
    assert value == pytest.approx(sacrebleu.corpus_bleu(HYPS[:2], [list(s) for s in zip(*refs)]).score, abs=1e-9)


def test_corpus_bootstrap_reweights_the_same_statistics():
    values, value, stderr = METRICS["bleu"].score(_outcomes())
    assert stderr == bootstrap_stderr(values, METRICS["bleu"].aggregate)  # seeded: the same every time
    ones = METRICS["bleu"].aggregate(values.sum(axis=0)[None, :], len(values))  # (1,) from a (1, m) batch
    assert ones.shape == (1,) and ones[0] == pytest.approx(value)


def _lm_eval_exact_match(prediction, reference, regexes=(), ignore_case=False, ignore_punctuation=False):
    """lm-evaluation-harness's exact_match_hf_evaluate for one pair, restated: regexes, case, punctuation."""
    import re
    import string

    for r in regexes:
        prediction, reference = re.sub(r, "", prediction), re.sub(r, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        table = str.maketrans("", "", string.punctuation)
        prediction, reference = prediction.translate(table), reference.translate(table)
    return float(prediction == reference)


@pytest.mark.parametrize("prediction,references,options,expected", [
    (" sticks", (" sticks",), MatchOptions(), 1.0),
    ("sticks", (" sticks",), MatchOptions(), 0.0),  # no strip in the metric: that is a filter
    ("Onion.", ("onion", "Allium cepa"), MatchOptions(True, True), 1.0),
    ("the Beatles", ("Beatles",), MatchOptions(True, True, (r"\b(?:The |the |An |A |The |a |an )",)), 1.0),
    ("Beatles", ("The Beatles",), MatchOptions(True, True), 0.0),
    ("U.S.A", ("usa",), MatchOptions(ignore_punctuation=True), 0.0),  # case still counts
])
def test_exact_match_options_follow_lm_eval(prediction, references, options, expected):
    got = METRICS["exact_match"].for_task(options).per_example(GenerationOutcome(prediction, references))
    reference = max(_lm_eval_exact_match(prediction, r, options.regexes_to_ignore, options.ignore_case,
                                         options.ignore_punctuation) for r in references)
    assert got == (expected,) and reference == expected


def test_squad_exact_and_f1_by_the_official_rules():
    def score(prediction, references):
        o = GenerationOutcome(prediction, references)
        return METRICS["exact"].per_example(o)[0], METRICS["f1"].per_example(o)[0]

    assert score(" The Normans.", ("Normans", "the Normans")) == (100.0, 100.0)  # articles, case, punctuation
    # tokens: prediction [in, france, 10th], gold [france] -> precision 1/3, recall 1 -> f1 0.5
    assert score("in France 10th", ("France",)) == (0.0, pytest.approx(50.0))
    assert score("", ("",)) == (100.0, 100.0)  # unanswerable, and the model abstains
    assert score("Paris", ("",)) == (0.0, 0.0)  # unanswerable, but the model answers
    assert score("the", ("a",)) == (100.0, 100.0)  # both normalise to nothing
    # f1 takes the best reference: [10th, century] vs [10th, and, 11th, centuries] -> 1 same: p 1/2, r 1/4
    assert score("10th century", ("10th and 11th centuries", "10th century")) == (100.0, 100.0)
    assert score("10th century", ("10th and 11th centuries",))[1] == pytest.approx(100 * 2 * 0.5 * 0.25 / 0.75)


def test_bigbench_exact_str_match_and_rouge():
    o = GenerationOutcome(" comedy", ("comedy", "parody"))
    assert METRICS["exact_str_match"].per_example(o) == (0.0,)  # character for character
    assert METRICS["exact_str_match"].per_example(GenerationOutcome("parody", ("comedy", "parody"))) == (1.0,)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    o = GenerationOutcome("the cat sat on a mat", ("a cat sat on the mat", "dogs bark"))
    for kind in ("rouge1", "rouge2", "rougeL"):
        best = max(scorer.score(r, o.generated)[kind].fmeasure for r in o.references)
        assert METRICS[kind].per_example(o) == (pytest.approx(100 * best),)
