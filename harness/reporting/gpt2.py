"""The GPT-2 paper's Table 3 (Radford et al. 2019): zero-shot language modelling, read from gpt2_table3.csv.

The CSV (described by the PROVENANCE.md beside it) lives in the published folder, found as gpt3.py finds Table H.1
(`published_dir=`, $HARNESS_PUBLISHED_DIR, else `shared/published` beside or above the checkout); it is never
copied into the repository. COLUMNS is the one literal table from Table 3's columns to our (task, metric), with
the reason where a column has no data here. A model named gpt2 / gpt2-medium / gpt2-large / gpt2-xl is matched
to its published row (the CSV's hf_name); the report prints ours beside all four sizes and the SOTA row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.reporting.gpt3 import resolve_published_dir
from harness.reporting.grid import Grid
from harness.reporting.published import Published, Source, model_key

CSV_NAME = "gpt2_table3.csv"
FIELDS = ("task", "metric", "setting", "model", "hf_name", "params", "value", "higher_is_better")
ROWS = ("SOTA (2019)", "GPT-2 117M", "GPT-2 345M", "GPT-2 762M", "GPT-2 1542M")  # the paper's row order
_NOT_HERE = "n/a (no data: not obtainable here, shared/data/README.md)"

SOURCE = Source(
    id="gpt2-table3-csv",
    title="Radford et al. 2019, Language Models are Unsupervised Multitask Learners, Table 3 (zero-shot)",
    paper="https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf",
    read_at="gpt2_table3.csv (the paper's Table 3, all four sizes and the SOTA row; see its PROVENANCE.md)",
    notes="Comparable in definition: LAMBADA acc (our lambada_gpt2 exact_match: the whole greedily written last "
          "word), LAMBADA ppl (lambada_openai perplexity of the last word), WikiText2 / PTB / WikiText103 ppl (our "
          "*_gpt2 / ptb / wikitext103 token_perplexity: de-tokenized text, strided windows, per token of the "
          "tokenized dataset with <eos>). The paper's exact de-tokenizers and stride are unpublished, so those "
          "columns compare closely, not exactly; lm-eval's lambada_openai acc and wikitext word_perplexity are other "
          "definitions and are not set beside these cells. Accuracies are printed in percent, shown as fractions.",
)


@dataclass(frozen=True)
class Column:
    paper: str  # Table 3's column (the CSV's task)
    metric: str  # the CSV's metric
    task: str  # ours; "" when no data here
    ours: str  # our metric
    scale: float  # multiplies the printed value: 0.01 for percentages shown as fractions
    missing: str = ""  # why there is no data, for columns without a task


COLUMNS = (
    Column("LAMBADA", "perplexity", "lambada_openai", "perplexity", 1.0),
    Column("LAMBADA", "acc", "lambada_gpt2", "exact_match", 0.01),
    Column("CBT-CN", "acc", "", "", 0.01, _NOT_HERE),
    Column("CBT-NE", "acc", "", "", 0.01, _NOT_HERE),
    Column("WikiText2", "perplexity", "wikitext2_gpt2", "token_perplexity", 1.0),
    Column("PTB", "perplexity", "ptb", "token_perplexity", 1.0),
    Column("enwik8", "bits_per_byte", "", "", 1.0, _NOT_HERE),
    Column("text8", "bits_per_char", "", "", 1.0, _NOT_HERE),
    Column("WikiText103", "perplexity", "wikitext103", "token_perplexity", 1.0),
    Column("1BW", "perplexity", "", "", 1.0, _NOT_HERE),
)
_BY_NAME = {(c.paper, c.metric): c for c in COLUMNS}
UNITS = {"perplexity": "PPL", "acc": "ACC", "bits_per_byte": "BPB", "bits_per_char": "BPC"}  # Table 3's headers


def _number(path: Path, line: int, row: dict) -> Published:
    column = _BY_NAME.get((row["task"], row["metric"]))
    if column is None:
        raise HarnessError(f"{path}:{line}: task, metric: Table 3 column {row['task']!r} {row['metric']!r} is not "
                           "in gpt2.COLUMNS")
    if row["model"] not in ROWS or row["setting"] != "ZS":
        raise HarnessError(f"{path}:{line}: model, setting: unknown row {row['model']!r} / {row['setting']!r}")
    try:
        value = float(row["value"]) * column.scale
    except ValueError:
        raise HarnessError(f"{path}:{line}: value: {row['value']!r} is not a number") from None
    matches = (row["hf_name"], f"openai-community/{row['hf_name']}") if row["hf_name"] else ()
    params = float(row["params"].rstrip("M")) * 1e6 if row["params"] else None
    return Published(SOURCE, row["model"], matches, column.task or row["task"], column.ours or row["metric"], "ZS",
                     value, None, params=params, alternatives=(column.ours,) if column.ours else ())


@cache
def _load(path: Path, mtime: float) -> tuple[Published, ...]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = set(FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise HarnessError(f"{path}: missing columns {sorted(missing)}")
        return tuple(_number(path, line, row) for line, row in enumerate(reader, 2))


def load_table3(folder: Path | None) -> tuple[Published, ...]:
    """Every cell of Table 3 in `folder`; () when there is no folder or CSV."""
    folder = folder if folder is not None else resolve_published_dir(None)
    if folder is None or not (Path(folder) / CSV_NAME).is_file():
        return ()
    path = (Path(folder) / CSV_NAME).resolve()
    return _load(path, path.stat().st_mtime)


def with_table3(stored: tuple[Published, ...], table: tuple[Published, ...]) -> tuple[Published, ...]:
    """The stored numbers less the secondary transcription of Table 3 (published.toml's gpt2-table3), replaced by
    the CSV's cells for the released checkpoints, when the CSV is there."""
    if not table:
        return stored
    kept = tuple(p for p in stored if p.source.id != "gpt2-table3")
    return kept + tuple(p for p in table if p.matches and p.metric in {c.ours for c in COLUMNS if c.ours})


def _fmt(value: float, column: Column) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * 100:.2f}" if column.scale != 1.0 else f"{value:.2f}"


def _ours(cells: pd.DataFrame, model: str, column: Column) -> str:
    if not column.task:
        return column.missing
    hit = cells[(cells["model"] == model) & (cells["task"] == column.task) & (cells["metric"] == column.ours)
                & (cells["setting"] == "ZS")]
    if hit.empty:
        return f"n/a (not run: {column.task} {column.ours} ZS)"
    row = hit.iloc[0]
    if pd.isna(row["value"]):
        return f"n/a ({row['note'] or 'no value'})"
    return f"{_fmt(float(row['value']), column)} (n={int(row['n'])})"


def published_row(model: str, table: tuple[Published, ...]) -> str | None:
    """The Table 3 row (e.g. 'GPT-2 117M') of our model when it is a released GPT-2 checkpoint (gpt2, gpt2-medium,
    gpt2-large, gpt2-xl, also as openai-community/... or reference:...), else None."""
    key = model_key(model)
    return next((p.model for p in table if key in p.matches), None)


def table3_grid(cells: pd.DataFrame, table: tuple[Published, ...]) -> Grid | None:
    """Table 3 in the paper's layout: one row per model of ours that ran a Table 3 task, then the published rows
    (SOTA, the four GPT-2 sizes; a published row that is one of our models' is marked), one column per Table 3
    column; a column without data here is n/a with the reason. None when the report has no Table 3 task."""
    tasks = {c.task for c in COLUMNS if c.task}
    ours = list(dict.fromkeys(cells.loc[cells["task"].isin(tasks), "model"]))
    if not ours:
        return None
    labels = ("model", *(f"{c.paper} ({UNITS[c.metric]})" for c in COLUMNS))
    rows = [(f"ours: {m}", *(_ours(cells, m, c) for c in COLUMNS)) for m in ours]
    mine = {published_row(m, table) for m in ours}
    by = {(p.model, p.task, p.metric): p for p in table}
    for name in ROWS if table else ():
        same = name in mine
        cells_ = []
        for c in COLUMNS:
            p = by.get((name, c.task or c.paper, c.ours or c.metric))
            cells_.append(_fmt(p.value, c) if p is not None else "n/a (not in the CSV)")
        rows.append((f"published: {name}" + (" (= our model)" if same else ""), *cells_))
    caption = ("Accuracies in percent, perplexities per token of the dataset, zero-shot. "
               + ("" if table else f"No {CSV_NAME} found: the published rows are missing."))
    return Grid(labels, tuple(rows), caption=caption)
