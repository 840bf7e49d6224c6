"""Benchmark: one real model's log-likelihood scoring under variants (dtype, batch budget, fused kernels),
same process, same requests, alternating A B A B, so a shared machine's load hits every variant alike.

    python tests/tools/bench_model.py --model smollm2-135m --tasks piqa,lambada_openai --limit 100 \
        --variants fp32,bf16 [--threads 2] [--repeats 2] [--batch-tokens 1024]

A variant is `+`-joined words: fp32 or bf16, nofuse (fused kernels off), bN (N padded tokens per forward).
The first variant is the baseline: each line gives the median time, its ratio to the baseline's, the largest
|log-likelihood difference| from the baseline over all requests, and how many multiple-choice predictions
(the highest-scoring choice of each example) differ. Also `--probe`: the batch-size probe's rates and
choice for the model (fresh, nothing read from or written to the cache). Not a test: pytest does not
collect tests/tools.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.config import DType, RunConfig
from harness.models import probe
from harness.models.registry import load_model
from harness.records import Setting


def build_requests(model, tasks: list[str], limit: int) -> list:
    from harness.pipeline import fit, prepare
    from harness.tasks.kinds import requests_for

    config = RunConfig(tasks=tuple(tasks), settings=(Setting.ZS,), limit=limit)
    prepared = [fit(t, model) for t in prepare(config)]
    return [r for t in prepared for p, rendered in t.prompts for r in requests_for(t.spec, p, rendered)
            if hasattr(r, "continuation")]


def load(model: str, variant: str, batch_tokens: int):
    words = variant.split("+")
    dtype = DType.BF16 if "bf16" in words else DType.FP32
    budget = next((int(w[1:]) for w in words if w[0] == "b" and w[1:].isdigit()), batch_tokens)
    loaded = load_model(model, "cpu", budget, dtype)
    if "nofuse" in words:
        from harness.models import fused

        fused.unfuse(loaded.module)
    return loaded


def predictions(scores: dict) -> dict[str, str]:
    """Per example (request ids `<prompt>#choiceN`), the choice with the highest log-likelihood."""
    best: dict[str, tuple[float, str]] = {}
    for rid, result in scores.items():
        key, _, choice = rid.rpartition("#choice")
        if key and (key not in best or result.logprob > best[key][0]):
            best[key] = (result.logprob, choice)
    return {k: c for k, (_, c) in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="piqa,lambada_openai")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--variants", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=1024, help="budget of variants without bN")
    parser.add_argument("--probe", action="store_true",
                        help="only run the batch-size probe on --model (also: random-gpt2-small)")
    parser.add_argument("--probe-seconds", type=float, default=probe.TIME_LIMIT, help="the probe's time limit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        if args.model == "random-gpt2-small":  # bench_scoring.py's model: gpt2-small shapes, random weights
            from bench_scoring import build_model

            model = build_model()
        else:
            model = load_model(args.model, "cpu", 1, DType.BF16 if "bf16" in args.variants else DType.FP32)
        rates, _ = probe.measure(model._probe_pass, probe.candidates("cpu"), time_limit=args.probe_seconds)
        print(f"{args.model}: tokens/s {', '.join(f'{b}: {r:.0f}' for b, r in rates.items())} -> "
              f"{probe.pick(rates, 0)}", flush=True)
        return
    variants = args.variants.split(",")
    models = {v: load(args.model, v, args.batch_tokens) for v in variants}
    requests = build_requests(models[variants[0]], args.tasks.split(","), args.limit)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.model}, {len(requests)} requests "
          f"({args.tasks}, {args.limit} each), medians of {args.repeats} alternating repeats", flush=True)
    for m in models.values():
        m.loglikelihood(requests[:4])  # warm-up
    times, scores = defaultdict(list), {}
    for _ in range(args.repeats):
        for v, m in models.items():
            start = time.perf_counter()
            scores[v] = m.loglikelihood(requests)
            times[v].append(time.perf_counter() - start)
    base = variants[0]
    base_pred = predictions(scores[base])
    for v in variants:
        delta = max(abs(scores[v][r.id].logprob - scores[base][r.id].logprob) for r in requests)
        pred = predictions(scores[v])
        differ = sum(pred[k] != base_pred[k] for k in base_pred)
        med = statistics.median(times[v])
        print(f"{v:<16} {med:8.2f} s  {statistics.median(times[base]) / med:5.2f}x of {base}  "
              f"max|dlogp| {delta:.2e}  predictions differing {differ}/{len(base_pred)}", flush=True)


if __name__ == "__main__":
    main()
