"""A report's content from the long table: every table comparing ZS, 1S, FS(k) and FT, the paired tests and the notes.

build_report gathers the tables once (tables, grid), the paired tests (significance), the published
numbers (published, and the GPT-3 Table H.1 cells of gpt3), the examples behind a difference (changes),
what lies under the cells (diagnostics: variance by source, scoring rules, calibration) and the notes, FT
lineages among them (lineage); pages only lays a Report out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.lineage import Lineage
from harness.reporting import gpt2, gpt3
from harness.reporting.changes import Comparison, find_changes
from harness.reporting.contamination import ContaminationSection, contamination_section
from harness.reporting.diagnostics import Diagnostics, diagnose
from harness.reporting.grid import Grid
from harness.reporting.published import Source, published_numbers
from harness.reporting.runs import normalize_scores
from harness.reporting.significance import model_comparisons, paired_comparisons
from harness.reporting.truncation import truncation_notes
from harness.reporting.tables import (
    bands_grid,
    cells_frame,
    column_label,
    has_sweep,
    main_grid,
    published_grid,
    reading,
    signed,
    significance_grid,
    sweep_grid,
)


@dataclass(frozen=True)
class Report:
    title: str
    cells: pd.DataFrame
    paired: pd.DataFrame
    main: Grid
    legend: dict[str, str]  # short label -> model
    sweep: Grid | None
    significance: Grid | None
    published: Grid
    sources: tuple  # the published Source records cited by `published`
    findings: tuple[str, ...]  # one sentence per difference significant after Holm's correction
    notes: tuple[str, ...]
    bands: Grid | None = None  # ours beside GPT-3 Small and Medium (Table H.1), None without such cells
    table_h1: tuple = ()  # every Table H.1 cell on this report's tasks (all sizes): the scale figures
    band_source: Source | None = None
    changes: tuple[Comparison, ...] = ()  # the examples behind a difference
    params: dict | None = None  # model -> parameters (run.json), for the scale figures
    warnings: tuple[str, ...] = ()  # fallbacks the runs took (run.json "warnings"), shown before the scores
    between: pd.DataFrame | None = None  # paired tests of each model against the first (significance.BETWEEN)
    between_grid: Grid | None = None
    unpaired: str = ""  # why there are no paired tests at all, "" when there are some
    table3: Grid | None = None  # the GPT-2 paper's Table 3 layout (gpt2.py), None without a Table 3 task
    diagnostics: Diagnostics | None = None  # variance by source, scoring rules, calibration; None without samples
    contamination: ContaminationSection | None = None  # runs made with --overlap: dirty / clean (contamination.py)


def model_params(models: dict[str, dict] | None) -> dict[str, float]:
    """model -> parameter count, from run.json "model" records that have one."""
    return {name: float(m["parameters"]) for name, m in (models or {}).items()
            if isinstance(m, dict) and isinstance(m.get("parameters"), (int, float)) and m["parameters"] > 0}


def build_report(frame: pd.DataFrame, samples: pd.DataFrame | None = None, title: str = "Report",
                 finetune: dict[str, dict[str, Lineage]] | None = None, models: dict[str, dict] | None = None,
                 published_dir=None, warnings=(), contamination=()) -> Report:
    """`finetune`: model -> task -> lineage of its FT checkpoint (run.json's "finetune"), noted under the tables;
    `contamination`: the Contamination record of each run made with --overlap (contamination/subsets.py);
    `models`: model -> run.json's "model" record (its "parameters" place it on the scale figures);
    `published_dir`: the folder of gpt3_table_h1.csv (default: gpt3.resolve_published_dir)."""
    frame = normalize_scores(frame)
    cells = cells_frame(frame)
    paired = paired_comparisons(samples)
    main, legend = main_grid(cells, paired)
    table = gpt3.load_table_h1(gpt3.resolve_published_dir(published_dir))
    table3 = gpt2.load_table3(gpt3.resolve_published_dir(published_dir))
    stored_numbers = gpt2.with_table3(published_numbers(), table3)  # Table 3 from its CSV, not a web transcription
    every = gpt3.with_table_h1(stored_numbers, table, set(zip(cells["task"], cells["metric"], strict=True)))
    h1 = tuple(p for p in every if p.source == gpt3.SOURCE)
    stored = tuple(p for p in every if p.source != gpt3.SOURCE)
    published, numbers = published_grid(dict.fromkeys(cells["task"]), list(dict.fromkeys(cells["model"])), stored)
    sources = tuple(dict.fromkeys(p.source for p in numbers))
    bands = bands_grid(cells, h1, gpt3.BAND_MODELS)
    higher = dict(zip(cells["metric"], cells["higher_is_better"].astype(bool), strict=True))
    between = model_comparisons(samples)
    return Report(title, cells, paired, main, legend, sweep_grid(cells) if has_sweep(cells) else None,
                  significance_grid(paired, legend) if not paired.empty else None, published, sources,
                  _findings(paired), _notes(cells, samples) + _finetune_notes(finetune or {}) + memory_notes(models),
                  bands, h1,
                  gpt3.SOURCE if bands is not None or h1 else None, find_changes(samples, higher), model_params(models),
                  tuple(warnings), between, between_grid(between) if not between.empty else None,
                  why_unpaired(samples, paired, between),
                  gpt2.table3_grid(cells, table3), diagnose(samples),
                  contamination=contamination_section(contamination, samples, published_dir))


def why_unpaired(samples: pd.DataFrame | None, paired: pd.DataFrame, between: pd.DataFrame) -> str:
    """The true reason a report has no paired test, or "" when it has some."""
    if samples is None:
        return "not available (no samples.jsonl: the per-example values are missing)"
    if not paired.empty or not between.empty:
        return ""
    models = list(dict.fromkeys(samples["model"]))
    variants = sorted({column_label(s, int(k)) for s, k in zip(samples["setting"], samples["k"], strict=True)})
    if len(models) == 1 and len(variants) <= 1:
        return (f"none: nothing to pair against (one model, one setting: {', '.join(variants) or 'none'}); "
                "a test needs ZS and another setting, or a second model on the same examples")
    return ("none: no two settings (one of them ZS) or models share at least two examples "
            f"(models: {', '.join(models)}; settings: {', '.join(variants)})")


def between_grid(between: pd.DataFrame) -> Grid:
    """Each model against the first on the same examples (paired by prompt text); * and the reading after Holm's
    correction across these comparisons."""
    rows = tuple((r["task"], r["metric"], column_label(r["setting"], int(r["k"])), f"{r['model_b']} − {r['model_a']}",
                  str(r["n"]), "" if pd.isna(r["delta"]) else f"{r['delta']:+.4g}",
                  "" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]",
                  "" if pd.isna(r["p_value"]) else f"{r['p_value']:.3g}",
                  "" if pd.isna(r["p_holm"]) else f"{r['p_holm']:.3g}" + ("*" if r["significant_holm"] else ""),
                  r["test"], "" if pd.isna(r["mdd"]) else f"{r['mdd']:.3g}", "" if pd.isna(r["delta"]) else reading(r))
                 for r in between.to_dict("records"))
    return Grid(("task", "metric", "setting", "models", "paired n", "Δ", "95% CI", "p", "p (Holm)", "test", "MDD",
                 "reading"), rows)


def _finding(head: str, r: dict) -> str:
    """'<head> = +36.6 perplexity (worse; 95% CI [...], p = ..., Holm p = ..., test, n = ...)'."""
    d = r["delta"]
    return (f"{head} = {signed(d)} {r['metric']} ({r['direction']}; 95% CI [{signed(r['ci_low'], d)}, "
            f"{signed(r['ci_high'], d)}], p = {r['p_value']:.3g}, Holm p = {r['p_holm']:.3g}, {r['test']}, "
            f"n = {r['n']})")


def between_findings(between: pd.DataFrame | None) -> tuple[str, ...]:
    """One sentence per difference between models that is significant after Holm's correction."""
    if between is None or between.empty:
        return ()
    return tuple(_finding(f"{r['task']} {column_label(r['setting'], int(r['k']))}: {r['model_b']} − {r['model_a']}", r)
                 for r in between[between["significant_holm"]].to_dict("records"))


def _findings(paired: pd.DataFrame) -> tuple[str, ...]:
    """One sentence per difference against ZS that is significant after Holm's correction."""
    sig = paired[paired["significant_holm"]] if not paired.empty else paired
    return tuple(_finding(f"{r['model']}, {r['task']}: {column_label(r['setting'], r['k'])} − ZS", r)
                 for r in sig.to_dict("records"))


def _notes(cells: pd.DataFrame, samples: pd.DataFrame | None) -> tuple[str, ...]:
    notes = []
    short = cells[cells["setting"].isin(["1S", "FS"]) & (cells["k_used"] < cells["k"] - 1e-9)]
    short = short.drop_duplicates(["model", "task", "setting", "k"])
    if not short.empty:
        notes.append("Demonstrations dropped to fit the context (mean k used): " + ", ".join(
            f"{r.model} {r.task} {r.setting}({r.k}): {r.k_used:.2f}" for r in short.itertuples()))
    notes += truncation_notes(cells, samples)
    if samples is None:
        notes.append("No samples.jsonl: paired significance tests need the per-example values, so Δ has no marks.")
    return tuple(notes)


def with_memory(model: dict, document: dict) -> dict:
    """A run.json "model" record with the run's peak memory (run.json "memory") beside it, for the run details."""
    return {**model, "memory": document["memory"]} if isinstance(document.get("memory"), dict) else model


def memory_notes(models: dict[str, dict] | None) -> tuple[str, ...]:
    """Run details: each run's peak memory (run.json "memory"), where it was recorded."""
    notes = []
    for name, record in (models or {}).items():
        memory = record.get("memory") if isinstance(record, dict) else None
        if isinstance(memory, dict) and isinstance(memory.get("rss_mib"), (int, float)):
            cuda = memory.get("cuda_mib")
            gpu = f"; {cuda:.0f} MiB CUDA at most allocated by torch" if isinstance(cuda, (int, float)) else ""
            notes.append(f"Run details: {name}'s run peaked at {memory['rss_mib']:.0f} MiB resident memory{gpu}.")
    return tuple(notes)


def _finetune_notes(finetune: dict[str, dict[str, Lineage]]) -> tuple[str, ...]:
    return tuple(f"FT checkpoint of {model}, {lineage.summary(task)} (lineage in run.json)"
                 for model, tasks in finetune.items() for task, lineage in tasks.items())
