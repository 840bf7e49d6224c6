"""Compare a harness run with lm-evaluation-harness on the same model, data and prompts.

    python tests/tools/compare_lm_eval.py RUN_DIR LM_EVAL_OUTPUT_DIR piqa=ref_piqa lambada_openai=ref_lambada_openai

Reads our samples.jsonl (zero-shot rows) and lm-eval's samples_<task>_*.jsonl (written with
--log_samples), pairs examples by index (our '<split>-<i>' with lm-eval's doc_id), and prints, for
loglikelihood tasks, the largest per-example log-likelihood difference, and for generation tasks, how many
prompts and generations differ; then per-example metric disagreements and the aggregates side by side
(corpus metrics such as BLEU are recomputed from the paired generations by the caller, not averaged here).
A development tool: lm-eval is not a dependency of harness.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def ours(run_dir: Path, task: str) -> dict[int, dict]:
    rows = {}
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        if sample["task"] == task and sample["setting"] == "ZS":
            rows[int(sample["example_id"].rsplit("-", 1)[1])] = sample
    return rows


def theirs(lm_eval_dir: Path, task: str) -> dict[int, dict]:
    files = sorted(lm_eval_dir.rglob(f"samples_{task}_*.jsonl"))
    if not files:
        sys.exit(f"no samples_{task}_*.jsonl under {lm_eval_dir}")
    return {json.loads(x)["doc_id"]: json.loads(x) for x in files[-1].read_text().splitlines()}


def compare(name: str, our_rows: dict[int, dict], their_rows: dict[int, dict]) -> None:
    shared = sorted(set(our_rows) & set(their_rows))
    max_diff, differing, agg_ours, agg_theirs = 0.0, 0, {}, {}
    prompts_differ, generations_differ = 0, 0
    for i in shared:
        mine, other = our_rows[i], their_rows[i]
        if "generation" in mine:  # generate_until: resps[0][0] is the generation cut at the stop strings
            arguments = other["arguments"]  # 0.4.x logs {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}}
            context = arguments["gen_args_0"]["arg_0"] if isinstance(arguments, dict) else arguments[0][0]
            prompts_differ += mine["prompt"] != context
            generations_differ += mine["generation"] != other["resps"][0][0]
        else:
            their_lls = [float(ll) for ll, _ in other["filtered_resps"]]
            my_lls = mine["logprobs"] if "logprobs" in mine else [mine["logprob"]]
            max_diff = max(max_diff, max(abs(a - b) for a, b in zip(my_lls, their_lls, strict=True)))
        for metric, value in mine["metrics"].items():
            if metric not in other:
                continue
            agg_ours.setdefault(metric, []).append(value)
            agg_theirs.setdefault(metric, []).append(float(other[metric]))
            differing += metric.startswith(("acc", "exact")) and value != float(other[metric])
    print(f"\n{name}: {len(shared)} examples, max |delta log-likelihood| = {max_diff:.2e}, prompts differing: "
          f"{prompts_differ}, generations differing: {generations_differ}, "
          f"per-example metric disagreements: {differing}")
    print(f"{'metric':<12} {'harness':>12} {'lm-eval':>12}")
    for metric in agg_ours:
        a, b = agg_ours[metric], agg_theirs[metric]
        if metric == "perplexity":
            value_a, value_b = math.exp(-sum(a) / len(a)), math.exp(-sum(b) / len(b))
        else:
            value_a, value_b = sum(a) / len(a), sum(b) / len(b)
        print(f"{metric:<12} {value_a:>12.6f} {value_b:>12.6f}")


def main(argv: list[str]) -> None:
    run_dir, lm_eval_dir, *pairs = argv
    for pair in pairs:
        task, their_task = pair.split("=")
        compare(task, ours(Path(run_dir), task), theirs(Path(lm_eval_dir), their_task))


if __name__ == "__main__":
    main(sys.argv[1:])
