"""Examples for a task: from the local data dir (JSON lines, read by jsonl.py) or the hub when online.

Data dir: --data-dir, else $HARNESS_DATA_DIR, else the `shared/data` folder beside (or inside) the
checkout when it exists. A task's local files live at <data dir>/<data.local>/<file>, where <file>
is `data.files.<split>` or `<split>.jsonl` (`.jsonl.gz` also accepted).

A split the task file names but the data lacks is an error with the splits found when it looks like a typo (a
close match exists, or no hub could have it); the one quiet-looking fallback, demonstrations from the eval split,
is a warning (TaskData.warning) that the run prints and records.
"""

from __future__ import annotations

import gzip
import itertools
import string
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, suggest
from harness.files import shared_folder
from harness.records import Example
from harness.tasks import jinja
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


def resolve_data_dir(flag: str | Path | None = None) -> Path | None:
    """The data dir from the flag, the environment, or a shared/data folder beside the checkout or above
    the working folder."""
    return shared_folder("data", flag, "--data-dir", DATA_DIR_ENV)


def local_file(task: TaskSpec, split: str, data_dir: Path | None) -> Path | None:
    """The local file of a split, or None when the data dir does not hold it."""
    if task.data.local is None or (data_dir is None and not Path(task.data.local).is_absolute()):
        return None
    folder = (data_dir or Path()) / task.data.local  # an absolute folder (lm-eval data_files) stands alone
    names = [task.data.files[split]] if split in task.data.files else [f"{split}.jsonl", f"{split}.jsonl.gz"]
    return next((folder / n for n in names if (folder / n).is_file()), None)


def load_task_data(task: TaskSpec, data_dir: Path | None) -> TaskData:
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


def local_splits(task: TaskSpec, data_dir: Path | None) -> list[str]:
    """The splits the task's local folder holds: data.files entries that exist, and every <name>.jsonl(.gz)."""
    if data_dir is None or task.data.local is None or not (data_dir / task.data.local).is_dir():
        return []
    folder = data_dir / task.data.local
    names = {split for split, file in task.data.files.items() if (folder / file).is_file()}
    for path in folder.iterdir():
        for ending in (".jsonl", ".jsonl.gz"):
            if path.name.endswith(ending) and path.is_file():
                names.add(path.name.removesuffix(ending))
    return sorted(names)


def check_folder(task: TaskSpec, data_dir: Path | None) -> None:
    """A data.local folder that is missing while one differing only in case (or close) exists is a typo."""
    if data_dir is None or task.data.local is None or (data_dir / task.data.local).is_dir():
        return
    folders = [p.name for p in data_dir.iterdir() if p.is_dir()]
    same_case = [name for name in folders if name.lower() == task.data.local.lower()]
    hint = f" (did you mean: {', '.join(same_case)}?)" if same_case else suggest(task.data.local, folders)
    if hint:
        raise HarnessError(f"{task.path}: data.local {task.data.local!r}: no such folder in {data_dir}{hint}")


def check_split(task: TaskSpec, key: str, data_dir: Path | None) -> None:
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
    folder = data_dir / task.data.local
    raise HarnessError(f"{task.path}: data.{key} {split!r}: no such split in {folder} "
                       f"(splits found: {', '.join(found)}){hint}")


def load_split(task: TaskSpec, split: str, data_dir: Path | None) -> Split:
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


def _read_hub(task: TaskSpec, split: str, data_dir: Path | None) -> list[dict]:
    looked = f"{data_dir / task.data.local}" if data_dir and task.data.local else "no data dir"
    if data_dir and task.data.local and (data_dir / task.data.local).is_dir():
        looked += f"; splits found: {', '.join(local_splits(task, data_dir)) or 'none'}"
    hint = f"put {split}.jsonl under <data dir>/{task.data.local} and pass --data-dir or set ${DATA_DIR_ENV}"
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
