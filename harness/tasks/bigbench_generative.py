"""BIG-bench JSON generative tasks (free text answers) as TaskSpecs, with no task file per task.

The data dir holds <data dir>/bigbench/generative/<name>.jsonl (one example per line: `input`, `target` a string
or a list of accepted strings) and <name>.meta.json (the other fields of the task.json). Prompts follow
BIG-bench's json_task, as for the multiple-choice tasks (bigbench.py):

    prompt = task_prefix + (demo + few_shot_example_separator) * k
             + example_input_prefix + input + example_output_prefix
    demo   = its query + its first target

The model generates greedily until `stop_string` when the meta gives one, else until the few-shot separator
(where the next example would start); `output_regex` becomes the regex filter (the first match, "" when
none). Metrics as the meta lists them: exact_str_match, bleu, rouge (rouge1, rouge2, rougeLsum); others
(bleurt, multiple_choice_grade) are left out.

Where this differs from BIG-bench: BIG-bench keeps the stop string in the output (it cuts after it) and
truncates to max_length words; here the continuation is cut before the stop string, as lm-evaluation-harness
does. BIG-bench's bleu (through t5) tokenises with sacrebleu's "intl"; bleu here uses sacrebleu's default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.errors import HarnessError, unknown
from harness.records import TaskKind
from harness.tasks import bigbench
from harness.tasks.jsonl import read_jsonl
from harness.tasks.spec import DataSpec, Filter, PromptSpec, TaskSpec

FOLDER = "generative"  # <data dir>/bigbench/generative/<name>.jsonl + <name>.meta.json
PREPROCESS = "bigbench_generative"  # TaskSpec.preprocess: generative_preprocess, in preprocess.PREPROCESSORS
QUERY_FIELD, TARGETS_FIELD = "bb_input", "bb_targets"
MAX_NEW_TOKENS = 64
_METRICS = {"exact_str_match": ("exact_str_match",), "bleu": ("bleu",), "rouge": ("rouge1", "rouge2", "rougeLsum")}


def generative_dir(data_dir: Path | None) -> Path | None:
    return None if data_dir is None else Path(data_dir) / bigbench.FOLDER / FOLDER


def generative_names(data_dir: Path | None) -> list[str]:
    """Stems of <data dir>/bigbench/generative/*.jsonl."""
    folder = generative_dir(data_dir)
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".jsonl") for p in folder.glob("*.jsonl"))


def all_names(data_dir: Path | None) -> list[str]:
    """Every BIG-bench task stem in the data dir, multiple choice and generative."""
    return sorted({*bigbench.bigbench_names(data_dir), *generative_names(data_dir)})


def resolve_bigbench(name: str, data_dir: Path | None) -> TaskSpec:
    """bigbench_<name>: a generative task when generative/<name>.jsonl exists, else a multiple-choice one."""
    stem = name.removeprefix(bigbench.PREFIX)
    if stem in generative_names(data_dir):
        return generative_task(stem, data_dir)
    if stem in bigbench.bigbench_names(data_dir) or not all_names(data_dir):
        return bigbench.bigbench_task(name, data_dir)  # its own errors: no data dir, no tasks
    raise unknown("BIG-bench task", stem, all_names(data_dir))


def check_all(data_dir: Path | None) -> dict[str, str]:
    """Stem -> why it cannot run, for every BIG-bench task in the data dir whose files do not load."""
    problems = {}
    for stem in all_names(data_dir):
        try:
            check_examples(resolve_bigbench(bigbench.PREFIX + stem, data_dir))
        except HarnessError as e:
            problems[stem] = str(e)
    return problems


def check_examples(task: TaskSpec) -> None:
    """Every example of a BIG-bench task through the checks a run applies (read by the run's own reader)."""
    rows, _ = read_jsonl(task.path.with_name(task.path.name.removesuffix(".meta.json") + ".jsonl"))
    if task.preprocess == PREPROCESS:
        generative_preprocess(task, rows)
    else:
        bigbench.bigbench_preprocess(task, rows)


def generative_task(stem: str, data_dir: Path | None) -> TaskSpec:
    folder = generative_dir(data_dir)
    meta_path = folder / f"{stem}.meta.json"
    raw = bigbench._read(meta_path)
    table = bigbench._json(meta_path, raw)
    meta = bigbench.parse_meta(table, str(meta_path))
    stop, regex = _optional_string(table, "stop_string", meta_path), _optional_string(table, "output_regex", meta_path)
    metrics = tuple(m for name in meta.metrics for m in _METRICS.get(name, ())) or ("exact_str_match",)
    separator = meta.separator
    return TaskSpec(
        name=bigbench.PREFIX + stem,
        path=meta_path,
        sha256=hashlib.sha256(raw).hexdigest(),
        kind=TaskKind.GENERATE,
        description=meta.task_prefix,
        metrics=metrics,
        preprocess=PREPROCESS,
        data=DataSpec(local=bigbench.FOLDER, hub=None, hub_name=None, eval_split=bigbench.SPLIT, demo_split=None,
                      files={bigbench.SPLIT: f"{FOLDER}/{stem}.jsonl"}, demos_from_eval=True),
        prompt=PromptSpec(
            query=bigbench._literal(meta.input_prefix) + f"${QUERY_FIELD}" + bigbench._literal(meta.output_prefix),
            target=f"${TARGETS_FIELD}",
            target_delimiter="",  # the output prefix carries any space
            demo_separator=separator,
            stop=(stop,) if stop else ((separator,) if separator else ()),
            max_new_tokens=MAX_NEW_TOKENS,
            filters=(Filter.REGEX,) if regex else (),
            regex=regex,
        ),
    )


def _optional_string(table: dict, key: str, path: Path) -> str:
    value = table.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HarnessError(f"{path}: {key}: must be a string, got {value!r}")
    return value


def generative_preprocess(task: TaskSpec, rows: list[dict]) -> list[dict]:
    """bb_input and bb_targets (a list) on each example; exact duplicates dropped, as BIG-bench does. The rows
    are as written (jsonl.read_jsonl keeps every type: the target "112" stays text, "null" stays text)."""
    raw = bigbench._read(task.path)
    if hashlib.sha256(raw).hexdigest() != task.sha256:
        raise HarnessError(f"{task.path}: changed since task {task.name} was loaded; run again")
    source = task.path.with_name(task.path.name.removesuffix(".meta.json") + ".jsonl")
    out = []
    for i, row in bigbench.distinct(rows):
        text, target = row.get("input"), row.get("target")
        targets = [target] if isinstance(target, str) else target
        if not isinstance(text, str):
            raise HarnessError(f"{source}: example {i}: input must be a string, got {text!r}")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise HarnessError(f"{source}: example {i}: target must be a string or a non-empty list of strings, "
                               f"got {target!r}")
        out.append(row | {QUERY_FIELD: text, TARGETS_FIELD: targets})
    return out
