"""Batch invariance on a real model, and what it costs (issue 21).

1. The same `harness run` under two batch budgets (default 512 and 4096 padded tokens per forward pass), each
   in a fresh process with the result cache off: scores.csv and samples.jsonl must be the same bytes (the run
   name aside).
2. With `--baseline TREE` (a checkout of an older harness, e.g. `git archive <commit> | tar -x -C /tmp/old`),
   the cost: the same command (one budget) timed alternately under the baseline tree and this one, `--repeats`
   times each, in one sitting; prints each wall time and the median ratio current / baseline.

    PYTHONPATH=. python tests/tools/bench_invariance.py [--model smollm2-135m] [--tasks piqa] [--limit 100]
        [--budgets 512,4096] [--baseline /tmp/old --cost-tasks piqa,lambada_openai --cost-limit 200 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = ("scores.csv", "samples.jsonl")
ROOT = Path(__file__).resolve().parents[2]


def run(tree: Path, out: Path, name: str, model: str, tasks: str, limit: int, budget: int, extra: list[str]) -> float:
    command = [sys.executable, "-m", "harness.cli", "run", "--model", model, "--tasks", tasks, "--settings", "zs",
               "--limit", str(limit), "--batch-tokens", str(budget), "--no-cache", "--output-dir", str(out),
               "--run-name", name, *extra]
    env = os.environ | {"PYTHONPATH": str(tree)}
    if "HARNESS_DATA_DIR" not in env and (ROOT.parent / "shared" / "data").is_dir():  # a baseline tree elsewhere
        env["HARNESS_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} (PYTHONPATH={tree}) failed:\n{done.stderr[-3000:]}")
    return seconds


def same_bytes(out: Path, names: list[str]) -> dict[str, bool]:
    """Per file: every run's copy equal to the first's, each run's name replaced by one placeholder."""
    def read(name: str, file: str) -> bytes:
        return (out / name / file).read_bytes().replace(name.encode(), b"RUN")

    return {file: all(read(n, file) == read(names[0], file) for n in names[1:]) for file in FILES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="piqa")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--budgets", default="512,4096")
    parser.add_argument("--baseline", type=Path, help="an older harness tree to time against")
    parser.add_argument("--cost-tasks", default="piqa,lambada_openai")
    parser.add_argument("--cost-limit", type=int, default=200)
    parser.add_argument("--cost-budget", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    out = Path(tempfile.mkdtemp(prefix="bench_invariance-"))

    budgets = [int(b) for b in args.budgets.split(",")]
    names = []
    for budget in budgets:
        names.append(f"budget{budget}")
        seconds = run(ROOT, out, names[-1], args.model, args.tasks, args.limit, budget, extra)
        print(f"{args.model} {args.tasks} --limit {args.limit} --batch-tokens {budget}: {seconds:.1f} s")
    verdict = same_bytes(out, names)
    print("identical across budgets " + ", ".join(map(str, budgets)) + ": "
          + ", ".join(f"{f} {'yes' if ok else 'NO'}" for f, ok in verdict.items()))

    if args.baseline:
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        for i in range(args.repeats):
            for label, tree in (("baseline", args.baseline.resolve()), ("current", ROOT)):
                seconds = run(tree, out, f"{label}{i}", args.model, args.cost_tasks, args.cost_limit,
                              args.cost_budget, extra)
                times[label].append(seconds)
                print(f"{label} ({tree}) {args.cost_tasks} --limit {args.cost_limit}: {seconds:.1f} s")
        ratio = statistics.median(c / b for c, b in zip(times["current"], times["baseline"], strict=True))
        print(f"median ratio current / baseline: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")
    sys.exit(0 if all(verdict.values()) else 1)


if __name__ == "__main__":
    main()
