"""A Report laid out as pages: Markdown, LaTeX (a booktabs fragment) and one self-contained HTML file.

The writers only arrange what build_report gathered; write_report builds the report once and puts
report.md, report.tex, report.html and plots/*.png in a folder. The sections on what lies under the cells
(uncertainty by source, scoring rules, calibration) come from diagnostic_sections, after "Is the difference real?".
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from harness.lineage import Lineage
from harness.reporting.build import Report, between_findings, build_report
from harness.reporting.changes import CAP, changes_table
from harness.reporting.contamination import contamination_html, contamination_markdown
from harness.reporting.diagnostic_sections import html_sections, latex_sections, markdown_sections
from harness.reporting.examples import CSS as EXAMPLES_CSS
from harness.reporting.examples import changes_html
from harness.reporting.gpt2 import SOURCE as TABLE3_SOURCE
from harness.reporting.grid import html_table, latex, markdown
from harness.reporting.plots import reliability_figures, selective_figures, summary_figure, sweep_figures
from harness.reporting.power import POWER
from harness.reporting.significance import ALPHA, ITERS
from harness.reporting.tables import fmt
from harness.reporting.trends import kshot_figures, scale_figures

SHOWN_FINDINGS = 5  # significant differences a finished run prints; report.md has them all


def cell_legend(cells: pd.DataFrame, split: bool = False) -> str:
    """What the scores table's cells hold, naming only the marks this table can show (no Δ or σ_seed for a run
    with one setting and one seed); `split`: the report splits σ_seed out ("Where the uncertainty comes from")."""
    seeds = bool((cells["seeds"] > 1).any())
    settings = set(cells["setting"])
    where = "; 'Where the uncertainty comes from' in report.md splits the two" if split else ""
    parts = ["Cells: value ± standard error across examples (sample std / sqrt(n) for accuracies, a seeded "
             "bootstrap for perplexities)" + (", averaged over demonstration seeds; σ_seed: standard deviation "
                                                 "across demonstration seeds (a second, separate source of "
                                                 f"uncertainty{where})" if seeds else "")]
    if settings - {"ZS"} and "ZS" in settings:
        parts.append(f"Δ: difference against ZS of the same model; *: significant at {ALPHA} after Holm's "
                     "correction across the report's paired tests on the same examples (McNemar's exact test for "
                     f"0/1 accuracies with one seed, else a paired bootstrap with {ITERS} resamples"
                     + ("; with several seeds each example is first averaged over its seeds)" if seeds else ")"))
    if "FS" in settings:
        parts.append("FS(k): the largest k run")
    shots = cells[cells["setting"].isin(["1S", "FS"])]
    if (shots["k_used"] < shots["k"] - 1e-9).any():
        parts.append("[k_used x]: mean demonstrations actually used after dropping whole ones to fit the context")
    if cells["value"].isna().any():
        parts.append("n/a (reason): a cell that could not be measured")
    return "; ".join(parts) + "."


def undetected_line(paired: pd.DataFrame) -> str:
    """What the tests that found nothing could not have seen: per task and metric, the range of their MDDs."""
    quiet = paired[~paired["significant_holm"].astype(bool) & (paired["mdd"] > 0)]  # NaN, 0: no example differs
    if quiet.empty:
        return ""
    spans = []
    for (task, metric), rows in quiet.groupby(["task", "metric"], sort=False):
        low, high = rows["mdd"].min(), rows["mdd"].max()
        spans.append(f"{task} {metric} ±{fmt(low)}" + (f" to ±{fmt(high)}" if fmt(high) != fmt(low) else ""))
    return (f"Not detectable ({len(quiet)}): these tests could not have seen a true difference smaller than their "
            f"MDD (the smallest each finds {POWER:.0%} of the time): " + "; ".join(spans) + ".")


def summary_lines(report: Report, undetected: bool = True) -> list[str]:
    """The answer to "is the difference real?": how many tests, with Holm's correction across them, then one '- '
    line per finding, for the settings against ZS and for each model against the first; `undetected`: a line on
    what the tests that found nothing could have missed (their MDDs)."""
    if report.unpaired:
        return [f"Paired tests: {report.unpaired}."]
    lines = []
    if report.significance is not None:
        m, raw = len(report.paired), int(report.paired["significant"].sum())
        head = (f"{m} paired comparisons against ZS, with Holm's correction across all {m} (the chance of any false "
                f"finding among them stays below {ALPHA}): ")
        if not report.findings:
            lines += [head + "none significant after it" + (f" ({raw} would be at {ALPHA} alone)." if raw else ".")]
        else:
            lines += [head + f"{len(report.findings)} significant after it:", ""]
            lines += [f"- {f}" for f in report.findings] + [""]
        lines += [line for line in [undetected_line(report.paired) if undetected else ""] if line] + [""]
    if report.between_grid is not None:
        found = between_findings(report.between)
        tested = int((report.between["n"] >= 2).sum())
        lines += ([f"Between models, on the same examples (paired by prompt text), {len(found)} of {tested} paired "
                   f"comparisons significant at {ALPHA} after Holm's correction across them:", ""]
                  + [f"- {f}" for f in found] if found else
                  [f"Between models, on the same examples (paired by prompt text): none of {tested} paired comparisons "
                   f"significant at {ALPHA} after Holm's correction across them."]) + [""]
    return lines[:-1] if lines and lines[-1] == "" else lines


def _splits(report: Report) -> bool:
    return report.diagnostics is not None and bool(report.diagnostics.uncertainty)


def render_markdown(report: Report, figures=(), root: Path | None = None) -> str:
    lines = [f"# {report.title}", ""]
    if report.legend:
        lines += ["Models: " + "; ".join(f"{k} = {m}" for k, m in report.legend.items()), ""]
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    lines += [markdown(report.main), "", cell_legend(report.cells, _splits(report)), ""]
    lines += ["## Is the difference real?", ""] + summary_lines(report) + [""]
    if report.significance is not None:
        lines += [markdown(report.significance), ""]
    if report.between_grid is not None:
        lines += [markdown(report.between_grid), ""]
    if report.significance is not None or report.between_grid is not None:
        lines += [SIGNIFICANCE_TEXT, ""]
    lines += markdown_sections(report.diagnostics, report.legend)
    if report.sweep is not None:
        lines += ["## Shot sweep", "", markdown(report.sweep), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(root) if root else p})" for p in figures] + [""]
    lines += _bands_markdown(report) + _table3_markdown(report) + _changes_markdown(report)
    lines += contamination_markdown(report.contamination)  # runs made with --overlap; [] otherwise
    lines += _published_markdown(report)
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)


SIGNIFICANCE_TEXT = (
    "p: the paired test's own p-value. p (Holm): Holm's step-down adjustment across every comparison of the table "
    "(sort the m p-values, multiply the i-th smallest by m − i + 1, keep them non-decreasing, cap at 1); a "
    f"difference counts where it is below {ALPHA}, so the chance of even one false finding among the m stays "
    f"below {ALPHA}, where m tests at {ALPHA} each would make about {ALPHA} × m false findings. MDD: the minimum "
    f"detectable difference, the smallest true difference the test finds {POWER:.0%} of the time at {ALPHA} "
    "(McNemar: from the share of examples the two settings disagree on; bootstrap: from the spread of its "
    "resampled differences; before Holm's correction, which makes it somewhat larger). Reading: better / worse "
    "in the metric's own direction (a lower perplexity, TER or bits per byte is better), after the correction; "
    "'not detectable (MDD x)' means a true difference of x or more would probably have shown, never that there "
    "is none.")
BANDS_TEXT = ("Ours (seed mean; FS at the largest k run) beside GPT-3 Small (125M) and Medium (350M), the GPT-3 sizes "
              "closest to GPT-2-class models, in each setting; GPT-3's FS uses the paper's k. Plausibility bands, "
              "not targets: other models, data and context length.")
CHANGES_TEXT = (f"Examples whose prediction changed, per task: fixed / broken = the primary metric got better / worse, "
                f"other = a different prediction with the same score. The HTML report shows up to {CAP} per comparison "
                "with prompts, choices' scores or generations and references, and per-example metrics.")


def _source_line(s) -> str:
    return f"{s.id}: {s.title}. Read at {s.read_at}. {s.notes}"


def _bands_markdown(report: Report) -> list[str]:
    if report.bands is None:
        return []
    return ["## GPT-3 plausibility bands (Table H.1)", "", BANDS_TEXT, "", markdown(report.bands), "",
            f"- {_source_line(report.band_source)}", ""]


def _table3_markdown(report: Report) -> list[str]:
    if report.table3 is None:
        return []
    return ["## GPT-2 Table 3 (zero-shot language modelling)", "", report.table3.caption, "",
            markdown(report.table3), "", f"- {_source_line(TABLE3_SOURCE)}", ""]


def _changes_markdown(report: Report) -> list[str]:
    if not report.changes:
        return []
    return ["## Examples behind a difference", "", CHANGES_TEXT, "", markdown(changes_table(report.changes)), ""]


def _published_markdown(report: Report) -> list[str]:
    if not report.published.rows:
        return []
    lines = ["## Published reference numbers", "",
             "Stored in harness/published.toml; shown beside ours (column 'published') "
             "only where the model is the same.",
             "", markdown(report.published), ""]
    return lines + [f"- {s.id}: {s.title}. Read at {s.read_at}. {s.notes}" for s in report.sources] + [""]


def render_latex(report: Report) -> str:
    """A standalone LaTeX fragment (needs \\usepackage{booktabs}): the main table, then the tests."""
    parts = [f"% {report.title}: generated by harness; needs \\usepackage{{booktabs}}", latex(report.main)]
    if report.significance is not None:
        parts.append(latex(report.significance))
    if report.between_grid is not None:
        parts.append(latex(report.between_grid))
    parts += latex_sections(report.diagnostics, report.legend)
    return "\n\n".join(parts) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.82em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; text-align: center; }
td:first-child, td:nth-child(2) { text-align: left; white-space: nowrap; }
td.sig { background: #fff3c4; font-weight: 600; }
caption { caption-side: bottom; font-size: 0.9em; color: #555; text-align: left; }
p.legend, li { font-size: 0.9em; color: #444; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 100%; border: 1px solid #eee; }
h3 { font-size: 1.05em; } details.flips { margin: 0.3em 0; font-size: 0.88em; }
details.flips > summary { cursor: pointer; }
"""


def figure_html(path: Path) -> str:
    """A PNG inlined as a data URI, captioned with its file name."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.stem)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _paragraphs(lines) -> str:
    return "".join(f"<li>{html.escape(line)}</li>" for line in lines)


def _summary_html(lines: list[str]) -> str:
    """Sentences as paragraphs, each run of '- ' findings as one list."""
    out, items = [], []
    for line in lines + [""]:
        if line.startswith("- "):
            items.append(line.removeprefix("- "))
            continue
        if items:
            out.append(f"<ul>{_paragraphs(items)}</ul>")
            items = []
        if line:
            out.append(f"<p>{html.escape(line)}</p>")
    return "".join(out)


def render_html(report: Report, figures: list[Path] = ()) -> str:
    """The whole page, self-contained: inline CSS, figures as base64 data URIs, no scripts, no external
    requests, so it opens in any browser and can be mailed as one file."""
    esc = html.escape
    summary = [line for line in summary_lines(report) if line]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(report.title)}</title>",
             f"<style>{CSS}{EXAMPLES_CSS if report.changes else ''}</style></head><body>",
             f"<h1>{esc(report.title)}</h1>"]
    if report.legend:
        parts.append("<p>Models: " + "; ".join(f"<b>{esc(k)}</b> = {esc(m)}" for k, m in report.legend.items())
                     + "</p>")
    if report.warnings:
        parts += ["<h2>Warnings</h2>", f"<ul>{_paragraphs(report.warnings)}</ul>"]
    parts += ["<h2>Scores</h2>", html_table(report.main, "scores main"),
              f'<p class="legend">{esc(cell_legend(report.cells, _splits(report)))}</p>',
              "<h2>Is the difference real?</h2>", _summary_html(summary)]
    if report.significance is not None:
        parts.append(html_table(report.significance, "scores significance"))
    if report.between_grid is not None:
        parts.append(html_table(report.between_grid, "scores significance"))
    if report.significance is not None or report.between_grid is not None:
        parts.append(f'<p class="legend">{esc(SIGNIFICANCE_TEXT)}</p>')
    parts += html_sections(report.diagnostics, report.legend)
    if report.sweep is not None:
        parts += ["<h2>Shot sweep</h2>", html_table(report.sweep, "scores sweep")]
    if figures:
        parts += ["<h2>Figures</h2>"] + [figure_html(p) for p in figures]
    if report.bands is not None:
        parts += ["<h2>GPT-3 plausibility bands (Table H.1)</h2>", f'<p class="legend">{esc(BANDS_TEXT)}</p>',
                  html_table(report.bands, "scores bands"),
                  f"<ul>{_paragraphs([_source_line(report.band_source)])}</ul>"]
    if report.changes:
        parts += ["<h2>Examples behind a difference</h2>", f'<p class="legend">{esc(CHANGES_TEXT)}</p>',
                  html_table(changes_table(report.changes), "scores changes"), changes_html(report.changes)]
    parts += contamination_html(report.contamination)  # runs made with --overlap; [] otherwise
    if report.published.rows:
        parts += ["<h2>Published reference numbers</h2>", html_table(report.published, "scores published"),
                  "<ul>" + _paragraphs(f"{s.id}: {s.title}. Read at {s.read_at}. {s.notes}" for s in report.sources)
                  + "</ul>"]
    if report.notes:
        parts += ["<h2>Notes</h2>", f"<ul>{_paragraphs(report.notes)}</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(folder: Path, frame: pd.DataFrame, samples: pd.DataFrame | None, title: str,
                 finetune: dict[str, dict[str, Lineage]] | None = None, models: dict[str, dict] | None = None,
                 published_dir=None, warnings=(), contamination=()) -> list[Path]:
    """report.md, report.tex, report.html and plots/*.png in `folder`; returns the written paths.
    `models`: model -> run.json "model" record; `published_dir`: where gpt3_table_h1.csv is (build_report);
    `contamination`: the Contamination of each run made with --overlap."""
    return write_pages(folder, build_report(frame, samples, title, finetune, models, published_dir, warnings,
                                            contamination))


def write_pages(folder: Path, report: Report) -> list[Path]:
    """A built report's report.md, report.tex, report.html and plots/*.png in `folder`; the written paths."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = [p for p in [summary_figure(report.cells, report.paired, folder / "plots" / "summary.png")] if p]
    figures += sweep_figures(report.cells, folder / "plots")
    figures += kshot_figures(report.cells, folder / "plots")
    figures += scale_figures(report.cells, report.params or {}, report.table_h1, folder / "plots")
    if report.diagnostics is not None:
        figures += reliability_figures(report.diagnostics.reliability, folder / "plots")
        figures += selective_figures(report.diagnostics.selective, folder / "plots")
    written = {"report.md": render_markdown(report, figures, folder), "report.tex": render_latex(report),
               "report.html": render_html(report, figures)}
    for name, text in written.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in written] + figures


def terminal_summary(report: Report) -> str:
    """What a finished run prints: the scores table, its legend and the paired tests' answer in a few lines; the
    whole report (paired-test table, figures, published numbers, notes) stays in report.md / report.html."""
    lines = []
    if report.legend:
        lines += ["Models: " + "; ".join(f"{k} = {m}" for k, m in report.legend.items()), ""]
    lines += [markdown(report.main), "", cell_legend(report.cells, _splits(report))]  # warnings: on stderr already
    found, bullets = [], 0
    for line in summary_lines(report, undetected=False):
        bullets += line.startswith("- ")
        if line and not (line.startswith("- ") and bullets > SHOWN_FINDINGS):
            found.append(line)
    if bullets > SHOWN_FINDINGS:
        found.append(f"- ... and {bullets - SHOWN_FINDINGS} more in report.md")
    return "\n".join(lines + [""] + found)
