"""Benchmark: our batched KV-cache greedy decoding against a faithful lm-evaluation-harness-style path,
same process, same prompts, same weights.

    python tests/tools/bench_generate.py [--threads 1] [--repeats 2] [--nq 16] [--wmt 8] [--max-new 32]

Prompts: nq_open 5-shot (lm-eval's nq_open.yaml: "Answer these questions:\\n\\n", demonstrations
"Q: <question>?\\nA: <first answer>" joined by "\\n", until "\\n", ".", ","), questions from
<data>/nq_open/dev.jsonl and demonstrations from efficientqa_dev.jsonl; WMT14 fr-en 3-shot ("French phrase:
<fr>\\nEnglish phrase: <en>", demonstrations from newstest2013, questions from newstest2014, until "\\n").
Models: a random GPT-2 with gpt2-small shapes and the real GPT-2 tokenizer; smollm2-135m when converted at
~/.cache/harness/models/smollm2-135m. fp32 on CPU.

The lm-eval-style path is written here after lm_eval/models/huggingface.py `generate_until`: requests
sorted longest first, contexts left-truncated to max_length - max_gen_toks, fixed-size batches left-padded
by the tokenizer with an attention mask, transformers' `generate(do_sample=False)` with a stopping criterion
that decodes each row's last (stop tokens + 2) new tokens (lm-eval's MultiTokenEOSCriteria; the batch stops
when every row has met a stop string, slightly earlier than lm-eval, which needs one stop string met by every
row), then decode with skip_special_tokens and cut at the first stop string. Batch 1 is lm-eval's default.

Ours: HFModel.generate, the transformers backend and the reference backend (its own KV cache, SDPA).
Reported: seconds (medians of interleaved repeats), generated tokens per second (tokens up to the cut,
the same count for every path), speedups, achieved GFLOP/s of our transformers path against a measured
fp32 matmul peak, and how many texts equal lm-eval-style batch 1 (which is unpadded). Speeds are ratios
in one process, never absolutes. Not a test: pytest does not collect tests/tools.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.files import user_cache  # noqa: E402
from harness.models import reference  # noqa: E402
from harness.models.generation import context_ids, cut_at_stop  # noqa: E402
from harness.models.gpt import AttentionImpl  # noqa: E402
from harness.models.hf import HFModel, default_batch_tokens  # noqa: E402
from harness.records import GenerateRequest  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SMOLLM2 = user_cache() / "models" / "smollm2-135m"


def read_jsonl(path: Path, n: int) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def nq_open_requests(n: int, max_new: int) -> list[GenerateRequest]:
    """Each question with its own 5 demonstrations (as the harness samples them per example: no shared prefix)."""
    pool = read_jsonl(DATA / "nq_open" / "efficientqa_dev.jsonl", 5 * n)
    out = []
    for i, row in enumerate(read_jsonl(DATA / "nq_open" / "dev.jsonl", n)):
        shots = "\n".join(f"Q: {d['question']}?\nA: {d['answer'][0]}" for d in pool[5 * i : 5 * i + 5])
        out.append(GenerateRequest(f"nq{i}", f"Answer these questions:\n\n{shots}\nQ: {row['question']}?\nA:",
                                   ("\n", ".", ","), max_new))
    return out


def wmt_requests(n: int, max_new: int) -> list[GenerateRequest]:
    pool = read_jsonl(DATA / "wmt14_fr_en" / "newstest2013.jsonl", 3 * n)
    out = []
    for i, row in enumerate(read_jsonl(DATA / "wmt14_fr_en" / "newstest2014.jsonl", n)):
        shots = "\n\n".join(f"French phrase: {d['fr']}\nEnglish phrase: {d['en']}" for d in pool[3 * i : 3 * i + 3])
        out.append(GenerateRequest(f"wmt{i}", f"{shots}\n\nFrench phrase: {row['fr']}\nEnglish phrase:", ("\n",),
                                   max_new))
    return out


def random_gpt2_small():
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.models.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)).eval()
    return model, gpt2_tokenizer(Path(tempfile.mkdtemp()) / "gpt2")


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(SMOLLM2))


class StopCriterion:
    """lm-eval's MultiTokenEOSCriteria, for a set of stop strings: a row is done once the decoded last
    (stop tokens + 2) new tokens hold one; the batch stops when every row is done."""

    def __init__(self, tokenizer, stop: tuple[str, ...], start: int, batch: int):
        self.tokenizer, self.stop, self.start = tokenizer, stop, start
        self.lookback = max(len(tokenizer.encode(s, add_special_tokens=False)) for s in stop) + 2
        self.done = [False] * batch

    def __call__(self, input_ids, scores, **kwargs):
        tails = self.tokenizer.batch_decode(input_ids[:, self.start :][:, -self.lookback :])
        self.done = [d or any(s in t for s in self.stop) for d, t in zip(self.done, tails, strict=True)]
        return torch.full((input_ids.shape[0],), all(self.done), dtype=torch.bool, device=input_ids.device)


def lm_eval_style(model: HFModel, requests: list[GenerateRequest], batch_size: int) -> dict[str, str]:
    from transformers import StoppingCriteriaList

    tok, hf = model.tokenizer, model.module
    order = sorted(requests, key=lambda r: (-len(model.encode(r.context)), r.context))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = {}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            max_new = chunk[0].max_new_tokens
            contexts = [list(context_ids(model.encode(r.context), model.prefix_token, model.max_length, max_new))
                        for r in chunk]
            width = max(len(c) for c in contexts)
            ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts])  # (B, T), left-padded
            mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts])  # (B, T)
            stop = StopCriterion(tok, chunk[0].stop, width, len(chunk))
            generated = hf.generate(ids, attention_mask=mask, max_length=width + max_new, do_sample=False,
                                    pad_token_id=pad, stopping_criteria=StoppingCriteriaList([stop]),
                                    use_cache=True)  # (B, T + n)
            for r, row in zip(chunk, generated[:, width:].tolist(), strict=True):
                out[r.id] = cut_at_stop(tok.decode(row, skip_special_tokens=True), r.stop)
    return out


def ours(model: HFModel, requests: list[GenerateRequest]) -> dict[str, str]:
    return {k: v.text for k, v in model.generate(requests).items()}


def useful_flops(model: HFModel, requests: list[GenerateRequest], texts: dict[str, str]) -> tuple[float, int]:
    """(2 x non-embedding matrix parameters x (context + new tokens) + 4 x width x attended (query, key) pairs
    per layer + 2 x width x vocabulary per new token, new tokens): the work of decoding the kept text once."""
    config = model.module.config
    dense = sum(p.numel() for n, p in model.module.named_parameters()
                if p.dim() == 2 and "emb" not in n and "wte" not in n and "wpe" not in n and "lm_head" not in n)
    width = getattr(config, "n_embd", None) or config.hidden_size
    layers = getattr(config, "n_layer", None) or config.num_hidden_layers
    flops, new_tokens = 0.0, 0
    for r in requests:
        t = len(context_ids(model.encode(r.context), model.prefix_token, model.max_length, r.max_new_tokens))
        n = max(1, len(model.tokenizer.encode(texts[r.id], add_special_tokens=False)))
        new_tokens += n
        pairs = (t + n) * (t + n + 1) // 2
        flops += 2 * dense * (t + n) + 4 * width * pairs * layers + 2 * width * config.vocab_size * n
    return flops, new_tokens


def matmul_peak(width: int, repeats: int = 3) -> float:
    """Best fp32 GEMM GFLOP/s at 256 rows over the model's width (the shape of a decoding step's matmuls)."""
    best = 0.0
    for k, n in ((width, 3 * width), (width, 4 * width), (4 * width, width)):
        a, b = torch.randn(256, k), torch.randn(k, n)
        a @ b
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            a @ b
            sync()
            best = max(best, 2 * 256 * k * n / (time.perf_counter() - start) / 1e9)
    return best


def sync() -> None:
    """Wait for queued CUDA work, so that timings on an accelerator are of finished work."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, *args):
    sync()
    start = time.perf_counter()
    result = fn(*args)
    sync()
    return time.perf_counter() - start, result


def bench(label: str, hf, tok, workloads: dict[str, list[GenerateRequest]], repeats: int, sizes: list[int]) -> None:
    where = next(hf.parameters())
    batch_tokens = default_batch_tokens(str(where.device))
    model = HFModel(hf, tok, label, batch_tokens=batch_tokens)
    ref = HFModel(reference.from_hf(hf, AttentionImpl.SDPA).to(where.device, where.dtype), tok, label,
                  batch_tokens=batch_tokens, driver=reference.DRIVER)
    width = getattr(hf.config, "n_embd", None) or hf.config.hidden_size
    for name, requests in workloads.items():
        paths = {"ours": lambda rs: ours(model, rs), "ours-ref": lambda rs: ours(ref, rs),
                 **{f"bs{b}": (lambda rs, b=b: lm_eval_style(model, rs, b)) for b in sizes}}
        for fn in paths.values():  # untimed warm-up
            fn(requests[:2])
        times: dict[str, list[float]] = {k: [] for k in [*paths, "peak"]}
        texts: dict[str, dict[str, str]] = {}
        for _ in range(repeats):  # interleaved, so drifting load hits every path alike
            times["peak"].append(matmul_peak(width))
            for key, fn in paths.items():
                seconds, texts[key] = timed(fn, requests)
                times[key].append(seconds)
        med = {k: statistics.median(v) for k, v in times.items()}
        flops, new_tokens = useful_flops(model, requests, texts["bs1"])
        gflops = flops / med["ours"] / 1e9
        same = {k: sum(texts[k][r.id] == texts["bs1"][r.id] for r in requests) for k in paths}
        cells = " ".join(f"{k} {med[k]:6.2f}s {new_tokens / med[k]:6.1f} tok/s {med[k] / med['ours']:4.1f}x "
                         f"same {same[k]}/{len(requests)} |"
                         for k in paths)
        print(f"{label:<16} {name:<10} n={len(requests):<3} new tokens {new_tokens:<5} | {cells} "
              f"ours {gflops:.1f} GFLOP/s of peak {med['peak']:.0f} ({100 * gflops / med['peak']:.0f}%)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="1 on a shared, loaded machine: tiny ops stall on thread handoffs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nq", type=int, default=16, help="nq_open questions")
    parser.add_argument("--wmt", type=int, default=8, help="WMT14 fr-en sentences")
    parser.add_argument("--max-new", type=int, default=32,
                        help="max_new_tokens (lm-eval's default max_gen_toks is 256)")
    parser.add_argument("--batch-sizes", default="1,8", help="lm-eval-style batch sizes")
    parser.add_argument("--models", default="gpt2-small-random,smollm2-135m")
    parser.add_argument("--device", default="cpu", help="torch device: cuda runs every path there (default: cpu)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="weights (default: fp32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        torch.set_default_device(args.device)  # the lm-eval-style path's and the peak's tensors too
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    def placed(model, tokenizer):
        return model.to(args.device, dtype), tokenizer

    workloads = {"nq_open": nq_open_requests(args.nq, args.max_new), "wmt14": wmt_requests(args.wmt, args.max_new)}
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    print(f"torch {torch.__version__}, {args.device}, {args.threads} threads, {args.dtype}, "
          f"max_new_tokens {args.max_new}, medians of {args.repeats} "
          f"interleaved repeats; Nx = path seconds / ours; same = texts equal to lm-eval-style batch 1")
    if "gpt2-small-random" in args.models:
        bench("gpt2-small-rand", *placed(*random_gpt2_small()), workloads, args.repeats, sizes)
    if "smollm2-135m" in args.models and SMOLLM2.is_dir():
        bench("smollm2-135m", *placed(*smollm2()), workloads, args.repeats, sizes)


if __name__ == "__main__":
    main()
