"""Local vs Ray on one machine: the demo suite (`harness run` defaults, --limit 20), run once locally and once
with `--executor ray --workers 2`, each in a fresh process with an empty cache. Prints the wall time of each,
Ray's overhead, and whether scores.csv, samples.jsonl and report.md are the same bytes.

On CPU the local run uses every core in one process while each Ray worker uses its share; harness sets
MKL_CBWR=AUTO,STRICT itself (harness/invariance.py), so MKL's products round the same at any thread count.

    PYTHONPATH=. python tests/tools/bench_ray.py [--limit 20] [--tasks demo] [--workers 2] [--out /tmp/bench_ray]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

FILES = ("scores.csv", "samples.jsonl", "report.md")


def timed_run(out: Path, extra: list[str], args) -> float:
    command = [sys.executable, "-m", "harness.cli", "run", "--tasks", args.tasks, "--limit", str(args.limit),
               "--output-dir", str(out), "--run-name", "r", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--tasks", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_ray"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    local = timed_run(args.out / "local", ["--no-cache"], args)
    ray = timed_run(args.out / "ray", ["--executor", "ray", "--workers", str(args.workers)], args)
    same = {name: (args.out / "local" / "r" / name).read_bytes() == (args.out / "ray" / "r" / name).read_bytes()
            for name in FILES}
    print(f"tasks {args.tasks}, --limit {args.limit}, {os.cpu_count()} CPUs")
    print(f"local                     {local:7.1f} s (one process, all cores)")
    print(f"ray, {args.workers} workers             {ray:7.1f} s (cluster start, workers loading, shards)")
    print(f"ray overhead              {100 * (ray / local - 1):+7.1f} %")
    print("same bytes: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in same.items()))
    sys.exit(0 if all(same.values()) else 1)


if __name__ == "__main__":
    main()
