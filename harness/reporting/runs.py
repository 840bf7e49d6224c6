"""Reading run folders back: scores.csv (old and new columns), samples.jsonl, run.json, merged.

A report or a comparison starts here. Older scores.csv files without the `note` column read as if
every cell were measured; a cell that could not be measured has value NaN, n 0 and its reason in `note`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.lineage import Lineage
from harness.records import SCORE_COLUMNS, TaskKind
from harness.samples import Sample
from harness.tasks.kinds import read_sample

SAMPLE_KEYS = ["model", "task", "setting", "k", "seed", "example_id", "metric"]  # one per-example value each


@dataclass(frozen=True)
class Run:
    folder: Path
    scores: pd.DataFrame  # the long table, with a `note` column
    samples: pd.DataFrame | None  # per-example metric values (SAMPLE_KEYS + value), None without samples.jsonl
    manifest: dict  # run.json, {} when absent


def normalize_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """The long table with every column a report reads; fills in what older runs did not write."""
    frame = frame.copy()
    defaults = {"note": "", "k_used_mean": frame.get("k", 0), "n_truncated": 0, "seed": 0, "run": "",
                "higher_is_better": True}
    for column, default in defaults.items():
        if column not in frame:
            frame[column] = default
    frame["note"] = ["" if pd.isna(v) else str(v) for v in frame["note"]]  # an all-empty column reads as NaN floats
    return frame.reindex(columns=SCORE_COLUMNS + [c for c in frame.columns if c not in SCORE_COLUMNS])


def load_run(folder: Path | str) -> Run:
    """One run folder; a missing folder or scores.csv is a one-line error naming the path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"{folder}: no such run folder")
    scores_path = folder / "scores.csv"
    if not scores_path.is_file():
        raise HarnessError(f"{folder}: no scores.csv in this folder (is it a run folder?)")
    try:
        scores = normalize_scores(pd.read_csv(scores_path, keep_default_na=True))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise HarnessError(f"{scores_path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = {"model", "task", "setting", "metric", "value"} - set(scores.columns)
    if missing:
        raise HarnessError(f"{scores_path}: missing columns {sorted(missing)}")
    manifest_path = folder / "run.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    samples_path = folder / "samples.jsonl"
    samples = None
    if samples_path.is_file():
        models = scores["model"].dropna().unique()
        samples = samples_frame(read_samples(samples_path, task_kinds(manifest)),
                                models[0] if len(models) else folder.name)
    return Run(folder, scores, samples, manifest)


def lineages(manifest: dict) -> dict[str, Lineage]:
    """task -> the lineage of its FT checkpoint, from run.json's "finetune"."""
    try:
        return {task: Lineage.from_json(d) for task, d in (manifest.get("finetune") or {}).items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise HarnessError(f"run.json: finetune: not a lineage ({type(e).__name__}: {e})") from None


def task_kinds(manifest: dict) -> dict[str, TaskKind]:
    """task -> its kind, from run.json's `tasks` (runs older than the `kind` entry give none)."""
    kinds = {}
    for name, entry in (manifest.get("tasks") or {}).items():
        value = entry.get("kind") if isinstance(entry, dict) else None
        if value in {k.value for k in TaskKind}:
            kinds[name] = TaskKind(value)
    return kinds


def read_samples(path: Path, kinds: dict[str, TaskKind]) -> list[Sample]:
    """samples.jsonl as records, each line's answer read as its task's kind records it."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out.append(read_sample(record, kinds.get(record.get("task"))))
            except json.JSONDecodeError:
                raise HarnessError(f"{path}:{number}: not a JSON line") from None
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise HarnessError(f"{path}:{number}: not a harness sample ({type(e).__name__}: {e})") from None
            except HarnessError as e:
                raise HarnessError(f"{path}:{number}: {e}") from None
    return out


def samples_frame(samples: list[Sample], model: str) -> pd.DataFrame:
    """One row per (example, prompt variant, metric); list-valued metrics (e.g. [logprob, words]) stay lists.
    `sample` is the whole record (shared by the rows of its metrics), read by the examples behind a difference."""
    rows = [
        {"model": model, "task": s.task, "setting": s.setting, "k": s.k, "seed": s.seed,
         "example_id": s.example_id, "metric": name, "value": value, "sample": s}
        for s in samples
        for name, value in s.metrics.items()
    ]
    return pd.DataFrame(rows, columns=SAMPLE_KEYS + ["value", "sample"])


def merge_runs(folders: list[Path | str]) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Run]]:
    """The long tables of several runs as one, and their per-example values (None if no run has samples)."""
    if not folders:
        raise HarnessError("report: give at least one run folder")
    runs = [load_run(f) for f in folders]
    frame = pd.concat([r.scores for r in runs], ignore_index=True)
    duplicated = frame.duplicated(["model", "task", "setting", "k", "seed", "metric"], keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise HarnessError(f"report: {row['model']} {row['task']} {row['setting']} k={row['k']} seed={row['seed']} "
                           f"{row['metric']} appears in more than one run "
                           f"({', '.join(frame[duplicated]['run'].unique())})")
    parts = [r.samples for r in runs if r.samples is not None]
    samples = pd.concat(parts, ignore_index=True) if parts else None
    return frame, samples, runs
