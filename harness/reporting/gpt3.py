"""The GPT-3 paper's Table H.1 (Brown et al. 2020): every model size, ZS / 1S / FS(k), read from a CSV.

The CSV (gpt3_table_h1.csv, described by the PROVENANCE.md beside it) lives in the published folder:
`published_dir=` (the report's --published-dir), else $HARNESS_PUBLISHED_DIR, else the `shared/published`
folder beside (or inside) the checkout, else in or above the working folder. Without it a report simply
has no GPT-3 cells. The data files are never copied into the repository.

H1_NAMES is the one literal table from the paper's (task, metric) names to ours, with the metrics of ours
a cell compares with (first one the report has wins) and the unit of the printed value.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from harness.errors import HarnessError
from harness.files import shared_folder
from harness.reporting.published import Published, Source

PUBLISHED_DIR_ENV = "HARNESS_PUBLISHED_DIR"
CSV_NAME = "gpt3_table_h1.csv"
COLUMNS = ("task", "metric", "split", "setting", "model", "params", "value", "k")
SIZES = {"GPT-3 Small": 125e6, "GPT-3 Medium": 350e6, "GPT-3 Large": 760e6, "GPT-3 XL": 1.3e9, "GPT-3 2.7B": 2.7e9,
         "GPT-3 6.7B": 6.7e9, "GPT-3 13B": 13e9, "GPT-3 175B": 175e9}
BAND_MODELS = ("GPT-3 Small", "GPT-3 Medium")  # the sizes of GPT-2-class models: shown beside ours in the tables

SOURCE = Source(
    id="gpt3-tableH1",
    title="Brown et al. 2020, Language Models are Few-Shot Learners, Table H.1 (all sizes, ZS / 1S / FS(k))",
    paper="https://arxiv.org/abs/2005.14165",
    read_at="gpt3_table_h1.csv (a machine parse of the paper's arXiv HTML v4, figure A8.T1; see its PROVENANCE.md)",
    notes="GPT-3 models are not GPT-2 checkpoints (2048-token context, other data and recipe): plausibility bands, "
          "not targets. FS uses the paper's k per task. GPT-3 scored most multiple-choice tasks by per-token "
          "normalised likelihood (ARC, OpenBookQA and RACE by unconditional calibration), so those cells sit beside "
          "our matching variant when the report has it. Accuracies are printed in percent and shown as fractions; "
          "BLEU (sacreBLEU) and SQuAD EM / F1 stay in points, as lm-evaluation-harness reports them.",
)

_MC = ("acc",)
_NORM = ("acc_per_token", "acc_norm", "acc")
_CALIBRATED = ("acc_gpt3_calibrated", "acc_calibrated", "acc_norm", "acc")
_GEN = ("exact_match", "acc")


@dataclass(frozen=True)
class Name:
    task: str  # ours
    metrics: tuple[str, ...]  # ours, in order of preference
    scale: float  # multiplies the printed value: 0.01 for percentages shown as fractions


def _pct(task: str, metrics: tuple[str, ...]) -> Name:
    return Name(task, metrics, 0.01)


def _points(task: str, metrics: tuple[str, ...]) -> Name:
    return Name(task, metrics, 1.0)


# (Table H.1 name, H.1 metric) -> ours. Rows of the CSV absent here have no task of ours (see UNMAPPED).
H1_NAMES: dict[tuple[str, str], Name] = {
    ("HellaSwag", "acc"): _pct("hellaswag", _NORM),
    ("LAMBADA", "acc"): _pct("lambada_openai", ("acc",)),
    ("LAMBADA", "ppl"): _points("lambada_openai", ("perplexity",)),
    ("StoryCloze", "acc"): _pct("storycloze_2016", _NORM),
    ("NQs", "acc"): _pct("nq_open", _GEN),
    ("TriviaQA", "acc"): _pct("triviaqa", _GEN),
    ("WebQs", "acc"): _pct("webqs", _GEN),
    ("Ro→En 16", "BLEU-sb"): _points("wmt16-ro-en", ("bleu",)),
    ("En→Ro 16", "BLEU-sb"): _points("wmt16-en-ro", ("bleu",)),
    ("Fr→En 14", "BLEU-sb"): _points("wmt14-fr-en", ("bleu",)),
    ("En→Fr 14", "BLEU-sb"): _points("wmt14-en-fr", ("bleu",)),
    ("De→En 16", "BLEU-sb"): _points("wmt16-de-en", ("bleu",)),
    ("En→De 16", "BLEU-sb"): _points("wmt16-en-de", ("bleu",)),
    ("Winograd", "acc"): _pct("wsc273", _NORM),
    ("Winogrande", "acc"): _pct("winogrande", _MC),
    ("PIQA", "acc"): _pct("piqa", _NORM),
    ("ARC (Challenge)", "acc"): _pct("arc_challenge", _CALIBRATED),
    ("ARC (Easy)", "acc"): _pct("arc_easy", _CALIBRATED),
    ("OpenBookQA", "acc"): _pct("openbookqa", _CALIBRATED),
    ("Quac", "f1"): _points("quac", ("f1",)),
    ("RACE-h", "acc"): _pct("race", _CALIBRATED),
    ("RACE-m", "acc"): _pct("race_middle", _CALIBRATED),
    ("CoQA", "f1"): _points("coqa", ("f1",)),
    ("DROP", "f1"): _points("drop", ("f1",)),
    ("SQuADv2", "em"): _points("squadv2", ("exact", "exact_match")),
    ("SQuADv2", "f1"): _points("squadv2", ("f1",)),
    ("BoolQ", "acc"): _pct("boolq", _MC),
    ("CB", "acc"): _pct("cb", _MC),
    ("CB", "f1"): _pct("cb", ("f1",)),
    ("Copa", "acc"): _pct("copa", _MC),
    ("RTE", "acc"): _pct("rte", _MC),
    ("WiC", "acc"): _pct("wic", _MC),
    ("WSC", "acc"): _pct("wsc", _MC),
    ("MultiRC", "acc"): _pct("multirc", ("em",)),  # the paper's MultiRC "acc" is exact match per question
    ("MultiRC", "f1a"): _pct("multirc", ("f1a",)),
    ("ReCoRD", "acc"): _pct("record", ("em", "acc")),
    ("ReCoRD", "f1"): _pct("record", ("f1",)),
    ("ANLI R1", "acc"): _pct("anli_r1", _MC),
    ("ANLI R2", "acc"): _pct("anli_r2", _MC),
    ("ANLI R3", "acc"): _pct("anli_r3", _MC),
    ("2D+", "acc"): _pct("arithmetic_2da", _GEN),
    ("2D-", "acc"): _pct("arithmetic_2ds", _GEN),
    ("3D+", "acc"): _pct("arithmetic_3da", _GEN),
    ("3D-", "acc"): _pct("arithmetic_3ds", _GEN),
    ("4D+", "acc"): _pct("arithmetic_4da", _GEN),
    ("4D-", "acc"): _pct("arithmetic_4ds", _GEN),
    ("5D+", "acc"): _pct("arithmetic_5da", _GEN),
    ("5D-", "acc"): _pct("arithmetic_5ds", _GEN),
    ("2Dx", "acc"): _pct("arithmetic_2dm", _GEN),
    ("1DC", "acc"): _pct("arithmetic_1dc", _GEN),
    ("Cycled Letters", "acc"): _pct("cycle_letters", _GEN),
    ("Anagrams 1", "acc"): _pct("anagrams1", _GEN),
    ("Anagrams 2", "acc"): _pct("anagrams2", _GEN),
    ("Symbol Insertion", "acc"): _pct("random_insertion", _GEN),
    ("Reversed Words", "acc"): _pct("reversed_words", _GEN),
}
# Rows with no counterpart: multi-bleu (we compute sacreBLEU), SAT analogies, the average.
UNMAPPED = {"BLEU-mb", "SAT Analogies", "SuperGLUE average"}


def resolve_published_dir(flag: str | Path | None = None) -> Path | None:
    """The folder holding gpt3_table_h1.csv: the flag, the environment, or shared/published beside the checkout."""
    return shared_folder("published", flag, "--published-dir", PUBLISHED_DIR_ENV, holds=CSV_NAME)


def unmapped(task: str, metric: str) -> bool:
    return metric in UNMAPPED or task in UNMAPPED or f"{task} {metric}" in UNMAPPED


def _number(path: Path, line: int, row: dict) -> Published | None:
    name = H1_NAMES.get((row["task"], row["metric"]))
    if name is None:
        if unmapped(row["task"], row["metric"]):
            return None
        raise HarnessError(f"{path}:{line}: Table H.1 row {row['task']!r} {row['metric']!r} is neither in "
                           "gpt3.H1_NAMES nor in gpt3.UNMAPPED")
    if row["model"] not in SIZES or row["setting"] not in ("ZS", "1S", "FS"):
        raise HarnessError(f"{path}:{line}: unknown model {row['model']!r} or setting {row['setting']!r}")
    try:
        value = float(row["value"]) * name.scale
        setting = f"FS({int(row['k'])})" if row["setting"] == "FS" else row["setting"]
    except ValueError:
        raise HarnessError(f"{path}:{line}: value {row['value']!r} or k {row['k']!r} is not a number") from None
    return Published(SOURCE, f"{row['model']} ({row['params']})", (), name.task, name.metrics[0], setting, value, None,
                     params=SIZES[row["model"]], alternatives=name.metrics)


@cache
def _load(path: Path, mtime: float) -> tuple[Published, ...]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise HarnessError(f"{path}: missing columns {sorted(missing)}")
        return tuple(p for line, row in enumerate(reader, 2) if (p := _number(path, line, row)) is not None)


def load_table_h1(folder: Path | None) -> tuple[Published, ...]:
    """Every mapped cell of Table H.1 in `folder` (every size and setting); () when there is no folder or CSV."""
    if folder is None or not (Path(folder) / CSV_NAME).is_file():
        return ()
    path = (Path(folder) / CSV_NAME).resolve()
    return _load(path, path.stat().st_mtime)


def model_size(published: Published) -> str:
    """'GPT-3 Small' from 'GPT-3 Small (125M)'."""
    return published.model.rsplit(" (", 1)[0]


def resolve_metric(number: Published, present: set[tuple[str, str]]) -> Published:
    """The number on the first of its alternative metrics that the report has (else its first)."""
    metric = next((m for m in number.alternatives if (number.task, m) in present), number.metric)
    return number if metric == number.metric else replace(number, metric=metric)


def with_table_h1(stored: tuple[Published, ...], table: tuple[Published, ...],
                  present: set[tuple[str, str]]) -> tuple[Published, ...]:
    """The stored numbers, less those a Table H.1 cell replaces (same model, task, metric, setting), then the
    Table H.1 cells on the report's tasks, each on the metric of ours it compares with."""
    tasks = {task for task, _ in present}
    table = tuple(resolve_metric(p, present) for p in table if p.task in tasks)
    replaced = {(p.model, p.task, p.metric, p.setting) for p in table}
    return tuple(p for p in stored if (p.model, p.task, p.metric, p.setting) not in replaced) + table
