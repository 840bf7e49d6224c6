"""One pass over a corpus against a task index: shards scanned in order, in-process or by a process pool.

A shard is read chunk by chunk; the last (longest window - 1) words of a chunk are carried into the next, so an
N-gram across a chunk boundary is found, and a .txt shard reads a few words past its end (corpus.chunks), so one
across a shard boundary is found by the shard it starts in (a hit starting at or after the shard's end is left to
the next shard). Each shard keeps the first hit of each example; the merge keeps, for each example, the hit with
the smallest (file, offset). Shards are disjoint and each finds exactly the hits that start in it, so the result
is the same for any worker count and any shard size (tests/test_contamination.py checks it).

With --workers 1 each file is one shard, read in this process. With more, files are cut into shards of about
total / (4 x workers) bytes (at least MIN_SHARD, at most MAX_SHARD) at line starts, handed to a `spawn` pool
whose workers receive the index once each.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from harness.contamination.corpus import CHUNK_BYTES, Chunk, CorpusFile, Shard, chunks, shards
from harness.contamination.index import TaskIndex, lookup
from harness.errors import HarnessError

MIN_SHARD = 1 << 16
MAX_SHARD = 1 << 26


@dataclass(frozen=True)
class Hit:
    file_index: int
    offset: int  # see corpus.py: .txt byte offset of the first word; .jsonl byte offset of the document's line
    gram: str  # the colliding words, space-separated


@dataclass(frozen=True)
class ScanSettings:
    workers: int = 1
    chunk_bytes: int = CHUNK_BYTES
    shard_bytes: int | None = None  # None: as the module docstring says; a number: shards of that size

    def __post_init__(self):
        if self.workers < 1:
            raise HarnessError(f"--workers: need at least 1 process, got {self.workers}")
        if self.chunk_bytes < 1 or (self.shard_bytes is not None and self.shard_bytes < 1):
            raise HarnessError(f"chunk_bytes / shard_bytes: need positive sizes, got {self.chunk_bytes} / "
                               f"{self.shard_bytes}")


@dataclass(frozen=True)
class ShardResult:
    hits: dict[int, Hit]  # text -> its first hit in the shard
    words: int  # words in the shard's range
    bytes: int


@dataclass(frozen=True)
class ScanResult:
    hits: dict[int, Hit]  # text -> its earliest hit in the corpus
    words: int
    bytes: int
    shards: int
    peak_rss_kb: int  # this process
    worker_peak_rss_kb: int  # the largest worker process (0 without workers)


def shard_size(files: tuple[CorpusFile, ...], settings: ScanSettings) -> int | None:
    if settings.shard_bytes is not None or settings.workers == 1:
        return settings.shard_bytes
    total = sum(f.size for f in files)
    return min(MAX_SHARD, max(MIN_SHARD, -(-total // (4 * settings.workers))))


def scan_shard(index: TaskIndex, shard: Shard, chunk_bytes: int) -> ShardResult:
    """The first hit of each text in `shard`, and its word count."""
    keep = index.longest - 1  # words carried from one chunk into the next
    done = np.zeros(len(index.texts), dtype=bool)
    hits: dict[int, Hit] = {}
    recent: deque[tuple[int, Chunk]] = deque()  # (global index of its first word, chunk): those the carry is from
    carry_codes, carry_docs = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    seen = words = 0  # words read so far (the next word's global index), words of the shard's range
    for chunk in chunks(shard, chunk_bytes, keep):
        recent.append((seen, chunk))
        first = seen - len(carry_codes)  # global index of the window's first word
        codes, docs = np.concatenate([carry_codes, chunk.codes]), np.concatenate([carry_docs, chunk.docs])
        for start, owner, length in lookup(index, codes, docs, done, lambda i: _find(recent, first + i).word()):
            if done[owner]:  # by window start: an owner's first hit is its earliest
                continue
            offset = _find(recent, first + start).offset()
            if offset < shard.end:  # else it starts in the next shard's range: found there
                gram = b" ".join(_find(recent, first + start + k).word() for k in range(length))
                hits[owner] = Hit(shard.file_index, offset, gram.decode("utf-8"))
                done[owner] = True
        seen += len(chunk.codes)
        words += chunk.counted
        tail = slice(max(0, len(codes) - keep), None)  # the last `keep` words (none when keep is 0)
        carry_codes, carry_docs = codes[tail], docs[tail]
        while len(recent) > 1 and recent[1][0] <= seen - keep:  # drop chunks no carried word comes from
            recent.popleft()
    return ShardResult(hits, words, shard.end - shard.start)


@dataclass(frozen=True)
class _Word:
    chunk: Chunk
    i: int

    def word(self) -> bytes:
        return self.chunk.word(self.i)

    def offset(self) -> int:
        return self.chunk.offset(self.i)


def _find(recent: deque[tuple[int, Chunk]], word: int) -> _Word:
    """The chunk holding the word of global index `word`, among those kept."""
    for begin, chunk in reversed(recent):
        if begin <= word:
            return _Word(chunk, word - begin)
    raise AssertionError(f"word {word} is older than the chunks kept")


def merge(results: Iterable[ShardResult]) -> tuple[dict[int, Hit], int, int]:
    """For each text its earliest hit by (file, offset); the summed word and byte counts."""
    best: dict[int, Hit] = {}
    words = size = 0
    for result in results:
        words, size = words + result.words, size + result.bytes
        for owner, hit in result.hits.items():
            old = best.get(owner)
            if old is None or (hit.file_index, hit.offset) < (old.file_index, old.offset):
                best[owner] = hit
    return dict(sorted(best.items())), words, size


_WORKER: dict = {}  # a pool worker's index and chunk size, set once by _start


def _start(index: TaskIndex, chunk_bytes: int) -> None:
    _WORKER.update(index=index, chunk_bytes=chunk_bytes)


def _scan(shard: Shard) -> ShardResult:
    return scan_shard(_WORKER["index"], shard, _WORKER["chunk_bytes"])


def scan(index: TaskIndex, files: tuple[CorpusFile, ...], settings: ScanSettings) -> ScanResult:
    """The earliest hit of each text of `index` in the corpus `files`, with word and byte counts."""
    plan = shards(files, shard_size(files, settings))
    if settings.workers == 1:
        results = [scan_shard(index, shard, settings.chunk_bytes) for shard in plan]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(settings.workers, len(plan)), _start, (index, settings.chunk_bytes)) as pool:
            results = pool.map(_scan, plan, chunksize=1)
    hits, words, size = merge(results)
    return ScanResult(hits, words, size, len(plan), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if settings.workers > 1 else 0)
