"""Where tasks and suites are found, and names resolved to TaskSpecs.

Built-in task files live in the checkout's top-level `tasks/` folder (the source of truth, where users add
files); a wheel carries a copy of them as `harness/builtin_tasks/`. A source checkout (editable install or
PYTHONPATH) reads `tasks/` itself, so an added file is seen at once. Suites are `<tasks dir>/suites/*.toml`.

Users' own task folders come first: every `--tasks-dir` (repeatable, or an os.pathsep list), then each folder of
$HARNESS_TASKS_PATH, then the built-in one. The first folder holding a name wins; a user file that shadows a
built-in name is said once on stderr (`shadowing`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, unknown
from harness.files import CHECKOUT_ROOT, PACKAGE_ROOT, in_checkout
from harness.tasks import bigbench, bigbench_generative, lmeval_import
from harness.tasks.data import AnyDataDir, bigbench_root
from harness.tasks.spec import TaskSpec
from harness.tasks.taskfile import Where, load_task


def builtin_tasks_dir() -> Path:
    """The checkout's tasks/ when harness runs from a source checkout, else the copy inside the wheel."""
    return CHECKOUT_ROOT / "tasks" if in_checkout() else PACKAGE_ROOT / "builtin_tasks"


TASKS_DIR = builtin_tasks_dir()
SUITES_DIR = TASKS_DIR / "suites"
TASKS_PATH_ENV = "HARNESS_TASKS_PATH"
BUILTIN = "built-in"


@dataclass(frozen=True)
class TaskDir:
    """A folder of task files (and suites/), and where it was named: --tasks-dir, $HARNESS_TASKS_PATH, built-in."""

    path: Path
    origin: str


def search_path(flags: Iterable[str | Path] = ()) -> tuple[TaskDir, ...]:
    """The task folders in lookup order: --tasks-dir values, $HARNESS_TASKS_PATH, the built-in tasks/."""
    named = [(part, "--tasks-dir") for flag in flags for part in str(flag).split(os.pathsep)]
    named += [(part, f"${TASKS_PATH_ENV}") for part in os.environ.get(TASKS_PATH_ENV, "").split(os.pathsep)]
    dirs, seen = [], set()
    for text, origin in named:
        if not text.strip():
            continue
        path = Path(text).expanduser()
        if not path.is_dir():
            raise HarnessError(f"{origin} {text}: not a directory "
                               "(give a folder of task .toml files; suites go in its suites/)")
        if path.resolve() not in seen:
            seen.add(path.resolve())
            dirs.append(TaskDir(path, origin))
    return (*dirs, TaskDir(TASKS_DIR, BUILTIN))


def catalog(dirs: Sequence[TaskDir], suites: bool = False) -> dict[str, tuple[Path, TaskDir]]:
    """Task (or, with `suites`, suite) name -> (file, its folder); the first folder holding a name wins."""
    found: dict[str, tuple[Path, TaskDir]] = {}
    for d in dirs:
        for name, path in (suite_files(d.path / "suites") if suites else task_files(d.path)).items():
            found.setdefault(name, (path, d))
    return found


def shadowing(dirs: Sequence[TaskDir], names: Iterable[str] | None = None) -> list[str]:
    """One line per user task or suite (among `names`, when given) that hides a built-in one of the same name."""
    lines = []
    for suites in (False, True):
        what = "suite" if suites else "task"
        builtin = suite_files(SUITES_DIR) if suites else task_files(TASKS_DIR)
        for name, (path, d) in catalog(dirs, suites).items():
            if d.origin != BUILTIN and name in builtin and (names is None or name in names):
                lines.append(f"{what} {name!r}: {path} ({d.origin}) is used, not the built-in {builtin[name]}")
    return lines


def task_files(tasks_dir: Path = TASKS_DIR) -> dict[str, Path]:
    """Task name -> file, for every <tasks dir>/*.toml."""
    return {p.stem: p for p in sorted(tasks_dir.glob("*.toml"))}


def resolve_task(name: str, dirs: Sequence[TaskDir] | None = None, data_dir: AnyDataDir = None) -> TaskSpec:
    """A task by name (<tasks dir>/<name>.toml, first in `dirs`, default search_path()), by path to a .toml file,
    a BIG-bench task (bigbench_<name>, from the data dir `bigbench_root` picks), or an lm-evaluation-harness YAML
    converted on the fly (lmeval:PATH.yaml)."""
    if name.startswith(lmeval_import.PREFIX):
        return lmeval_import.load(name[len(lmeval_import.PREFIX):])
    if name.endswith(".toml") or "/" in name:
        return load_task(name)
    if name.startswith(bigbench.PREFIX):
        return bigbench_generative.resolve_bigbench(name, bigbench_root(data_dir))
    dirs = search_path() if dirs is None else dirs
    files = catalog(dirs)
    if name not in files:
        raise unknown("task", name, [*files, *catalog(dirs, suites=True)])
    return load_task(files[name][0])


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


def expand_suites(names, dirs: Sequence[TaskDir] | None = None, data_dir: AnyDataDir = None) -> list[str]:
    """Task names with every suite name replaced by its tasks, in order, without duplicates.
    `bigbench` stands for every BIG-bench task in the data dir `bigbench_root` picks, multiple choice and
    generative."""
    dirs = search_path() if dirs is None else dirs
    suites, tasks = catalog(dirs, suites=True), catalog(dirs)
    out: list[str] = []
    for name in names:
        if name == bigbench.FOLDER:
            out += [bigbench.PREFIX + stem for stem in bigbench_generative.all_names(bigbench_root(data_dir))]
        elif name in suites:
            if name in tasks:
                raise HarnessError(f"{name!r} is both a task and a suite; "
                                   f"rename one of {tasks[name][0]}, {suites[name][0]}")
            out += load_suite(suites[name][0]).tasks
        else:
            out.append(name)
    return list(dict.fromkeys(out))
