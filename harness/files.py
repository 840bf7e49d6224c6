"""Where harness's own files live, and the one way a folder is written: in full, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError

PACKAGE_ROOT = Path(__file__).resolve().parent  # harness/
CHECKOUT_ROOT = PACKAGE_ROOT.parent  # the source checkout, when harness runs from one


def in_checkout() -> bool:
    """harness runs from a source checkout (editable install or PYTHONPATH), not from an installed wheel."""
    return (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "tasks").is_dir()


def shared_folder(name: str, flag: str | Path | None, flag_name: str, env: str, holds: str = "") -> Path | None:
    """A folder of the shared tree (`shared/<name>`: data, published numbers): `flag` when given, else $`env`,
    else the first shared/<name> beside the checkout or in or above the working folder (for an installed
    harness) that exists and, when `holds` names a file, holds it; None when there is none."""
    if flag:
        if not Path(flag).is_dir():
            raise HarnessError(f"{flag_name} {flag}: not a directory")
        return Path(flag)
    if os.environ.get(env):
        path = Path(os.environ[env])
        if not path.is_dir():
            raise HarnessError(f"${env}={path}: not a directory")
        return path
    roots = [CHECKOUT_ROOT, CHECKOUT_ROOT.parent] if in_checkout() else []
    for folder in (root / "shared" / name for root in [*roots, Path.cwd(), *Path.cwd().parents]):
        if (folder / holds).is_file() if holds else folder.is_dir():
            return folder
    return None


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
