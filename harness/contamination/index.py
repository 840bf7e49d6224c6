"""The task side's N-grams as 64-bit hashes, and the test of a corpus chunk's windows against them.

Direction: the task side is small (thousands of examples, about 10^5 N-grams), the corpus huge (GPT-3 trained on
300B tokens), so the task N-grams are indexed and the corpus streams past them once; memory is bounded by the
task side, never the corpus.

Hash: each word has a 64-bit code (tokens.py: a hash of its UTF-8 bytes, never 0, computed in numpy for a whole
chunk); the N-gram w_0 .. w_{N-1} hashes to sum_j code(w_j) * B^(N-1-j) mod 2^64 (B = 0x9E3779B97F4A7C15, odd),
which numpy computes for every window of a chunk at once (N multiply-adds over the chunk's code array), the same
on both sides, independent of PYTHONHASHSEED and of the machine. Per window length: windows holding a word that no
task text has are dropped (a SlotFilter over the task words' codes), most of the rest by a SlotFilter over the task
N-gram hashes (one gather each), the few left looked up by binary search (np.searchsorted) in the sorted task
hashes; every hash hit is then checked word by word against the task text, so neither a filter's false positive
nor a hash collision can mark an example dirty.

Memory: 16 bytes per task N-gram (8 hash, 4 text, 4 position) and 32 to 64 more for its share of the SlotFilter
(so about 1 in 32 other windows passes it), plus the task texts' words (to check hits) and 32 to 64 filter bytes per
distinct task word. piqa's validation split (1,838 examples) holds 38,447 8-grams: 3 MB of arrays.

The other direction, on paper: a corpus-side index holds one N-gram per corpus token (at most). An exact set of
64-bit hashes costs at least 8 bytes per N-gram, 2.4 TB for 300B tokens. A Bloom filter at false-positive rate p
needs -ln(p) / ln(2)^2 bits per N-gram and -log2(p) hash functions: p = 1%: 9.59 bits (1.20 GB per billion tokens,
360 GB for 300B tokens, 7 hashes); p = 0.1%: 14.4 bits (1.80 GB per billion, 539 GB for 300B, 10 hashes). It
takes the same one pass over the corpus to build; then any task set is a cheap query, at the price of false
positives (each one a clean example marked dirty unless the corpus is searched again) and of the memory above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from harness.contamination.tokens import codes_of

B = np.uint64(0x9E3779B97F4A7C15)
FILTER_SLOTS = 32  # SlotFilter bytes per task N-gram, at least (a power of two in all): 1/32 of other hashes pass
BYTES_PER_GRAM = 16  # hash (uint64) + text (int32) + position (int32); the filter adds 32 to 64
GPT3_TOKENS = 300e9  # the GPT-3 paper's training tokens


def window_hashes(codes: np.ndarray, lengths: frozenset[int]) -> Iterator[tuple[int, np.ndarray]]:
    """For each L in `lengths` (increasing), (L, the hash of every window of L codes: len(codes) - L + 1 of them)."""
    h = codes.astype(np.uint64, copy=True)  # (n,) the windows of length 1
    for length in range(1, max(lengths, default=0) + 1):
        if length > 1:
            if len(h) <= 1:
                return
            h = h[:-1] * B + codes[length - 1 :]  # (n - length + 1,) wraps around mod 2^64
        if length in lengths:
            yield length, h


@dataclass(frozen=True)
class Table:
    """The task N-grams of one length, sorted by hash (then text, then position)."""

    length: int
    keys: np.ndarray  # (G,) uint64
    owners: np.ndarray  # (G,) int32: the text holding the N-gram
    starts: np.ndarray  # (G,) int32: its first word in that text


@dataclass(frozen=True)
class SlotFilter:
    """A one-hash filter over the high bits of the task hashes, one byte per slot: says 'maybe' for every task hash
    and for about 1 in FILTER_SLOTS other values, so most corpus windows are dismissed by one gather before any
    binary search."""

    slots: np.ndarray  # (2^k,) bool
    shift: int  # 64 - k

    def maybe(self, hashes: np.ndarray) -> np.ndarray:
        return self.slots[hashes >> np.uint64(self.shift)]


def slot_filter(keys: np.ndarray) -> SlotFilter:
    k = max(16, math.ceil(math.log2(max(1, len(keys)) * FILTER_SLOTS)))
    slots = np.zeros(1 << k, dtype=bool)
    slots[keys >> np.uint64(64 - k)] = True
    return SlotFilter(slots, 64 - k)


@dataclass(frozen=True)
class TaskIndex:
    tables: tuple[Table, ...]  # one per window length in use, shortest first
    texts: tuple[tuple[bytes, ...], ...]  # each text's words (UTF-8), to check hash hits
    filter: SlotFilter  # over every table's keys
    words: SlotFilter  # over the codes of every task word

    @property
    def lengths(self) -> frozenset[int]:
        return frozenset(t.length for t in self.tables)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=1)

    @property
    def grams(self) -> int:
        return sum(len(t.keys) for t in self.tables)

    @property
    def nbytes(self) -> int:
        """The arrays' bytes (the texts' words aside)."""
        tables = sum(t.keys.nbytes + t.owners.nbytes + t.starts.nbytes for t in self.tables)
        return self.filter.slots.nbytes + self.words.slots.nbytes + tables


def build_index(texts: Sequence[tuple[str, ...]], ns: Sequence[int]) -> TaskIndex:
    """The index of `texts` (normalize.words of each), text i by its N-grams of ns[i] words; a text shorter than
    that by its whole word sequence (the GPT-3 paper's rule for examples shorter than N); one with no words by
    nothing."""
    vocab = list(dict.fromkeys(w for t in texts for w in t))
    code = dict(zip(vocab, codes_of(vocab).tolist(), strict=True))
    parts: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, (text, n) in enumerate(zip(texts, ns, strict=True)):
        if text:
            length = min(n, len(text))
            codes = np.fromiter((code[w] for w in text), dtype=np.uint64, count=len(text))
            parts.setdefault(length, []).append((i, dict(window_hashes(codes, frozenset({length})))[length]))
    tables = []
    for length in sorted(parts):
        keys = np.concatenate([h for _, h in parts[length]])
        owners = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in parts[length]])
        starts = np.concatenate([np.arange(len(h), dtype=np.int32) for _, h in parts[length]])
        order = np.lexsort((starts, owners, keys))
        tables.append(Table(length, keys[order], owners[order], starts[order]))
    encoded = tuple(tuple(w.encode("utf-8") for w in t) for t in texts)
    every = np.concatenate([t.keys for t in tables]) if tables else np.zeros(0, dtype=np.uint64)
    return TaskIndex(tuple(tables), encoded, slot_filter(every), slot_filter(np.fromiter(code.values(), np.uint64)))


def lookup(index: TaskIndex, codes: np.ndarray, docs: np.ndarray, done: np.ndarray,
           word: Callable[[int], bytes]) -> list[tuple[int, int, int]]:
    """(window start, text, length) of every window of the words `codes` (their documents `docs`, each word's
    bytes by `word`) inside one document that equals a task N-gram of a text not yet `done`, by window start then
    text."""
    found: set[tuple[int, int, int]] = set()
    unknown = np.zeros(len(codes) + 1, dtype=np.int32)  # (n + 1,) words before i that no task text has
    np.cumsum(~index.words.maybe(codes), out=unknown[1:])
    for length, hashes in window_hashes(codes, index.lengths):
        table = next(t for t in index.tables if t.length == length)
        maybe = np.flatnonzero(unknown[length:] == unknown[: len(hashes)])  # (k,) windows of known words only
        maybe = maybe[index.filter.maybe(hashes[maybe])]  # (c,) a few of them
        maybe = maybe[docs[maybe] == docs[maybe + length - 1]]  # inside one document
        at = np.minimum(np.searchsorted(table.keys, hashes[maybe]), len(table.keys) - 1)
        hit = table.keys[at] == hashes[maybe]
        for start, first in zip(maybe[hit].tolist(), at[hit].tolist()):
            last = int(np.searchsorted(table.keys, table.keys[first], side="right"))
            window = tuple(word(start + k) for k in range(length))
            for owner, position in zip(table.owners[first:last].tolist(), table.starts[first:last].tolist()):
                if not done[owner] and index.texts[owner][position : position + length] == window:
                    found.add((start, owner, length))
    return sorted(found)


def bloom_bits_per_gram(p: float) -> float:
    """Bits per element of a Bloom filter at false-positive rate p (with the best number of hash functions)."""
    return -math.log(p) / math.log(2) ** 2


def bloom_bytes(grams: float, p: float) -> float:
    return grams * bloom_bits_per_gram(p) / 8


def bloom_hashes(p: float) -> int:
    return max(1, round(-math.log2(p)))
