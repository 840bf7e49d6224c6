"""The strict loader for tasks/*.toml: TOML in, a checked TaskSpec out. Every error names the file and the key.

A task file is data: TOML with `$field` templates (string.Template) and, where Python cleanup is
needed, the name of a function from harness.tasks.preprocess.CLEANUPS. Which prompt keys a kind
requires and allows, and its default metrics, come from its record in kinds.py.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, suggest, unknown
from harness.metrics import METRICS
from harness.records import MatchOptions, TaskKind
from harness.tasks import jinja
from harness.tasks.kinds import KINDS
from harness.tasks.preprocess import CLEANUPS
from harness.tasks.spec import DataSpec, Filter, PromptSpec, TaskSpec
from harness.tasks.templates import template_problem, where as key_where


_TOP_KEYS = {"kind", "description", "metrics", "preprocess", "data", "prompt", "metric_options"}
_MATCH_KEYS = {"ignore_case", "ignore_punctuation", "regexes_to_ignore"}
_DATA_KEYS = {"local", "hub", "hub_name", "eval_split", "demo_split", "train_split", "files"}
_PROMPT_KEYS = set(PromptSpec.__dataclass_fields__)


def load_task(path: str | Path) -> TaskSpec:
    """Parse and validate one task file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such task file") from None
    return parse_task(raw, path, path.stem)


def parse_task(raw: bytes, path: Path, name: str) -> TaskSpec:
    """Validate the TOML text of a task file; errors name `path` (a task imported from lm-eval: its YAML)."""
    try:
        table = tomllib.loads(raw.decode("utf-8"))
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
        name=name,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        kind=kind,
        description=where.string(table, "description", ""),
        metrics=tuple(where.strings(table, "metrics", list(KINDS[kind].default_metrics))),
        preprocess=where.string(table, "preprocess", "") or None,
        data=_data_spec(where, data),
        prompt=_prompt_spec(where, prompt, kind),
        match=_match_options(where, table),
    )
    _check_semantics(where, spec)
    return spec


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
    rules = KINDS[kind]
    for key in rules.required:
        if key not in prompt:
            raise where.error(f"prompt.{key}", f"is required for kind = {kind.value!r}")
    for key in prompt:
        if key not in rules.allowed and key != "template":
            raise where.error(f"prompt.{key}", rules.hints.get(key) or f"does not apply to kind = {kind.value!r} "
                              f"(its prompt keys: {', '.join(sorted(rules.allowed))})")
    values: dict[str, Any] = {}
    if prompt.get("template", jinja.JINJA) != jinja.JINJA:  # the template language of every key
        raise where.error("prompt.template", f"must be {jinja.JINJA!r} (sandboxed Jinja) or absent ($field templates), "
                          f"got {prompt['template']!r}")
    for key, value in prompt.items():
        if key == "choices" and isinstance(value, list):
            values[key] = tuple(where.strings(prompt, key, None, prefix="prompt."))
        elif key in ("stop", "answer_labels"):
            values[key] = tuple(where.strings(prompt, key, None, prefix="prompt."))
            if key == "stop" and "" in values[key]:
                raise where.error("prompt.stop", "holds an empty stop string (it would stop before the first token)")
        elif key == "filters":
            values[key] = tuple(where.enum_value(Filter, f, "prompt.filters")
                                for f in where.strings(prompt, key, None, prefix="prompt."))
        elif key in ("stride", "window"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                zero = "disjoint windows" if key == "stride" else "the model's length"
                raise where.error(f"prompt.{key}", f"must be a non-negative integer (tokens; 0: {zero})")
            values[key] = value
        elif key == "max_new_tokens":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise where.error("prompt.max_new_tokens", "must be a positive integer")
            values[key] = value
        else:
            values[key] = where.string(prompt, key, None, prefix="prompt.")
    if "choices" in rules.required and values["choices"] in ((), ""):
        raise where.error("prompt.choices", "is empty: give a list of templates or one '$field'")
    if kind is TaskKind.GENERATE and not values["target"]:
        raise where.error("prompt.target", "is empty: a generate task compares with references "
                          "(a template or a '$field' list)")
    if ("regex" in values) != (Filter.REGEX in values.get("filters", ())):
        raise where.error("prompt.regex" if "regex" in values else "prompt.filters",
                          "the regex filter and prompt.regex go together: give both or neither")
    if "regex" in values:
        where.pattern(values["regex"], "prompt.regex")
    return PromptSpec(**values)


def _match_options(where: Where, table: dict[str, Any]) -> MatchOptions:
    """[metric_options.exact_match]: lm-evaluation-harness's exact_match options (the only metric with options)."""
    options = where.table(table, "metric_options", required=False)
    where.check_keys(options, {"exact_match"}, "metric_options.")
    match = where.table(options, "exact_match", prefix="metric_options.", required=False)
    where.check_keys(match, _MATCH_KEYS, "metric_options.exact_match.")
    prefix = "metric_options.exact_match."
    flags = {}
    for key in ("ignore_case", "ignore_punctuation"):
        if not isinstance(match.get(key, False), bool):
            raise where.error(prefix + key, f"must be true or false, got {match[key]!r}")
        flags[key] = match.get(key, False)
    regexes = tuple(where.strings(match, "regexes_to_ignore", [], prefix=prefix))
    for pattern in regexes:
        where.pattern(pattern, prefix + "regexes_to_ignore")
    return MatchOptions(**flags, regexes_to_ignore=regexes)


def _check_semantics(where: Where, spec: TaskSpec) -> None:
    rules = KINDS[spec.kind]
    for name in spec.metrics:
        metric = METRICS.get(name)
        if metric is None:
            raise where.error("metrics", str(unknown("metric", name, METRICS)))
        if rules.outcome not in metric.reads:
            kinds = ", ".join(kind.value for kind, other in KINDS.items() if other.outcome in metric.reads)
            raise where.error("metrics", f"{name!r} applies to kind {kinds}, not {spec.kind.value!r}")
        if name in rules.refused_metrics:
            raise where.error("metrics", f"{name} {rules.refused_metrics[name]}")
    if spec.needs_answer_context != bool(spec.prompt.answer_context):
        needing = [m for m in spec.metrics if METRICS[m].needs_answer_context]
        raise (where.error("prompt.answer_context", f"is required by {', '.join(needing)} (the GPT-3 paper's "
                           "answer context, e.g. \"Answer:\")") if needing else
               where.error("prompt.answer_context", "is given but no metric reads it (acc_gpt3_calibrated does)"))
    if spec.match != MatchOptions() and "exact_match" not in spec.metrics:
        raise where.error("metric_options.exact_match", "is given but metrics does not list exact_match")
    if spec.preprocess and spec.preprocess not in CLEANUPS:
        raise where.error("preprocess", str(unknown("preprocess function", spec.preprocess, CLEANUPS)))
    for key, template in spec.templates().items():
        if spec.prompt.template == jinja.JINJA:
            if error := jinja.syntax_error(template):
                raise where.error(key, f"is not a valid Jinja template ({error}): {template!r}")
            if construct := jinja.refused(template):
                raise where.error(key, f"the Jinja sandbox refuses {construct} in {template!r}")
        elif problem := template_problem(template):
            raise HarnessError(f"{key_where(spec, key)}: {problem}")


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

    def pattern(self, pattern: str, key: str) -> None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise self.error(key, f"is not a valid regular expression {pattern!r}: {e}") from None

    def enum_value(self, enum_type, value: str, key: str):
        try:
            return enum_type(value)
        except ValueError:
            names = [e.value for e in enum_type]
            raise self.error(key, f"unknown value {value!r}{suggest(value, names)}; "
                             f"one of {', '.join(names)}") from None

    def enum(self, enum_type, table, key):
        value = self.string(table, key, None)
        try:
            return enum_type(value)
        except ValueError:
            names = [e.value for e in enum_type]
            raise self.error(key, f"unknown value {value!r}{suggest(value, names)}; "
                             f"one of {', '.join(names)}") from None
