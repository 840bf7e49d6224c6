"""`harness import-lmeval PATH.yaml` and `--tasks lmeval:PATH.yaml`: an lm-evaluation-harness task config translated
into a harness task file (TOML), with the same prompts (lmeval_prompt.py translates the [prompt] table).

A `!function` hook is never imported: the few that harness implements natively map by (task, key, hook)
(NATIVE_HOOKS, below); any other stops the import with one line naming the YAML key, and nothing is written.
Local data: `dataset_path: json` with `dataset_kwargs.data_files` (paths relative to the YAML), or a hub dataset
that the data dir holds (LOCAL_LAYOUTS, below).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import TaskKind
from harness.tasks.lmeval_prompt import plain, translate_prompt
from harness.tasks.lmeval_yaml import FunctionRef, ImportStop, read_yaml, stop
from harness.tasks.spec import TaskSpec

PREFIX = "lmeval:"
KINDS = {"multiple_choice": TaskKind.MULTIPLE_CHOICE, "loglikelihood": TaskKind.CLOZE,
         "loglikelihood_rolling": TaskKind.PERPLEXITY, "generate_until": TaskKind.GENERATE}  # lm-eval's output_type
METRICS = {  # kind -> lm-eval's metrics that harness computes the same way (lm-eval's f1 and mcc are not SQuAD's)
    TaskKind.MULTIPLE_CHOICE: {"acc", "acc_norm"}, TaskKind.PARTIAL_SCORING: {"acc"},
    TaskKind.CLOZE: {"acc", "perplexity"}, TaskKind.PERPLEXITY: {"word_perplexity", "byte_perplexity", "bits_per_byte"},
    TaskKind.GENERATE: {"exact_match", "bleu", "ter", "chrf"}}
DEFAULT_METRICS = {  # kind -> the metrics of a config without metric_list
    TaskKind.MULTIPLE_CHOICE: ["acc"], TaskKind.PARTIAL_SCORING: ["acc"], TaskKind.CLOZE: ["perplexity", "acc"],
    TaskKind.PERPLEXITY: ["word_perplexity", "byte_perplexity", "bits_per_byte"], TaskKind.GENERATE: ["exact_match"]}
MATCH_OPTIONS = ("ignore_case", "ignore_punctuation", "regexes_to_ignore")
# no effect on prompts or scores (dataset_kwargs: below)
IGNORED = {"tag", "group", "task_alias", "group_alias", "metadata", "should_decontaminate",
           "doc_to_decontamination_query", "num_fewshot", "dataset_kwargs", "unsafe_code"}
HANDLED = {"task", "dataset_path", "dataset_name", "output_type", "training_split", "validation_split", "test_split",
           "fewshot_split", "process_docs", "doc_to_text", "doc_to_target", "doc_to_choice", "description",
           "target_delimiter", "fewshot_delimiter", "generation_kwargs", "metric_list", "filter_list", "repeats",
           "fewshot_config"}

def convert(path: str | Path) -> tuple[str, str]:
    """(task name, the TOML text of the harness task file) for an lm-eval task YAML."""
    path = Path(path)
    config = read_yaml(path)
    for key, value in config.items():
        if key not in HANDLED | IGNORED:
            if key == "class" or isinstance(value, FunctionRef):
                raise stop(path, key, f"the Python hook {getattr(value, 'name', value)!r} cannot be imported "
                           "(task files never run code)")
            raise stop(path, key, "is an lm-eval option the importer does not translate")
    if "task" not in config or not isinstance(config["task"], str):
        raise stop(path, "task", "is required (a task name); group configs import member by member")
    name = config["task"]
    preprocess, hook_kind = _hooks(path, config, name)
    kind = KINDS.get(config.get("output_type", "generate_until"))
    if hook_kind and kind is not TaskKind.MULTIPLE_CHOICE:
        raise stop(path, "output_type", f"the hooks of {name} mean {hook_kind.value}, a multiple_choice output_type")
    kind = hook_kind or kind
    if kind is None:
        raise stop(path, "output_type", f"{config['output_type']!r} is not one of {', '.join(KINDS)}")
    table: dict[str, Any] = {"kind": kind.value}
    if "description" in config:
        table["description"] = plain(path, "description", config["description"])
    data, adapter = _data(path, config)
    if preprocess and adapter:
        raise stop(path, "process_docs", f"combines a native hook ({preprocess}) with the local layout's {adapter}")
    if preprocess or adapter:
        table["preprocess"] = preprocess or adapter
    table["metrics"], options = _metrics(path, config, kind)
    table["data"] = data
    table["prompt"] = translate_prompt(path, config, kind)
    if options:
        table["metric_options"] = {"exact_match": options}
    header = f"# Imported from lm-evaluation-harness {path.parent.name}/{path.name} by `harness import-lmeval`.\n"
    return name, header + to_toml(table)


def import_file(path: str | Path, out: Path | None, tasks_dir: Path) -> tuple[Path, TaskSpec]:
    """Convert, check, and write the task file (default <tasks dir>/<task>.toml); never overwrites one."""
    try:
        spec = load(path)
    except ImportStop:
        raise
    except HarnessError as e:  # the converted file failed harness's own checks
        raise HarnessError(f"{e}; nothing was written") from None
    if not re.fullmatch(r"[\w.-]+", spec.name):
        raise stop(Path(path), "task", f"{spec.name!r} cannot name a file; pass --out FILE.toml")
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


# ---------------------------------------------------------------- lm-eval's hub datasets in the local data dir


@dataclass(frozen=True)
class LocalLayout:
    """Where harness's data dir keeps an lm-eval dataset: the folder, lm-eval split -> local split name (local split
    names keep example ids, hence demonstration draws, equal to the built-in task's), split -> file, the local split
    FT may train on, and the preprocess function that gives local rows the hub's fields."""

    folder: str
    splits: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    train: str | None = "train"
    adapter: str | None = None


LOCAL_LAYOUTS: dict[tuple[str, str | None], LocalLayout] = {
    ("baber/piqa", None): LocalLayout("piqa"),
    ("allenai/ai2_arc", "ARC-Easy"): LocalLayout("arc_easy"),
    ("allenai/ai2_arc", "ARC-Challenge"): LocalLayout("arc_challenge"),
    ("Rowan/hellaswag", None): LocalLayout("hellaswag", files={"validation": "validation_preprocessed.jsonl"}),
    ("aps/super_glue", "copa"): LocalLayout("superglue_copa"),
    ("aps/super_glue", "boolq"): LocalLayout("superglue_boolq", files={"train": "train_fewglue32.jsonl"},
                                             adapter="lmeval_boolq"),
    ("aps/super_glue", "cb"): LocalLayout("superglue_cb"),
    ("aps/super_glue", "rte"): LocalLayout("superglue_rte", adapter="lmeval_rte"),
    ("nyu-mll/glue", "sst2"): LocalLayout("sst2"),
    # winogrande_xl's train split is not local: train_l stands in, as in tasks/winogrande.toml
    ("allenai/winogrande", "winogrande_xl"): LocalLayout("winogrande", files={"train": "train_l.jsonl"}),
    ("EleutherAI/lambada_openai", "default"): LocalLayout("lambada_openai", train=None),
    ("mandarjoshi/trivia_qa", "rc.nocontext"): LocalLayout("triviaqa", files={"validation": "triviaqa_sm_sub.jsonl"},
                                                           train=None, adapter="lmeval_triviaqa"),
    # NQ-open's train split is not local: the EfficientQA dev split stands in for demonstrations,
    # as in tasks/nq_open.toml
    ("google-research-datasets/nq_open", None): LocalLayout(
        "nq_open", splits={"validation": "dev", "train": "efficientqa_dev"}, train=None),
    ("wmt/wmt14", "fr-en"): LocalLayout("wmt14_fr_en", splits={"validation": "newstest2013", "test": "newstest2014"},
                                        train=None, adapter="lmeval_translation"),
    ("wmt/wmt16", "de-en"): LocalLayout("wmt16_de_en", splits={"validation": "newstest2015", "test": "newstest2016"},
                                        train=None, adapter="lmeval_translation"),
}


# ---------------------------------------------------------------- well-known hooks harness implements natively


@dataclass(frozen=True)
class NativeHook:
    """What a known `!function` hook becomes: a preprocess function and the plain field that replaces the hook."""

    preprocess: str | None
    field: str | None = None
    kind: TaskKind | None = None  # the kind the hook implies (lm-eval's multiple-input winogrande: partial scoring)


NATIVE_HOOKS: dict[tuple[str, str, str], NativeHook] = {  # (task, YAML key, hook) -> harness equivalent
    ("hellaswag", "process_docs", "utils.process_docs"): NativeHook("hellaswag"),
    ("copa", "doc_to_text", "utils.doc_to_text"): NativeHook("copa", "query"),
    ("copa", "doc_to_choice", "utils.doc_to_choice"): NativeHook("copa", "choice_list"),
    ("copa", "doc_to_target", "utils.doc_to_target"): NativeHook("copa", "label"),
    # winogrande's doc_to_text gives the gold index, doc_to_choice the sentence up to the blank + each option, and
    # doc_to_target the rest, scored after each choice: harness's partial scoring
    ("winogrande", "doc_to_text", "preprocess_winogrande.doc_to_text"):
        NativeHook("winogrande", "gold", TaskKind.PARTIAL_SCORING),
    ("winogrande", "doc_to_choice", "preprocess_winogrande.doc_to_choice"):
        NativeHook("winogrande", "filled", TaskKind.PARTIAL_SCORING),
    ("winogrande", "doc_to_target", "preprocess_winogrande.doc_to_target"):
        NativeHook("winogrande", "rest", TaskKind.PARTIAL_SCORING),
}


# ---------------------------------------------------------------- hooks


def _hooks(path: Path, config: dict[str, Any], task: str) -> tuple[str | None, TaskKind | None]:
    """Replace known hooks by their native fields; return the preprocess function and the kind they need.
    Any other hook stops."""
    preprocess = kind = None
    for key, value in list(config.items()):
        if not isinstance(value, FunctionRef):
            continue
        native = NATIVE_HOOKS.get((task, key, value.name))
        if native is None:
            raise stop(path, key, f"!function {value.name} is Python code, which harness never runs "
                       "(write the template in Jinja, or add a preprocess function to harness)")
        if native.preprocess and preprocess not in (None, native.preprocess):
            raise stop(path, key, f"needs preprocess {native.preprocess!r} besides {preprocess!r}")
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
        raise stop(path, "test_split", "neither test_split nor validation_split names an evaluation split")
    demo_split = splits["fewshot_split"] or splits["training_split"] or splits["validation_split"] or eval_split
    source, kwargs = config.get("dataset_path"), config.get("dataset_kwargs") or {}
    if not isinstance(kwargs, dict) or set(kwargs) - {"data_files", "trust_remote_code"}:
        raise stop(path, "dataset_kwargs", "only data_files (local files) can be imported")
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
        raise stop(path, "dataset_path", "is required (a hub dataset id, or json with dataset_kwargs.data_files)")
    data["eval_split"] = renames.get(eval_split, eval_split)
    data["demo_split"] = renames.get(demo_split, demo_split)
    if train:
        data["train_split"] = train
    if data["local"] is None:
        del data["local"]
    return data, adapter


def _data_files(path: Path, files: Any) -> tuple[str, dict[str, str]]:
    if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
        raise stop(path, "dataset_kwargs.data_files", "must map each split to one file")
    resolved = {split: (path.parent / name).resolve() for split, name in files.items()}
    folders = {p.parent for p in resolved.values()}
    if len(folders) != 1:
        raise stop(path, "dataset_kwargs.data_files", "the files must share one folder")
    return str(folders.pop()), {split: p.name for split, p in resolved.items()}


# ---------------------------------------------------------------- metrics


def _metrics(path: Path, config: dict[str, Any], kind: TaskKind) -> tuple[list[str], dict[str, Any]]:
    entries = config.get("metric_list")
    if entries is None:
        return list(DEFAULT_METRICS[kind]), {}
    names, options = [], {}
    for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
        metric = entry.get("metric") if isinstance(entry, dict) else None
        if isinstance(metric, FunctionRef) or not isinstance(metric, str):
            raise stop(path, f"metric_list[{i}]", f"needs a metric name, got {metric!r}")
        if metric not in METRICS[kind]:
            raise stop(path, f"metric_list[{i}]", f"metric {metric!r} has no harness equivalent for {kind.value} "
                       f"(those: {', '.join(sorted(METRICS[kind]))})")
        extra = set(entry) - {"metric", "aggregation", "higher_is_better", *MATCH_OPTIONS}
        if extra or (metric != "exact_match" and set(entry) & set(MATCH_OPTIONS)):
            raise stop(path, f"metric_list[{i}]", f"options {sorted(extra or set(entry) & set(MATCH_OPTIONS))} "
                       f"of {metric} are not translated")
        if metric == "exact_match":
            options = {k: entry[k] for k in MATCH_OPTIONS if k in entry and entry[k] not in (False, None, [])}
            if isinstance(options.get("regexes_to_ignore"), str):
                options["regexes_to_ignore"] = [options["regexes_to_ignore"]]
        names.append(metric)
    return names, options


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
