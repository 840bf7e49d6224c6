"""The report as one self-contained HTML file: inline CSS, figures as base64 data URIs, no scripts,
no external requests, so it opens in any browser and can be mailed as one file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from harness.reporting.grid import html_table

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
"""


def figure_html(path: Path) -> str:
    """A PNG inlined as a data URI, captioned with its file name."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.stem)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _paragraphs(lines) -> str:
    return "".join(f"<li>{html.escape(line)}</li>" for line in lines)


def render_html(report, figures: list[Path] = ()) -> str:
    """The whole page; `report` is a harness.report.Report."""
    from harness.reporting.build import CELL_LEGEND, summary_lines

    esc = html.escape
    summary = [line for line in summary_lines(report) if line]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(report.title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{esc(report.title)}</h1>"]
    if report.legend:
        parts.append("<p>Models: " + "; ".join(f"<b>{esc(k)}</b> = {esc(m)}" for k, m in report.legend.items()) + "</p>")
    parts += ["<h2>Scores</h2>", html_table(report.main, "scores main"), f'<p class="legend">{esc(CELL_LEGEND)}</p>',
              "<h2>Is the difference real?</h2>", f"<p>{esc(summary[0])}</p>",
              f"<ul>{_paragraphs(line.removeprefix('- ') for line in summary[1:])}</ul>"]
    if report.significance is not None:
        parts.append(html_table(report.significance, "scores significance"))
    if report.sweep is not None:
        parts += ["<h2>Shot sweep</h2>", html_table(report.sweep, "scores sweep")]
    if figures:
        parts += ["<h2>Figures</h2>"] + [figure_html(p) for p in figures]
    if report.published.rows:
        parts += ["<h2>Published reference numbers</h2>", html_table(report.published, "scores published"),
                  "<ul>" + _paragraphs(f"{s.id}: {s.title}. Read at {s.read_at}. {s.notes}" for s in report.sources)
                  + "</ul>"]
    if report.notes:
        parts += ["<h2>Notes</h2>", f"<ul>{_paragraphs(report.notes)}</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)
