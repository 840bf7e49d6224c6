"""Reports from the long table: a Markdown pivot with rows task x metric and columns by setting."""

from __future__ import annotations

import math

import pandas as pd

SETTING_ORDER = {"ZS": 0, "1S": 1, "FS": 2, "FT": 3}


def column_label(setting: str, k: int) -> str:
    return f"FS({k})" if setting == "FS" else setting


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """One cell per (model, task, metric) x setting column: mean over seeds of value and stderr."""
    frame = frame.assign(column=[column_label(s, k) for s, k in zip(frame["setting"], frame["k"], strict=True)],
                         note=frame["note"].fillna("").astype(str) if "note" in frame else "")  # older runs: no note
    cells = frame.groupby(["model", "task", "metric", "setting", "k", "column"], sort=False).agg(
        value=("value", "mean"), stderr=("stderr", "mean"), seeds=("seed", "nunique"), n=("n", "max"),
        k_used=("k_used_mean", "mean"), n_truncated=("n_truncated", "max"), note=("note", "first"),
    ).reset_index()
    cells["order"] = [(SETTING_ORDER.get(s, 9), k) for s, k in zip(cells["setting"], cells["k"], strict=True)]
    return cells.sort_values(["model", "task", "metric", "order"])


def _cell(value: float, stderr: float, digits: int, note: str = "") -> str:
    if note:
        return f"n/a ({note})"
    if math.isnan(stderr):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"


def markdown_report(frame: pd.DataFrame, title: str = "Report") -> str:
    """A Markdown page: per model, a table with rows task x metric and one column per setting."""
    cells = pivot(frame)
    lines = [f"# {title}", ""]
    for model, group in cells.groupby("model", sort=False):
        columns = list(dict.fromkeys(group.sort_values("order")["column"]))
        lines += [f"## {model}", "", "| task | metric | n | " + " | ".join(columns) + " |",
                  "| --- | --- | ---: | " + " | ".join("---:" for _ in columns) + " |"]
        for (task, metric), rows in group.groupby(["task", "metric"], sort=False):
            by_column = {r.column: r for r in rows.itertuples()}
            digits = 2 if rows["value"].abs().max() >= 10 else 4
            values = [_cell(by_column[c].value, by_column[c].stderr, digits, by_column[c].note) if c in by_column else "n/a"
                      for c in columns]
            lines.append(f"| {task} | {metric} | {int(rows['n'].max())} | " + " | ".join(values) + " |")
        used = group[group["setting"].isin(["1S", "FS"])].drop_duplicates(["task", "column"])
        short = used[used["k_used"] < used["k"]]
        if not short.empty:
            lines += ["", "Demonstrations dropped to fit the context (mean k used): " + ", ".join(
                f"{r.task} {r.column}: {r.k_used:.2f}" for r in short.itertuples())]
        cut = group[group["n_truncated"] > 0].drop_duplicates(["task", "column"])
        if not cut.empty:
            lines += ["", "Inputs longer than the model's context, cut from the left as lm-evaluation-harness does "
                      "(examples): " + ", ".join(f"{r.task} {r.column}: {r.n_truncated}" for r in cut.itertuples())]
        lines.append("")
    lines += ["Cells: value ± standard error across examples (sample std / sqrt(n) for accuracies, "
              "bootstrap for perplexities); means over demonstration seeds where there are several. "
              "n/a (reason): the setting does not apply or could not be run, e.g. FT for a task without a train split.", ""]
    return "\n".join(lines)
