"""A run's contamination files: <run>/contamination.csv (the subset scores, one long table) and <run>/overlap.csv
(the labels of the run's evaluated examples, overlap.csv's own columns), written by the run, read by `harness report`
with run.json's "contamination" entry. A run folder without contamination.csv was made without --overlap.

contamination.csv: scores.csv's key columns with `subset` (all, dirty, clean) after `metric`; an empty value is NaN
(an empty subset, or a standard error below 2 examples), as pandas writes scores.csv.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from harness.contamination.output import COLUMNS as LABEL_COLUMNS
from harness.contamination.study import CSV_NAME, parse_labels, read_bytes
from harness.contamination.subsets import SUBSETS, Contamination, SubsetScore
from harness.errors import HarnessError

SCORES_NAME = "contamination.csv"
COLUMNS = ("run", "model", "task", "setting", "k", "seed", "metric", "subset", "value", "stderr", "n",
           "higher_is_better")


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def scores_text(contamination: Contamination, run: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in contamination.scores:
        writer.writerow((run, s.model, s.task, s.setting, s.k, s.seed, s.metric, s.subset, _number(s.value),
                         _number(s.stderr), s.n, s.higher_is_better))
    return buffer.getvalue()


def labels_text(contamination: Contamination) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    writer.writerows(label.row() for label in contamination.labels)
    return buffer.getvalue()


def write_files(contamination: Contamination, folder: Path, run: str) -> list[Path]:
    """contamination.csv and overlap.csv in the (temporary) run folder."""
    written = []
    for name, text in ((SCORES_NAME, scores_text(contamination, run)), (CSV_NAME, labels_text(contamination))):
        (folder / name).write_text(text, encoding="utf-8", newline="")
        written.append(folder / name)
    return written


def read_files(folder: Path, manifest: dict) -> Contamination | None:
    """A run folder's contamination (None for a run without --overlap); a one-line error naming the file when
    a file is garbled or run.json lacks the study."""
    path = Path(folder) / SCORES_NAME
    if not path.is_file():
        return None
    entry = manifest.get("contamination")
    if not isinstance(entry, dict):
        raise HarnessError(f"{Path(folder) / 'run.json'}: no \"contamination\" entry, though {SCORES_NAME} is there")
    labels_path = Path(folder) / CSV_NAME
    if not labels_path.is_file():
        raise HarnessError(f"{path}: no {CSV_NAME} beside it (the labels of the run's examples)")
    labels = tuple(parse_labels(labels_path, read_bytes(labels_path, "")).values())
    try:
        return Contamination.from_json(entry, labels, _scores(path))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise HarnessError(f"{Path(folder) / 'run.json'}: contamination: not a study record "
                           f"({type(e).__name__}: {e})") from None


def _scores(path: Path) -> tuple[SubsetScore, ...]:
    try:
        reader = csv.DictReader(io.StringIO(read_bytes(path, "").decode("utf-8"), newline=""))
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise HarnessError(f"{path}: header {reader.fieldnames}, expected {','.join(COLUMNS)}")
        rows = []
        for row in reader:
            if row["subset"] not in SUBSETS:
                raise HarnessError(f"{path}:{reader.line_num}: subset {row['subset']!r} is not one of {SUBSETS}")
            rows.append(SubsetScore(row["model"], row["task"], row["setting"], int(row["k"]), int(row["seed"]),
                                    row["metric"], row["subset"], _float(row["value"]), _float(row["stderr"]),
                                    int(row["n"]), json.loads(row["higher_is_better"].lower())))
        return tuple(rows)
    except (UnicodeDecodeError, csv.Error, ValueError, TypeError) as e:
        raise HarnessError(f"{path}: not a contamination table ({type(e).__name__}: {e})") from None


def _float(text: str) -> float:
    return math.nan if text == "" else float(text)
