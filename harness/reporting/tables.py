"""The report's tables, in the layout of the GPT-3 paper's Table H.1.

Rows are task x metric; columns are model x {ZS, 1S, FS(k), FT}. A cell is the mean over demonstration
seeds of the value, ± the across-example standard error (mean over seeds), σ_seed the across-seed spread
(std of the seed values) when there are several seeds, and for settings other than ZS the difference
against ZS with * when the paired test (harness.reporting.significance) finds it significant after Holm's
correction across the report's tests against ZS.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.reporting.gpt3 import model_size
from harness.reporting.grid import Grid
from harness.reporting.published import Published, for_cell, for_tasks, model_key

SETTING_ORDER = {"ZS": 0, "1S": 1, "FS": 2, "FT": 3}
KEYS = ["model", "task", "metric", "setting", "k"]


def column_label(setting: str, k: int | None) -> str:
    """A setting's column name: ZS, 1S, FT, or FS(k)."""
    return f"FS({k})" if setting == "FS" else setting


def _first_note(notes: pd.Series) -> str:
    return next((n for n in notes if isinstance(n, str) and n), "")


def cells_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, task, metric, setting, k): seed means, across-example stderr, across-seed spread."""
    cells = frame.groupby(KEYS, sort=False, dropna=False).agg(
        value=("value", "mean"), stderr=("stderr", "mean"), seed_std=("value", "std"), seeds=("seed", "nunique"),
        seed_min=("value", "min"), seed_max=("value", "max"),
        n=("n", "max"), k_used=("k_used_mean", "mean"), n_truncated=("n_truncated", "max"),
        note=("note", _first_note), higher_is_better=("higher_is_better", "first"),
    ).reset_index()
    cells["order"] = [SETTING_ORDER.get(s, 9) * 1000 + k for s, k in zip(cells["setting"], cells["k"], strict=True)]
    first_seen = {m: i for i, m in enumerate(dict.fromkeys(frame["model"]))}  # models in the order runs were given
    cells["model_order"] = cells["model"].map(first_seen)
    return cells.sort_values(["model_order", "order"], kind="stable").reset_index(drop=True)


def row_keys(cells: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, metric) rows, tasks in order of appearance, then by name."""
    return sorted(dict.fromkeys(zip(cells["task"], cells["metric"], strict=True)), key=lambda tm: tm[0])


def fs_k(cells: pd.DataFrame, model: str) -> int | None:
    """The FS column's k for a model: the largest k it ran (the GPT-3 paper's choice)."""
    fs = cells[(cells["model"] == model) & (cells["setting"] == "FS")]
    return int(fs["k"].max()) if not fs.empty else None


def setting_columns(cells: pd.DataFrame, model: str) -> list[tuple[str, str]]:
    """(label, setting) of a model's columns, in the order ZS, 1S, FS(k), FT."""
    present = set(cells.loc[cells["model"] == model, "setting"])
    k = fs_k(cells, model)
    return [(column_label(s, k), s) for s in SETTING_ORDER if s in present]


def _pick(cells: pd.DataFrame, model: str, task: str, metric: str, setting: str) -> pd.Series | None:
    """The cell of one setting; for FS the largest k this task ran."""
    rows = cells[(cells["model"] == model) & (cells["task"] == task) & (cells["metric"] == metric)
                 & (cells["setting"] == setting)]
    return None if rows.empty else rows.loc[rows["k"].idxmax()]


def fmt(value: float, reference: float | None = None) -> str:
    """3 decimals for scores below 10, 2 for perplexities."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    scale = abs(reference if reference is not None else value)
    return f"{value:.2f}" if scale >= 10 else f"{value:.3f}"


def signed(value: float, reference: float | None = None) -> str:
    """A difference with its sign: 3 decimals below 10, 1 above (perplexities); `reference` sets the scale, so
    both ends of an interval read alike."""
    return f"{value:+.1f}" if abs(reference if reference is not None else value) >= 10 else f"{value:+.3f}"


def reading(r: dict) -> str:
    """better / worse after Holm's correction, else what the test could not have seen: 'not detectable (MDD x)'."""
    if r["significant_holm"]:
        return r["direction"]
    if pd.isna(r["mdd"]) or (r["mdd"] == 0 and r["delta"] == 0):
        return "not detectable (no example differs)"
    return f"not detectable (MDD {fmt(r['mdd'], r['delta'] if abs(r['delta']) >= 10 else None)})"


def cell_text(cell: pd.Series | None, zs: pd.Series | None, test: dict | None,
              header_k: int | None) -> tuple[str, bool]:
    """The text of one cell and whether its difference against ZS is significant."""
    if cell is None:
        return "n/a", False
    if pd.isna(cell["value"]):
        return (f"n/a ({cell['note']})" if cell["note"] else "n/a"), False
    text = fmt(cell["value"])
    if not pd.isna(cell["stderr"]):
        text += f" ± {fmt(cell['stderr'], cell['value'])}"
    if cell["seeds"] > 1 and not pd.isna(cell["seed_std"]):
        text += f" σ_seed {fmt(cell['seed_std'], cell['value'])}"
    if cell["setting"] == "FS" and header_k is not None and cell["k"] != header_k:
        text += f" (k={cell['k']})"
    if cell["setting"] in ("1S", "FS") and cell["k_used"] < cell["k"] - 1e-9:
        text += f" [k_used {cell['k_used']:.1f}]"
    significant = bool(test and test["significant_holm"])
    if cell["setting"] != "ZS" and zs is not None and not pd.isna(zs["value"]):
        text += (f" Δ {cell['value'] - zs['value']:+.{2 if abs(zs['value']) >= 10 else 3}f}"
                 + ("*" if significant else ""))
    return text, significant


def _tests_by_key(paired: pd.DataFrame | None) -> dict:
    if paired is None or paired.empty:
        return {}
    return {tuple(r[k] for k in KEYS): r for r in paired.to_dict("records")}


def _model_groups(models: list[str]) -> tuple[dict[str, str], bool]:
    """Short labels (A, B, ...) for several models; a single model needs none."""
    if len(models) == 1:
        return {models[0]: ""}, False
    return {m: chr(ord("A") + i) if i < 26 else f"M{i}" for i, m in enumerate(models)}, True


def main_grid(cells: pd.DataFrame, paired: pd.DataFrame | None = None, numbers=None) -> tuple[Grid, dict[str, str]]:
    """The Table H.1 layout; returns the grid and the model legend (label -> model)."""
    models = list(dict.fromkeys(cells["model"]))
    short, grouped = _model_groups(models)
    tests = _tests_by_key(paired)
    labels, groups, rows, marks = ["task", "metric", "n"], [("", 3)], [], []
    columns = {m: setting_columns(cells, m) for m in models}
    with_published = {m: any(for_cell(m, t, x, numbers) for t, x in row_keys(cells)) for m in models}
    for m in models:
        labels += [label for label, _ in columns[m]] + (["published"] if with_published[m] else [])
        groups.append((short[m], len(columns[m]) + with_published[m]))
    for task, metric in row_keys(cells):
        here = cells[(cells["task"] == task) & (cells["metric"] == metric)]
        row, mark = [task, metric, str(int(here["n"].max()))], [False, False, False]
        for m in models:
            zs = _pick(cells, m, task, metric, "ZS")
            for _, setting in columns[m]:
                cell = _pick(cells, m, task, metric, setting)
                test = tests.get((m, task, metric, setting, cell["k"])) if cell is not None else None
                text, sig = cell_text(cell, zs, test, fs_k(cells, m))
                row.append(text)
                mark.append(sig)
            if with_published[m]:
                row.append("; ".join(f"{fmt(p.value)} ({p.model}, {p.source.id})"
                                     for p in for_cell(m, task, metric, numbers)) or "–")
                mark.append(False)
        rows.append(tuple(row))
        marks.append(tuple(mark))
    legend = {short[m]: m for m in models} if grouped else {}
    return Grid(tuple(labels), tuple(rows), tuple(groups) if grouped else (), marks=tuple(marks)), legend


def sweep_points(cells: pd.DataFrame) -> pd.DataFrame:
    """Score against k per (model, task, metric): ZS at k = 0, 1S at k = 1 unless FS(1) ran, FS at its k; FT apart."""
    points = cells[cells["setting"].isin(["ZS", "1S", "FS"]) & cells["value"].notna()].copy()
    points["x"] = points["k"].where(points["setting"] != "ZS", 0)
    points["prefer"] = points["setting"].map({"FS": 0, "1S": 1, "ZS": 2})
    points = points.sort_values("prefer").drop_duplicates(["model", "task", "metric", "x"])
    return points.sort_values(["model", "task", "metric", "x"]).reset_index(drop=True)


def has_sweep(cells: pd.DataFrame) -> bool:
    fs = cells[cells["setting"] == "FS"]
    return not fs.empty and fs.groupby("model")["k"].nunique().max() > 1


def sweep_grid(cells: pd.DataFrame) -> Grid:
    """Rows task x metric, columns model x k: the whole shot sweep (seed mean ± stderr, σ_seed)."""
    points = sweep_points(cells)
    models = list(dict.fromkeys(points["model"]))
    short, grouped = _model_groups(models)
    ks = {m: sorted(points.loc[points["model"] == m, "x"].unique()) for m in models}
    labels = ["task", "metric"] + [f"k={k}" for m in models for k in ks[m]]
    rows = []
    for task, metric in row_keys(points):
        row = [task, metric]
        for m in models:
            here = points[(points["model"] == m) & (points["task"] == task)
                          & (points["metric"] == metric)].set_index("x")
            row += [cell_text(here.loc[k], None, None, None)[0] if k in here.index else "n/a" for k in ks[m]]
        rows.append(tuple(row))
    groups = ((("", 2),) + tuple((short[m], len(ks[m])) for m in models)) if grouped else ()
    return Grid(tuple(labels), tuple(rows), groups)


def significance_grid(paired: pd.DataFrame, legend: dict[str, str]) -> Grid:
    """Every paired comparison against ZS: difference, 95% bootstrap CI, raw and Holm-adjusted p-values, the test,
    its minimum detectable difference and the reading (better / worse / not detectable)."""
    back = {m: label for label, m in legend.items()}
    rows, marks = [], []
    for r in paired.to_dict("records"):
        setting = column_label(r["setting"], r["k"])
        ref = r["delta"] if abs(r["delta"]) >= 10 else None
        mdd = "–" if pd.isna(r["mdd"]) else fmt(r["mdd"], ref)
        rows.append((r["task"], r["metric"], back.get(r["model"], r["model"]), f"{setting} − ZS", str(r["n"]),
                     str(r["seeds"]), signed(r["delta"], ref), f"[{fmt(r['ci_low'], ref)}, {fmt(r['ci_high'], ref)}]",
                     f"{r['p_value']:.3g}", f"{r['p_holm']:.3g}", r["test"], mdd, reading(r)))
        marks.append((False,) * 12 + (bool(r["significant_holm"]),))
    labels = ("task", "metric", "model", "difference", "n", "seeds", "Δ", "95% CI", "p", "p (Holm)", "test", "MDD",
              "reading")
    return Grid(labels, tuple(rows), marks=tuple(marks))


def published_grid(tasks, models, numbers=None) -> tuple[Grid, list[Published]]:
    """Every stored published number on these tasks, and whether a model of this report matches it."""
    numbers = for_tasks(tasks, numbers)
    rows = tuple(
        (p.task, p.metric, p.model, p.setting, fmt(p.value) + (f" ± {fmt(p.stderr, p.value)}" if p.stderr else ""),
         p.source.id, ", ".join(m for m in models if model_key(m) in p.matches) or "none")
        for p in numbers
    )
    labels = ("task", "metric", "published model", "setting", "value", "source", "same model here")
    return Grid(labels, rows), numbers


def bands_grid(cells: pd.DataFrame, numbers, sizes: tuple[str, ...]) -> Grid | None:
    """Ours beside published cells of the given sizes (GPT-3 Small and Medium), per setting: rows task x metric
    that have one, columns {ZS, 1S, FS} x (our models, then the sizes); FS cells name their k. None when no row."""
    models = list(dict.fromkeys(cells["model"]))
    short, grouped = _model_groups(models)
    ours = [short[m] if grouped else "ours" for m in models]
    by_key = {(p.task, p.metric, p.setting.split("(")[0], model_size(p)): p for p in numbers}
    rows = []
    for task, metric in row_keys(cells):
        if not any((task, metric, s, size) in by_key for s in ("ZS", "1S", "FS") for size in sizes):
            continue
        row = [task, metric]
        for setting in ("ZS", "1S", "FS"):
            for m in models:
                cell = _pick(cells, m, task, metric, setting)
                ok = cell is not None and not pd.isna(cell["value"])
                row.append((fmt(cell["value"]) + (f" (k={cell['k']})" if setting == "FS" else "")) if ok else "–")
            for size in sizes:
                p = by_key.get((task, metric, setting, size))
                row.append("–" if p is None else fmt(p.value) + (f" (k={p.setting[3:-1]})" if setting == "FS" else ""))
        rows.append(tuple(row))
    if not rows:
        return None
    labels = ("task", "metric") + (tuple(ours) + sizes) * 3
    groups = (("", 2),) + tuple((s, len(ours) + len(sizes)) for s in ("ZS", "1S", "FS"))
    return Grid(labels, tuple(rows), groups)
