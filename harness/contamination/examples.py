"""The task side of a contamination study: every evaluated example as the text the model reads, and its N.

The text of an example is its rendered zero-shot query plus its gold continuation, as a solved demonstration shows
it (kinds.demo_text: query + the gold pair; the text the FT setting trains on). Multiple choice: the gold choice;
generation with several references: the first (gold) one; partial scoring: the gold choice then the shared target.
A perplexity task's text is its document. The task description is left out: it is the same for every example,
so a corpus that quotes it would mark them all dirty.

N per task follows the GPT-3 paper's Table C.1 (gpt3_table_c1.csv in the published folder, found as the report
finds gpt3_table_h1.csv): our task name -> the paper's name by reporting/gpt3.H1_NAMES, matched to the Table C.1
row ignoring case (Table H.1 prints "Quac" and "Copa", Table C.1 "QuAC" and "COPA"). A task absent from the table
gets 13, as does every task when the folder or the file is missing; --ngram sets N for every task.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.contamination.normalize import DEFAULT_N
from harness.errors import HarnessError, say
from harness.files import shared_folder
from harness.records import Example
from harness.reporting.gpt3 import H1_NAMES, PUBLISHED_DIR_ENV
from harness.tasks.catalog import expand_suites, resolve_task, search_path, shadowing
from harness.tasks.data import check_folder, check_split, load_split, resolve_data_dir
from harness.tasks.kinds import demo_text, render, without_demonstrations
from harness.tasks.spec import TaskSpec

C1_NAME = "gpt3_table_c1.csv"


@dataclass(frozen=True)
class TaskTexts:
    task: str
    split: str
    n: int
    n_source: str  # where N came from: "Table C.1 (PIQA)", "--ngram", "default"
    ids: tuple[str, ...]  # example ids, in split order
    texts: tuple[str, ...]  # what the model reads, one per example


@dataclass(frozen=True)
class TableC1:
    """N per task of ours, from Table C.1; `path` None (and `missing` saying why) when it could not be read."""

    n: dict[str, tuple[int, str]]  # our task -> (N, the paper's name)
    path: Path | None
    missing: str = ""
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # our task -> its CSV row (the report's GPT-3 row)


def model_text(task: TaskSpec, example: Example) -> str:
    """The text of `example` the model reads: zero-shot query + gold continuation, or the document."""
    rendered = render(task, example)
    return rendered.query if without_demonstrations(task.kind) else demo_text(task, rendered)


def load_table_c1(flag: str | Path | None = None) -> TableC1:
    folder = shared_folder("published", flag, "--published-dir", PUBLISHED_DIR_ENV, holds=C1_NAME)
    if folder is None or not (folder / C1_NAME).is_file():
        where = f"{folder}" if folder is not None else f"--published-dir, ${PUBLISHED_DIR_ENV} or shared/published"
        return TableC1({}, None, f"no {C1_NAME} in {where}: N = {DEFAULT_N} for every task")
    path = folder / C1_NAME
    ours: dict[str, list[str]] = {}  # the paper's name, lower-cased -> our tasks
    for (paper, _), name in H1_NAMES.items():
        ours.setdefault(paper.lower(), [])
        if name.task not in ours[paper.lower()]:
            ours[paper.lower()].append(name.task)
    table: dict[str, tuple[int, str]] = {}
    rows: dict[str, dict[str, str]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"task", "ngram"} <= set(reader.fieldnames or ()):
            raise HarnessError(f"{path}: needs the columns task and ngram (has {reader.fieldnames})")
        for line, row in enumerate(reader, 2):
            try:
                n = int(row["ngram"])
            except ValueError:
                raise HarnessError(f"{path}:{line}: ngram {row['ngram']!r} is not a whole number") from None
            for task in ours.get(row["task"].lower(), []):
                table.setdefault(task, (n, row["task"]))
                rows.setdefault(task, dict(row))
    return TableC1(table, path, rows=rows)


def ngram_of(task: str, table: TableC1, override: int | None) -> tuple[int, str]:
    """(N, where it came from) for one task."""
    if override is not None:
        return override, "--ngram"
    if task in table.n:
        n, paper = table.n[task]
        return n, f"Table C.1 ({paper})"
    return DEFAULT_N, "default (not in Table C.1)" if table.path else "default (no Table C.1)"


def task_texts(names: Sequence[str], limit: int | None, override: int | None, table: TableC1,
               data_dir: str | Path | None = None, tasks_dirs: Sequence[str | Path] = ()) -> list[TaskTexts]:
    """Every named task (suites expanded) with the texts of the first `limit` examples of its eval split (all when
    None). Bad task files and data fail here, in one line, before the corpus is read."""
    data = resolve_data_dir(data_dir)
    dirs = search_path(tasks_dirs)
    expanded = expand_suites(names, dirs, data)
    for line in shadowing(dirs, {*names, *expanded}):
        say(line)
    out = []
    for name in expanded:
        spec = resolve_task(name, dirs, data)
        check_folder(spec, data)
        check_split(spec, "eval_split", data)
        split = load_split(spec, spec.data.eval_split, data)
        examples = split.examples[:limit]
        n, source = ngram_of(spec.name, table, override)
        out.append(TaskTexts(spec.name, split.name, n, source, tuple(ex.id for ex in examples),
                             tuple(model_text(spec, ex) for ex in examples)))
    if len({t.task for t in out}) < len(out):
        raise HarnessError("--tasks: a task is named twice (after expanding suites); name each task once")
    return out
