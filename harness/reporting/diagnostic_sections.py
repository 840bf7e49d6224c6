"""The report's sections on what lies under a cell (diagnostics.py): where its uncertainty comes from, the scoring
rules, and calibration, as Grids with one paragraph each on how to read them, for Markdown, HTML and LaTeX.

Markdown shows at most MD_ROWS rows per task and table (the task's first metric first) and says how many more the
HTML report has; HTML and LaTeX show every row, and HTML lists the examples that flip between rules. A section
with nothing to show is left out, heading and all.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

from harness.reporting.calibration import kept
from harness.reporting.diagnostics import (
    TOP,
    CellAtlas,
    CellReliability,
    CellSelective,
    Diagnostics,
    SeedSplit,
)
from harness.reporting.grid import Grid, html_table, latex, markdown
from harness.reporting.rules import Rule
from harness.reporting.tables import fmt, signed
from harness.reporting.variance import ITERS, Split

MD_ROWS = 4
ID_CAP = 40  # example ids listed per flip in the HTML

UNCERTAINTY_TEXT = (
    "How to read it: a cell scored with several demonstration seeds is uncertain for two reasons, which examples "
    "were drawn (more examples shrink it) and which demonstrations were drawn (only more seeds shrink it). "
    "'sd from examples' and 'sd from draw' are the standard deviations of the cell's mean due to each: variance "
    "components of the examples × seeds table by a two-way ANOVA (method of moments; the interaction is the rest). "
    "'draw share' is the draw's part of the mean's variance by that ANOVA and, as a cross-check, by a two-level "
    f"bootstrap ({ITERS} draws resampling examples and seeds independently). 'Δ vs ZS' is the difference against ZS "
    "on the same examples with a 95% interval that counts both sources: a t interval with Satterthwaite degrees of "
    "freedom (ANOVA) and the bootstrap's percentile interval. A large draw share says: run more seeds before "
    "reading a difference. The scores table's σ_seed is the spread of the seed means that this splits.")
RULES_TEXT = (
    "How to read it: the same log-likelihoods turned into a pick by each scoring rule, with no model call: acc = "
    "the highest log-likelihood; acc_norm = per character of the choice; acc_bytes = per UTF-8 byte; acc_per_token "
    "= per token; acc_calibrated = minus the choice's log-likelihood after the end-of-text token alone "
    "(unconditional); acc_gpt3_calibrated = minus its log-likelihood after \"Answer:\" (the GPT-3 paper's). Each "
    "column is that rule's accuracy on the same answers (seeds pooled; – where the samples lack the rule's inputs), "
    "(+a/−b): a answers it gets right that acc gets wrong, b the reverse (none shown: no flip). 'GPT-3 used' is the "
    "rule behind the paper's Table H.1 number for the task (its column highlighted in the HTML report): compare "
    "ours under that rule. Rules further apart than a standard error can change a conclusion; the HTML report "
    "lists the examples that flip.")
CALIBRATION_TEXT = (
    "How to read it: multiple choice: the softmax of the choices' log-likelihoods is the model's confidence in its "
    "pick (acc's); ECE, the expected calibration error over 10 equal-width bins, is the gap between confidence and "
    "accuracy averaged over the answers: 0 means a confidence of 0.7 is right 70% of the time; conf − acc above 0 "
    "is overconfidence. The reliability figures plot accuracy against confidence per bin (below the diagonal: "
    "overconfident). Generation: answers ranked by their log-probability log P(generation | prompt), most "
    "confident first (answers without one last); 'top 1%' is the accuracy, by the task's 0/1 metric, on the most "
    "confident 1% (answers counted in brackets), the GPT-2 paper's reading of Natural Questions (63.1% on the 1% "
    "of questions it is most confident in); 'area' averages the accuracy over every cut-off, against 'accuracy' "
    "on all. A curve falling from left to right (selective figures) means the confidence ranks right answers "
    "first; a flat one, that it carries no information. Seeds are pooled.")


def _model(legend: dict[str, str]) -> Callable[[str], str]:
    back = {m: label for label, m in legend.items()}
    return lambda model: back.get(model, model)


def _capped(items: Sequence, limit: int | None, metric_of=lambda item: "") -> tuple[list, int]:
    """At most `limit` items per task (all when None), tasks in order of appearance, each task's first metric
    first; and how many were left out."""
    if limit is None:
        return list(items), 0
    tasks = list(dict.fromkeys(item.cell.task for item in items))
    metrics = {task: list(dict.fromkeys(metric_of(i) for i in items if i.cell.task == task)) for task in tasks}
    order = sorted(items, key=lambda i: (tasks.index(i.cell.task), metrics[i.cell.task].index(metric_of(i))))
    shown = [item for task in tasks for item in [i for i in order if i.cell.task == task][:limit]]
    return shown, len(items) - len(shown)


def _interval(split: Split | None, df: bool) -> str:
    if split is None:
        return "–"
    text = f"{signed(split.mean)} [{signed(split.low, split.mean)}, {signed(split.high, split.mean)}]"
    return text + (f" (df {split.df:.1f})" if df and math.isfinite(split.df) else "")


def _share(split: Split) -> str:
    share = split.seed_share
    return "–" if math.isnan(share) else f"{100 * share:.0f}%"


def uncertainty_grid(splits: Sequence[SeedSplit], legend: dict[str, str]) -> Grid:
    name = _model(legend)
    rows = tuple((s.cell.task, s.metric, name(s.cell.model), s.cell.label, f"{s.anova.n} × {s.anova.seeds}",
                  fmt(s.anova.mean), fmt(math.sqrt(s.anova.from_examples), s.anova.mean),
                  fmt(math.sqrt(s.anova.from_seeds), s.anova.mean), f"{_share(s.anova)} / {_share(s.bootstrap)}",
                  _interval(s.vs_zs_anova, True), _interval(s.vs_zs_bootstrap, False)) for s in splits)
    labels = ("task", "metric", "model", "setting", "examples × seeds", "mean", "sd from examples", "sd from draw",
              "draw share (ANOVA / bootstrap)", "Δ vs ZS, 95% (ANOVA t)", "Δ vs ZS, 95% (bootstrap)")
    return Grid(labels, rows)


def _answers(atlas: CellAtlas) -> str:
    n, seeds = atlas.atlas.n, atlas.seeds
    return f"{n // seeds} × {seeds}" if seeds > 1 and n % seeds == 0 else str(n)


def _rule_cell(atlas: CellAtlas, rule: Rule) -> str:
    a = atlas.atlas
    if rule not in a.rules:
        return "–"
    text = fmt(a.accuracy_of(rule))
    flip = next((f for f in a.flips if f.a is Rule.ACC and f.b is rule), None)
    return text + (f" (+{len(flip.fixed)}/−{len(flip.broken)})" if flip and (flip.fixed or flip.broken) else "")


def atlas_grid(cells: Sequence[CellAtlas], legend: dict[str, str]) -> Grid:
    name = _model(legend)
    shown = [r for r in Rule if any(r in c.atlas.rules for c in cells)]
    rows = tuple((c.cell.task, name(c.cell.model), c.cell.label, _answers(c), *(_rule_cell(c, r) for r in shown),
                  c.paper.value if c.paper else "–") for c in cells)
    marks = tuple((False,) * 4 + tuple(c.paper is r and r in c.atlas.rules for r in shown) + (False,) for c in cells)
    return Grid(("task", "model", "setting", "answers", *(r.value for r in shown), "GPT-3 used"), rows,
                marks=marks)


def reliability_grid(cells: Sequence[CellReliability], legend: dict[str, str]) -> Grid:
    name = _model(legend)
    rows = tuple((c.cell.task, name(c.cell.model), c.cell.label, str(c.reliability.n), fmt(c.accuracy),
                  fmt(c.confidence), signed(c.confidence - c.accuracy), fmt(c.reliability.ece)) for c in cells)
    return Grid(("task", "model", "setting", "answers", "accuracy", "mean confidence", "conf − acc", "ECE"), rows)


def selective_grid(cells: Sequence[CellSelective], legend: dict[str, str]) -> Grid:
    name = _model(legend)
    rows = tuple((c.cell.task, name(c.cell.model), c.cell.label, c.metric,
                  str(_n(c)) if c.scored == _n(c) else f"{_n(c)} ({c.scored} scored)", fmt(c.curve.accuracy),
                  *(f"{fmt(acc)} ({kept(_n(c), q)})" for q, acc in zip(TOP, c.top, strict=True)), fmt(c.curve.area))
                 for c in cells)
    labels = ("task", "model", "setting", "metric", "answers", "accuracy",
              *(f"top {100 * q:.0f}%" for q in TOP), "area")
    return Grid(labels, rows)


def _n(c: CellSelective) -> int:
    return c.curve.kept[-1]  # the last fraction is 1: every answer


def _sections(d: Diagnostics, legend: dict[str, str], limit: int | None) -> list[tuple[str, str, list, int]]:
    """(heading, text, [(caption, grid), ...], rows left out) of each section that has something to show."""
    out = []
    splits, hidden = _capped(d.uncertainty, limit, lambda s: s.metric)
    if splits:
        out.append(("Where the uncertainty comes from", UNCERTAINTY_TEXT, [("", uncertainty_grid(splits, legend))],
                    hidden))
    atlases, hidden = _capped(d.atlases, limit)
    if atlases:
        out.append(("Scoring rules", RULES_TEXT, [("", atlas_grid(atlases, legend))], hidden))
    reliable, hidden = _capped(d.reliability, limit)
    chosen, more = _capped(d.selective, limit)
    tables = ([("Multiple choice", reliability_grid(reliable, legend))] if reliable else []) + (
        [("Generation", selective_grid(chosen, legend))] if chosen else [])
    if tables:
        out.append(("Calibration", CALIBRATION_TEXT, tables, hidden + more))
    return out


def markdown_sections(d: Diagnostics | None, legend: dict[str, str]) -> list[str]:
    lines = []
    for heading, text, tables, hidden in _sections(d, legend, MD_ROWS) if d else []:
        lines += [f"## {heading}", "", text, ""]
        for caption, grid in tables:
            lines += ([f"{caption}:", ""] if caption else []) + [markdown(grid), ""]
        if hidden:
            lines += [f"At most {MD_ROWS} rows per task here; report.html has {hidden} more.", ""]
    return lines


def latex_sections(d: Diagnostics | None, legend: dict[str, str]) -> list[str]:
    return [latex(grid) for _, _, tables, _ in (_sections(d, legend, None) if d else []) for _, grid in tables]


def _ids(keys, seeds: int) -> str:
    names = [f"{e} (seed {s})" if seeds > 1 else str(e) for e, s in keys[:ID_CAP]]
    return ", ".join(names) + (f", … (+{len(keys) - ID_CAP})" if len(keys) > ID_CAP else "")


def flips_html(cells: Sequence[CellAtlas], legend: dict[str, str]) -> str:
    """Per cell, a collapsed table of every pair of rules: how many answers flip and which."""
    esc, name, parts = html.escape, _model(legend), []
    for c in cells:
        flips = [f for f in c.atlas.flips if f.changed]
        if not flips:
            continue
        rows = tuple((f"{f.a.value} → {f.b.value}", str(len(f.changed)), str(len(f.fixed)), str(len(f.broken)),
                      _ids(f.fixed, c.seeds) or "–", _ids(f.broken, c.seeds) or "–") for f in flips)
        grid = Grid(("rules", "changed", "fixed", "broken", "fixed: examples", "broken: examples"), rows)
        summary = f"{c.cell.task} {name(c.cell.model)} {c.cell.label}: picks that change between rules"
        parts.append(f'<details class="flips"><summary>{esc(summary)}</summary>{html_table(grid, "scores flips")}'
                     "</details>")
    return "".join(parts)


def html_sections(d: Diagnostics | None, legend: dict[str, str]) -> list[str]:
    esc, parts = html.escape, []
    for heading, text, tables, _ in _sections(d, legend, None) if d else []:
        parts += [f"<h2>{esc(heading)}</h2>", f'<p class="legend">{esc(text)}</p>']
        for caption, grid in tables:
            parts += ([f"<h3>{esc(caption)}</h3>"] if caption else []) + [html_table(grid, "scores diagnostics")]
        if heading == "Scoring rules":
            parts.append(flips_html(d.atlases, legend))
    return parts
