"""JSON-lines files as written: one object a line, UTF-8 (a leading byte-order mark skipped), blank lines
ignored, `.gz` decompressed; lines end at "\\n" only (JSON strings may hold U+2028 unescaped). Every fault is
one line naming file:line. The reader of local task data and of BIG-bench examples alike."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from pathlib import Path

from harness.errors import HarnessError


def read_jsonl(path: Path) -> tuple[list[dict], str]:
    """(the rows of a JSON-lines file in order, the sha256 of the file's bytes as stored), read in one pass."""
    raw = Path(path).read_bytes()
    data = raw
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise HarnessError(f"{path}: truncated or corrupt gzip file ({e}); copy or download it again") from None
    lines = io.BytesIO(data)  # iterated as a binary file is: each line up to and with its b"\n"
    rows = [row for number, line in enumerate(lines, 1) for row in _parse_line(path, number, line)]
    if not rows:
        raise HarnessError(f"{path}: empty file: no JSON lines; fill it or point data.files elsewhere")
    return rows, hashlib.sha256(raw).hexdigest()


def _parse_line(path: Path, number: int, raw: bytes) -> list[dict]:
    """[the row of one line], or [] for a blank line."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        raw = raw[3:]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}:{number}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                           "save the file as UTF-8") from None
    if not line.strip():
        return []
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}:{number}: malformed JSON line: {e.msg} (column {e.colno})") from None
    if not isinstance(row, dict):
        raise HarnessError(f"{path}:{number}: each line must be a JSON object, got {type(row).__name__}")
    return [row]
