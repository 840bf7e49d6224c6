"""Examples for a task: from the local data dir (datasets' json loader) or the hub when online.

Data dir: --data-dir, else $HARNESS_DATA_DIR, else the `shared/data` folder beside (or inside) the
checkout when it exists. A task's local files live at <data dir>/<data.local>/<file>, where <file>
is `data.files.<split>` or `<split>.jsonl` (`.jsonl.gz` also accepted).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path

from harness.tasks import bigbench, bigbench_generative, jinja
from harness.errors import HarnessError
from harness.records import Example
from harness.files import shared_folder
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
    """The eval split and the demonstration pool of a task."""
    eval_split = load_split(task, task.data.eval_split, data_dir)
    wanted = task.data.demo_split
    if wanted is None or wanted == eval_split.name:
        return TaskData(eval_split, eval_split, "demonstrations from the eval split, never the example itself")
    eval_is_local = eval_split.sha256 is not None
    if eval_is_local and local_file(task, wanted, data_dir) is None:  # offline: stay local
        note = f"demo split {wanted!r} not in the data dir: demonstrations from the eval split, never the example itself"
        return TaskData(eval_split, eval_split, note)
    return TaskData(eval_split, load_split(task, wanted, data_dir), "")


def load_split(task: TaskSpec, split: str, data_dir: Path | None) -> Split:
    path = local_file(task, split, data_dir)
    if path is not None:
        rows, sha = _read_local(path), _sha256(path)
        source = str(path)
    else:
        rows, sha = _read_hub(task, split, data_dir), None
        source = f"hub:{task.data.hub}" + (f"/{task.data.hub_name}" if task.data.hub_name else "")
    if task.preprocess == bigbench.PREPROCESS:  # needs the task's meta file, not only the rows
        rows = bigbench.bigbench_preprocess(task, rows)
    elif task.preprocess == bigbench_generative.PREPROCESS:
        rows = bigbench_generative.generative_preprocess(task, rows)
    elif task.preprocess:
        from harness.tasks.preprocess import PREPROCESSORS

        rows = PREPROCESSORS[task.preprocess](rows)
    examples = tuple(Example(id=f"{split}-{i}", fields=row) for i, row in enumerate(rows))
    if not examples:
        raise HarnessError(f"{source}: split {split!r} of task {task.name} has no examples")
    check_fields(task, examples[0], source)
    return Split(split, examples, source, sha)


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


def _read_local(path: Path) -> list[dict]:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        return datasets.load_dataset("json", data_files=str(path), split="train").to_list()
    except Exception as e:  # find the offending line ourselves: datasets does not say where
        _find_bad_line(path)
        raise HarnessError(f"{path}: could not be read as JSON lines: {type(e).__name__}: {e}") from None


def _find_bad_line(path: Path) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise HarnessError(f"{path}:{number}: malformed JSON line: {e.msg}") from None
            if not isinstance(row, dict):
                raise HarnessError(f"{path}:{number}: each line must be a JSON object")


def _read_hub(task: TaskSpec, split: str, data_dir: Path | None) -> list[dict]:
    looked = f"{data_dir / task.data.local}" if data_dir and task.data.local else "no data dir"
    hint = f"put {split}.jsonl under <data dir>/{task.data.local} and pass --data-dir or set ${DATA_DIR_ENV}"
    if task.data.hub is None:
        raise HarnessError(f"task {task.name}: split {split!r} not found locally ({looked}) and the task has no hub id; {hint}")
    from harness import hub

    if not hub.reachable():
        raise HarnessError(f"task {task.name}: split {split!r} not found locally ({looked}) and the hub is unreachable; {hint}")
    import datasets

    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(task.data.hub, task.data.hub_name, split=split).to_list()
    except Exception as e:
        raise HarnessError(
            f"task {task.name}: split {split!r} not found locally ({looked}) and hub dataset "
            f"{task.data.hub!r} could not be loaded ({type(e).__name__}); {hint}"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
