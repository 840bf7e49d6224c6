"""Reports from the long table: Markdown, LaTeX and HTML pages comparing ZS, 1S, FS(k) and FT.

build_report gathers every table once (harness.reporting.tables), the paired tests (harness.reporting.significance)
and the notes; the writers below only lay them out, and write_report puts report.md, report.tex,
report.html and plots/*.png in a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.reporting.grid import Grid, latex, markdown
from harness.reporting.tables import (cells_frame, column_label, has_sweep, main_grid, published_grid,
                                   significance_grid, sweep_grid)
from harness.reporting.significance import ALPHA, ITERS, paired_comparisons

CELL_LEGEND = (
    "Cells: value ± standard error across examples (sample std / sqrt(n) for accuracies, a seeded bootstrap "
    "for perplexities), averaged over demonstration seeds; σ_seed: standard deviation across demonstration "
    "seeds (a second, separate source of uncertainty); Δ: difference against ZS of the same model; "
    f"*: significant at {ALPHA} in a paired test on the same examples (McNemar's exact test for 0/1 accuracies "
    f"with one seed, else a paired bootstrap with {ITERS} resamples; with several seeds each example is first "
    "averaged over its seeds). FS(k): the largest k run; [k_used x]: mean demonstrations actually used after "
    "dropping whole ones to fit the context. n/a (reason): a cell that could not be measured."
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
    findings: tuple[str, ...]  # one sentence per significant difference
    notes: tuple[str, ...]


def build_report(frame: pd.DataFrame, samples: pd.DataFrame | None = None, title: str = "Report",
                 finetune: dict[str, dict] | None = None) -> Report:
    """`finetune`: model -> task -> lineage of its FT checkpoint (run.json's "finetune"), noted under the tables."""
    from harness.reporting.runs import normalize_scores

    frame = normalize_scores(frame)
    cells = cells_frame(frame)
    paired = paired_comparisons(samples)
    main, legend = main_grid(cells, paired)
    published, numbers = published_grid(dict.fromkeys(cells["task"]), list(dict.fromkeys(cells["model"])))
    sources = tuple(dict.fromkeys(p.source for p in numbers))
    return Report(title, cells, paired, main, legend, sweep_grid(cells) if has_sweep(cells) else None,
                  significance_grid(paired, legend) if not paired.empty else None, published, sources,
                  _findings(paired), _notes(cells, samples) + _finetune_notes(finetune or {}))


def _findings(paired: pd.DataFrame) -> tuple[str, ...]:
    sig = paired[paired["significant"]] if not paired.empty else paired
    return tuple(
        f"{r['model']}, {r['task']} {r['metric']}: {column_label(r['setting'], r['k'])} − ZS = "
        f"{r['delta']:+.3f} (95% CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], p = {r['p_value']:.3g}, {r['test']}, "
        f"n = {r['n']})"
        for r in sig.to_dict("records")
    )


def _notes(cells: pd.DataFrame, samples: pd.DataFrame | None) -> tuple[str, ...]:
    notes = []
    short = cells[cells["setting"].isin(["1S", "FS"]) & (cells["k_used"] < cells["k"] - 1e-9)]
    short = short.drop_duplicates(["model", "task", "setting", "k"])
    if not short.empty:
        notes.append("Demonstrations dropped to fit the context (mean k used): " + ", ".join(
            f"{r.model} {r.task} {r.setting}({r.k}): {r.k_used:.2f}" for r in short.itertuples()))
    cut = cells[cells["n_truncated"] > 0].drop_duplicates(["model", "task", "setting", "k"])
    if not cut.empty:
        notes.append("Inputs longer than the model's context, cut from the left as lm-evaluation-harness does "
                     "(examples): " + ", ".join(f"{r.model} {r.task} {r.setting}({r.k}): {r.n_truncated}"
                                                for r in cut.itertuples()))
    if samples is None:
        notes.append("No samples.jsonl: paired significance tests need the per-example values, so Δ has no marks.")
    return tuple(notes)


def _finetune_notes(finetune: dict[str, dict]) -> tuple[str, ...]:
    from harness.train.finetune import lineage_summary

    return tuple(f"FT checkpoint of {model}, {lineage_summary(task, lineage)} (lineage in run.json)"
                 for model, tasks in finetune.items() for task, lineage in tasks.items())


def summary_lines(report: Report) -> list[str]:
    if report.significance is None:
        return ["Paired tests: not available (no per-example samples)."]
    if not report.findings:
        return [f"No difference against ZS is significant at {ALPHA} ({len(report.paired)} paired comparisons)."]
    return [f"Significant at {ALPHA} ({len(report.findings)} of {len(report.paired)} paired comparisons against ZS):",
            ""] + [f"- {f}" for f in report.findings]


def markdown_report(frame: pd.DataFrame, title: str = "Report", samples: pd.DataFrame | None = None,
                    figures: list[Path] = (), root: Path | None = None) -> str:
    """The report as one Markdown page; figures are linked relative to `root`."""
    return render_markdown(build_report(frame, samples, title), figures, root)


def render_markdown(report: Report, figures=(), root: Path | None = None) -> str:
    lines = [f"# {report.title}", ""]
    if report.legend:
        lines += ["Models: " + "; ".join(f"{k} = {m}" for k, m in report.legend.items()), ""]
    lines += [markdown(report.main), "", CELL_LEGEND, ""]
    lines += ["## Is the difference real?", ""] + summary_lines(report) + [""]
    if report.significance is not None:
        lines += [markdown(report.significance), ""]
    if report.sweep is not None:
        lines += ["## Shot sweep", "", markdown(report.sweep), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(root) if root else p})" for p in figures] + [""]
    lines += _published_markdown(report)
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)


def _published_markdown(report: Report) -> list[str]:
    if not report.published.rows:
        return []
    lines = ["## Published reference numbers", "",
             "Stored in harness/published.toml; shown beside ours (column 'published') only where the model is the same.",
             "", markdown(report.published), ""]
    return lines + [f"- {s.id}: {s.title}. Read at {s.read_at}. {s.notes}" for s in report.sources] + [""]


def render_latex(report: Report) -> str:
    """A standalone LaTeX fragment (needs \\usepackage{booktabs}): the main table, then the tests."""
    parts = [f"% {report.title}: generated by harness; needs \\usepackage{{booktabs}}", latex(report.main)]
    if report.significance is not None:
        parts.append(latex(report.significance))
    return "\n\n".join(parts) + "\n"


def write_report(folder: Path, frame: pd.DataFrame, samples: pd.DataFrame | None, title: str,
                 finetune: dict[str, dict] | None = None) -> list[Path]:
    """report.md, report.tex, report.html and plots/*.png in `folder`; returns the written paths."""
    from harness.reporting.html import render_html
    from harness.reporting.plots import summary_figure, sweep_figures

    report = build_report(frame, samples, title, finetune)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [p for p in [summary_figure(report.cells, report.paired, folder / "plots" / "summary.png")] if p]
    figures += sweep_figures(report.cells, folder / "plots")
    written = {"report.md": render_markdown(report, figures, folder), "report.tex": render_latex(report),
               "report.html": render_html(report, figures)}
    for name, text in written.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in written] + figures
