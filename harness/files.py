"""Where harness's own files live, and the one way a folder is written: in full, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent  # harness/
CHECKOUT_ROOT = PACKAGE_ROOT.parent  # the source checkout, when harness runs from one


def in_checkout() -> bool:
    """harness runs from a source checkout (editable install or PYTHONPATH), not from an installed wheel."""
    return (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "tasks").is_dir()


@contextlib.contextmanager
def atomic_folder(target: Path, prefix: str = ".tmp-") -> Iterator[Path]:
    """A fresh hidden sibling of `target` to fill; renamed to `target` when the block ends without error,
    removed otherwise, so a folder that exists at `target` is always complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{prefix}{target.name}-"))
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
