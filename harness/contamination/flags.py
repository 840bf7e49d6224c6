"""The flags of `harness overlap` (harness/cli.py's add_overlap_parser adds them; run.config_from_args reads them).
Light: argparse only, so building the command line imports no numpy."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import DEFAULT_WORKERS, TASKS_DIR_HELP, ExecutorKind

DESCRIPTION = ("Contamination study as in the GPT-3 paper's Appendix C: each example's zero-shot query plus its gold "
               "continuation, as words, against every N-gram of a corpus streamed once; writes <out>/overlap.csv "
               "and <out>/summary.md.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("--corpus", type=Path, nargs="+", required=True, metavar="PATH",
                        help='.txt or .jsonl (a "text" field per line) files, or folders of them')
    parser.add_argument("--tasks", required=True, help="comma-separated task or suite names, or .toml paths")
    parser.add_argument("--ngram", type=int, default=None, metavar="N",
                        help="N for every task (default: the task's N in the GPT-3 paper's Table C.1, else 13)")
    parser.add_argument("--limit", type=int, default=0, metavar="N",
                        help="first N examples of each task's eval split; 0 = all (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"processes scanning the corpus; with --executor ray, shards in flight on the cluster "
                        f"(default: 1, with --executor ray {DEFAULT_WORKERS})")
    parser.add_argument("--executor", type=ExecutorKind, choices=list(ExecutorKind), default=ExecutorKind.LOCAL,
                        metavar="{" + ",".join(k.value for k in ExecutorKind) + "}",
                        help="who scans the shards: this machine's processes, or Ray tasks on a cluster (the same "
                        "overlap.csv; every node reads the corpus at the same paths) (default: local)")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="join a running cluster: auto or HOST:PORT (default: start a local one-machine cluster)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for overlap.csv, study.json, summary.md")
    parser.add_argument("--data-dir", type=Path, default=None, help="local data folder (default: as for harness run)")
    parser.add_argument("--tasks-dir", action="append", default=[], metavar="DIR", help=TASKS_DIR_HELP)
    parser.add_argument("--published-dir", type=Path, default=None,
                        help="folder of gpt3_table_c1.csv (default: $HARNESS_PUBLISHED_DIR, "
                        "else shared/published beside the checkout)")
