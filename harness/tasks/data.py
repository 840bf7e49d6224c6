"""Examples for a task: from local JSON-lines files (read by jsonl.py) or the hub when online.

Where a task's local files are (`search_folders`, `data_folder`): a relative `data.local` names a folder that is
looked up, in this order,
  1. in <the task file's folder>/data/ (a folder of task files can carry its own data),
  2. in each data dir (`resolve_data_dirs`): every --data-dir in the order given, then the default data dir
     ($HARNESS_DATA_DIR, else the `shared/data` folder beside (or inside) the checkout when it exists), which
     --no-default-data-dir leaves out;
and the first folder holding a <data.local>/ folder serves every split of the task. An absolute `data.local` is
that folder alone. A split's file is `data.files.<split>` or `<split>.jsonl` (`.jsonl.gz` also accepted).
BIG-bench tasks are read from the first data dir that holds a bigbench/ folder (`bigbench_root`). That is a run's
search (`DataDirs`, as harness run, list, validate and finetune make it); a bare folder passed to these functions
instead is searched alone, as the one data dir.

A split the task file names but the data lacks is an error with the splits found when it looks like a typo (a
close match exists, or no hub could have it); the one quiet-looking fallback, demonstrations from the eval split,
is a warning (TaskData.warning) that the run prints and records.
"""

from __future__ import annotations

import gzip
import itertools
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, suggest
from harness.files import shared_folder
from harness.records import Example
from harness.tasks import bigbench, jinja
from harness.tasks.jsonl import read_jsonl
from harness.tasks.preprocess import PREPROCESSORS, RowProblem
from harness.tasks.spec import TaskSpec

DATA_DIR_ENV = "HARNESS_DATA_DIR"


@dataclass(frozen=True)
class Split:
    name: str
    examples: tuple[Example, ...]
    source: str  # file path or "hub:<id>"
    sha256: str | None  # of the local file


@dataclass(frozen=True)
class TaskData:
    eval: Split
    demos: Split  # the demonstration pool (may be the eval split itself)
    note: str  # how the demo pool was chosen, when it is not data.demo_split
    warning: str = ""  # set when the demo pool is a fallback (the eval split): said on stderr, in run.json, in reports


@dataclass(frozen=True)
class DataDirs:
    """Where a run looks up a task's relative data.local, in order: <the task file's folder>/data/, then `folders`,
    the data dirs (resolve_data_dirs). A bare Path given instead stands for that one folder alone."""

    folders: tuple[Path, ...]


AnyDataDir = DataDirs | Path | str | None  # what the functions below take for `data_dir`


def resolve_data_dir(flag: str | Path | None = None) -> Path | None:
    """One data dir: the flag, else the default data dir (`default_data_dir`)."""
    return shared_folder("data", flag, "--data-dir", DATA_DIR_ENV)


def default_data_dir() -> Path | None:
    """$HARNESS_DATA_DIR, else a shared/data folder beside the checkout or in or above the working folder."""
    return resolve_data_dir(None)


def resolve_data_dirs(value: str | Path | Sequence[str | Path] | None) -> DataDirs:
    """A run's data dirs in search order, from RunConfig.data_dir (what config.parse_data_dirs makes of --data-dir):
    None, the default data dir alone; one folder, it and then the default data dir; a tuple, exactly those folders.
    Each named folder must exist; a folder named twice is searched once."""
    named, with_default = ((value,), True) if isinstance(value, str | Path) else (tuple(value or ()), value is None)
    dirs = [resolve_data_dir(folder) for folder in named]
    default = default_data_dir() if with_default else None
    kept: dict[Path, Path] = {}
    for folder in [*dirs, *([default] if default is not None else [])]:
        kept.setdefault(folder.resolve(), folder)
    return DataDirs(tuple(kept.values()))


def data_dirs(data_dir: AnyDataDir) -> tuple[Path, ...]:
    """The data dirs searched, in order (a task's own data/ folder aside)."""
    if isinstance(data_dir, DataDirs):
        return data_dir.folders
    return () if data_dir is None else (Path(data_dir),)


def search_folders(task: TaskSpec, data_dir: AnyDataDir) -> tuple[Path, ...]:
    """Where a task's relative data.local is looked for, in order: for a run (DataDirs) <the task file's
    folder>/data/ and then the data dirs in their order; for a bare folder, that folder alone."""
    own = (Path(task.path).parent / "data",) if isinstance(data_dir, DataDirs) else ()
    return tuple(dict.fromkeys((*own, *data_dirs(data_dir))))


def data_folder(task: TaskSpec, data_dir: AnyDataDir) -> Path | None:
    """The folder holding the task's local files: an absolute data.local itself, else <folder>/<data.local> in the
    first of search_folders that holds it; None when none does, or the task names no data.local."""
    local = task.data.local
    if local is None:
        return None
    if Path(local).is_absolute():  # an absolute folder (lm-eval data_files) stands alone
        return Path(local) if Path(local).is_dir() else None
    return next((folder / local for folder in search_folders(task, data_dir) if (folder / local).is_dir()), None)


def looked_in(task: TaskSpec, data_dir: AnyDataDir) -> str:
    """Where a task's data folder was looked for and not found, for messages: 'no piqa/ in A, B'."""
    local = task.data.local
    if local is None:
        return "the task names no data.local"
    if Path(local).is_absolute():
        return f"no folder {local}"
    return f"no {local}/ in {', '.join(str(f) for f in search_folders(task, data_dir))}"


def bigbench_root(data_dir: AnyDataDir) -> Path | None:
    """The data dir BIG-bench tasks are read from: the first holding a bigbench/ folder, else the first one."""
    dirs = data_dirs(data_dir)
    return next((d for d in dirs if (d / bigbench.FOLDER).is_dir()), dirs[0] if dirs else None)


def local_file(task: TaskSpec, split: str, data_dir: AnyDataDir) -> Path | None:
    """The local file of a split, or None when the task's data folder (data_folder) does not hold it."""
    folder = data_folder(task, data_dir)
    if folder is None:
        return None
    names = [task.data.files[split]] if split in task.data.files else [f"{split}.jsonl", f"{split}.jsonl.gz"]
    return next((folder / n for n in names if (folder / n).is_file()), None)


def load_task_data(task: TaskSpec, data_dir: AnyDataDir) -> TaskData:
    """The eval split and the demonstration pool of a task. Named splits that look like typos fail here."""
    check_folder(task, data_dir)
    for key in ("eval_split", "demo_split", "train_split"):
        check_split(task, key, data_dir)
    eval_split = load_split(task, task.data.eval_split, data_dir)
    wanted = task.data.demo_split
    same = "demonstrations from the eval split, never the example itself"
    if wanted == eval_split.name:
        return TaskData(eval_split, eval_split, same)
    if wanted is None:  # a fallback, unless the task draws its demonstrations from the eval split by design
        warning = f"task {task.name}: no data.demo_split: {same} ({eval_split.name!r})"
        return TaskData(eval_split, eval_split, same, "" if task.data.demos_from_eval else warning)
    eval_is_local = eval_split.sha256 is not None
    if eval_is_local and local_file(task, wanted, data_dir) is None:  # offline: stay local
        found = ", ".join(local_splits(task, data_dir)) or "none"
        note = f"demo split {wanted!r} not in the data dir (splits found: {found}): {same}"
        return TaskData(eval_split, eval_split, note, f"task {task.name}: {note}")
    return TaskData(eval_split, load_split(task, wanted, data_dir), "")


COMMON_SPLITS = ("train", "validation", "test", "dev")  # names a hub dataset may hold that the data dir lacks


def local_splits(task: TaskSpec, data_dir: AnyDataDir) -> list[str]:
    """The splits the task's data folder holds: data.files entries that exist, and every <name>.jsonl(.gz)."""
    folder = data_folder(task, data_dir)
    if folder is None:
        return []
    names = {split for split, file in task.data.files.items() if (folder / file).is_file()}
    for path in folder.iterdir():
        for ending in (".jsonl", ".jsonl.gz"):
            if path.name.endswith(ending) and path.is_file():
                names.add(path.name.removesuffix(ending))
    return sorted(names)


def check_folder(task: TaskSpec, data_dir: AnyDataDir) -> None:
    """A data.local folder that no search folder holds while one holds a folder differing only in case (or close)
    is a typo."""
    local = task.data.local
    if local is None or Path(local).is_absolute() or data_folder(task, data_dir) is not None:
        return
    searched = [f for f in search_folders(task, data_dir) if f.is_dir()]
    folders = sorted({p.name for f in searched for p in f.iterdir() if p.is_dir()})
    same_case = [name for name in folders if name.lower() == local.lower()]
    hint = f" (did you mean: {', '.join(same_case)}?)" if same_case else suggest(local, folders)
    if hint:
        raise HarnessError(f"{task.path}: data.local {local!r}: no such folder in "
                           f"{', '.join(str(f) for f in searched)}{hint}")


def check_split(task: TaskSpec, key: str, data_dir: AnyDataDir) -> None:
    """A split named by data.<key> that the local folder lacks: an error when it is a close match of a split
    found there (a typo), or when the task has no hub id and the name is not a common split name (nothing could
    hold it; an eval split always). Otherwise the hub may have it, or a missing demo split falls back (a warning)."""
    split = getattr(task.data, key)
    found = local_splits(task, data_dir)
    if split is None or split in found or not found:
        return
    hint = suggest(split, found)
    if not hint and (task.data.hub is not None or split in COMMON_SPLITS and key != "eval_split"):
        return
    raise HarnessError(f"{task.path}: data.{key} {split!r}: no such split in {data_folder(task, data_dir)} "
                       f"(splits found: {', '.join(found)}){hint}")


def load_split(task: TaskSpec, split: str, data_dir: AnyDataDir) -> Split:
    path = local_file(task, split, data_dir)
    if path is not None:
        rows, sha = read_jsonl(path)
        source = str(path)
    else:
        rows, sha = _read_hub(task, split, data_dir), None
        source = f"hub:{task.data.hub}" + (f"/{task.data.hub_name}" if task.data.hub_name else "")
    if task.preprocess:
        try:
            rows = PREPROCESSORS[task.preprocess](task, rows)
        except RowProblem as e:  # one line naming file:line and the field, before any model work
            where = f"{path}:{_line_of(path, e.index)}" if path is not None else f"{source} row {e.index}"
            raise HarnessError(f"{where}: {e.field}: {e.message} (task {task.name}, {task.path})") from None
    examples = tuple(Example(id=f"{split}-{i}", fields=row) for i, row in enumerate(rows))
    if not examples:
        raise HarnessError(f"{source}: split {split!r} of task {task.name} has no examples")
    check_fields(task, examples[0], source)
    return Split(split, examples, source, sha)


def _line_of(path: Path, index: int) -> int:
    """The line number of the index-th row of a JSON-lines file (read_jsonl skips blank lines)."""
    raw = path.read_bytes()
    data = gzip.decompress(raw) if path.name.endswith(".gz") else raw
    rows = (number for number, line in enumerate(data.split(b"\n"), 1) if line.strip())
    return next(itertools.islice(rows, index, None), index + 1)


def check_fields(task: TaskSpec, example: Example, source: str) -> None:
    """Every $field named by the task's templates must exist in the data."""
    if task.prompt.template == jinja.JINJA:
        return jinja.check_fields(task, example, source)
    for key, template in task.templates().items():
        for name in string.Template(template).get_identifiers():
            if name not in example.fields:
                have = ", ".join(sorted(example.fields))
                raise HarnessError(
                    f"{task.path}: {key} names ${name}, which {source} does not have (fields: {have})"
                )


def _read_hub(task: TaskSpec, split: str, data_dir: AnyDataDir) -> list[dict]:
    folder, local = data_folder(task, data_dir), task.data.local
    if folder is not None:
        looked = f"{folder}; splits found: {', '.join(local_splits(task, data_dir)) or 'none'}"
    else:
        looked = looked_in(task, data_dir)
    where = folder or f"<the task file's folder>/data/{local}/ or <a data dir>/{local}/"
    hint = (f"put {split}.jsonl in {where} (--data-dir adds a data dir; see harness list)" if local else
            "give the task file a data.local folder or a data.hub id")
    if task.data.hub is None:
        raise HarnessError(f"task {task.name}: split {split!r} not found locally ({looked}) "
                           f"and the task has no hub id; {hint}")
    from harness import hub

    if not hub.reachable():
        raise HarnessError(f"task {task.name}: split {split!r} not found locally ({looked}) "
                           f"and the hub is unreachable; {hint}")
    import datasets

    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(task.data.hub, task.data.hub_name, split=split).to_list()
    except Exception as e:
        raise HarnessError(
            f"task {task.name}: split {split!r} not found locally ({looked}) and hub dataset "
            f"{task.data.hub!r} could not be loaded ({type(e).__name__}); {hint}"
        ) from None
