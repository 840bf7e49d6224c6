"""`harness list`: every task file in each tasks folder (built-in and the user's) with the folder its data was found
in (or MISSING and the folders searched), BIG-bench tasks read from the data dir (and those that cannot run, with
the reason), and the suites. Task rows of every folder share one table: columns as wide as the longest cell."""

from __future__ import annotations

from pathlib import Path

from harness.columns import format_table
from harness.errors import HarnessError
from harness.tasks.bigbench import FOLDER, PREFIX, bigbench_names
from harness.tasks.bigbench_generative import FOLDER as GENERATIVE
from harness.tasks.bigbench_generative import check_all, generative_names
from harness.tasks.catalog import catalog, load_suite, search_path, suite_files, task_files
from harness.tasks.data import DataDirs, bigbench_root, data_folder, local_file, looked_in, resolve_data_dirs
from harness.tasks.spec import TaskSpec
from harness.tasks.taskfile import load_task

HEADERS = ("task", "kind", "eval", "demos", "FT train", "metrics", "data")


def list_tasks(data_dir: Path | tuple[str, ...] | None, tasks_dirs: list[str]) -> None:
    """Print every task file (each tasks folder, what shadows what), the BIG-bench tasks, those that cannot run,
    and the suites. `data_dir` is RunConfig.data_dir, as --data-dir and --no-default-data-dir make it."""
    data_dirs, dirs = resolve_data_dirs(data_dir), search_path(tasks_dirs)
    winners = catalog(dirs)
    searched = ", ".join(str(d) for d in data_dirs.folders) or "none"
    print(f"data dirs: {searched} (a task's relative data.local is looked up in <the task file's folder>/data/, "
          "then in these)")
    sections = [(d, task_files(d.path)) for d in dirs]
    rows = [_row(name, path, data_dirs, winners[name][0]) for _, files in sections for name, path in files.items()]
    lines = iter(format_table(rows, HEADERS))
    header = next(lines)
    for d, files in sections:
        print(f"\ntasks in {d.path} ({d.origin}{'' if files else '; none'}):")
        if files:
            print(header)
        for _ in files:
            print(next(lines))
    _list_bigbench(bigbench_root(data_dirs))
    print("\nsuites:")
    suites, rows = catalog(dirs, suites=True), []
    for d in dirs:
        for name, path in suite_files(d.path / "suites").items():
            where = "" if d.origin == "built-in" else f"  ({path}, {d.origin})"
            where += "" if suites[name][0] == path else f"  (shadowed by {suites[name][0]})"
            rows.append((name, ", ".join(load_suite(path).tasks) + where))
    print("\n".join(format_table(rows)))


def _list_bigbench(root: Path | None) -> None:
    """The BIG-bench tasks of the data dir `root`, multiple choice and generative, and those that cannot run."""
    invalid = check_all(root)
    names = [n for n in bigbench_names(root) if n not in invalid]
    if names:
        print(f"\nBIG-bench ({len(names)} multiple-choice tasks read from {root / FOLDER}; "
              f"run one as {PREFIX}<name>, all as the suite 'bigbench'):")
        print("  " + ", ".join(names))
    names = [n for n in generative_names(root) if n not in invalid]
    if names:
        print(f"\nBIG-bench generative ({len(names)} tasks read from {root / FOLDER / GENERATIVE}; "
              f"run one as {PREFIX}<name>):")
        print("  " + ", ".join(names))
    if invalid:
        print(f"\nBIG-bench tasks that cannot run ({len(invalid)}; "
              "fix the file, or `run --skip-invalid` runs the rest):")
        for stem, reason in invalid.items():
            print(f"  {PREFIX}{stem}: INVALID: {reason}")


def _row(name: str, path: Path, data_dirs: DataDirs, winner: Path) -> tuple[str, ...]:
    """One task's cells: kind, splits, metrics and the folder its eval data is in; or why the file is invalid."""
    shadowed = "" if winner == path else f"  (shadowed by {winner})"
    try:
        t = load_task(path)
    except HarnessError as e:
        return name, f"INVALID: {e}{shadowed}"
    return (name, t.kind.value, t.data.eval_split, t.data.demo_split or "-", _train_where(t, data_dirs),
            ",".join(t.metrics), _data_where(t, data_dirs) + shadowed)


def _data_where(task: TaskSpec, data_dirs: DataDirs) -> str:
    """The folder the eval split was found in; else the hub, or MISSING with where it was looked for."""
    if local_file(task, task.data.eval_split, data_dirs) is not None:
        return str(data_folder(task, data_dirs))
    if task.data.hub:
        return f"hub {task.data.hub} (not local)"
    folder = data_folder(task, data_dirs)
    if folder is not None:
        return f"MISSING (no {task.data.eval_split} split in {folder})"
    return f"MISSING ({looked_in(task, data_dirs)})"


def _train_where(task: TaskSpec, data_dirs: DataDirs) -> str:
    """The FT train split: its name when local, 'hub' when only the hub has it, '-' when the task has none."""
    split = task.data.train_split
    if split is None:
        return "-"
    return split if local_file(task, split, data_dirs) else ("hub" if task.data.hub else "missing")
