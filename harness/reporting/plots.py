"""Report figures (matplotlib, Agg, PNG): score against k per task, a summary across tasks, and per task the
reliability diagram of its multiple-choice cells and the selective-accuracy curves of its generation cells.

Per task, one panel per metric: one line per model through ZS (k = 0), 1S (k = 1) and FS(k); a light band
is ± the across-example standard error, a darker one ± the across-seed spread; FT is a dashed horizontal
line in the model's colour. Points where demonstrations were dropped to fit the context are labelled with
the mean k actually used (small numbers). The summary says which way is better (its metrics are higher-is-better)
and counts the tasks better / worse after Holm's correction.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.reporting.tables import column_label, fs_k, sweep_points


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first need (it takes seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """`fig` written to `path` as a PNG (90 dpi), then closed."""
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
    return path


def fit(fig, *, left: float = 0.75, right: float = 0.2, bottom: float = 0.55, top: float = 0.35,
        wspace: float = 0.7, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> None:
    """Fixed margins in inches inside `rect` (a fraction of the figure, as tight_layout's): room for tick labels,
    axis labels and a title of the given height. tight_layout measures every text instead, which draws the
    figure once more and took half of a report's figure time."""
    width, height = fig.get_size_inches()
    x0, y0, x1, y1 = rect
    columns = len(fig.axes)  # the report's figures are one row of panels
    panel = ((x1 - x0) * width - left - right - (columns - 1) * wspace) / columns
    fig.subplots_adjust(left=x0 + left / width, right=x1 - right / width, bottom=y0 + bottom / height,
                        top=y1 - top / height, wspace=wspace / max(panel, 0.5))


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "task"


def _panel(ax, cells: pd.DataFrame, points: pd.DataFrame, task: str, metric: str, colors: dict) -> None:
    for model, color in colors.items():
        line = points[(points["model"] == model) & (points["task"] == task) & (points["metric"] == metric)]
        if not line.empty:
            x, y = line["x"].to_numpy(float), line["value"].to_numpy(float)
            se, spread = line["stderr"].fillna(0).to_numpy(float), line["seed_std"].fillna(0).to_numpy(float)
            ax.fill_between(x, y - se, y + se, color=color, alpha=0.12, linewidth=0)
            ax.fill_between(x, y - spread, y + spread, color=color, alpha=0.3, linewidth=0)
            ax.plot(x, y, marker="o", color=color, label=model)
            for xi, yi, k, used in zip(x, y, line["k"], line["k_used"], strict=True):
                if used < k - 1e-9:
                    ax.annotate(f"{used:.1f}", (xi, yi), textcoords="offset points", xytext=(2, 4), fontsize=6,
                                rotation=35, color=color)
        ft = cells[(cells["model"] == model) & (cells["task"] == task) & (cells["metric"] == metric)
                   & (cells["setting"] == "FT") & cells["value"].notna()]
        if not ft.empty:
            ax.axhline(float(ft["value"].iloc[0]), color=color, linestyle="--", linewidth=1.2, label=f"{model} FT")
    ticks = sorted(points.loc[points["task"] == task, "x"].unique())
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(ticks, [str(int(t)) for t in ticks])
    ax.set_xlabel("k (demonstrations; 0 = ZS)")
    lower = not bool(cells.loc[cells["metric"] == metric, "higher_is_better"].astype(bool).all())
    ax.set_title(f"{task}: {metric}" + (" (lower is better)" if lower else ""), fontsize=10)
    ax.grid(alpha=0.3)


def sweep_figures(cells: pd.DataFrame, folder: Path) -> list[Path]:
    """One PNG per task with more than one point or an FT line (panels per metric); returns the written paths."""
    points = sweep_points(cells)
    models = list(dict.fromkeys(cells["model"]))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    drawn = [task for task in dict.fromkeys(points["task"])  # a single zero-shot point is no curve: the tables carry it
             if points.loc[points["task"] == task, "x"].nunique() >= 2
             or cells[(cells["task"] == task) & (cells["setting"] == "FT") & cells["value"].notna()].size]
    if not drawn:
        return written  # matplotlib takes seconds to import: only when there is a figure to draw
    plt = pyplot()
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    for task in drawn:
        metrics = list(dict.fromkeys(points.loc[points["task"] == task, "metric"]))
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            _panel(ax, cells, points, task, metric, colors)
        axes[0][0].set_ylabel("score")
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, fontsize=7, loc="lower center", ncol=2, frameon=False)
        fig.text(0.99, 0.01, "small numbers: mean k used", ha="right", fontsize=6, color="gray")
        fit(fig, rect=(0, 0.08 + 0.04 * (len(handles) // 2), 1, 1))
        written.append(save(fig, folder / f"sweep_{slug(task)}.png"))
    return written


def summary_deltas(cells: pd.DataFrame, paired: pd.DataFrame | None) -> pd.DataFrame:
    """Per model and setting column: differences against ZS of each task's first higher-is-better metric;
    `significant` after Holm's correction."""
    primary = cells[cells["higher_is_better"].astype(bool)].groupby("task", sort=False)["metric"].first()
    rows = []
    for model in dict.fromkeys(cells["model"]):
        k = fs_k(cells, model)
        for task, metric in primary.items():
            here = cells[(cells["model"] == model) & (cells["task"] == task) & (cells["metric"] == metric)]
            zs = here[here["setting"] == "ZS"]["value"]
            for setting in ("1S", "FS", "FT"):
                cell = here[(here["setting"] == setting) & ((here["k"] == k) if setting == "FS" else True)]
                if zs.empty or cell.empty or pd.isna(cell["value"].iloc[0]) or pd.isna(zs.iloc[0]):
                    continue
                sig = False
                if paired is not None and not paired.empty:
                    hit = paired[(paired["model"] == model) & (paired["task"] == task) & (paired["metric"] == metric)
                                 & (paired["setting"] == setting) & (paired["k"] == int(cell["k"].iloc[0]))]
                    sig = bool(hit["significant_holm"].any())
                label = column_label(setting, k)
                rows.append({"model": model, "column": label, "task": task, "delta": cell["value"].iloc[0] - zs.iloc[0],
                             "significant": sig})
    return pd.DataFrame(rows, columns=["model", "column", "task", "delta", "significant"])


def counts_label(d: pd.DataFrame) -> str:
    """'2 better, 1 worse of 5': tasks whose difference is significant after Holm's correction, by direction
    (the summary's metrics are higher-is-better, so a positive difference is better)."""
    better = int((d["significant"] & (d["delta"] > 0)).sum())
    worse = int((d["significant"] & (d["delta"] < 0)).sum())
    return f"{better} better, {worse} worse of {len(d)}"


def summary_figure(cells: pd.DataFrame, paired: pd.DataFrame | None, path: Path) -> Path | None:
    """Mean difference against ZS per setting and model (bars), each task a dot; filled dots are significant."""
    deltas = summary_deltas(cells, paired)
    if deltas.empty:
        return None
    plt = pyplot()
    models = list(dict.fromkeys(deltas["model"]))
    columns = list(dict.fromkeys(deltas["column"]))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(columns) * len(models)), 4.0))
    for i, model in enumerate(models):
        color = plt.get_cmap("tab10")(i % 10)
        for j, column in enumerate(columns):
            d = deltas[(deltas["model"] == model) & (deltas["column"] == column)]
            if d.empty:
                continue
            x = j + (i - (len(models) - 1) / 2) * width
            ax.bar(x, d["delta"].mean(), width * 0.9, color=color, alpha=0.6, label=model if j == 0 else None)
            ax.scatter([x] * len(d), d["delta"], s=14, color=color, zorder=3,
                       facecolors=[color if s else "white" for s in d["significant"]], edgecolors=[color] * len(d))
            ax.annotate(counts_label(d), (x, d["delta"].max()),
                        textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(columns)), [f"{c} − ZS" for c in columns])
    ax.set_ylabel("difference in score (primary metric)\nabove 0: better than ZS; below: worse")
    ax.set_title("Against zero-shot, across tasks\nbar: mean; dot: one task (filled: significant after Holm)",
                 fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fit(fig, left=1.0, top=0.55)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)


def _by_task(cells) -> dict[str, list]:
    """Task -> its cells, for the tasks with two or more (settings or models) to set side by side: a single cell's
    numbers are in the tables, and matplotlib takes seconds to import (a zero-shot run draws no figure)."""
    out: dict[str, list] = {}
    for c in cells:
        out.setdefault(c.cell.task, []).append(c)
    return {task: here for task, here in out.items() if len(here) >= 2}


def _cell_name(c, several: bool) -> str:
    return f"{c.cell.model} {c.cell.label}" if several else c.cell.label


def _task_figures(cells, folder: Path, name: str, size: tuple[float, float], draw) -> list[Path]:
    """One figure per task with two or more cells, <name>_<task>.png: `draw(plt, ax, task, cells, several models)`
    fills its axes."""
    tasks = _by_task(cells)
    if not tasks:
        return []
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, here in tasks.items():
        fig, ax = plt.subplots(figsize=size)
        draw(plt, ax, task, here, len({c.cell.model for c in here}) > 1)
        ax.grid(alpha=0.3)
        fit(fig, top=0.55)
        written.append(save(fig, folder / f"{name}_{slug(task)}.png"))
    return written


def reliability_figures(cells, folder: Path) -> list[Path]:
    """Per task with two or more cells, the reliability diagram of its multiple-choice cells
    (diagnostics.CellReliability): accuracy against mean confidence in each bin that holds answers, one line per
    model and setting, the diagonal dashed (below it: overconfident); reliability_<task>.png."""
    def draw(plt, ax, task, here, several):
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="calibrated")
        for i, c in enumerate(here):
            r = c.reliability
            used = [j for j, n in enumerate(r.count) if n > 0]
            ax.plot([r.confidence[j] for j in used], [r.accuracy[j] for j in used], marker="o", linewidth=1.2,
                    markersize=3, color=plt.get_cmap("tab10")(i % 10),
                    label=f"{_cell_name(c, several)} (ECE {r.ece:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (softmax over the choices)", ylabel="accuracy")
        ax.set_title(f"{task}: reliability\nbelow the diagonal: overconfident", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")

    return _task_figures(cells, folder, "reliability", (4.6, 4.2), draw)


def selective_figures(cells, folder: Path) -> list[Path]:
    """Per task with two or more cells, the selective-accuracy curves of its generation cells
    (diagnostics.CellSelective): accuracy on the most confident fraction of answers (log x, so the top 1% shows),
    one line per model and setting, the accuracy on every answer dotted; selective_<task>.png."""
    def draw(plt, ax, task, here, several):
        for i, c in enumerate(here):
            color = plt.get_cmap("tab10")(i % 10)
            ax.plot(c.curve.fractions, c.curve.selective, color=color, linewidth=1.4,
                    label=f"{_cell_name(c, several)} ({c.metric})")
            ax.axhline(c.curve.accuracy, color=color, linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set(xlim=(0.01, 1), ylim=(-0.02, 1.02), xlabel="fraction of answers kept, most confident first",
               ylabel="accuracy")
        ax.set_title(f"{task}: selective accuracy by log P(answer)\ndotted: on every answer", fontsize=9)
        ax.legend(fontsize=6)

    return _task_figures(cells, folder, "selective", (5.0, 4.0), draw)
