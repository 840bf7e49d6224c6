"""`harness import-lmeval PATH.yaml` and `--tasks lmeval:PATH.yaml`: an lm-evaluation-harness task config translated
into a harness task file (TOML), with the same prompts.

Templates that are plain fields (`{{ goal }}`, text around such fields, a list of them) become `$field` templates;
any other makes the task file's [prompt] say `template = "jinja"` and keep lm-eval's templates as they are, rendered
by the sandboxed engine in jinja.py. A `!function` hook is never imported: the few that harness implements
natively map by (task, key, hook) (lmeval_yaml.NATIVE_HOOKS); any other stops the import with one line naming
the YAML key, and nothing is written. Local data: `dataset_path: json` with `dataset_kwargs.data_files` (paths
relative to the YAML), or a hub dataset that the data dir holds (lmeval_yaml.LOCAL_LAYOUTS).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.tasks import jinja
from harness.tasks.lmeval_yaml import LOCAL_LAYOUTS, NATIVE_HOOKS, FunctionRef, read_yaml
from harness.tasks.spec import TaskSpec

PREFIX = "lmeval:"
KINDS = {"multiple_choice": "multiple_choice", "loglikelihood": "cloze", "loglikelihood_rolling": "perplexity",
         "generate_until": "generate"}
METRICS = {  # kind -> lm-eval's metrics that harness computes the same way (lm-eval's f1 and mcc are not SQuAD's)
    "multiple_choice": {"acc", "acc_norm"}, "partial_scoring": {"acc"}, "cloze": {"acc", "perplexity"},
    "perplexity": {"word_perplexity", "byte_perplexity", "bits_per_byte"}, "generate": {"exact_match", "bleu", "ter", "chrf"}}
MATCH_OPTIONS = ("ignore_case", "ignore_punctuation", "regexes_to_ignore")
IGNORED = {"tag", "group", "task_alias", "group_alias", "metadata", "should_decontaminate", "doc_to_decontamination_query",
           "num_fewshot", "dataset_kwargs", "unsafe_code"}  # no effect on prompts or scores (dataset_kwargs: below)
HANDLED = {"task", "dataset_path", "dataset_name", "output_type", "training_split", "validation_split", "test_split",
           "fewshot_split", "process_docs", "doc_to_text", "doc_to_target", "doc_to_choice", "description",
           "target_delimiter", "fewshot_delimiter", "generation_kwargs", "metric_list", "filter_list", "repeats",
           "fewshot_config"}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FIELD_LIST = re.compile(r"\{\{\s*\[\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\]\s*\}\}")


class _Stop(HarnessError):
    pass


def _stop(path: Path, key: str, message: str) -> _Stop:
    return _Stop(f"{path}: {key}: {message}; nothing was written")


def convert(path: str | Path) -> tuple[str, str]:
    """(task name, the TOML text of the harness task file) for an lm-eval task YAML."""
    path = Path(path)
    config = read_yaml(path)
    for key, value in config.items():
        if key not in HANDLED | IGNORED:
            if key == "class" or isinstance(value, FunctionRef):
                raise _stop(path, key, f"the Python hook {getattr(value, 'name', value)!r} cannot be imported "
                            "(task files never run code)")
            raise _stop(path, key, "is an lm-eval option the importer does not translate")
    if "task" not in config or not isinstance(config["task"], str):
        raise _stop(path, "task", "is required (a task name); group configs import member by member")
    name = config["task"]
    preprocess, hook_kind = _hooks(path, config, name)
    kind = KINDS.get(config.get("output_type", "generate_until"))
    if hook_kind and kind != "multiple_choice":
        raise _stop(path, "output_type", f"the hooks of {name} mean {hook_kind}, a multiple_choice output_type")
    kind = hook_kind or kind
    if kind is None:
        raise _stop(path, "output_type", f"{config['output_type']!r} is not one of {', '.join(KINDS)}")
    table: dict[str, Any] = {"kind": kind}
    if "description" in config:
        table["description"] = _plain(path, "description", config["description"])
    data, adapter = _data(path, config)
    if preprocess and adapter:
        raise _stop(path, "process_docs", f"combines a native hook ({preprocess}) with the local layout's {adapter}")
    if preprocess or adapter:
        table["preprocess"] = preprocess or adapter
    table["metrics"], options = _metrics(path, config, kind)
    table["data"] = data
    table["prompt"] = _prompt(path, config, kind)
    if options:
        table["metric_options"] = {"exact_match": options}
    header = f"# Imported from lm-evaluation-harness {path.parent.name}/{path.name} by `harness import-lmeval`.\n"
    return name, header + to_toml(table)


def import_file(path: str | Path, out: Path | None, tasks_dir: Path) -> tuple[Path, TaskSpec]:
    """Convert, check, and write the task file (default <tasks dir>/<task>.toml); never overwrites one."""
    try:
        spec = load(path)
    except _Stop:
        raise
    except HarnessError as e:  # the converted file failed harness's own checks
        raise HarnessError(f"{e}; nothing was written") from None
    if not re.fullmatch(r"[\w.-]+", spec.name):
        raise _stop(Path(path), "task", f"{spec.name!r} cannot name a file; pass --out FILE.toml")
    out = out or tasks_dir / f"{spec.name}.toml"
    if out.suffix != ".toml":
        raise HarnessError(f"--out {out}: a task file ends in .toml")
    if out.exists():
        raise HarnessError(f"{out} exists; nothing was written (pass --out with another file name)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(convert(path)[1], encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"--out {out}: cannot write it: {e.strerror or e}") from None
    return out, spec


def load(path: str | Path) -> TaskSpec:
    """The TaskSpec of an lm-eval YAML, converted in memory (`--tasks lmeval:PATH.yaml`)."""
    from harness.tasks.taskfile import parse_task

    name, text = convert(path)
    return parse_task(text.encode("utf-8"), Path(path), name)


# ---------------------------------------------------------------- hooks


def _hooks(path: Path, config: dict[str, Any], task: str) -> tuple[str | None, str | None]:
    """Replace known hooks by their native fields; return the preprocess function and the kind they need.
    Any other hook stops."""
    preprocess = kind = None
    for key, value in list(config.items()):
        if not isinstance(value, FunctionRef):
            continue
        native = NATIVE_HOOKS.get((task, key, value.name))
        if native is None:
            raise _stop(path, key, f"!function {value.name} is Python code, which harness never runs "
                        "(write the template in Jinja, or add a preprocess function to harness)")
        if native.preprocess and preprocess not in (None, native.preprocess):
            raise _stop(path, key, f"needs preprocess {native.preprocess!r} besides {preprocess!r}")
        preprocess, kind = native.preprocess or preprocess, native.kind or kind
        if native.field is None:
            del config[key]
        else:
            config[key] = native.field
    return preprocess, kind


# ---------------------------------------------------------------- data


def _data(path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    splits = {key: config.get(key) for key in ("training_split", "validation_split", "test_split", "fewshot_split")}
    eval_split = splits["test_split"] or splits["validation_split"]
    if not eval_split:
        raise _stop(path, "test_split", "neither test_split nor validation_split names an evaluation split")
    demo_split = splits["fewshot_split"] or splits["training_split"] or splits["validation_split"] or eval_split
    source, kwargs = config.get("dataset_path"), config.get("dataset_kwargs") or {}
    if not isinstance(kwargs, dict) or set(kwargs) - {"data_files", "trust_remote_code"}:
        raise _stop(path, "dataset_kwargs", "only data_files (local files) can be imported")
    data: dict[str, Any] = {"local": None}  # the first key, as in harness's own task files
    adapter, renames, train = None, {}, splits["training_split"]
    if source == "json":
        data["local"], data["files"] = _data_files(path, kwargs.get("data_files"))
    elif isinstance(source, str) and source:
        data["hub"] = source
        if config.get("dataset_name"):
            data["hub_name"] = str(config["dataset_name"])
        layout = LOCAL_LAYOUTS.get((source, config.get("dataset_name")))
        if layout is not None:
            data["local"], adapter, renames = layout.folder, layout.adapter, layout.splits
            train = train and layout.train and renames.get(train, train)
            if layout.files:
                data["files"] = dict(layout.files)
    else:
        raise _stop(path, "dataset_path", "is required (a hub dataset id, or json with dataset_kwargs.data_files)")
    data["eval_split"] = renames.get(eval_split, eval_split)
    data["demo_split"] = renames.get(demo_split, demo_split)
    if train:
        data["train_split"] = train
    if data["local"] is None:
        del data["local"]
    return data, adapter


def _data_files(path: Path, files: Any) -> tuple[str, dict[str, str]]:
    if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
        raise _stop(path, "dataset_kwargs.data_files", "must map each split to one file")
    resolved = {split: (path.parent / name).resolve() for split, name in files.items()}
    folders = {p.parent for p in resolved.values()}
    if len(folders) != 1:
        raise _stop(path, "dataset_kwargs.data_files", "the files must share one folder")
    return str(folders.pop()), {split: p.name for split, p in resolved.items()}


# ---------------------------------------------------------------- metrics


def _metrics(path: Path, config: dict[str, Any], kind: str) -> tuple[list[str], dict[str, Any]]:
    entries = config.get("metric_list")
    if entries is None:
        return {"multiple_choice": ["acc"], "partial_scoring": ["acc"], "cloze": ["perplexity", "acc"], "perplexity":
                ["word_perplexity", "byte_perplexity", "bits_per_byte"], "generate": ["exact_match"]}[kind], {}
    names, options = [], {}
    for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
        metric = entry.get("metric") if isinstance(entry, dict) else None
        if isinstance(metric, FunctionRef) or not isinstance(metric, str):
            raise _stop(path, f"metric_list[{i}]", f"needs a metric name, got {metric!r}")
        if metric not in METRICS[kind]:
            raise _stop(path, f"metric_list[{i}]", f"metric {metric!r} has no harness equivalent for {kind} "
                        f"(those: {', '.join(sorted(METRICS[kind]))})")
        extra = set(entry) - {"metric", "aggregation", "higher_is_better", *MATCH_OPTIONS}
        if extra or (metric != "exact_match" and set(entry) & set(MATCH_OPTIONS)):
            raise _stop(path, f"metric_list[{i}]", f"options {sorted(extra or set(entry) & set(MATCH_OPTIONS))} "
                        f"of {metric} are not translated")
        if metric == "exact_match":
            options = {k: entry[k] for k in MATCH_OPTIONS if k in entry and entry[k] not in (False, None, [])}
            if isinstance(options.get("regexes_to_ignore"), str):
                options["regexes_to_ignore"] = [options["regexes_to_ignore"]]
        names.append(metric)
    return names, options


# ---------------------------------------------------------------- prompt


def _prompt(path: Path, config: dict[str, Any], kind: str) -> dict[str, Any]:
    text, target, choice = config.get("doc_to_text"), config.get("doc_to_target"), config.get("doc_to_choice")
    if kind == "perplexity":
        raw = {"text": _template(path, "doc_to_target", target)}
    elif kind == "partial_scoring":  # lm-eval's multiple input: doc_to_text gives the gold, the choices are contexts
        raw = {"query": _Template("", ""), "choices": _choices(path, choice),
               "target": _template(path, "doc_to_target", target), "answer": _template(path, "doc_to_text", text)}
    else:
        raw = {"query": _template(path, "doc_to_text", text)}
        if kind == "multiple_choice":
            raw["choices"] = _choices(path, choice)
            raw["answer"] = _template(path, "doc_to_target", target)
        else:
            raw["target"] = _template(path, "doc_to_target", target)
    prompt = _as_fields(raw)
    if prompt is None:
        prompt = {"template": "jinja"} | {key: value.jinja if isinstance(value, _Template) else [t.jinja for t in value]
                                          for key, value in raw.items()}
    if kind == "perplexity":
        return prompt
    if kind == "cloze":  # lm-eval's loglikelihood request is (context, target): no delimiter between them
        prompt["target_delimiter"] = ""
    elif "target_delimiter" in config:
        prompt["target_delimiter"] = _plain(path, "target_delimiter", config["target_delimiter"])
    if "fewshot_delimiter" in config:
        prompt["demo_separator"] = _plain(path, "fewshot_delimiter", config["fewshot_delimiter"])
    if kind == "generate":
        prompt |= _generation(path, config)
    if config.get("repeats", 1) != 1:
        raise _stop(path, "repeats", "harness generates once per prompt (greedy)")
    sampler = (config.get("fewshot_config") or {}).get("sampler", "default")
    if sampler != "default":
        raise _stop(path, "fewshot_config.sampler", f"{sampler!r}: harness samples demonstrations at random only")
    return prompt


class _Template:
    """One lm-eval template: its Jinja text, and its $field form when it has one (None when it needs Jinja)."""

    def __init__(self, jinja: str, fields: str | None):
        self.jinja, self.fields = jinja, fields


def _template(path: Path, key: str, value: Any) -> _Template:
    if value is None:
        raise _stop(path, key, "is required for this output_type")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _stop(path, key, f"must be a template string, a field name or an index, got {value!r}")
    if isinstance(value, int):
        return _Template(str(value), str(value))
    if _FIELD.fullmatch(value):  # lm-eval reads a bare name as the document's field
        return _Template("{{ " + value + " }}", "$" + value)
    if error := jinja.syntax_error(value):
        raise _stop(path, key, f"is not a valid Jinja template ({error})")
    if construct := jinja.refused(value):
        raise _stop(path, key, f"the Jinja sandbox refuses {construct}")
    return _Template(value, _to_fields(value))


def _to_fields(template: str) -> str | None:
    """The $field form of a template whose only Jinja is `{{ name }}` placeholders, else None."""
    rest = _PLACEHOLDER.sub("", template)
    if any(mark in rest for mark in ("{{", "}}", "{%", "%}", "{#", "#}")):
        return None
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out += [template[last:match.start()].replace("$", "$$"), "${" + match[1] + "}"]
        last = match.end()
    out.append(template[last:].replace("$", "$$"))
    return re.sub(r"\$\{(\w+)\}(?!\w)", r"$\1", "".join(out))


def _choices(path: Path, value: Any) -> _Template | list[_Template]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):  # literal choices, never templates in lm-eval
        if not value or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise _stop(path, "doc_to_choice", f"must list choice texts, got {value!r}")
        return [_Template("{% raw %}" + str(v) + "{% endraw %}" if "{" in str(v) else str(v), str(v).replace("$", "$$"))
                for v in value]
    template = _template(path, "doc_to_choice", value)
    names = _FIELD_LIST.fullmatch(template.jinja)
    if names:  # {{[sol1, sol2]}}: one choice per field
        return [_Template("{{ " + n.strip() + " }}", "$" + n.strip()) for n in names[1].split(",")]
    return template


def _as_fields(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The prompt in $field templates, or None when any template needs Jinja."""
    out = {}
    for key, value in raw.items():
        items = [value] if isinstance(value, _Template) else value
        if any(t.fields is None for t in items):
            return None
        out[key] = value.fields if isinstance(value, _Template) else [t.fields for t in value]
    return out


def _generation(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(config.get("generation_kwargs") or {})
    if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) not in (0, 0.0, None):
        raise _stop(path, "generation_kwargs", "sampling (do_sample, temperature > 0): harness decodes greedily")
    until = kwargs.pop("until", [config.get("fewshot_delimiter", "\n\n")])
    until = [until] if isinstance(until, str) else until
    if not isinstance(until, list) or not all(isinstance(u, str) and u for u in until):
        raise _stop(path, "generation_kwargs.until", f"must list non-empty stop strings, got {until!r}")
    out = {"stop": until, "max_new_tokens": kwargs.pop("max_gen_toks", 256)}
    if kwargs:
        raise _stop(path, "generation_kwargs", f"options {sorted(kwargs)} are not translated")
    return out | _filters(path, config.get("filter_list"))


def _filters(path: Path, filters: Any) -> dict[str, Any]:
    if filters is None:
        return {}
    if not isinstance(filters, list) or len(filters) != 1:
        raise _stop(path, "filter_list", "harness scores one filter pipeline per task")
    steps = [step.get("function") if isinstance(step, dict) else step for step in filters[0].get("filter", [])]
    if steps == ["remove_whitespace", "take_first"]:
        return {"filters": ["strip"]}
    if steps == ["take_first"]:
        return {}
    raise _stop(path, "filter_list", f"filters {steps} are not translated (remove_whitespace, take_first are)")


def _plain(path: Path, key: str, value: Any) -> str:
    """A text lm-eval uses as is (a description with Jinja in it is rendered per document there: not imported)."""
    if not isinstance(value, str):
        raise _stop(path, key, f"must be a string, got {value!r}")
    if "{{" in value or "{%" in value:
        raise _stop(path, key, "is a Jinja template; harness's description and delimiters are plain text")
    return value


# ---------------------------------------------------------------- TOML out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(table: dict[str, Any], prefix: str = "") -> str:
    """Scalars and lists first, then each sub-table under its [dotted.header]."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            body = to_toml(value, f"{prefix}{key}.").strip("\n")
            lines += ["", body] if body.startswith("[") else ["", f"[{prefix}{key}]", body]
    return "\n".join(lines) + "\n"
