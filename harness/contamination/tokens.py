"""normalize.words for a corpus chunk, in numpy: the byte spans of its words and a 64-bit code per word, with no
Python object per word (making one string per word is what limits a pure-Python scan).

The chunk is lower-cased as a whole (str.lower for text that is not ASCII, so the result is the one words() sees)
and encoded as UTF-8. A byte belongs to a word when its character matches `\\w` (normalize.WORD): ASCII bytes by a
256-entry table, other characters by decoding the UTF-8 in numpy and looking the code point up in a table built
from the pattern itself (every code point, once per process). Words are the maximal runs of such bytes, so they
are exactly the `\\w+` runs of the lower-cased text (tests/test_contamination.py checks it on tricky text).

A word's code mixes a polynomial hash of its bytes, sum (b_j + 1) * P^(len-1-j) mod 2^64 (computed for all words
at once from one cumulative sum of (b_j + 1) * P^-j), through the splitmix64 finalizer, low bit set. It depends on the
word's bytes alone (not on the machine, the chunk, or PYTHONHASHSEED); the task side codes its words the same way.
"""

from __future__ import annotations

import numpy as np

from harness.contamination.normalize import WORD

P = 0x100000001B3  # the 64-bit FNV prime: odd, so invertible mod 2^64
P_INVERSE = pow(P, -1, 1 << 64)
ASCII_WORD = np.array([chr(c).isalnum() or c == ord("_") for c in range(128)] + [False] * 128)
_TABLES: dict[str, np.ndarray] = {}  # "chars": (0x110000,) bool; "powers", "inverse": (n,) uint64, grown on demand


def lowered(text: str, data: bytes | None = None) -> bytes:
    """text.lower() as UTF-8 (`data`, when given, is text's UTF-8: an ASCII chunk is lowered as bytes)."""
    if text.isascii():
        return (data if data is not None else text.encode("ascii")).lower()
    return text.lower().encode("utf-8")


def word_chars() -> np.ndarray:
    """(0x110000,) bool: the code points `\\w` matches, read off the pattern once per process."""
    if "chars" not in _TABLES:
        points = np.arange(0x110000, dtype=np.uint32)
        points[0xD800:0xE000] = ord(" ")  # surrogates: never in decoded text
        table = np.zeros(0x110000, dtype=bool)
        every = points.astype("<u4").tobytes().decode("utf-32-le")  # one string, no object per character
        for match in WORD.finditer(every):
            table[match.start() : match.end()] = True
        _TABLES["chars"] = table
    return _TABLES["chars"]


def lead_bytes(buffer: np.ndarray) -> np.ndarray:
    """(n,) bool: the bytes of UTF-8 `buffer` that start a character."""
    return (buffer & 0xC0) != 0x80


def _word_bytes(buffer: np.ndarray) -> np.ndarray:
    """(n,) bool: the bytes of UTF-8 `buffer` whose character is a word character."""
    mask = ASCII_WORD[buffer]  # ASCII bytes; bytes of longer characters False until set below
    first = np.flatnonzero(buffer >= 0xC0)  # (C,) the first byte of each character longer than one byte
    if not len(first):
        return mask
    last = len(buffer) - 1  # bytes past a character's end are read (never past the buffer's) and not used
    b0, b1, b2, b3 = (buffer[np.minimum(first + k, last)].astype(np.int32) & (0xFF if k == 0 else 0x3F)
                      for k in range(4))
    code = np.where(b0 < 0xE0, (b0 & 0x1F) << 6 | b1, np.where(
        b0 < 0xF0, (b0 & 0x0F) << 12 | b1 << 6 | b2, (b0 & 0x07) << 18 | b1 << 12 | b2 << 6 | b3))  # (C,)
    is_word = word_chars()[np.minimum(code, 0x10FFFF)]
    size = np.where(b0 < 0xE0, 2, np.where(b0 < 0xF0, 3, 4))  # (C,) bytes of each character
    for k in range(4):
        at = size > k
        mask[first[at] + k] = is_word[at]
    return mask


def spans(low: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends): the byte span [start, end) in `low` of each of its words, in order."""
    inside = np.zeros(len(low) + 2, dtype=np.int8)  # (n + 2,) 1 at word bytes, a 0 before and after
    inside[1:-1] = _word_bytes(np.frombuffer(low, dtype=np.uint8))
    edges = inside[1:] - inside[:-1]  # (n + 1,) 1 where a word starts, -1 where one ends
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^i and P^-i mod 2^64 for i < n (at least), cached."""
    if len(_TABLES.get("powers", ())) < n:
        size = 1 << max(16, (n - 1).bit_length())  # a power of two: grown a few times at most
        for name, base in (("powers", P), ("inverse", P_INVERSE)):
            table = np.full(size, base, dtype=np.uint64)
            table[0] = 1
            _TABLES[name] = np.cumprod(table, dtype=np.uint64)  # wraps mod 2^64
    return _TABLES["powers"], _TABLES["inverse"]


def word_codes(low: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(W,) uint64: the code of each word span of `low` (never 0)."""
    if not len(starts):
        return np.zeros(0, dtype=np.uint64)
    buffer = np.frombuffer(low, dtype=np.uint8)
    powers, inverse = _powers(len(buffer))
    values = buffer.astype(np.uint64)  # (n,) b_j + 1, times P^-j, summed: one cumulative sum for all words
    values += np.uint64(1)
    values *= inverse[: len(buffer)]
    total = np.zeros(len(buffer) + 1, dtype=np.uint64)
    np.cumsum(values, out=total[1:])
    h = (total[ends] - total[starts]) * powers[ends - 1]  # sum (b_j + 1) P^(end-1-j): the word's bytes alone
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h | np.uint64(1)


def codes_of(words: list[str]) -> np.ndarray:
    """(len(words),) uint64: the codes of words (each one `\\w+` run, lower case), as a corpus chunk codes them."""
    low = " ".join(words).encode("utf-8")
    starts, ends = spans(low)
    assert len(starts) == len(words), "each word must be one \\w+ run"
    return word_codes(low, starts, ends)
