"""TaskSpec and the strict loader for tasks/*.toml. Every error names the file and the key.

A task file is data: TOML with `$field` templates (string.Template) and, where Python cleanup is
needed, the name of a function from harness.preprocess.PREPROCESSORS.
"""

from __future__ import annotations

import enum
import hashlib
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, suggest, unknown

class TaskKind(enum.Enum):
    MULTIPLE_CHOICE = "multiple_choice"  # one loglikelihood request per choice
    CLOZE = "cloze"  # one loglikelihood request for the target
    PERPLEXITY = "perplexity"  # rolling loglikelihood of whole documents
    GENERATE = "generate"  # greedy generation, compared with the target


@dataclass(frozen=True)
class DataSpec:
    local: str | None  # folder under the data dir
    hub: str | None  # hub dataset id, used when the local files are absent
    hub_name: str | None  # hub dataset configuration
    eval_split: str
    demo_split: str | None  # falls back to eval_split (the example itself always excluded)
    files: dict[str, str] = field(default_factory=dict)  # split -> file name, default <split>.jsonl
    train_split: str | None = None  # labelled examples for the FT setting; None: FT not available


@dataclass(frozen=True)
class PromptSpec:
    query: str = ""
    choices: tuple[str, ...] | str = ()  # templates, or one "$field" naming a list field
    answer: str = ""  # multiple_choice: renders to the gold choice index (or one of answer_labels)
    answer_labels: tuple[str, ...] = ()  # answer values in choice order, matched case-insensitively
    target: str = ""  # cloze / generate: the expected continuation; multiple_choice: see is_partial
    text: str = ""  # perplexity: the document
    units_text: str = ""  # perplexity: text whose words/bytes normalise (default: text)
    target_delimiter: str = " "
    demo_separator: str = "\n\n"
    stop: tuple[str, ...] = ("\n\n",)
    max_new_tokens: int = 64


@dataclass(frozen=True)
class TaskSpec:
    name: str
    path: Path
    sha256: str
    kind: TaskKind
    description: str
    metrics: tuple[str, ...]
    preprocess: str | None
    data: DataSpec
    prompt: PromptSpec

    @property
    def is_partial(self) -> bool:
        """Partial scoring (winogrande): each choice completes the context, the shared target is scored."""
        return self.kind is TaskKind.MULTIPLE_CHOICE and bool(self.prompt.target)

    def templates(self) -> dict[str, str]:
        """Every template of the task by its key, for field checks."""
        p = self.prompt
        keys = {"prompt.query": p.query, "prompt.answer": p.answer, "prompt.target": p.target,
                "prompt.text": p.text, "prompt.units_text": p.units_text}
        if isinstance(p.choices, str):
            keys["prompt.choices"] = p.choices
        else:
            keys |= {f"prompt.choices[{i}]": c for i, c in enumerate(p.choices)}
        return {k: v for k, v in keys.items() if v}


_TOP_KEYS = {"kind", "description", "metrics", "preprocess", "data", "prompt"}
_DATA_KEYS = {"local", "hub", "hub_name", "eval_split", "demo_split", "train_split", "files"}
_PROMPT_KEYS = set(PromptSpec.__dataclass_fields__)
_REQUIRED = {
    TaskKind.MULTIPLE_CHOICE: ("query", "choices", "answer"),
    TaskKind.CLOZE: ("query", "target"),
    TaskKind.GENERATE: ("query", "target"),
    TaskKind.PERPLEXITY: ("text",),
}


def load_task(path: str | Path) -> TaskSpec:
    """Parse and validate one task file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        table = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such task file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    where = Where(path)
    where.check_keys(table, _TOP_KEYS, "")
    kind = where.enum(TaskKind, table, "kind")
    data = where.table(table, "data")
    prompt = where.table(table, "prompt")
    where.check_keys(data, _DATA_KEYS, "data.")
    where.check_keys(prompt, _PROMPT_KEYS, "prompt.")
    spec = TaskSpec(
        name=path.stem,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        kind=kind,
        description=where.string(table, "description", ""),
        metrics=tuple(where.strings(table, "metrics", default_metrics(kind))),
        preprocess=where.string(table, "preprocess", "") or None,
        data=_data_spec(where, data),
        prompt=_prompt_spec(where, prompt, kind),
    )
    _check_semantics(where, spec)
    return spec


def default_metrics(kind: TaskKind) -> list[str]:
    from harness.metrics import DEFAULT_METRICS

    return list(DEFAULT_METRICS[kind])


def _data_spec(where: Where, data: dict[str, Any]) -> DataSpec:
    files = where.table(data, "files", prefix="data.", required=False)
    for split, name in files.items():
        if not isinstance(name, str):
            raise where.error(f"data.files.{split}", "must be a file name string")
    spec = DataSpec(
        local=where.string(data, "local", "", prefix="data.") or None,
        hub=where.string(data, "hub", "", prefix="data.") or None,
        hub_name=where.string(data, "hub_name", "", prefix="data.") or None,
        eval_split=where.string(data, "eval_split", None, prefix="data."),
        demo_split=where.string(data, "demo_split", "", prefix="data.") or None,
        files=dict(files),
        train_split=where.string(data, "train_split", "", prefix="data.") or None,
    )
    if not (spec.local or spec.hub):
        raise where.error("data", "needs `local` (a folder in the data dir) or `hub` (a dataset id)")
    return spec


def _prompt_spec(where: Where, prompt: dict[str, Any], kind: TaskKind) -> PromptSpec:
    for key in _REQUIRED[kind]:
        if key not in prompt:
            raise where.error(f"prompt.{key}", f"is required for kind = {kind.value!r}")
    values: dict[str, Any] = {}
    for key, value in prompt.items():
        if key == "choices" and isinstance(value, list):
            values[key] = tuple(where.strings(prompt, key, None, prefix="prompt."))
        elif key in ("stop", "answer_labels"):
            values[key] = tuple(where.strings(prompt, key, None, prefix="prompt."))
        elif key == "max_new_tokens":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise where.error("prompt.max_new_tokens", "must be a positive integer")
            values[key] = value
        else:
            values[key] = where.string(prompt, key, None, prefix="prompt.")
    if kind is TaskKind.MULTIPLE_CHOICE and values["choices"] in ((), ""):
        raise where.error("prompt.choices", "is empty: give a list of templates or one '$field'")
    return PromptSpec(**values)


def _check_semantics(where: Where, spec: TaskSpec) -> None:
    from harness.metrics import METRICS
    from harness.tasks.preprocess import PREPROCESSORS

    for name in spec.metrics:
        metric = METRICS.get(name)
        if metric is None:
            raise where.error("metrics", str(unknown("metric", name, METRICS)))
        if spec.kind not in metric.kinds:
            kinds = ", ".join(k.value for k in metric.kinds)
            raise where.error("metrics", f"{name!r} applies to kind {kinds}, not {spec.kind.value!r}")
    if spec.is_partial and "acc_calibrated" in spec.metrics:
        raise where.error("metrics", "acc_calibrated needs a continuation per choice; with prompt.target every choice shares one")
    if spec.preprocess and spec.preprocess not in PREPROCESSORS:
        raise where.error("preprocess", str(unknown("preprocess function", spec.preprocess, PREPROCESSORS)))
    for key, template in spec.templates().items():
        if not string.Template(template).is_valid():
            raise where.error(key, f"is not a valid $field template: {template!r}")


class Where:
    """Typed access to TOML tables, raising errors that name the file and key."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> HarnessError:
        return HarnessError(f"{self.path}: {key}: {message}")

    def check_keys(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(prefix + key, f"unknown key{suggest(key, allowed)}")

    def table(self, table, key, prefix="", required=True) -> dict[str, Any]:
        value = table.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise self.error(prefix + key, "missing table" if value is None else "must be a table")
        return value

    def string(self, table, key, default, prefix="") -> str:
        value = table.get(key, default)
        if value is None:
            raise self.error(prefix + key, "is required")
        if not isinstance(value, str):
            raise self.error(prefix + key, f"must be a string, got {value!r}")
        return value

    def strings(self, table, key, default, prefix="") -> list[str]:
        value = table.get(key, default)
        if value is None:
            raise self.error(prefix + key, "is required")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(prefix + key, f"must be a list of strings, got {value!r}")
        return value

    def enum(self, enum_type, table, key):
        value = self.string(table, key, None)
        try:
            return enum_type(value)
        except ValueError:
            names = [e.value for e in enum_type]
            raise self.error(key, f"unknown value {value!r}{suggest(value, names)}; one of {', '.join(names)}") from None
