"""`harness overlap`: check the corpus, load the tasks, index their N-grams, scan the corpus once, write the study.

Every input problem fails in one line before the scan (corpus.py lists the corpus checks; task files and data fail
as they do for `harness run`), and nothing is written unless the whole scan succeeds. stdout_table is re-exported
for the command line.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DEFAULT_WORKERS, ExecutorKind
from harness.contamination.corpus import check_file, resolve_corpus
from harness.contamination.examples import load_table_c1, task_texts
from harness.contamination.index import build_index
from harness.contamination.normalize import words
from harness.contamination.output import Study, stdout_table, write
from harness.contamination.scan import ScanSettings, scan
from harness.errors import HarnessError, say
from harness.files import check_writable

__all__ = ["OverlapConfig", "config_from_args", "run_overlap", "stdout_table"]


@dataclass(frozen=True)
class OverlapConfig:
    corpus: tuple[Path, ...]  # .txt / .jsonl files or folders of them
    tasks: tuple[str, ...]  # task or suite names, or .toml paths
    out: Path  # the folder for overlap.csv and summary.md
    ngram: int | None = None  # N for every task; None: Table C.1's N per task, else 13
    limit: int | None = None  # first examples per task; None: all
    data_dir: Path | None = None
    tasks_dirs: tuple[str, ...] = ()
    published_dir: Path | None = None  # the folder of gpt3_table_c1.csv (default: as the report finds it)
    settings: ScanSettings = field(default_factory=ScanSettings)
    executor: ExecutorKind = ExecutorKind.LOCAL  # ray: shards as Ray tasks (ray_scan.py), the same overlap.csv
    ray_address: str | None = None  # None: a local one-machine cluster

    def __post_init__(self):
        if self.ray_address is not None and self.executor is not ExecutorKind.RAY:
            raise HarnessError("--ray-address: only with --executor ray")
        if not self.corpus:
            raise HarnessError("--corpus: give at least one file or folder")
        if not self.tasks:
            raise HarnessError("--tasks: give at least one task")
        if self.ngram is not None and self.ngram < 1:
            raise HarnessError(f"--ngram: need N >= 1, got {self.ngram}")
        if self.limit is not None and self.limit < 1:
            raise HarnessError(f"--limit: need a positive number of examples, got {self.limit}")


def config_from_args(args: argparse.Namespace) -> OverlapConfig:
    """The config of the flags contamination/flags.py defines."""
    executor = ExecutorKind(args.executor)
    workers = args.workers if args.workers is not None else DEFAULT_WORKERS if executor is ExecutorKind.RAY else 1
    return OverlapConfig(tuple(args.corpus), tuple(t.strip() for t in args.tasks.split(",") if t.strip()), args.out,
                         args.ngram, args.limit or None, args.data_dir, tuple(args.tasks_dir), args.published_dir,
                         ScanSettings(workers=workers), executor, args.ray_address)


def run_overlap(config: OverlapConfig) -> Study:
    """The study of `config`, written to config.out (a folder this run made is removed again when it fails)."""
    files = resolve_corpus(config.corpus)
    made = not Path(config.out).exists()
    check_writable(config.out, "--out")
    try:
        study = _study(config, files)
        write(study, config.out)
    except BaseException:
        if made and Path(config.out).is_dir() and not any(Path(config.out).iterdir()):
            Path(config.out).rmdir()
        raise
    return study


def _study(config: OverlapConfig, files) -> Study:
    started = time.perf_counter()
    for file in files:
        check_file(file)
    checked = time.perf_counter() - started
    table = load_table_c1(config.published_dir)
    tasks = task_texts(config.tasks, config.limit, config.ngram, table, config.data_dir, config.tasks_dirs)
    texts = [words(text) for task in tasks for text in task.texts]
    index = build_index(texts, [task.n for task in tasks for _ in task.texts])
    total = sum(f.size for f in files)
    where = " on Ray" if config.executor is ExecutorKind.RAY else ""
    say(f"overlap: {index.grams:,} N-grams of {len(texts):,} examples ({len(tasks)} tasks) against {len(files)} "
        f"files ({total / 1e6:,.1f} MB), {config.settings.workers} workers{where}")
    started = time.perf_counter()
    if config.executor is ExecutorKind.RAY:
        from harness.contamination.ray_scan import scan_on_ray

        result = scan_on_ray(index, files, config.settings, config.ray_address)
    else:
        result = scan(index, files, config.settings)
    return Study(tuple(tasks), tuple(map(len, texts)), files, result, table, index.grams, index.nbytes,
                 time.perf_counter() - started, checked, config.settings.workers)
