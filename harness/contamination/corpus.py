"""A training corpus as a stream: its files checked, cut into shards, each shard read in chunks of bounded size.

Files: plain text (.txt, one stream of words) or JSON lines (.jsonl, one document per line in its "text" field),
named one by one or as folders searched recursively. `resolve_corpus` and `check_file` fail in one line naming the
file before the scan starts: a missing path, a folder with no .txt/.jsonl file, an empty file, bytes that are not
UTF-8 (with the byte offset), a .jsonl line that is not JSON or has no "text" string (file:line). The check reads
every file once (UTF-8 validation in C, and one json.loads per line); the scan then reads it once more.

A shard is a byte range of one file cut at line starts; a chunk is about `chunk_bytes` of it, cut after an ASCII
character that is no word character, so a word is never split (a run of more than 4 chunks without one is cut at a
character boundary).
Memory is bounded by the chunk size, never by a file's size; a .jsonl document is held whole while it is parsed
(one line), then read in chunk-sized parts. A .txt shard that ends before its file does reads a few words past
its end (`lookahead`), so an N-gram that starts in the shard and ends in the next one is found by this shard;
documents of a .jsonl file are numbered, and no N-gram spans two of them.

Where a hit is reported (`Chunk.offset`): for .txt, the byte offset in the file of the N-gram's first word; for
.jsonl, the byte offset where the line (the document) holding it starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.contamination.normalize import WORD
from harness.contamination.tokens import ASCII_WORD, lead_bytes, lowered, spans, word_codes
from harness.errors import HarnessError

SUFFIXES = (".txt", ".jsonl")
CHUNK_BYTES = 1 << 17  # 128 KiB of text per chunk: its numpy arrays stay in cache (faster than 1 MiB)
CHECK_BYTES = 1 << 22  # block size of the UTF-8 check
LOOKAHEAD_BYTES = 1 << 12


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    jsonl: bool
    size: int  # bytes


@dataclass(frozen=True)
class Shard:
    file_index: int  # the file's place in the corpus: the earliest hit is the smallest (file_index, offset)
    file: CorpusFile
    start: int  # byte range [start, end), start at a line start
    end: int


# ---------------------------------------------------------------- files and their checks


def resolve_corpus(paths: Iterable[str | Path]) -> tuple[CorpusFile, ...]:
    """The corpus files that `paths` name (a folder: its .txt/.jsonl files, recursively, sorted), each once."""
    files: dict[Path, CorpusFile] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise HarnessError(f"--corpus {path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise HarnessError(f"--corpus {path}: folder holds no .txt or .jsonl file")
        elif path.suffix not in SUFFIXES:
            raise HarnessError(f"--corpus {path}: not a .txt or .jsonl file")
        else:
            found = [path]
        for p in found:
            size = p.stat().st_size
            if size == 0:
                raise HarnessError(f"--corpus {p}: empty file")
            files.setdefault(p.resolve(), CorpusFile(p, p.suffix == ".jsonl", size))
    return tuple(files.values())


def check_file(file: CorpusFile) -> None:
    """Fail in one line naming the file unless it is UTF-8 (and, for .jsonl, every line a JSON object with a
    "text" string; blank lines are skipped)."""
    if file.jsonl:
        _check_jsonl(file.path)
    else:
        _check_utf8(file.path)


def _check_utf8(path: Path) -> None:
    with open(path, "rb") as f:
        offset, tail = 0, b""  # tail: an incomplete character at the end of the last block
        while block := f.read(CHECK_BYTES):
            data, data_start = tail + block, offset - len(tail)
            offset += len(block)
            try:
                data.decode("utf-8")
                tail = b""
            except UnicodeDecodeError as e:
                if e.reason != "unexpected end of data" or len(data) - e.start >= 4:
                    raise HarnessError(f"{path}: not UTF-8 at byte {data_start + e.start} ({e.reason})") from None
                tail = data[e.start:]
        if tail:
            raise HarnessError(f"{path}: not UTF-8 at byte {offset - len(tail)} (truncated character at the end)")


def _check_jsonl(path: Path) -> None:
    records = 0
    with open(path, "rb") as f:
        offset = 0
        for number, line in enumerate(f, 1):
            start, offset = offset, offset + len(line)
            if line.strip():
                _document(path, line, start, f"{path}:{number}")
                records += 1
    if not records:
        raise HarnessError(f"--corpus {path}: empty file (no JSON lines)")


def _document(path: Path, line: bytes, start: int, where: str) -> str:
    """The "text" of one .jsonl line, or a one-line error naming the file: `where` is path:line, or the path and
    the line's byte offset."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 at byte {start + e.start} ({e.reason})") from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise HarnessError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise HarnessError(f"{where}: no \"text\" field holding a string")
    return row["text"]


# ---------------------------------------------------------------- shards


def shards(files: tuple[CorpusFile, ...], shard_bytes: int | None) -> tuple[Shard, ...]:
    """Each file as one shard (shard_bytes None), or cut into shards of about shard_bytes at line starts."""
    out = []
    for i, file in enumerate(files):
        cuts = [0, *(_cut_points(file, shard_bytes) if shard_bytes else ()), file.size]
        out += [Shard(i, file, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return tuple(out)


def _cut_points(file: CorpusFile, every: int) -> list[int]:
    """Line starts at or after every k * `every` bytes (k >= 1), increasing, inside the file."""
    cuts: list[int] = []
    with open(file.path, "rb") as f:
        for target in range(every, file.size, every):
            if cuts and cuts[-1] >= target:
                continue
            f.seek(target - 1)  # a line starts at `target` when the byte before it ends a line
            position = target - 1
            while block := f.read(LOOKAHEAD_BYTES):
                newline = block.find(b"\n")
                if newline >= 0:
                    position += newline + 1
                    break
                position += len(block)
            if position >= file.size:
                break
            cuts.append(position)
    return cuts


# ---------------------------------------------------------------- chunks


@dataclass(frozen=True)
class Block:
    """Where the words of a .txt chunk came from: its bytes and their offset in the file."""

    data: bytes
    start: int

    def offset(self, low: bytes, position: int) -> int:
        """The file offset of the character at byte `position` of the lowered chunk `low`."""
        if self.data.isascii():
            return self.start + position
        chars = int(np.count_nonzero(lead_bytes(np.frombuffer(low, dtype=np.uint8, count=position))))
        return self.start + int(self._char_starts[self._original[chars] if self._original else chars])

    @cached_property
    def _char_starts(self) -> np.ndarray:
        """(C,) the byte offset in `data` of each character."""
        return np.flatnonzero(lead_bytes(np.frombuffer(self.data, dtype=np.uint8)))

    @cached_property
    def _original(self) -> list[int]:
        """Character i of the lowered text -> its character in the text, when lower-casing changed a length ('İ'
        lowers to two characters); else []."""
        text = self.data.decode("utf-8")
        return [] if len(text.lower()) == len(text) else [i for i, char in enumerate(text) for _ in char.lower()]


@dataclass(frozen=True)
class Documents:
    """Where the words of a .jsonl chunk came from: the line offset of each part's document."""

    starts: np.ndarray  # (D,) where each part begins in the lowered chunk
    lines: np.ndarray  # (D,) the byte offset of its document's line in the file

    def offset(self, low: bytes, position: int) -> int:
        return int(self.lines[np.searchsorted(self.starts, position, side="right") - 1])


@dataclass(frozen=True)
class Chunk:
    """About chunk_bytes of a shard as words: byte spans in the lowered text, codes, documents."""

    low: bytes  # the chunk's text lower-cased, UTF-8 (tokens.lowered)
    starts: np.ndarray  # (W,) int64 byte span of each word in `low`
    ends: np.ndarray  # (W,) int64
    codes: np.ndarray  # (W,) uint64 word codes (tokens.word_codes)
    docs: np.ndarray  # (W,) int64 document number in the shard (.txt: all 0): no N-gram spans two documents
    source: Block | Documents
    counted: int  # words of the shard's own range (the look-ahead counts none)

    def word(self, i: int) -> bytes:
        return self.low[self.starts[i] : self.ends[i]]

    def offset(self, i: int) -> int:
        """Where the chunk's i-th word is reported: see the module's docstring."""
        return self.source.offset(self.low, int(self.starts[i]))


def _chunk(low: bytes, source: Block | Documents, counted: bool, docs=None) -> Chunk:
    starts, ends = spans(low)
    docs = np.zeros(len(starts), dtype=np.int64) if docs is None else docs(starts)
    return Chunk(low, starts, ends, word_codes(low, starts, ends), docs, source, len(starts) if counted else 0)


def chunks(shard: Shard, chunk_bytes: int, lookahead: int) -> Iterator[Chunk]:
    """The shard's words in chunks of about chunk_bytes; a .txt shard that ends before its file then yields
    one more chunk of at least `lookahead` words past its end (counted 0), for N-grams crossing the end."""
    if shard.file.jsonl:
        yield from _jsonl_chunks(shard, chunk_bytes)
    else:
        yield from _txt_chunks(shard, chunk_bytes, lookahead)


def _text_chunk(data: bytes, start: int, counted: bool) -> Chunk:
    return _chunk(lowered(data.decode("utf-8"), data), Block(data, start), counted)


def _last_break(data: bytes) -> int:
    """The index just after the last ASCII byte of `data` that is no word character (0 when it has none): a cut
    there splits no word and no character."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero((buffer < 0x80) & ~ASCII_WORD[buffer])
    return int(breaks[-1]) + 1 if len(breaks) else 0


def _char_boundary(data: bytes) -> int:
    """An index of (valid UTF-8) `data` that no character spans: before its last character unless that is ASCII."""
    end = len(data)
    while end > 0 and data[end - 1] & 0xC0 == 0x80:  # continuation bytes of the last character
        end -= 1
    return end - 1 if end > 0 and data[end - 1] >= 0xC0 else len(data)


def _txt_chunks(shard: Shard, chunk_bytes: int, lookahead: int) -> Iterator[Chunk]:
    with open(shard.file.path, "rb") as f:
        f.seek(shard.start)
        position, pending = shard.start, b""
        while position < shard.end:
            want = chunk_bytes - len(pending) if len(pending) < chunk_bytes // 2 else chunk_bytes
            block = f.read(min(want, shard.end - position))
            if not block:
                break
            data, data_start = pending + block, position - len(pending)
            position += len(block)
            if position < shard.end:
                cut = _last_break(data) or (_char_boundary(data) if len(data) >= 4 * chunk_bytes else 0)
                data, pending = data[:cut], data[cut:]
                if not data:
                    continue
            else:
                pending = b""
            yield _text_chunk(data, data_start, counted=True)
        if lookahead and shard.end < shard.file.size:
            yield _text_chunk(_lookahead(f, shard.end, lookahead, chunk_bytes), shard.end, counted=False)


def _lookahead(f, start: int, words: int, chunk_bytes: int) -> bytes:
    """Whole words from byte `start` on, at least `words` of them (fewer at the end of the file)."""
    f.seek(start)
    data = b""
    while True:
        block = f.read(LOOKAHEAD_BYTES)
        data += block
        if not block:
            return data
        whole = data[: _last_break(data)]
        if len(WORD.findall(whole.decode("utf-8"))) >= words:
            return whole
        if len(data) >= 4 * chunk_bytes:
            return data[: _char_boundary(data)]


def _jsonl_chunks(shard: Shard, chunk_bytes: int) -> Iterator[Chunk]:
    parts: list[tuple[bytes, int, int]] = []  # (lowered part, its document's line offset, document number)
    size = 0
    for number, (line_start, text) in enumerate(_documents(shard)):
        for part in _parts(text, chunk_bytes):
            parts.append((lowered(part), line_start, number))
            size += len(parts[-1][0])
            if size >= chunk_bytes:
                yield _documents_chunk(parts)
                parts, size = [], 0
    if parts:
        yield _documents_chunk(parts)


def _documents_chunk(parts: list[tuple[bytes, int, int]]) -> Chunk:
    """One chunk of document parts, joined by a space (each part is cut at whitespace: no word changes)."""
    begins = np.cumsum([0] + [len(low) + 1 for low, _, _ in parts[:-1]])  # (D,) each part's start in the chunk
    numbers = np.array([number for _, _, number in parts], dtype=np.int64)
    source = Documents(begins, np.array([line for _, line, _ in parts], dtype=np.int64))
    return _chunk(b" ".join(low for low, _, _ in parts), source, True,
                  lambda starts: numbers[np.searchsorted(begins, starts, side="right") - 1])


def _documents(shard: Shard) -> Iterator[tuple[int, str]]:
    """(byte offset of its line, text) of each document whose line starts in the shard."""
    with open(shard.file.path, "rb") as f:
        f.seek(shard.start)
        position = shard.start
        while position < shard.end and (line := f.readline()):
            start, position = position, position + len(line)
            if line.strip():
                yield start, _document(shard.file.path, line, start, f"{shard.file.path} (the line at byte {start})")


def _parts(text: str, size: int) -> Iterator[str]:
    """`text` in parts of at most `size` characters cut at whitespace (a longer run without any is cut)."""
    start = 0
    while len(text) - start > size:
        cut = max(text.rfind(" ", start, start + size), text.rfind("\n", start, start + size))
        cut = cut + 1 if cut > start else start + size
        yield text[start:cut]
        start = cut
    yield text[start:]
