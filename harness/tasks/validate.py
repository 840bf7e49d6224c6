"""`harness validate`: load a task (a file or a name), render every example of every split a run would read, and
show one rendered prompt with its gold answer. Bad data fails here exactly as it would fail a run, in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import say
from harness.records import Rendered, Setting
from harness.tasks.catalog import resolve_task
from harness.tasks.data import AnyDataDir, Split, load_split, load_task_data, local_file, resolve_data_dirs
from harness.tasks.kinds import alternatives, describe_gold, gold_pair, render, without_demonstrations
from harness.tasks.prompts import build_prompt
from harness.tasks.spec import TaskSpec

PROGRESS_EVERY = 5000  # examples between progress lines on stderr, for large splits
SHOWN_CHARACTERS = 2000


def render_split(task: TaskSpec, split: Split, progress: Callable[[str], None] = say) -> list[Rendered]:
    """Every example of a split rendered (the first bad one raises its one-line error), with a progress count."""
    out, total = [], len(split.examples)
    for i, example in enumerate(split.examples):
        if i and i % PROGRESS_EVERY == 0:
            progress(f"validate: {i}/{total} examples of split {split.name!r} rendered")
        out.append(render(task, example))
    return out


def validate(name: str, data_dir: Path | tuple[str, ...] | None, show: Callable[[str], None] = print) -> None:
    """Check a task and its data as a run would, then show one prompt, its continuations and its gold answer.
    `data_dir` is RunConfig.data_dir, as --data-dir and --no-default-data-dir make it."""
    data_dir = resolve_data_dirs(data_dir)
    task = resolve_task(name, data_dir=data_dir)
    show(f"{task.path}: task file ok ({task.kind.value}, metrics {', '.join(task.metrics)})")
    data = load_task_data(task, data_dir)
    show(f"data: {len(data.eval.examples)} examples from {data.eval.source}; demos from {data.demos.source}"
         + (f" ({data.note})" if data.note else ""))
    rendered = {}
    for split in _splits(task, data, data_dir, show):
        rendered |= dict(zip((ex.id for ex in split.examples), render_split(task, split), strict=True))
        show(f"checked: all {len(split.examples)} examples of split {split.name!r} render")
    example = data.eval.examples[0]
    k = 0 if len(data.demos.examples) < 3 or without_demonstrations(task.kind) else 1
    prompt = build_prompt(task, example, Setting.ONE_SHOT if k else Setting.ZS, k, 0, data.demos.examples,
                          lambda ex: rendered[ex.id])
    text = prompt.text
    if len(text) > SHOWN_CHARACTERS:
        text = text[:SHOWN_CHARACTERS] + f" [... {len(text) - SHOWN_CHARACTERS} more characters]"
    show(f"--- {'one-shot' if k else 'zero-shot'} prompt for {example.id} ---\n{text}")
    r = rendered[example.id]
    gold = gold_pair(task, r) if not without_demonstrations(task.kind) else None
    for extra, cont in alternatives(task, r):
        mark = "   <- gold" if (extra, cont) == gold else ""
        show(f"--- {'context + ' + repr(extra) + ', ' if extra else ''}continuation: {cont!r}{mark}")
    show(f"--- gold: {describe_gold(task, r)}")


def _splits(task: TaskSpec, data, data_dir: AnyDataDir, show: Callable[[str], None]) -> list[Split]:
    """The eval split, the demonstration pool and the FT train split (when the data dir holds it), each once."""
    splits = [data.eval]
    if data.demos is not data.eval and not without_demonstrations(task.kind):
        splits.append(data.demos)
    train = task.data.train_split
    if train and not without_demonstrations(task.kind) and train not in (s.name for s in splits):
        if local_file(task, train, data_dir) is None:
            show(f"train split {train!r}: not in the task's data folder, not checked")
        else:
            splits.append(load_split(task, train, data_dir))
    return splits
