"""The GPT-3 paper's two trend views, drawn from the report's cells (matplotlib, Agg, PNG).

- Figure 1.2 view (kshot_*.png): score against k (0 = ZS, then 1, 2, 4, ... as run) for the tasks run with
  a shot sweep (FS at two or more k), one line per task, the seed mean with a band from the lowest to the
  highest demonstration seed; one figure per task family and metric (word scramble tasks together,
  arithmetic together, the rest together), one panel per model.
- Figure 1.3 view (scale_*.png), when the report merges models with known sizes (run.json's model
  "parameters") of two or more sizes: score against parameters (log x), one line per setting (ZS, 1S,
  FS at each model's largest k); where Table H.1 has the task, the published GPT-3 curve of the same
  setting (all eight sizes) dashed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.reporting.plots import fit, pyplot, save, slug
from harness.reporting.tables import sweep_points

WORD_SCRAMBLE = ("anagrams1", "anagrams2", "cycle_letters", "random_insertion", "reversed_words")
SETTING_COLORS = {"ZS": "tab:blue", "1S": "tab:orange", "FS": "tab:green"}


def family(task: str) -> str:
    """Tasks drawn together in the Figure 1.2 view."""
    if task in WORD_SCRAMBLE:
        return "word_scramble"
    return "arithmetic" if task.startswith("arithmetic_") else "tasks"


def swept(cells: pd.DataFrame) -> pd.DataFrame:
    """(model, task) pairs run with FS at two or more k."""
    fs = cells[(cells["setting"] == "FS") & cells["value"].notna()]
    counts = fs.groupby(["model", "task"], sort=False)["k"].nunique()
    return counts[counts > 1].reset_index()[["model", "task"]]


def shot_curves(cells: pd.DataFrame) -> pd.DataFrame:
    """The points of the Figure 1.2 view: sweep_points of the swept (model, task) pairs, with their family."""
    pairs = swept(cells)
    if pairs.empty:
        return pairs.assign(family=[])
    points = sweep_points(cells).merge(pairs, on=["model", "task"])
    return points.assign(family=points["task"].map(family))


def kshot_figures(cells: pd.DataFrame, folder: Path) -> list[Path]:
    """One PNG per (family, metric) of the swept tasks, a panel per model; returns the written paths."""
    points = shot_curves(cells)
    if points.empty:
        return []
    plt = pyplot()
    models = list(dict.fromkeys(points["model"]))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (fam, metric), group in points.groupby(["family", "metric"], sort=False):
        tasks = list(dict.fromkeys(group["task"]))
        colors = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(tasks)}
        here = [m for m in models if (group["model"] == m).any()]
        fig, axes = plt.subplots(1, len(here), figsize=(4.6 * len(here) + 1.3, 3.8), squeeze=False, sharey=True)
        for ax, model in zip(axes[0], here, strict=True):
            for task in tasks:
                line = group[(group["model"] == model) & (group["task"] == task)]
                if line.empty:
                    continue
                x, y = line["x"].to_numpy(float), line["value"].to_numpy(float)
                ax.fill_between(x, line["seed_min"].to_numpy(float), line["seed_max"].to_numpy(float),
                                color=colors[task], alpha=0.2, linewidth=0)
                ax.plot(x, y, marker="o", color=colors[task], label=task)
            ticks = sorted(group.loc[group["model"] == model, "x"].unique())
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.set_xlabel("k (demonstrations in context; 0 = ZS)")
            ax.set_title(model, fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(metric)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, fontsize=7, loc="center right", frameon=False)
        fig.suptitle(f"{metric} against k ({fam.replace('_', ' ')}); band: min-max over demonstration seeds",
                     fontsize=9)
        fit(fig, top=0.5, rect=(0, 0, 1 - 1.3 / (4.6 * len(here) + 1.3), 1))
        written.append(save(fig, folder / f"kshot_{slug(fam)}_{slug(metric)}.png"))
    return written


def scale_points(cells: pd.DataFrame, params: dict[str, float]) -> pd.DataFrame:
    """Per (task, metric, setting): one point per sized model, FS at the model's largest k."""
    sized = cells[cells["model"].isin(list(params)) & cells["setting"].isin(list(SETTING_COLORS))
                  & cells["value"].notna()]
    if sized.empty:
        return sized.assign(params=[])
    largest = sized.loc[sized.groupby(["model", "task", "metric", "setting"], sort=False)["k"].idxmax()]
    return largest.assign(params=largest["model"].map(params).astype(float)).sort_values("params", kind="stable")


def scale_figures(cells: pd.DataFrame, params: dict[str, float], numbers, folder: Path) -> list[Path]:
    """One PNG per task (panels per metric) when models of two or more sizes are here; returns the written paths."""
    params = {m: float(p) for m, p in params.items() if p and m in set(cells["model"])}
    if len(set(params.values())) < 2:
        return []
    points = scale_points(cells, params)
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task in dict.fromkeys(points["task"]):
        metrics = list(dict.fromkeys(points.loc[points["task"] == task, "metric"]))
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.8), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for setting, color in SETTING_COLORS.items():
                ours = points[(points["task"] == task) & (points["metric"] == metric) & (points["setting"] == setting)]
                if not ours.empty:
                    ax.plot(ours["params"], ours["value"], marker="o", color=color, label=f"ours {setting}")
                published = sorted((p.params, p.value, p.setting) for p in numbers if p.task == task
                                   and p.metric == metric and p.params and p.setting.split("(")[0] == setting)
                if published:
                    ax.plot([p[0] for p in published], [p[1] for p in published], linestyle="--", marker=".",
                            color=color, alpha=0.6, label=f"GPT-3 {published[0][2]}")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("parameters")
            ax.set_title(f"{task}: {metric}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        axes[0][0].set_ylabel("score")
        fig.suptitle("score against model size (dashed: GPT-3, Table H.1)", fontsize=9)
        fit(fig, top=0.6)
        written.append(save(fig, folder / f"scale_{slug(task)}.png"))
    return written
