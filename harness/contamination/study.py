"""A finished overlap study read back: <DIR>/overlap.csv (one label per example: dirty or clean, and the colliding
N-gram) and <DIR>/study.json (N per task, the corpus files), for `harness run --overlap DIR`; the same reader reads
the labels a run copies into its folder.

Checked before any model work, each problem one line naming the file (and the line): a missing folder or
overlap.csv, bytes that are not UTF-8, a header other than output.COLUMNS, a row with another number of fields, a
dirty value other than 0 / 1, an ngram or offset that is not a whole number, a task + example_id given twice, no
row at all. study.json is optional (studies made before it was written): without it a task's N is the largest
ngram of its rows (rows of examples shorter than N carry their length) and the corpus files are the sources of the
dirty rows, their sizes unknown (-1).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.contamination.output import COLUMNS, STUDY_JSON
from harness.errors import HarnessError
from harness.files import why

CSV_NAME = "overlap.csv"
REMAKE = "make the study again with harness overlap"


@dataclass(frozen=True)
class Label:
    """One overlap.csv row: an example of a task, dirty when one of its N-grams occurs in the corpus."""

    task: str
    example_id: str
    ngram: int  # N for this example (its length when it is shorter than the task's N)
    dirty: bool
    gram: str = ""  # the colliding words, space-separated ("" when clean)
    source: str = ""  # the corpus file of the earliest collision
    offset: int | None = None  # where in it (output.OFFSET_NOTE)

    def row(self) -> tuple:
        """The overlap.csv fields, as `harness overlap` writes them."""
        offset = "" if self.offset is None else self.offset
        return self.task, self.example_id, self.ngram, int(self.dirty), self.gram, self.source, offset


@dataclass(frozen=True)
class CorpusEntry:
    path: str
    bytes: int  # -1 when the study did not record it


@dataclass(frozen=True)
class StudyFacts:
    """Which study a run used: run.json's "contamination" records these."""

    path: str  # the study folder, as given to --overlap
    sha256: str  # of its overlap.csv
    ngram: Mapping[str, int]  # task -> N
    corpus: tuple[CorpusEntry, ...]

    def to_json(self) -> dict:
        return {"study": self.path, "overlap_sha256": self.sha256, "ngram": dict(self.ngram),
                "corpus": [{"path": c.path, "bytes": c.bytes} for c in self.corpus]}

    @classmethod
    def from_json(cls, d: Mapping) -> StudyFacts:
        return cls(str(d["study"]), str(d["overlap_sha256"]), {str(k): int(v) for k, v in d["ngram"].items()},
                   tuple(CorpusEntry(str(c["path"]), int(c["bytes"])) for c in d["corpus"]))


@dataclass(frozen=True)
class OverlapStudy:
    facts: StudyFacts
    labels: Mapping[tuple[str, str], Label]  # (task, example_id) -> its label

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the study covers, in the order of its rows."""
        return tuple(dict.fromkeys(task for task, _ in self.labels))


def parse_labels(path: Path, data: bytes) -> dict[tuple[str, str], Label]:
    """overlap.csv's bytes as labels, in row order; a one-line error naming `path` (and the line) otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 at byte {e.start} ({e.reason}); {REMAKE}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    labels: dict[tuple[str, str], Label] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise HarnessError(f"{path}: not an overlap study (header {','.join(header or []) or 'missing'}, "
                               f"expected {','.join(COLUMNS)}); {REMAKE}")
        for row in reader:
            label = _label(path, reader.line_num, row)
            if (label.task, label.example_id) in labels:
                raise HarnessError(f"{path}:{reader.line_num}: {label.task} {label.example_id} appears twice; {REMAKE}")
            labels[(label.task, label.example_id)] = label
    except csv.Error as e:
        raise HarnessError(f"{path}:{reader.line_num}: not CSV ({e}); {REMAKE}") from None
    if not labels:
        raise HarnessError(f"{path}: holds no examples (only a header); {REMAKE}")
    return labels


def _label(path: Path, line: int, row: list[str]) -> Label:
    if len(row) != len(COLUMNS):
        raise HarnessError(f"{path}:{line}: {len(row)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)}); "
                           f"{REMAKE}")
    task, example_id, ngram, dirty, gram, source, offset = row
    if dirty not in ("0", "1"):
        raise HarnessError(f"{path}:{line}: dirty is {dirty!r}, expected 0 or 1; {REMAKE}")
    if not ngram.isdigit() or int(ngram) < 1:
        raise HarnessError(f"{path}:{line}: ngram {ngram!r} is not a whole number >= 1; {REMAKE}")
    if dirty == "1" and not offset.isdigit():
        raise HarnessError(f"{path}:{line}: a dirty row needs a whole-number offset, got {offset!r}; {REMAKE}")
    if not task or not example_id:
        raise HarnessError(f"{path}:{line}: empty task or example_id; {REMAKE}")
    return Label(task, example_id, int(ngram), dirty == "1", gram, source, int(offset) if offset.isdigit() else None)


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise HarnessError(f"{what}{path}: cannot read it ({why(e)})") from None


def load_study(folder: str | Path, flag: str = "--overlap") -> OverlapStudy:
    """The study in `folder` (made by `harness overlap --out folder`), every row checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"{flag} {folder}: no such folder; make the study first: harness overlap --corpus ... "
                           f"--tasks ... --out {folder}")
    path = folder / CSV_NAME
    if not path.is_file():
        raise HarnessError(f"{flag} {folder}: no {CSV_NAME} in it ({path}); make the study with harness overlap "
                           f"--out {folder}")
    data = read_bytes(path, f"{flag} ")
    labels = parse_labels(path, data)
    ngram, corpus = _facts(folder / STUDY_JSON, labels)
    return OverlapStudy(StudyFacts(str(folder), hashlib.sha256(data).hexdigest(), ngram, corpus), labels)


def _facts(path: Path, labels: Mapping[tuple[str, str], Label]) -> tuple[dict[str, int], tuple[CorpusEntry, ...]]:
    """(task -> N, corpus files) from study.json, or from the rows when the study has none."""
    if not path.is_file():
        ngram: dict[str, int] = {}
        for label in labels.values():
            ngram[label.task] = max(ngram.get(label.task, 0), label.ngram)
        sources = dict.fromkeys(label.source for label in labels.values() if label.dirty)
        return ngram, tuple(CorpusEntry(source, -1) for source in sources)
    try:
        document = json.loads(read_bytes(path, "").decode("utf-8"))
        ngram = {str(task): int(entry["ngram"]) for task, entry in document["tasks"].items()}
        corpus = tuple(CorpusEntry(str(c["path"]), int(c["bytes"])) for c in document["corpus"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise HarnessError(f"{path}: not a study description ({type(e).__name__}: {e}); {REMAKE}") from None
    missing = sorted({task for task, _ in labels} - set(ngram))
    if missing:
        raise HarnessError(f"{path}: no N for {', '.join(missing)}, which overlap.csv holds; {REMAKE}")
    return ngram, corpus
