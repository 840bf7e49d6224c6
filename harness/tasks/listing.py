"""`harness list`: every task file in each tasks folder (built-in and the user's), BIG-bench tasks read from the
data dir (and those that cannot run, with the reason), and the suites."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.tasks.bigbench import PREFIX, bigbench_names
from harness.tasks.bigbench_generative import check_all, generative_names
from harness.tasks.catalog import catalog, load_suite, search_path, suite_files, task_files
from harness.tasks.data import local_file, resolve_data_dir
from harness.tasks.taskfile import load_task


def list_tasks(data_dir_flag: Path | None, tasks_dirs: list[str]) -> None:
    """Print every task file (each tasks folder, what shadows what), the BIG-bench tasks, those that cannot run,
    and the suites."""
    data_dir, dirs = resolve_data_dir(data_dir_flag), search_path(tasks_dirs)
    winners = catalog(dirs)
    print(f"data dir: {data_dir or '(none found)'}")
    for d in dirs:
        files = task_files(d.path)
        print(f"\ntasks in {d.path} ({d.origin}{'' if files else '; none'}):")
        if files:
            print(f"{'task':<16} {'kind':<16} {'eval':<11} {'demos':<11} {'FT train':<9} {'metrics':<46} data")
        for name, path in files.items():
            winner = winners[name][0]
            _list_row(name, path, data_dir, "" if winner == path else f"  (shadowed by {winner})")
    invalid = check_all(data_dir)
    names = [n for n in bigbench_names(data_dir) if n not in invalid]
    if names:
        print(f"\nBIG-bench ({len(names)} multiple-choice tasks read from {data_dir / 'bigbench'}; "
              f"run one as {PREFIX}<name>, all as the suite 'bigbench'):")
        print("  " + ", ".join(names))
    names = [n for n in generative_names(data_dir) if n not in invalid]
    if names:
        print(f"\nBIG-bench generative ({len(names)} tasks read from {data_dir / 'bigbench' / 'generative'}; "
              f"run one as {PREFIX}<name>):")
        print("  " + ", ".join(names))
    if invalid:
        print(f"\nBIG-bench tasks that cannot run ({len(invalid)}; "
              "fix the file, or `run --skip-invalid` runs the rest):")
        for stem, reason in invalid.items():
            print(f"  {PREFIX}{stem}: INVALID: {reason}")
    print("\nsuites:")
    suites = catalog(dirs, suites=True)
    for d in dirs:
        for name, path in suite_files(d.path / "suites").items():
            where = "" if d.origin == "built-in" else f"  ({path}, {d.origin})"
            where += "" if suites[name][0] == path else f"  (shadowed by {suites[name][0]})"
            print(f"{name:<16} {', '.join(load_suite(path).tasks)}{where}")


def _list_row(name: str, path: Path, data_dir, shadowed: str) -> None:
    """One line of `harness list`: kind, splits, metrics and where the eval data is, or why the file is invalid."""
    try:
        t = load_task(path)
    except HarnessError as e:
        print(f"{name:<16} INVALID: {e}{shadowed}")
        return
    found = local_file(t, t.data.eval_split, data_dir)
    where = str(found) if found else (f"hub {t.data.hub} (not local)" if t.data.hub else "MISSING")
    print(f"{name:<16} {t.kind.value:<16} {t.data.eval_split:<11} {t.data.demo_split or '-':<11} "
          f"{_train_where(t, data_dir):<9} {','.join(t.metrics):<46} {where}{shadowed}")


def _train_where(task, data_dir) -> str:
    """The FT train split: its name when local, 'hub' when only the hub has it, '-' when the task has none."""
    split = task.data.train_split
    if split is None:
        return "-"
    return split if local_file(task, split, data_dir) else ("hub" if task.data.hub else "missing")
