"""Published reference numbers (published.toml beside this file): sources, values and comparability notes.

The GPT-3 paper's Table H.1 is read from a CSV outside the repository (harness.reporting.gpt3); its cells
replace the GPT-3 numbers stored here where both have one."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.errors import HarnessError

PUBLISHED_FILE = Path(__file__).with_name("published.toml")
_SOURCE_KEYS = {"id", "title", "paper", "read_at", "notes"}
_NUMBER_KEYS = {"source", "model", "matches", "task", "setting", "values", "units", "stderrs"}
_UNITS = {"percent": 0.01, "raw": 1.0}


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    paper: str
    read_at: str
    notes: str


@dataclass(frozen=True)
class Published:
    source: Source
    model: str  # as the source names it, e.g. "GPT-2 117M"
    matches: tuple[str, ...]  # our model names it applies to
    task: str
    metric: str
    setting: str  # "ZS", "1S", "FS(k)"
    value: float  # in our metric's units (fractions for accuracies)
    stderr: float | None
    params: float | None = None  # the published model's parameter count, where the source gives it
    alternatives: tuple[str, ...] = ()  # our metrics the number compares with, in order (metric is the first)


def _check_keys(path: Path, where: str, table: dict, allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise HarnessError(f"{path}: {where}: unknown keys {sorted(unknown)}")


def load_published(path: Path = PUBLISHED_FILE) -> tuple[Published, ...]:
    """Every stored number, checked: known keys, a known source, numeric values, known units."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    sources = {}
    for i, s in enumerate(data.get("source", [])):
        _check_keys(path, f"source[{i}]", s, _SOURCE_KEYS)
        sources[s["id"]] = Source(**{key: s.get(key, "") for key in _SOURCE_KEYS})
    out = []
    for i, n in enumerate(data.get("number", [])):
        where = f"number[{i}]"
        _check_keys(path, where, n, _NUMBER_KEYS)
        if n.get("source") not in sources:
            raise HarnessError(f"{path}: {where}.source {n.get('source')!r} is not a [[source]] id")
        for metric, value in n["values"].items():
            unit = n.get("units", {}).get(metric, "raw")
            if unit not in _UNITS or not isinstance(value, (int, float)):
                raise HarnessError(f"{path}: {where}.values.{metric}: need a number with unit percent or raw")
            stderr = n.get("stderrs", {}).get(metric)
            out.append(Published(sources[n["source"]], n["model"], tuple(n.get("matches", ())), n["task"], metric,
                                 n.get("setting", "ZS"), value * _UNITS[unit],
                                 None if stderr is None else stderr * _UNITS[unit]))
    return tuple(out)


@cache
def published_numbers() -> tuple[Published, ...]:
    return load_published()


def model_key(model: str) -> str:
    """Our model name as published numbers match it: `reference:gpt2` runs gpt2's weights too."""
    return model.removeprefix("reference:")


def for_cell(model: str, task: str, metric: str, numbers: tuple[Published, ...] | None = None) -> list[Published]:
    """The published numbers for this exact model, task and metric."""
    numbers = published_numbers() if numbers is None else numbers
    key = model_key(model)
    return [p for p in numbers if key in p.matches and p.task == task and p.metric == metric]


def for_tasks(tasks, numbers: tuple[Published, ...] | None = None) -> list[Published]:
    """Every published number on these tasks, whatever the model: context for any report."""
    numbers = published_numbers() if numbers is None else numbers
    wanted = set(tasks)
    return [p for p in numbers if p.task in wanted]
