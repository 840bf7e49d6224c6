"""Reading lm-evaluation-harness task YAMLs as data: `!function` tags become FunctionRef values (never imported,
never run), `include:` merges a base YAML named relative to the including one, and a few closed tables say
how lm-eval's datasets and well-known hooks map onto harness's own data folders and preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


@dataclass(frozen=True)
class FunctionRef:
    """A `!function module.name` tag: a Python hook, recorded by name only."""

    name: str


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: FunctionRef(str(loader.construct_scalar(node))))
    return Loader


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML's keys with its `include:` chain merged in (the including file's keys win, as in lm-eval)."""
    import yaml

    path = Path(path)
    if path.resolve() in seen:
        raise HarnessError(f"{path}: include: loops back to itself ({' -> '.join(str(p) for p in seen)})")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such lm-eval task file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: an lm-eval task file is a mapping of keys, got {type(config).__name__}")
    includes = config.pop("include", None)
    if includes is None:
        return config
    merged: dict[str, Any] = {}
    for name in [includes] if isinstance(includes, str) else includes or []:
        if not isinstance(name, str):
            raise HarnessError(f"{path}: include: must name a YAML file, got {name!r}")
        base = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        if not base.is_file():
            raise HarnessError(f"{path}: include: {name!r} not found beside it ({base})")
        merged |= read_yaml(base, (*seen, path.resolve()))
    return merged | config


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
    # NQ-open's train split is not local: the EfficientQA dev split stands in for demonstrations, as in tasks/nq_open.toml
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
    kind: str | None = None  # the harness kind the hook implies (lm-eval's multiple-input winogrande: partial_scoring)


NATIVE_HOOKS: dict[tuple[str, str, str], NativeHook] = {  # (task, YAML key, hook) -> harness equivalent
    ("hellaswag", "process_docs", "utils.process_docs"): NativeHook("hellaswag"),
    ("copa", "doc_to_text", "utils.doc_to_text"): NativeHook("copa", "query"),
    ("copa", "doc_to_choice", "utils.doc_to_choice"): NativeHook("copa", "choice_list"),
    ("copa", "doc_to_target", "utils.doc_to_target"): NativeHook("copa", "label"),
    # winogrande's doc_to_text gives the gold index, doc_to_choice the sentence up to the blank + each option, and
    # doc_to_target the rest, scored after each choice: harness's partial scoring
    ("winogrande", "doc_to_text", "preprocess_winogrande.doc_to_text"): NativeHook("winogrande", "gold", "partial_scoring"),
    ("winogrande", "doc_to_choice", "preprocess_winogrande.doc_to_choice"): NativeHook("winogrande", "filled", "partial_scoring"),
    ("winogrande", "doc_to_target", "preprocess_winogrande.doc_to_target"): NativeHook("winogrande", "rest", "partial_scoring"),
}
