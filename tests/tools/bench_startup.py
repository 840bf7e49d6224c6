"""Wall time of a rerun whose every result is cached, and where it goes.

    python tests/tools/bench_startup.py [--runs 5] [--model smollm2-135m] [--tasks piqa,lambada_openai]
                                        [--settings zs] [--limit 200] [--output-dir DIR] [--root CHECKOUT]

Runs `harness run` once to fill the result cache (skipped when DIR already holds it), then --runs cached
reruns, each in a fresh subprocess (as a user would), and prints their median wall time. Then one more
rerun under cProfile and one under -X importtime give the breakdown: import time of the heavy packages,
the pipeline's steps, and whether the model was loaded at all. The datasets json loader's share (its import
and its reads) is printed on its own, with the median without it.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "datasets", "matplotlib", "matplotlib.pyplot", "pandas", "scipy", "pyarrow", "numpy")
STEPS = {  # label -> (file suffix, function name) in the profile
    "prepare (tasks, data, prompts)": ("harness/pipeline.py", "prepare"),
    "  data files read": ("harness/tasks/jsonl.py", "read_jsonl"),
    "model load": ("harness/models/registry.py", "load_model"),
    "execute (result cache)": ("harness/execution/executor.py", "execute"),
    "score": ("harness/score.py", "score_task"),
    "write run folder": ("harness/reporting/results.py", "write_run"),
    "  report figures (matplotlib)": ("harness/reporting/plots.py", "pyplot"),
}


def harness_command(args, name: str) -> list[str]:
    return ["-m", "harness", "run", "--model", args.model, "--tasks", args.tasks, "--settings", args.settings,
            "--limit", str(args.limit), "--output-dir", str(args.output_dir), "--run-name", name]


def run(args, name: str, *python_flags: str) -> float:
    """Wall seconds of one `harness run` in a fresh interpreter; its CPU seconds (user + system) go to args.cpu."""
    env = {**os.environ, "PYTHONPATH": str(args.root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *python_flags, *harness_command(args, name)], cwd=args.root, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    args.last_stderr = done.stderr
    args.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds


def import_times(stderr: str) -> dict[str, float]:
    """Cumulative import seconds of each top-level HEAVY package, from -X importtime's lines."""
    found = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(3) in HEAVY:
            found[m.group(3)] = max(found.get(m.group(3), 0.0), int(m.group(1)) / 1e6)
    return found


def profile_steps(path: Path) -> dict[str, float]:
    stats = pstats.Stats(str(path)).stats  # (file, line, function) -> (cc, nc, tt, ct, callers)
    found = {}
    for label, (suffix, function) in STEPS.items():
        found[label] = sum(ct for (file, _, fn), (_, _, _, ct, _) in stats.items()
                           if fn == function and file.endswith(suffix))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="piqa,lambada_openai")
    parser.add_argument("--settings", default="zs")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where the runs and their cache go (default: a new temporary folder)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout whose harness runs (default: this one; another one compares before/after)")
    args = parser.parse_args()
    args.output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="bench_startup-"))
    stamp = time.strftime("%H%M%S")

    first = run(args, f"bench-{stamp}-fill")
    print(f"first run (fills the cache where needed): {first:.2f} s")
    times, cpu = [], []
    for i in range(args.runs):
        times.append(run(args, f"bench-{stamp}-{i}"))
        cpu.append(args.cpu)
    median = statistics.median(times)
    print(f"cached rerun, {args.runs} runs: median {median:.2f} s wall (min {min(times):.2f}, max {max(times):.2f}); "
          f"median {statistics.median(cpu):.2f} s CPU (user + system: what a busy machine inflates wall time from)")

    run(args, f"bench-{stamp}-imports", "-X", "importtime")
    imports = import_times(args.last_stderr)
    loaded = "loading model" in args.last_stderr
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "run.prof"
        run(args, f"bench-{stamp}-profile", "-m", "cProfile", "-o", str(profile))
        steps = profile_steps(profile)
    print(f"model loaded in the cached rerun: {'yes' if loaded else 'no'}")
    print("imports (cumulative, one rerun):")
    for package in HEAVY:
        print(f"  {package:<28} {imports[package]:6.2f} s" if package in imports
              else f"  {package:<28}    not imported")
    print("steps (cProfile, one rerun; profiling slows them):")
    for label, seconds in steps.items():
        print(f"  {label:<28} {seconds:6.2f} s")
    datasets_share = steps["  datasets json loader"]  # its import happens inside, on first use
    print(f"datasets json loader (import + reads, profiled): {datasets_share:.2f} s; "
          f"median without it about {max(median - datasets_share, 0.0):.2f} s")
    print(f"runs are in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
