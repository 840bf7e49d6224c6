"""BIG-bench JSON multiple-choice tasks as TaskSpecs, with no task file per task.

The data dir holds <data dir>/bigbench/tasks/<name>.jsonl (one BIG-bench example per line: `input`,
`target_scores`, ...) and <name>.meta.json (the other fields of the task.json). The prompt follows
BIG-bench's json_task conventions:

    prompt  = task_prefix + (demo + few_shot_example_separator) * k + query
    query   = example_input_prefix + input [+ choice_prefix + choice_prefix.join(listed choices)]
              + example_output_prefix
    demo    = its query + its gold choice            (no delimiter: the output prefix ends the query)
    scored  = each key of target_scores, right after the query

Defaults: example_input_prefix "\\nQ: ", example_output_prefix "\\nA: ", choice_prefix "\\n  choice: ",
append_choices_to_input true, few_shot_example_separator "\\n", task_prefix "".
Gold: the first key of target_scores (file order) with the highest score, as BIG-bench picks a
target when an example has none. Where this differs from BIG-bench, the function says so.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, unknown
from harness.records import TaskKind
from harness.tasks.spec import DataSpec, PromptSpec, TaskSpec

FOLDER = "bigbench"  # <data dir>/bigbench
TASKS = "tasks"  # <data dir>/bigbench/tasks/<name>.jsonl + <name>.meta.json
PREFIX = "bigbench_"  # harness task name = PREFIX + file stem
SPLIT = "examples"  # the only split: BIG-bench draws demonstrations from the other examples
PREPROCESS = "bigbench"  # TaskSpec.preprocess: bigbench_preprocess, in preprocess.PREPROCESSORS
METRICS = ("acc", "acc_norm", "multiple_choice_grade")  # the last is BIG-bench's own (fractional credit)
QUERY_FIELD, CHOICES_FIELD, GOLD_FIELD, SCORES_FIELD = "bb_query", "bb_choices", "bb_gold", "bb_scores"


@dataclass(frozen=True)
class BigBenchMeta:
    """The prompt-shaping fields of a task.json, with BIG-bench's defaults."""

    task_prefix: str = ""
    input_prefix: str = "\nQ: "
    output_prefix: str = "\nA: "
    choice_prefix: str = "\n  choice: "
    append_choices: bool = True
    separator: str = "\n"
    metrics: tuple[str, ...] = ()
    preferred_score: str = ""


_STRING_KEYS = {  # task.json key -> BigBenchMeta field
    "task_prefix": "task_prefix",
    "example_input_prefix": "input_prefix",
    "example_output_prefix": "output_prefix",
    "choice_prefix": "choice_prefix",
    "few_shot_example_separator": "separator",
    "preferred_score": "preferred_score",
}


def parse_meta(meta: Any, source: str) -> BigBenchMeta:
    """Typed prompt fields of one task.json (other keys, e.g. canary or keywords, are not used)."""
    if not isinstance(meta, dict):
        raise HarnessError(f"{source}: must be a JSON object (the task.json fields other than examples)")
    values: dict[str, Any] = {}
    for key, name in _STRING_KEYS.items():
        if key in meta:
            if not isinstance(meta[key], str):
                raise HarnessError(f"{source}: {key}: must be a string, got {meta[key]!r}")
            values[name] = meta[key]
    if "append_choices_to_input" in meta:
        values["append_choices"] = meta_bool(meta["append_choices_to_input"], f"{source}: append_choices_to_input")
    metrics = meta.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise HarnessError(f"{source}: metrics: must be a list of strings, got {metrics!r}")
    return BigBenchMeta(**values, metrics=tuple(metrics))


_BOOL_STRINGS = {"true": True, "false": False}


def meta_bool(value: Any, where: str) -> bool:
    """A task.json flag in the forms BIG-bench's task files use: JSON true/false, 1/0, or "true"/"false" (any case).

    Anything else is an error rather than Python truthiness: the string "false" is truthy, and reading it as
    true would put the answer choices into every prompt of a task that asked for them to be hidden.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_STRINGS:
        return _BOOL_STRINGS[value.strip().lower()]
    raise HarnessError(f"{where}: must be true or false (also accepted: 1/0, \"true\"/\"false\"), got {value!r}")


def bigbench_rows(rows: list[dict], meta: dict, source: str = "BIG-bench examples") -> list[dict]:
    """Add bb_query, bb_choices, bb_gold and bb_scores to each example; drop exact duplicates.

    BIG-bench evaluates each distinct example once (json_task's remove_duplicates), and a duplicate
    would otherwise be a demonstration that gives its twin's answer away. BIG-bench compares the JSON
    text as written; key order is ignored here (it does not change the prompt), so 4 more rows of
    goal_step_wikihow__goal_inference count as duplicates.
    """
    spec = parse_meta(meta, source)
    return [row | _fields(row, spec, f"{source}: example {i}") for i, row in distinct(rows)]


def distinct(rows: list[dict]) -> list[tuple[int, dict]]:
    """(position, row) of each example's first occurrence: BIG-bench evaluates each distinct example once.
    Rows compare as JSON with sorted keys (key order does not change a prompt)."""
    out, seen = [], set()
    for i, row in enumerate(rows):
        key = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        if key not in seen:
            seen.add(key)
            out.append((i, row))
    return out


def _fields(row: dict, meta: BigBenchMeta, where: str) -> dict[str, Any]:
    scores = row.get("target_scores")
    if not isinstance(scores, dict) or not scores:
        raise HarnessError(f"{where} has no target_scores: not a multiple-choice task (only those are supported)")
    scores = {k: v for k, v in scores.items() if v is not None}  # a null score names no choice
    if len(scores) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
        raise HarnessError(f"{where}: target_scores must map at least two choices to numbers, "
                           f"got {row['target_scores']!r}")
    text = row.get("input")
    if not isinstance(text, str):
        raise HarnessError(f"{where}: input must be a string, got {text!r}")
    choices, values = list(scores), [float(v) for v in scores.values()]
    if empty := [i for i, c in enumerate(choices) if not c.strip()]:
        raise HarnessError(f"{where}: target_scores choice {empty[0]} is empty; every choice needs text to be scored")
    query = text
    if meta.append_choices:
        query += meta.choice_prefix + meta.choice_prefix.join(listed_order(text, choices))
    return {QUERY_FIELD: query, CHOICES_FIELD: choices, GOLD_FIELD: gold_index(values), SCORES_FIELD: values}


def gold_index(scores: list[float]) -> int:
    """The first choice with the highest score. Ties (several correct choices) keep the first one.

    BIG-bench's multiple_choice_grade credits target_scores[model's pick], so any top-scored choice
    counts and fractional scores give partial credit; acc here credits the first top choice only.
    """
    return scores.index(max(scores))


def listed_order(text: str, choices: list[str]) -> list[str]:
    """The order choices are listed in the query: sorted, then shuffled by a seed from the example.

    BIG-bench shows rng.permutation(sorted(keys)) from one numpy generator shared across examples, so
    its order depends on the example's position; this seed depends only on the input and the choice
    set, so the prompt never depends on file order, batch or worker (the file's key order often puts
    the gold choice first, which is why the listed order must be shuffled at all).
    """
    ordered = sorted(choices)
    digest = hashlib.sha256("\x1f".join([text, *ordered]).encode("utf-8")).digest()
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(ordered)
    return ordered


def tasks_dir(data_dir: Path | None) -> Path | None:
    return None if data_dir is None else Path(data_dir) / FOLDER / TASKS


def bigbench_names(data_dir: Path | None) -> list[str]:
    """The BIG-bench task names in the data dir: stems of <data dir>/bigbench/tasks/*.jsonl."""
    folder = tasks_dir(data_dir)
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".jsonl") for p in folder.glob("*.jsonl"))


def bigbench_task(name: str, data_dir: Path | None) -> TaskSpec:
    """The TaskSpec of one BIG-bench task, by stem (`causal_judgment`) or harness name (`bigbench_...`)."""
    stem = _stem(name, data_dir)
    folder = tasks_dir(data_dir)
    meta_path, examples_path = folder / f"{stem}.meta.json", folder / f"{stem}.jsonl"
    raw = _read(meta_path)
    meta = parse_meta(_json(meta_path, raw), str(meta_path))
    _check_first_example(examples_path)
    return TaskSpec(
        name=PREFIX + stem,
        path=meta_path,
        sha256=hashlib.sha256(raw).hexdigest(),
        kind=TaskKind.MULTIPLE_CHOICE,
        description=meta.task_prefix,
        metrics=METRICS,
        preprocess=PREPROCESS,
        data=DataSpec(local=FOLDER, hub=None, hub_name=None, eval_split=SPLIT, demo_split=None,
                      files={SPLIT: f"{TASKS}/{stem}.jsonl"}, demos_from_eval=True),
        prompt=PromptSpec(
            query=_literal(meta.input_prefix) + f"${QUERY_FIELD}" + _literal(meta.output_prefix),
            choices=f"${CHOICES_FIELD}",
            answer=f"${GOLD_FIELD}",
            choice_scores=f"${SCORES_FIELD}",
            target_delimiter="",  # the output prefix carries any space; BIG-bench appends the target directly
            demo_separator=meta.separator,
        ),
    )


def bigbench_preprocess(task: TaskSpec, rows: list[dict]) -> list[dict]:
    """bigbench_rows with the meta the task was built from (checked against task.sha256)."""
    raw = _read(task.path)
    if hashlib.sha256(raw).hexdigest() != task.sha256:
        raise HarnessError(f"{task.path}: changed since task {task.name} was loaded; run again")
    examples = task.path.with_name(task.path.name.removesuffix(".meta.json") + ".jsonl")
    return bigbench_rows(rows, _json(task.path, raw), source=str(examples))


def _stem(name: str, data_dir: Path | None) -> str:
    if data_dir is None:
        raise HarnessError(f"BIG-bench task {name!r} needs a data dir holding {FOLDER}/{TASKS}; "
                           "pass --data-dir or set $HARNESS_DATA_DIR")
    names = bigbench_names(data_dir)
    if not names:
        raise HarnessError(f"{tasks_dir(data_dir)}: no BIG-bench tasks (*.jsonl) there")
    for stem in (name, name.removeprefix(PREFIX)):
        if stem in names:
            return stem
    raise unknown("BIG-bench task", name.removeprefix(PREFIX), names)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file "
                           "(each BIG-bench task needs <name>.jsonl and <name>.meta.json)") from None


def _json(path: Path, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def _check_first_example(path: Path) -> None:
    """Fail at load time, not mid-run, when the examples are not multiple choice."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise HarnessError(f"{path}:{number}: malformed JSON line: {e.msg}") from None
                if not isinstance(row, dict) or not isinstance(row.get("target_scores"), dict):
                    raise HarnessError(f"{path}:{number}: example has no target_scores: "
                                       "not a multiple-choice task (only those are supported)")
                return
    raise HarnessError(f"{path}: has no examples")


def _literal(text: str) -> str:
    """A prefix as literal template text ($ escaped)."""
    return text.replace("$", "$$")
