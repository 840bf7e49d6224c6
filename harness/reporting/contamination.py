"""The report's "Contamination (GPT-3 Table C.1 layout)" section, for runs made with `harness run --overlap DIR`.

Per task, prompt variant and metric, as Table C.1 lays out a row: the score on all examples, on the dirty ones and
on the clean ones (the run's contamination.csv: each the metric's own aggregate over its subset), their counts,
the clean share, the relative difference (clean − all) / all, and a test of dirty against clean; under each task,
GPT-3 175B's Table C.1 row (few-shot, accuracies as fractions) where the table has the task, on the metric of ours
that gpt3.H1_NAMES pairs it with. Then the dirty examples with their colliding N-gram and their own value in each
setting, those scoring furthest above the clean subset first (report.html: up to HTML_EXAMPLES per task;
report.md: MD_EXAMPLES).

The test: dirty and clean are different examples, so it is unpaired: a two-sided permutation test of dirty − clean
(the metric's aggregate on each side) over PERMUTATIONS seeded relabellings of the task's labelled examples, the
dirty count kept; p = (1 + relabellings at least as extreme) / (1 + PERMUTATIONS). Every metric aggregates from
column sums (metrics.py), so the same test serves accuracies, perplexities and corpus BLEU; a perplexity is tested
on its logarithm (compared_scale), the table's dirty − clean stays in its own units.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.contamination.examples import TableC1, load_table_c1
from harness.contamination.subsets import Contamination, SubsetScore
from harness.metrics import METRICS
from harness.reporting.gpt3 import H1_NAMES
from harness.reporting.grid import Grid, html_table, markdown
from harness.reporting.significance import ALPHA
from harness.reporting.tables import SETTING_ORDER, column_label, fmt, signed

PERMUTATIONS = 2000
PERMUTATION_SEED = 4321
BLOCK = 250  # relabellings per matrix product
MD_EXAMPLES = 5
HTML_EXAMPLES = 200
PROMPT_CHARS = 600
GPT3_ROW = "GPT-3 175B (Table C.1)"
TITLE = "Contamination (GPT-3 Table C.1 layout)"
LABELS = ("task", "model", "setting", "metric", "N", "all", "n", "dirty", "dirty n", "clean", "clean n", "clean %",
          "rel. diff", "dirty − clean", "p")
READ_TEXT = (
    "How to read this section: an example is dirty when its text (the zero-shot query and its gold answer, as "
    "lower-cased words) shares an N-gram with the study's training corpus (N per task from the GPT-3 paper's "
    "Table C.1, else 13), clean otherwise. all / dirty / clean: the same metric, by its own aggregate, on every "
    "evaluated example, on the dirty ones and on the clean ones; clean %: clean / evaluated; rel. diff: "
    "(clean − all) / all, Table C.1's relative difference. A dirty subset scoring clearly better than the clean one "
    "(rel. diff below 0 for a higher-is-better metric, above 0 for a perplexity) says memorised examples may inflate "
    "the score; near 0, the score stands on the clean examples. p: a two-sided permutation test of dirty − clean "
    f"(unpaired: they are different examples; {PERMUTATIONS} seeded relabellings; perplexities compared as their "
    f"logarithms, the mean loss), * below {ALPHA}. Dirty examples "
    "can also be easier or harder in themselves: a small p flags the examples listed below for reading, it does not "
    "prove memorisation. GPT-3 175B's row: its few-shot scores in Table C.1, on all of its examples.")


@dataclass(frozen=True)
class DirtyExample:
    model: str
    task: str
    example_id: str
    ngram: int
    gram: str  # the colliding N-gram
    where: str  # corpus file:offset
    metric: str
    values: tuple[tuple[str, float, float], ...]  # (variant, the metric on this example alone, on the clean subset)
    lift: float  # how far it scores above the clean subset in its first variant (higher-is-better units)
    prompt: str  # what the model read in that variant (report.html)


@dataclass(frozen=True)
class ContaminationSection:
    grid: Grid
    examples: tuple[DirtyExample, ...]
    notes: tuple[str, ...]


Key = tuple[str, str, str, int, int, str]  # (model, task, setting, k, seed, metric)


def permutation_test(values: np.ndarray, dirty: np.ndarray, aggregate,
                     permutations: int = PERMUTATIONS) -> tuple[float, float]:
    """(aggregate on dirty − aggregate on clean, two-sided permutation p) of (n, m) per-example values
    (permutations 0: the difference alone, p NaN)."""
    n, d = len(values), int(dirty.sum())
    if d == 0 or d == n:
        return math.nan, math.nan
    total = values.sum(axis=0)

    def stat(sums: np.ndarray) -> np.ndarray:
        return aggregate(sums, d) - aggregate(total - sums, n - d)

    with np.errstate(all="ignore"):
        observed = float(stat(values[dirty].sum(axis=0)))
    if not math.isfinite(observed) or permutations == 0:
        return observed, math.nan
    rng = np.random.default_rng(PERMUTATION_SEED)
    tolerance = 1e-9 * max(1.0, abs(observed))  # a relabelling equal to the observed split counts as extreme
    extreme = 0
    for start in range(0, permutations, BLOCK):
        b = min(BLOCK, permutations - start)
        chosen = np.argsort(rng.random((b, n)), axis=1)[:, :d]  # (b, d) the relabelled dirty examples
        masks = np.zeros((b, n))
        np.put_along_axis(masks, chosen, 1.0, axis=1)
        with np.errstate(all="ignore"):
            extreme += int(np.sum(np.abs(stat(masks @ values)) >= abs(observed) - tolerance))  # (b,)
    return observed, (1 + extreme) / (1 + permutations)


def _by_example(samples: pd.DataFrame | None) -> tuple[dict[Key, dict[str, object]], dict[tuple, str]]:
    """(key -> example_id -> per-example value, (model, task, setting, k, seed, example_id) -> prompt)."""
    if samples is None or samples.empty:
        return {}, {}
    values: dict[Key, dict[str, object]] = {}
    prompts: dict[tuple, str] = {}
    for r in samples.itertuples(index=False):
        values.setdefault((r.model, r.task, r.setting, int(r.k), int(r.seed), r.metric), {})[r.example_id] = r.value
        if "sample" in samples.columns and r.sample is not None:
            prompts.setdefault((r.model, r.task, r.setting, int(r.k), int(r.seed), r.example_id), r.sample.prompt)
    return values, prompts


def _one(metric: str, value) -> float:
    """The metric on one example alone."""
    if value is None or metric not in METRICS:
        return math.nan
    with np.errstate(all="ignore"):
        return float(METRICS[metric].aggregate(np.atleast_1d(np.asarray(value, dtype=np.float64)), 1))


def _cells(scores: Sequence[SubsetScore]) -> dict[Key, dict[str, SubsetScore]]:
    """key -> subset -> its score; tasks in order, then ZS, 1S, FS by k, FT; seeds; metrics in order."""
    cells: dict[Key, dict[str, SubsetScore]] = {}
    for s in scores:
        cells.setdefault((s.model, s.task, s.setting, s.k, s.seed, s.metric), {})[s.subset] = s
    tasks = {task: i for i, task in enumerate(dict.fromkeys(key[1] for key in cells))}
    metrics = {metric: i for i, metric in enumerate(dict.fromkeys(key[5] for key in cells))}
    order = sorted(cells, key=lambda k: (tasks[k[1]], SETTING_ORDER.get(k[2], 9), k[3], k[4], metrics[k[5]]))
    return {key: cells[key] for key in order}


def _label(key: Key, cells: dict[Key, dict[str, SubsetScore]]) -> str:
    seeds = {k[4] for k in cells if k[:4] == key[:4] and k[5] == key[5]}
    return column_label(key[2], key[3]) + (f" seed {key[4]}" if len(seeds) > 1 else "")


def _value(s: SubsetScore, reference: float) -> str:
    return "n/a" if s.n == 0 or math.isnan(s.value) else fmt(s.value, reference)


def _row(key: Key, by: dict[str, SubsetScore], n_gram: int | None, label: str, test: tuple[float, float]):
    every, dirty, clean = by["all"], by["dirty"], by["clean"]
    rel = (clean.value - every.value) / every.value * 100 if every.value and clean.n else math.nan
    delta, p = test
    cells = (key[1], key[0], label, key[5], "" if n_gram is None else str(n_gram), _value(every, every.value),
             str(every.n), _value(dirty, every.value), str(dirty.n), _value(clean, every.value), str(clean.n),
             f"{100 * clean.n / every.n:.0f}" if every.n else "n/a", "n/a" if math.isnan(rel) else f"{rel:+.1f}%",
             "" if math.isnan(delta) else signed(delta, every.value),
             "" if math.isnan(p) else f"{p:.3g}" + ("*" if p < ALPHA else ""))
    marks = tuple(i == len(cells) - 1 and not math.isnan(p) and p < ALPHA for i in range(len(cells)))
    return cells, marks


def _gpt3_row(task: str, metrics: Sequence[str], table: TableC1) -> tuple[str, ...] | None:
    """GPT-3 175B's Table C.1 row of `task`, on the metric of ours H1_NAMES pairs with it, in our units."""
    row = table.rows.get(task)
    if row is None:
        return None
    name = next((v for (paper, metric), v in H1_NAMES.items()
                 if paper.lower() == row["task"].lower() and metric.lower() == row["metric"].lower()), None)
    if name is None:
        return None
    ours = next((m for m in name.metrics if m in metrics), name.metrics[0])

    def number(text: str) -> str:
        return "n/a" if not text else fmt(float(text) * name.scale, float(row["all"]) * name.scale)

    return (task, GPT3_ROW, "FS", f"{ours} ({row['metric']}, {row['split']})", row["ngram"], number(row["all"]),
            row["total_n"], number(row["dirty"]), row["dirty_n"], number(row["clean"]), row["clean_n"],
            row["clean_pct"], f"{float(row['rel_diff_pct']):+.0f}%", "", "")


def contamination_section(runs: Sequence[Contamination], samples: pd.DataFrame | None,
                          published_dir=None) -> ContaminationSection | None:
    """The section over every run made with --overlap (None when there is none)."""
    if not runs:
        return None
    table = load_table_c1(published_dir)
    values, prompts = _by_example(samples)
    rows, marks, examples, notes, shown = [], [], [], [], set()
    for run in runs:
        cells = _cells(run.scores)
        labels = {(label.task, label.example_id): label for label in run.labels}
        for task in dict.fromkeys(key[1] for key in cells):
            keys = [key for key in cells if key[1] == task]
            for key in keys:
                cells_row, mark = _row(key, cells[key], run.facts.ngram.get(task), _label(key, cells),
                                       _test(key, values, labels))
                rows.append(cells_row)
                marks.append(mark)
            gpt3 = _gpt3_row(task, list(dict.fromkeys(key[5] for key in keys)), table) if task not in shown else None
            if gpt3 is not None:
                rows.append(gpt3)
                marks.append((False,) * len(LABELS))
                shown.add(task)
            examples += _dirty(keys, cells, labels, values, prompts)
        notes += _notes(run)
    if shown:
        notes.append(f"{GPT3_ROW}: Brown et al. 2020, Language Models are Few-Shot Learners, Table C.1 "
                     f"({table.path}; see its PROVENANCE.md): the few-shot score of the 175B model on its own "
                     "examples and corpus, for reference, not a target; accuracies shown as fractions.")
    elif table.path is None:
        notes.append(f"No GPT-3 rows: {table.missing}.")
    return ContaminationSection(Grid(LABELS, tuple(rows), marks=tuple(marks)), tuple(examples), tuple(notes))


def compared_scale(name: str):
    """The aggregate the test compares: a perplexity's logarithm (the mean loss per token, word or byte, where its
    differences are symmetric: one very perplexed example would otherwise outweigh many), else the metric's own."""
    aggregate = METRICS[name].aggregate
    if not name.endswith("perplexity"):
        return aggregate
    return lambda sums, n: np.log(aggregate(sums, n))


def _test(key: Key, values: dict[Key, dict[str, object]], labels: dict) -> tuple[float, float]:
    """(dirty − clean in the metric's units, the permutation test's p on compared_scale)."""
    by_id = values.get(key)
    if not by_id or key[5] not in METRICS:
        return math.nan, math.nan
    ids = [i for i in by_id if (key[1], i) in labels]
    if not ids:
        return math.nan, math.nan
    rows = [np.atleast_1d(np.asarray(by_id[i], dtype=np.float64)) for i in ids]
    matrix = np.array(rows, dtype=np.float64).reshape(len(ids), -1)  # (n, m)
    dirty = np.array([labels[(key[1], i)].dirty for i in ids])
    delta, _ = permutation_test(matrix, dirty, METRICS[key[5]].aggregate, permutations=0)
    return delta, permutation_test(matrix, dirty, compared_scale(key[5]))[1]


def _dirty(keys: list[Key], cells, labels: dict, values, prompts) -> list[DirtyExample]:
    """The dirty examples of one task, on its first metric in every variant, furthest above clean first."""
    task, first = keys[0][1], keys[0][5]
    variants = [key for key in keys if key[5] == first]
    higher = cells[variants[0]]["all"].higher_is_better
    out = []
    for (t, example_id), label in labels.items():
        if t != task or not label.dirty:
            continue
        shown = tuple((_label(key, cells), _one(first, values.get(key, {}).get(example_id)),
                       cells[key]["clean"].value) for key in variants)
        lift = (shown[0][1] - shown[0][2]) * (1 if higher else -1)
        key = variants[0]
        prompt = prompts.get((key[0], task, key[2], key[3], key[4], example_id), "")
        out.append(DirtyExample(key[0], task, example_id, label.ngram, label.gram, f"{label.source}:{label.offset}",
                                first, shown, lift, prompt))
    return sorted(out, key=lambda e: -e.lift if not math.isnan(e.lift) else math.inf)


def _notes(run: Contamination) -> list[str]:
    facts, model = run.facts, run.scores[0].model if run.scores else "?"
    covered = list(dict.fromkeys(label.task for label in run.labels))
    corpus = ", ".join(f"{c.path} ({c.bytes:,} bytes)" if c.bytes >= 0 else c.path for c in facts.corpus)
    notes = [f"{model}: study {facts.path} (overlap.csv sha256 {facts.sha256[:16]}), N: "
             + ", ".join(f"{t} {facts.ngram[t]}" for t in covered if t in facts.ngram) + f"; corpus: {corpus or '?'}."]
    if run.uncovered:
        notes.append(f"{model}: not covered by the study, so no dirty / clean rows: {', '.join(run.uncovered)}.")
    notes += [f"{model}: {count} evaluated examples of {task} are not in the study (in neither subset)."
              for task, count in run.missing.items()]
    return notes


# ---------------------------------------------------------------- pages


def _first(examples: Sequence[DirtyExample], per_task: int) -> list[DirtyExample]:
    seen: dict[tuple[str, str], int] = {}
    out = []
    for e in examples:
        seen[(e.model, e.task)] = seen.get((e.model, e.task), 0) + 1
        if seen[(e.model, e.task)] <= per_task:
            out.append(e)
    return out


def examples_grid(examples: Sequence[DirtyExample], prompts: bool = False) -> Grid:
    def values(e: DirtyExample) -> str:
        return "; ".join(f"{label}: {fmt(v, c)} (clean {fmt(c)})" for label, v, c in e.values)

    labels = ("task", "model", "example", "N", "colliding N-gram", "where", "metric", "this example (clean subset)")
    rows = [(e.task, e.model, e.example_id, str(e.ngram), e.gram, e.where, e.metric, values(e))
            + ((e.prompt[:PROMPT_CHARS] + ("…" if len(e.prompt) > PROMPT_CHARS else ""),) if prompts else ())
            for e in examples]
    return Grid(labels + (("prompt",) if prompts else ()), tuple(rows))


def _examples_text(section: ContaminationSection, shown: int, cap: int) -> str:
    total = len(section.examples)
    return (f"Dirty examples ({shown} of {total} shown, at most {cap} per task), those scoring furthest above the "
            "clean subset first, with the N-gram that made each dirty and where in the corpus it was found "
            "(.txt: byte offset of its first word; .jsonl: of its document's line).")


def contamination_markdown(section: ContaminationSection | None) -> list[str]:
    """The section's Markdown lines ([] without a study)."""
    if section is None:
        return []
    lines = [f"## {TITLE}", "", READ_TEXT, "", markdown(section.grid), ""]
    if section.examples:
        shown = _first(section.examples, MD_EXAMPLES)
        lines += [_examples_text(section, len(shown), MD_EXAMPLES) + " All of them are in report.html.", "",
                  markdown(examples_grid(shown)), ""]
    return lines + [f"- {note}" for note in section.notes] + [""]


def contamination_html(section: ContaminationSection | None) -> list[str]:
    """The section's HTML parts ([] without a study)."""
    if section is None:
        return []
    esc = html.escape
    parts = [f"<h2>{esc(TITLE)}</h2>", f'<p class="legend">{esc(READ_TEXT)}</p>',
             html_table(section.grid, "scores contamination")]
    if section.examples:
        shown = _first(section.examples, HTML_EXAMPLES)
        text = _examples_text(section, len(shown), HTML_EXAMPLES)
        parts += ["<h3>Dirty examples</h3>", f'<p class="legend">{esc(text)}</p>',
                  html_table(examples_grid(shown, prompts=True), "scores contamination-examples")]
    return parts + ["<ul>" + "".join(f"<li>{esc(note)}</li>" for note in section.notes) + "</ul>"]
