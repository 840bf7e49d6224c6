"""What changed between two runs: cells whose value moved (and whether beyond their standard errors),
cells only one run has, and the differences in configuration, model, task files, data and versions."""

from __future__ import annotations

import math

import pandas as pd

from harness.reporting.grid import Grid, markdown
from harness.reporting.runs import Run
from harness.reporting.significance import ALPHA, ITERS, paired_between
from harness.reporting.tables import fmt

CELL = ["task", "setting", "k", "seed", "metric"]  # the model may differ: comparing two models is a use too
TOLERANCE = 1e-9


def changed_cells(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Cells in both runs whose value differs; `beyond` = |difference| > sqrt(stderr_a² + stderr_b²)."""
    both = a.merge(b, on=CELL, suffixes=("_a", "_b"))
    diff = both["value_b"] - both["value_a"]
    same = (diff.abs() <= TOLERANCE) | (both["value_a"].isna() & both["value_b"].isna())
    both = both.assign(diff=diff, combined=(both["stderr_a"] ** 2 + both["stderr_b"] ** 2) ** 0.5)[~same]
    return both.assign(beyond=both["diff"].abs() > both["combined"].fillna(math.inf))


def only_in(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Cells of `a` that `b` does not have."""
    keys = set(map(tuple, b[CELL].to_numpy().tolist()))
    return a[[tuple(row) not in keys for row in a[CELL].to_numpy().tolist()]]


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


# differ on every run by design
IGNORED = ("run", "finished", "seconds", "command", "config.run_name", "config.formats", "git.")


# change speed only (DESIGN.md rule 12), and what else the numbers depend on besides the weights and requests
SPEED_ONLY = ("config.batch_tokens", "config.executor", "config.workers", "config.ray_address", "config.cache",
              "config.no_cache", "config.output_dir", "model.batch_tokens", "memory.", "platform", "skipped")
NUMERICS = ("numerics.", "model.dtype", "model.device", "model.scoring", "config.dtype", "config.device",
            "versions.torch", "versions.transformers")


def explain(changed: pd.DataFrame, changes: list[tuple[str, str, str]]) -> list[str]:
    """Why cell values changed, from the run.json differences: the numerics alone, or nothing they depend on."""
    if not len(changed):
        return []
    rest = [k for k, _, _ in changes if not k.startswith(SPEED_ONLY)]
    numeric = [k for k in rest if k.startswith(NUMERICS)]
    if rest and len(numeric) == len(rest):
        return [f"The runs differ only in what the numbers are computed with ({', '.join(numeric)}): the same "
                "weights, data and prompts; these alone move the last digits, and a near tie can flip.", ""]
    if not rest:
        return ["Nothing the numbers depend on differs (only batch budget, executor, workers or cache): harness "
                "gives the same bytes for these, so this is a bug worth reporting, unless a run predates "
                "run.json's `numerics` (an older engine).", ""]
    return []


def manifest_changes(a: dict, b: dict) -> list[tuple[str, str, str]]:
    """(key, in A, in B) for every run.json entry that differs, except those that differ by design."""
    fa, fb = _flatten(a), _flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, str(fa.get(k, "(absent)")), str(fb.get(k, "(absent)"))) for k in keys
            if fa.get(k) != fb.get(k) and not any(k == i or k.startswith(i) for i in IGNORED)]


def paired_lines(a: Run, b: Run) -> list[str]:
    """B − A per (task, metric, setting, k) on the examples both runs scored, paired by prompt text."""
    if a.samples is None or b.samples is None:
        return ["## Paired tests: not available (" + " and ".join(
            f"{x.folder.name} has no samples.jsonl" for x in (a, b) if x.samples is None) + ")", ""]
    paired = paired_between(a.samples, b.samples, a.folder.name, b.folder.name)
    tested = paired[paired["n"] >= 2]
    lines = [f"## Paired tests on the same examples: {int(tested['significant'].sum()) if len(tested) else 0} of "
             f"{len(tested)} significant at {ALPHA}", "",
             f"Examples paired by prompt text; McNemar's exact test for 0/1 metrics with one seed, else a paired "
             f"bootstrap with {ITERS} resamples.", ""]
    if len(paired):
        rows = tuple((r.task, r.metric, f"{r.setting}({r.k})", str(r.n), f"{r.only_a}/{r.only_b}",
                      "" if math.isnan(r.delta) else f"{r.delta:+.4g}",
                      "" if math.isnan(r.ci_low) else f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]",
                      "" if math.isnan(r.p_value) else f"{r.p_value:.3g}" + (" *" if r.significant else ""), r.test)
                     for r in paired.itertuples())
        labels = ("task", "metric", "setting", "paired n", "only A/only B", "B − A", "95% CI", "p", "test")
        lines += [markdown(Grid(labels, rows)), ""]
    return lines


def compare_text(a: Run, b: Run) -> str:
    """A Markdown account of the differences from run A to run B."""
    lines = [f"# {a.folder.name} → {b.folder.name}", ""]
    models = (", ".join(a.scores["model"].unique()), ", ".join(b.scores["model"].unique()))
    if models[0] != models[1]:
        lines += [f"Models differ: A = {models[0]}, B = {models[1]} "
                  "(cells are matched by task, setting, k, seed, metric).", ""]
    changed = changed_cells(a.scores, b.scores)
    lines += [f"## Cells whose value changed: {len(changed)} of {len(a.scores.merge(b.scores, on=CELL))} shared, "
              f"{int(changed['beyond'].sum()) if len(changed) else 0} beyond their combined standard error", ""]
    if len(changed):
        rows = tuple((r.task, r.metric, f"{r.setting}({r.k}) s{r.seed}", fmt(r.value_a), fmt(r.value_b),
                      f"{r.diff:+.4g}", fmt(r.combined, r.value_a), "yes" if r.beyond else "no")
                     for r in changed.itertuples())
        labels = ("task", "metric", "setting", "A", "B", "B − A", "√(se_A² + se_B²)", "beyond")
        lines += [markdown(Grid(labels, rows)), ""]
    for name, x, y in (("A", a.scores, b.scores), ("B", b.scores, a.scores)):
        extra = only_in(x, y)
        if len(extra):
            lines += [f"Only in {name}: "
                      + ", ".join(sorted({f"{r.task} {r.setting}({r.k})" for r in extra.itertuples()})), ""]
    changes = manifest_changes(a.manifest, b.manifest)
    lines += explain(changed, changes)
    lines += paired_lines(a, b)
    lines += [f"## run.json: {len(changes)} differences (config, model, task files, data hashes, versions)", ""]
    if changes:
        lines += [markdown(Grid(("key", "A", "B"), tuple((k, x[:80], y[:80]) for k, x, y in changes))), ""]
    if not a.manifest or not b.manifest:
        lines += ["(one of the runs has no run.json)", ""]
    return "\n".join(lines)
