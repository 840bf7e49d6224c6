"""One table shape, three renderings: Markdown, LaTeX (booktabs, escaped) and HTML (escaped).

A Grid is a header (groups spanning columns, then labels) and body rows of plain text; the renderers
only escape and lay out, so the three formats always carry the same numbers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Grid:
    labels: tuple[str, ...]  # one per column
    rows: tuple[tuple[str, ...], ...]
    groups: tuple[tuple[str, int], ...] = ()  # (group label, columns spanned) over the labels; () = none
    caption: str = ""
    marks: tuple[tuple[bool, ...], ...] = field(default=())  # per body cell: highlight (significant)

    def __post_init__(self):
        assert all(len(r) == len(self.labels) for r in self.rows), "every row needs one cell per label"
        assert not self.groups or sum(span for _, span in self.groups) == len(self.labels)


def markdown(grid: Grid) -> str:
    """A pipe table; column groups, which Markdown cannot span, prefix their labels ("A: ZS")."""
    labels = list(grid.labels)
    if grid.groups:
        i = 0
        for group, span in grid.groups:
            for j in range(i, i + span):
                labels[j] = f"{group}: {labels[j]}" if group else labels[j]
            i += span
    lines = ["| " + " | ".join(labels) + " |",
             "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(labels))) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in grid.rows]
    return "\n".join(lines)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
          "σ": r"$\sigma$", "≈": r"$\approx$", "<": r"$<$", ">": r"$>$", "–": "--", "×": r"$\times$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def latex(grid: Grid) -> str:
    """A booktabs tabular inside a table float, with \\cmidrule under each column group."""
    spec = "ll" + "r" * (len(grid.labels) - 2)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if grid.groups:
        cells, rules, col = [], [], 1
        for group, span in grid.groups:
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(group)}}}" if span > 1 else latex_escape(group))
            if group:
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines += [" & ".join(latex_escape(label) for label in grid.labels) + r" \\", r"\midrule"]
    for i, row in enumerate(grid.rows):
        marks = grid.marks[i] if grid.marks else (False,) * len(row)
        lines.append(" & ".join(rf"\textbf{{{latex_escape(c)}}}" if m else latex_escape(c)
                                for c, m in zip(row, marks, strict=True)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if grid.caption:
        lines.append(rf"\caption{{{latex_escape(grid.caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def html_table(grid: Grid, css_class: str = "scores") -> str:
    """A <table> with a two-level header; significant cells get class "sig"."""
    esc = html.escape
    head = []
    if grid.groups:
        head.append("<tr>" + "".join(f'<th colspan="{span}">{esc(group)}</th>' for group, span in grid.groups)
                    + "</tr>")
    head.append("<tr>" + "".join(f"<th>{esc(label)}</th>" for label in grid.labels) + "</tr>")
    body = []
    for i, row in enumerate(grid.rows):
        marks = grid.marks[i] if grid.marks else (False,) * len(row)
        body.append("<tr>" + "".join(f'<td class="sig">{esc(c)}</td>' if m else f"<td>{esc(c)}</td>"
                                     for c, m in zip(row, marks, strict=True)) + "</tr>")
    caption = f"<caption>{esc(grid.caption)}</caption>" if grid.caption else ""
    return (f'<table class="{css_class}">{caption}<thead>{"".join(head)}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>')
