"""What `harness overlap` writes: overlap.csv (one row per example), study.json (N per task, the corpus files: what a
run's --overlap records), summary.md, and a short table for stdout. overlap.csv and study.json hold no timing and
no worker count: the same corpus and tasks give the same bytes however the scan ran."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.contamination.corpus import CorpusFile
from harness.contamination.examples import TableC1, TaskTexts
from harness.contamination.index import BYTES_PER_GRAM, GPT3_TOKENS, bloom_bits_per_gram, bloom_bytes, bloom_hashes
from harness.contamination.scan import ScanResult

COLUMNS = ("task", "example_id", "ngram", "dirty", "gram", "source", "offset")
STUDY_JSON = "study.json"
OFFSET_NOTE = ("offset: for a .txt file, the byte offset of the colliding N-gram's first word; for a .jsonl file, "
               "the byte offset where the line (the document) holding it starts")


@dataclass(frozen=True)
class TaskCount:
    task: str
    n: int
    n_source: str
    examples: int
    dirty: int
    short: int  # examples with fewer than N words, compared as a whole

    @property
    def clean(self) -> int:
        return self.examples - self.dirty

    @property
    def clean_pct(self) -> float:
        return 100.0 * self.clean / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class Study:
    """Everything one run found and measured."""

    tasks: tuple[TaskTexts, ...]
    lengths: tuple[int, ...]  # words of each text, all tasks in order (the index's owners)
    files: tuple[CorpusFile, ...]
    result: ScanResult
    table: TableC1
    grams: int  # task N-grams indexed
    index_bytes: int  # the index's arrays
    seconds: float  # the scan alone
    check_seconds: float  # the corpus check before it
    workers: int


def rows(study: Study) -> list[tuple]:
    out, owner = [], 0
    for task in study.tasks:
        for example_id, length in zip(task.ids, study.lengths[owner : owner + len(task.ids)], strict=True):
            hit = study.result.hits.get(owner)
            n = min(task.n, length) if length else task.n
            out.append((task.task, example_id, n, 0, "", "", "") if hit is None else
                       (task.task, example_id, n, 1, hit.gram, str(study.files[hit.file_index].path), hit.offset))
            owner += 1
    return out


def counts(study: Study) -> list[TaskCount]:
    out, owner = [], 0
    for task in study.tasks:
        span = range(owner, owner + len(task.ids))
        out.append(TaskCount(task.task, task.n, task.n_source, len(span), sum(o in study.result.hits for o in span),
                             sum(0 < study.lengths[o] < task.n for o in span)))
        owner += len(span)
    return out


def csv_text(study: Study) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(study))
    return buffer.getvalue()


def study_json(study: Study) -> str:
    """N per task (and where it came from), each task's split and example count, the corpus files."""
    tasks = {t.task: {"ngram": t.n, "ngram_from": t.n_source, "split": t.split, "examples": len(t.ids)}
             for t in study.tasks}
    corpus = [{"path": str(f.path), "bytes": f.size} for f in study.files]
    return json.dumps({"tasks": tasks, "corpus": corpus}, indent=2, ensure_ascii=False) + "\n"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.1f} GB"


def summary_text(study: Study) -> str:
    r, mb = study.result, study.result.bytes / 1e6
    lines = ["# N-gram overlap of tasks with a training corpus (GPT-3 paper, Appendix C)", "",
             "Each example's text is what the model reads: its zero-shot query plus its gold continuation (a "
             "perplexity task: its document), lower-cased, punctuation and whitespace dropped, as words. An example "
             "is dirty when any of its N-grams (an example shorter than N words: its whole word sequence) occurs in "
             "the corpus, clean otherwise.", "",
             "N: " + (f"Table C.1 of the GPT-3 paper ({study.table.path}); 13 for tasks it lacks."
                      if study.table.path else study.table.missing) + " `--ngram` overrides it for every task.", "",
             "| task | N | N from | examples | dirty | clean | clean % | shorter than N |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {c.task} | {c.n} | {c.n_source} | {c.examples} | {c.dirty} | {c.clean} | {c.clean_pct:.1f} | "
              f"{c.short} |" for c in counts(study)]
    speed = mb / study.seconds if study.seconds > 0 else float("inf")
    lines += ["", "## Corpus", "", "| files | bytes | words | seconds | MB/s | peak memory | workers | shards |",
              "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
              f"| {len(study.files)} | {r.bytes:,} | {r.words:,} | {study.seconds:.2f} | {speed:.1f} | "
              f"{_peak(r)} | {study.workers} | {r.shards} |", "",
              f"Checked (UTF-8, JSON lines) in {study.check_seconds:.2f} s before the scan. {OFFSET_NOTE}.", ""]
    lines += [f"- {f.path} ({f.size:,} bytes)" for f in study.files]
    lines += ["", "## Index", "", *index_lines(study.grams, study.index_bytes, r.words)]
    return "\n".join(lines) + "\n"


def _peak(r: ScanResult) -> str:
    worker = f", largest worker {r.worker_peak_rss_kb / 1024:,.0f} MB" if r.worker_peak_rss_kb else ""
    return f"{r.peak_rss_kb / 1024:,.0f} MB{worker}"


def index_lines(grams: int, index_bytes: int, words: int) -> list[str]:
    """The task-side index against the corpus-side alternative (a Bloom filter), in words."""
    one, milli = bloom_bits_per_gram(0.01), bloom_bits_per_gram(0.001)
    return [f"Task side (what this run held): {grams:,} N-gram hashes, {BYTES_PER_GRAM} bytes each plus their "
            f"filters ({_mb(index_bytes)} of arrays in all), and the task texts' words; the corpus streamed past them "
            "once.", "",
            f"Corpus side (the other direction, not run): one N-gram per corpus word at most. A Bloom filter at "
            f"false-positive rate p needs -ln(p)/ln(2)^2 bits per N-gram: {one:.2f} bits at p = 1% "
            f"({bloom_hashes(0.01)} hashes), {milli:.2f} bits at p = 0.1% ({bloom_hashes(0.001)} hashes). "
            f"For this corpus ({words:,} words): {_mb(bloom_bytes(words, 0.01))} at 1%, "
            f"{_mb(bloom_bytes(words, 0.001))} at 0.1%. For GPT-3's 300B tokens: "
            f"{_mb(bloom_bytes(GPT3_TOKENS, 0.01))} at 1%, {_mb(bloom_bytes(GPT3_TOKENS, 0.001))} at 0.1% "
            f"({_mb(bloom_bytes(1e9, 0.01))} / {_mb(bloom_bytes(1e9, 0.001))} per billion tokens)."]


def stdout_table(study: Study) -> str:
    header = ("task", "N", "examples", "dirty", "clean", "clean %")
    body = [(c.task, str(c.n), str(c.examples), str(c.dirty), str(c.clean), f"{c.clean_pct:.1f}")
            for c in counts(study)]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    fmt = lambda row: "  ".join(v.ljust(w) if i == 0 else v.rjust(w)  # noqa: E731
                                for i, (v, w) in enumerate(zip(row, widths, strict=True)))
    r = study.result
    speed = r.bytes / 1e6 / study.seconds if study.seconds > 0 else float("inf")
    return "\n".join([fmt(header), *map(fmt, body),
                      f"corpus: {len(study.files)} files, {r.bytes:,} bytes, {r.words:,} words in "
                      f"{study.seconds:.1f} s ({speed:.1f} MB/s, {study.workers} workers), peak memory {_peak(r)}"])


def write(study: Study, out: Path) -> Sequence[Path]:
    """overlap.csv, study.json and summary.md in `out`, each written whole (a temporary file renamed into place)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("overlap.csv", csv_text(study)), (STUDY_JSON, study_json(study)),
                       ("summary.md", summary_text(study))):
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            os.replace(tmp, out / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(out / name)
    return written
