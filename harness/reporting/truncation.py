"""The report's account of truncated inputs: per task and setting, how many examples were cut and what was cut.

An input longer than the model's context keeps its last tokens (lm-evaluation-harness's rule): after fitting
has dropped every demonstration it can, what is cut is the start of the prompt, i.e. the task description and
the start of the question. scores.csv has the count (n_truncated); samples.jsonl has the tokens cut per example.
"""

from __future__ import annotations

import pandas as pd

from harness.reporting.tables import column_label

PREVIEW = 60  # characters of the prompt's start shown for the most-cut example


def truncation_notes(cells: pd.DataFrame, samples: pd.DataFrame | None) -> tuple[str, ...]:
    """One line per (model, task, setting, k) with truncated inputs; tokens and text from samples when present."""
    cut = cells[cells["n_truncated"] > 0].drop_duplicates(["model", "task", "setting", "k"])
    cut_tokens = _tokens_cut(samples)
    lines = []
    for r in cut.itertuples():
        line = (f"Truncated inputs: {r.model} {r.task} {column_label(r.setting, r.k)}: {r.n_truncated} of {r.n} "
                f"examples were longer than the model's context and lost the start of their prompt")
        found = cut_tokens.get((r.model, r.task, r.setting, r.k))
        if found:
            tokens, prompt = found
            line += (f"; tokens cut per example: max {max(tokens)}, mean {sum(tokens) / len(tokens):.1f}; "
                     f"the most-cut prompt, whose first {max(tokens)} tokens were dropped, began {_preview(prompt)}")
        lines.append(line + " (cut from the left, as lm-evaluation-harness does; 'truncated' in samples.jsonl)")
    return tuple(lines)


def _tokens_cut(samples: pd.DataFrame | None) -> dict[tuple, tuple[list[int], str]]:
    """(model, task, setting, k) -> (tokens cut of each truncated example, the prompt of the most-cut one)."""
    if samples is None or samples.empty or "sample" not in samples.columns:
        return {}
    out: dict[tuple, tuple[list[int], str]] = {}
    first = samples.drop_duplicates(["model", "task", "setting", "k", "seed", "example_id"])
    for row in first.itertuples():
        n = row.sample.answer.truncated
        if n <= 0:
            continue
        key = (row.model, row.task, row.setting, int(row.k))
        tokens, prompt = out.get(key, ([], ""))
        if not tokens or n > max(tokens):
            prompt = row.sample.prompt
        out[key] = (tokens + [n], prompt)
    return out


def _preview(prompt: str) -> str:
    text = prompt[:PREVIEW].replace("\n", "\\n")
    return f"“{text}{'…' if len(prompt) > PREVIEW else ''}”"
