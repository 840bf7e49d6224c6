"""Replay lm-eval's own generate_until prompts through harness's decoder and metrics.

    python tests/tools/replay_lm_eval.py MODEL LM_EVAL_SAMPLES.jsonl TASK [--max-new-tokens 256]

For a few-shot run lm-eval draws its demonstrations with its own sampler, so its prompts differ from ours;
this feeds lm-eval's exact prompts (from --log_samples) to harness's batched decoder with lm-eval's stop
strings, scores the generations with the harness task's filters and exact-match options, and prints how
many generations and per-example scores differ from lm-eval's. A development tool: lm-eval is not a
dependency of harness.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.metrics import METRICS
from harness.models import load_model
from harness.records import Example, GenerateRequest, GenerateResult
from harness.tasks.catalog import resolve_task
from harness.tasks.kinds import generation_outcome, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("samples", type=Path)
    parser.add_argument("task", help="the harness task whose filters and metric options score the generations")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="lm-eval's max_gen_toks (default 256)")
    args = parser.parse_args()
    task = resolve_task(args.task)
    rows = [json.loads(line) for line in args.samples.read_text().splitlines()]
    requests = []
    for row in rows:
        context, kwargs = row["arguments"]["gen_args_0"]["arg_0"], row["arguments"]["gen_args_0"]["arg_1"]
        requests.append(GenerateRequest(str(row["doc_id"]), context, tuple(kwargs["until"]), args.max_new_tokens))
    got = load_model(args.model).generate(requests)
    differ, disagree, ours, theirs = 0, 0, [], []
    for row, request in zip(rows, requests, strict=True):
        text = got[request.id].text
        differ += text != row["resps"][0][0]
        rendered = render(task, Example(str(row["doc_id"]), row["doc"]))  # our references, from the same doc
        outcome = generation_outcome(task, rendered, GenerateResult(text))
        value = METRICS["exact_match"].for_task(task.match).per_example(outcome)[0]
        ours.append(value)
        theirs.append(float(row["exact_match"]))
        disagree += value != theirs[-1]
    n = len(rows)
    print(f"{args.task}: {n} lm-eval prompts replayed; generations differing: {differ}; exact_match disagreements: "
          f"{disagree}; exact_match harness {sum(ours) / n:.4f}, lm-eval {sum(theirs) / n:.4f}")


if __name__ == "__main__":
    main()
