"""Benchmark: our scoring engine against a faithful lm-evaluation-harness-style path, same process, same inputs.

    python tests/tools/bench_scoring.py [--threads 2] [--repeats 3] [--scale 1.0]

A random GPT-2 with gpt2-small shapes (12 layers, 768 wide, 12 heads, 1024 positions, vocab 50257),
fp32, the real GPT-2 tokenizer. Requests are built by the harness from the local data when present
(HellaSwag 0-shot and 5-shot, LAMBADA, WikiText-2 documents), so token lengths are the real ones.

The lm-eval-style path is written here, after lm_eval/models/huggingface.py `_loglikelihood_tokens`:
one row per request, requests sorted longest first, right-padded batches of a fixed size with no
attention mask, logits at every position, a full-vocabulary log_softmax, then the continuation's slice
gathered and summed. Timings are medians over interleaved repeats; speeds are ratios, never absolutes.
Not a test: pytest does not collect tests/tools.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.config import RunConfig  # noqa: E402
from harness.models import packing, scoring  # noqa: E402
from harness.models.hf import HFModel, default_batch_tokens  # noqa: E402
from harness.records import Setting  # noqa: E402

WORKLOADS = {  # name: (task, setting, shots, examples at --scale 1)
    "hellaswag 0-shot 4-choice": ("hellaswag", Setting.ZS, 0, 24),
    "hellaswag 5-shot 4-choice": ("hellaswag", Setting.FS, 5, 8),
    "lambada cloze": ("lambada_openai", Setting.ZS, 0, 48),
    "wikitext2 rolling": ("wikitext2", Setting.ZS, 0, 2),
}


def build_model(device: str = "cpu", dtype: str = "fp32") -> HFModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.models.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)).eval()
    model = model.to(device, torch.bfloat16 if dtype == "bf16" else torch.float32)
    tokenizer = gpt2_tokenizer(Path(tempfile.mkdtemp()) / "gpt2")
    return HFModel(model, tokenizer, "random-gpt2-small", batch_tokens=default_batch_tokens(device))


def build_requests(model: HFModel, task: str, setting: Setting, shots: int, n: int) -> list:
    """The harness's own requests for the first n examples (demonstrations dropped to fit, as in a run)."""
    from harness.pipeline import fit, prepare
    from harness.tasks.kinds import requests_for

    config = RunConfig(tasks=(task,), settings=(setting,), shots=(shots or 5,), limit=n)
    (prepared,) = [fit(t, model) for t in prepare(config)]
    return [r for p, rendered in prepared.prompts for r in requests_for(prepared.spec, p, rendered)]


def model_inputs(model: HFModel, requests) -> list[scoring.ModelInput]:
    if hasattr(requests[0], "text"):  # rolling: disjoint windows, as lm-eval makes them
        return [scoring.model_input(w, model.max_length) for r in requests
                for w in scoring.rolling_windows(model.encode(r.text), model.prefix_token, model.max_length)]
    return [scoring.model_input(model._encode_pair(r.context, r.continuation), model.max_length) for r in requests]


def ours(model: HFModel, rows: list[scoring.ModelInput]) -> list[float]:
    return [lp for lp, _, _ in model._score_rows(rows)]


def lm_eval_style(model: HFModel, rows: list[scoring.ModelInput], batch_size: int) -> list[float]:
    """Per-request full forward, right-padded fixed-size batches, log_softmax over the vocabulary everywhere."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].ids))
    out = [0.0] * len(rows)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = len(rows[batch[0]].ids)
            ids = torch.zeros(len(batch), width, dtype=torch.long)  # (B, T), pad id 0, no attention mask
            for b, i in enumerate(batch):
                ids[b, : len(rows[i].ids)] = torch.tensor(rows[i].ids)
            logprobs = F.log_softmax(model.module(ids).logits, dim=-1)  # (B, T, V)
            for b, i in enumerate(batch):
                n, length = len(rows[i].targets), len(rows[i].ids)
                picked = logprobs[b, length - n : length]  # (n, V)
                target = torch.tensor(rows[i].targets)[:, None]  # (n, 1)
                _ = (picked.argmax(-1) == target[:, 0]).all()  # is_greedy, as lm-eval computes it
                out[i] = float(picked.gather(1, target).sum())
    return out


def useful_flops(model: HFModel, rows: list[scoring.ModelInput]) -> float:
    """2 x non-embedding parameters x packed tokens + 4 x width x attended (query, key) pairs per layer
    + 2 x width x vocabulary at scored positions: the work packing must do, padding and masked pairs excluded."""
    config = model.module.config
    dense = sum(p.numel() for n, p in model.module.named_parameters() if ".h." in n and p.dim() == 2)
    tokens = pairs = 0
    for row in packing.pack(rows, model.row_limit):
        segments = row.segments()
        tokens += len(segments)
        shared = row.shared
        pairs += shared * (shared + 1) // 2
        for b in row.branches:
            pairs += b.length * shared + b.length * (b.length + 1) // 2
    scored = sum(len(r.targets) for r in rows)
    return (2 * dense * tokens + 4 * config.n_embd * pairs * config.n_layer
            + 2 * config.n_embd * config.vocab_size * scored)


def matmul_peak(repeats: int = 3) -> float:
    """Best fp32 GEMM GFLOP/s over the shapes of the model's linear layers at 4096 tokens."""
    best = 0.0
    for k, n in ((768, 2304), (768, 3072), (3072, 768)):
        a, b = torch.randn(4096, k), torch.randn(k, n)
        a @ b  # warm up
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            a @ b
            sync()
            best = max(best, 2 * 4096 * k * n / (time.perf_counter() - start) / 1e9)
    return best


def packed_tokens(model: HFModel, rows: list[scoring.ModelInput]) -> int:
    return sum(len(p.ids) for p in packing.pack(rows, model.row_limit))


def sync() -> None:
    """Wait for queued CUDA work, so that timings on an accelerator are of finished work."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, *args) -> tuple[float, list[float]]:
    sync()
    start = time.perf_counter()
    result = fn(*args)
    sync()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of examples per workload")
    parser.add_argument("--batch-sizes", default="1,8", help="lm-eval-style batch sizes (lm-eval's default is 1)")
    parser.add_argument("--only", default="", help="comma-separated words: run the workloads whose name has one")
    parser.add_argument("--device", default="cpu", help="torch device: cuda runs both paths there (default: cpu)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="weights (default: fp32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        torch.set_default_device(args.device)  # the lm-eval-style path's and the peak's tensors too
    model = build_model(args.device, args.dtype)
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    print(f"torch {torch.__version__}, {args.device}, {args.threads} threads, random gpt2-small shapes, {args.dtype}, "
          f"scoring mode {model.pack_mode.value}, batch_tokens {model.batch_tokens}, medians of {args.repeats} "
          f"interleaved repeats; tokens: lm-eval-style inputs / our packed rows; kv: the KV-cache fallback, one run")
    header = f"{'workload':<27} {'reqs':>4} {'tokens':>11} {'ours s':>7} {'kv s':>6} " + " ".join(
        f"{f'lm-eval bs{b} s':>14} {'ratio':>6}" for b in sizes)
    print(f"{header}  max|dlogp|  GFLOP/s  peak  %peak")
    for name, (task, setting, shots, n) in WORKLOADS.items():
        if args.only and not any(word in name for word in args.only.split(",")):
            continue
        requests = build_requests(model, task, setting, shots, max(1, round(n * args.scale)))
        rows = model_inputs(model, requests)
        times: dict[str, list[float]] = {"ours": [], "peak": [], **{f"bs{b}": [] for b in sizes}}
        worst = 0.0
        ours(model, rows[:8])  # untimed warm-up of both paths (thread pools, allocator)
        lm_eval_style(model, rows[:8], sizes[0])
        for _ in range(args.repeats):  # interleaved, so drifting load hits every path alike
            times["peak"].append(matmul_peak())
            seconds, mine = timed(ours, model, rows)
            times["ours"].append(seconds)
            for b in sizes:
                seconds, theirs = timed(lm_eval_style, model, rows, b)
                times[f"bs{b}"].append(seconds)
                worst = max(worst, max(abs(x - y) for x, y in zip(mine, theirs, strict=True)))
        kv = timed(kv_cache, model, rows)[0] if "choice" in name else float("nan")
        med = {k: statistics.median(v) for k, v in times.items()}
        gflops = useful_flops(model, rows) / med["ours"] / 1e9
        tokens = f"{sum(len(r.ids) for r in rows)}/{packed_tokens(model, rows)}"
        cells = " ".join(f"{med[f'bs{b}']:>14.2f} {med[f'bs{b}'] / med['ours']:>5.1f}x" for b in sizes)
        print(f"{name:<27} {len(rows):>4} {tokens:>11} {med['ours']:>7.2f} {kv:>6.2f} {cells}  {worst:9.1e} "
              f"{gflops:8.1f} {med['peak']:5.0f} {100 * gflops / med['peak']:5.0f}%", flush=True)


def kv_cache(model: HFModel, rows: list[scoring.ModelInput]) -> list[float]:
    from harness.models import fastpath

    with torch.inference_mode():
        return [lp for lp, _, _ in fastpath.score_kv_cache(model.module, rows, model.batch_tokens)]


if __name__ == "__main__":
    main()
