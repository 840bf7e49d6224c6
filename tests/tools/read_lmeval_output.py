"""Read an lm-evaluation-harness 0.4 output folder the way a downstream tool would, from the documented
layout only (no harness import): results_<timestamp>.json and samples_<task>_<timestamp>.jsonl.

    python tests/tools/read_lmeval_output.py OUTPUT_DIR

Prints one line per task: n-shot, every "<metric>,<filter>" value, and the number of logged samples,
after checking that each sample has the fields lm-eval writes and that its hashes are what they claim.
Exits 1 with the first problem found.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

SAMPLE_FIELDS = ("doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                 "doc_hash", "prompt_hash", "target_hash")
RESULTS_FIELDS = ("results", "versions", "n-shot", "configs", "config", "higher_is_better", "n-samples")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_sample(sample: dict, where: str) -> None:
    missing = [f for f in SAMPLE_FIELDS if f not in sample]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    context = sample["arguments"]["gen_args_0"]["arg_0"]
    if sample["prompt_hash"] != sha(context):
        raise ValueError(f"{where}: prompt_hash is not sha256 of arguments.gen_args_0.arg_0")
    if sample["target_hash"] != sha(str(sample["target"])):
        raise ValueError(f"{where}: target_hash is not sha256 of target")
    if sample["doc_hash"] != sha(json.dumps(sample["doc"], indent=2, ensure_ascii=False)):
        raise ValueError(f"{where}: doc_hash is not sha256 of the indented doc JSON")
    for metric in sample["metrics"]:
        if metric not in sample:
            raise ValueError(f"{where}: metric {metric} listed but absent")
    if not isinstance(sample["target"], str):
        raise ValueError(f"{where}: target must be a string")


def read(folder: Path) -> list[str]:
    lines = []
    for results_path in sorted(folder.glob("results_*.json")) + sorted(folder.glob("*/results_*.json")):
        data = json.loads(results_path.read_text(encoding="utf-8"))
        missing = [f for f in RESULTS_FIELDS if f not in data]
        if missing:
            raise ValueError(f"{results_path}: missing {missing}")
        stamp = results_path.stem.removeprefix("results_")
        for task, values in data["results"].items():
            samples_path = results_path.parent / f"samples_{task}_{stamp}.jsonl"
            samples = [json.loads(x) for x in samples_path.read_text(encoding="utf-8").splitlines() if x.strip()]
            for i, sample in enumerate(samples, 1):
                check_sample(sample, f"{samples_path}:{i}")
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in values.items() if "," in k and "_stderr" not in k)
            lines.append(f"{task}: {data['n-shot'][task]}-shot, {metrics}, {len(samples)} samples")
    if not lines:
        raise ValueError(f"{folder}: no results_*.json")
    return lines


if __name__ == "__main__":
    try:
        print("\n".join(read(Path(sys.argv[1]))))
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
