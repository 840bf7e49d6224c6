"""Where tasks and suites are found, and names resolved to TaskSpecs.

Built-in task files live in the checkout's top-level `tasks/` folder (the source of truth, where users add
files); a wheel carries a copy of them as `harness/builtin_tasks/`. A source checkout (editable install or
PYTHONPATH) reads `tasks/` itself, so an added file is seen at once. Suites are `<tasks dir>/suites/*.toml`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, unknown
from harness.files import CHECKOUT_ROOT, PACKAGE_ROOT, in_checkout
from harness.tasks import bigbench, bigbench_generative, lmeval_import
from harness.tasks.spec import TaskSpec
from harness.tasks.taskfile import Where, load_task



def builtin_tasks_dir() -> Path:
    """The checkout's tasks/ when harness runs from a source checkout, else the copy inside the wheel."""
    return CHECKOUT_ROOT / "tasks" if in_checkout() else PACKAGE_ROOT / "builtin_tasks"


TASKS_DIR = builtin_tasks_dir()
SUITES_DIR = TASKS_DIR / "suites"


def task_files(tasks_dir: Path = TASKS_DIR) -> dict[str, Path]:
    """Task name -> file, for every <tasks dir>/*.toml."""
    return {p.stem: p for p in sorted(tasks_dir.glob("*.toml"))}


def resolve_task(name: str, tasks_dir: Path = TASKS_DIR, data_dir: Path | None = None) -> TaskSpec:
    """A task by name (tasks/<name>.toml), by path to a .toml file, a BIG-bench task (bigbench_<name>), or an
    lm-evaluation-harness YAML converted on the fly (lmeval:PATH.yaml)."""
    if name.startswith(lmeval_import.PREFIX):
        return lmeval_import.load(name[len(lmeval_import.PREFIX):])
    if name.endswith(".toml") or "/" in name:
        return load_task(name)
    if name.startswith(bigbench.PREFIX):
        return bigbench_generative.resolve_bigbench(name, data_dir)
    files = task_files(tasks_dir)
    if name not in files:
        raise unknown("task", name, [*files, *suite_files(tasks_dir / "suites")])
    return load_task(files[name])


@dataclass(frozen=True)
class Suite:
    """A named list of tasks: tasks/suites/<name>.toml with `description` and `tasks`."""

    name: str
    description: str
    tasks: tuple[str, ...]


def load_suite(path: Path) -> Suite:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    where = Where(path)
    where.check_keys(table, {"description", "tasks"}, "")
    tasks = tuple(where.strings(table, "tasks", None))
    if not tasks:
        raise where.error("tasks", "is empty")
    return Suite(path.stem, where.string(table, "description", ""), tasks)


def suite_files(suites_dir: Path = SUITES_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(suites_dir.glob("*.toml"))}


def expand_suites(names, tasks_dir: Path = TASKS_DIR, data_dir: Path | None = None) -> list[str]:
    """Task names with every suite name replaced by its tasks, in order, without duplicates.
    `bigbench` stands for every BIG-bench task in the data dir, multiple choice and generative."""
    suites = suite_files(tasks_dir / "suites")
    out: list[str] = []
    for name in names:
        if name == bigbench.FOLDER:
            out += [bigbench.PREFIX + stem for stem in bigbench_generative.all_names(data_dir)]
        elif name in suites:
            if name in task_files(tasks_dir):
                raise HarnessError(f"{name!r} is both a task and a suite; rename one of tasks/{name}.toml, tasks/suites/{name}.toml")
            out += load_suite(suites[name]).tasks
        else:
            out.append(name)
    return list(dict.fromkeys(out))
