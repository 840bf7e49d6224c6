"""Hand-made samples for the report's analysis sections (tests/test_report_analysis.py, tests/test_html_chromium.py):
a multiple-choice task with three demonstration seeds and every scoring rule's inputs, a cloze task scored by
perplexity (lower is better), and a generation task whose answers carry their log-probability. Per-example metrics
are computed here by plain arithmetic, not by harness.reporting.rules, so the report's numbers can be checked
against them. The score frame is the samples' own aggregates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.reporting.runs import samples_frame
from harness.samples import ChoiceAnswer, ClozeAnswer, GenerationAnswer, Sample
from tests.helpers import row

MODEL = "gpt2"
N_MC, N_GEN = 40, 50
CHOICES = ("the short one", "a much, much longer choice")


def _mc_metrics(lp, n_tokens, unconditional, gold) -> dict[str, float]:
    by_chars = [x / len(c) for x, c in zip(lp, CHOICES, strict=True)]
    per_token = [x / t for x, t in zip(lp, n_tokens, strict=True)]
    calibrated = [x - u for x, u in zip(lp, unconditional, strict=True)]
    return {name: float(int(np.argmax(scores)) == gold)
            for name, scores in (("acc", lp), ("acc_norm", by_chars), ("acc_per_token", per_token),
                                 ("acc_calibrated", calibrated))}


def mc_sample(setting: str, k: int, seed: int, i: int, rng: np.random.Generator, skill: float) -> Sample:
    gold = i % 2
    lp = [float(x) for x in rng.normal(-8.0, 2.0, size=2)]
    lp[gold] += skill + float(np.random.default_rng(1000 + i).normal(0.0, 2.0))  # the example's own difficulty
    n_tokens, unconditional = (4, 6), tuple(float(x) for x in rng.normal(-9.0, 2.0, size=2))
    answer = ChoiceAnswer(choices=CHOICES, gold=gold, logprobs=tuple(lp), greedy=(False, False), n_tokens=n_tokens,
                          prediction=int(np.argmax(lp)), unconditional=unconditional)
    return Sample(task="piqa", setting=setting, k=k, k_used=k, seed=seed, example_id=f"validation-{i}",
                  demo_ids=(), prompt=f"Question {i} (seed {seed}, k {k})\nAnswer:", answer=answer,
                  metrics=_mc_metrics(lp, n_tokens, unconditional, gold))


def cloze_sample(setting: str, k: int, i: int, logprob: float) -> Sample:
    answer = ClozeAnswer(target=" word", logprob=logprob, is_greedy=logprob > -2, last_token_greedy=True, n_tokens=1)
    return Sample(task="lambada_openai", setting=setting, k=k, k_used=k, seed=0, example_id=f"test-{i}", demo_ids=(),
                  prompt=f"Text {i} (k {k})", answer=answer, metrics={"perplexity": logprob})


def generation_sample(setting: str, k: int, i: int, right: bool, logprob: float | None) -> Sample:
    prediction = "Paris" if right else "Lyon"
    answer = GenerationAnswer(generation=" " + prediction, prediction=prediction, target="Paris", references=("Paris",),
                              logprob=logprob, n_tokens=2)
    return Sample(task="nq_open", setting=setting, k=k, k_used=k, seed=0, example_id=f"dev-{i}", demo_ids=(),
                  prompt=f"Q{i}: capital? (k {k})\nA:", answer=answer,
                  metrics={"exact_match": float(right), "bleu": [1.0, 2.0]})


def analysis_records(seeds=(0, 1, 2)) -> list[Sample]:
    """piqa ZS, 1S and FS(2) over `seeds`; lambada ZS and 1S (1S's log-likelihoods 0.5 lower: a worse perplexity);
    nq_open ZS and FS(2): right answers more confident, two answers without a log-probability (ranked last)."""
    rng = np.random.default_rng(3)
    records = [mc_sample("ZS", 0, 0, i, rng, 1.0) for i in range(N_MC)]
    records += [mc_sample("1S", 1, 0, i, rng, 1.5) for i in range(N_MC)]
    records += [mc_sample("FS", 2, seed, i, rng, 2.0 + seed) for seed in seeds for i in range(N_MC)]
    base = rng.normal(-3.0, 1.0, size=N_MC)
    records += [cloze_sample("ZS", 0, i, float(x)) for i, x in enumerate(base)]
    records += [cloze_sample("1S", 1, i, float(x) - 0.5 + 0.1 * rng.normal()) for i, x in enumerate(base)]
    for setting, k, share in (("ZS", 0, 0.3), ("FS", 2, 0.5)):
        right = rng.random(N_GEN) < share
        confidence = np.where(right, rng.normal(-1.0, 1.0, N_GEN), rng.normal(-4.0, 1.0, N_GEN))
        records += [generation_sample(setting, k, i, bool(r), None if i in (0, 1) else float(c))
                    for i, (r, c) in enumerate(zip(right, confidence, strict=True))]
    return records


def _aggregate(metric: str, values: list) -> float:
    if metric == "perplexity":
        return math.exp(-float(np.mean(values)))
    if metric == "bleu":
        return 0.5
    return float(np.mean(values))


def analysis_frame(records: list[Sample]) -> pd.DataFrame:
    """The score table of the records: one row per (task, setting, k, seed, metric), the metric's aggregate."""
    groups: dict[tuple, list] = {}
    for s in records:
        for metric, value in s.metrics.items():
            groups.setdefault((s.task, s.setting, s.k, s.seed, metric), []).append(value)
    return pd.DataFrame([row(MODEL, task, setting, k, seed, metric, _aggregate(metric, values), n=len(values))
                         | {"higher_is_better": metric != "perplexity"}
                         for (task, setting, k, seed, metric), values in groups.items()])


def analysis_inputs(seeds=(0, 1, 2)) -> tuple[pd.DataFrame, pd.DataFrame, list[Sample]]:
    """(score frame, samples frame, records) of analysis_records."""
    records = analysis_records(seeds)
    return analysis_frame(records), samples_frame(records, MODEL), records
