"""Where harness's own files live, and the one way a folder is written: in full, or not at all. Also the
checks that find an unwritable folder before any model work, and the one-line wording of a failed write."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError

PACKAGE_ROOT = Path(__file__).resolve().parent  # harness/
CHECKOUT_ROOT = PACKAGE_ROOT.parent  # the source checkout, when harness runs from one
CACHE_ENV = "HARNESS_CACHE"  # the per-user folder: converted models, tokenizer files, the result cache
RESULT_CACHE_ENV = "HARNESS_RESULT_CACHE"  # the result cache file alone (tests point it at a temporary folder)
MIN_FREE = 64 * 2**20  # bytes a folder needs free before a run starts: a run folder is kilobytes to tens of MB


def user_cache() -> Path:
    """Where harness keeps converted models, tokenizer files and the result cache: $HARNESS_CACHE, else
    ~/.cache/harness. The one place that says so: every user of the folder asks here."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "harness")


def result_cache_path() -> Path:
    """The result cache shared by every run of this user: $HARNESS_RESULT_CACHE, else <user cache>/results.sqlite."""
    return Path(os.environ.get(RESULT_CACHE_ENV) or user_cache() / "results.sqlite")


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


def why(error: OSError) -> str:
    """What a failed write means, in words: disk full, quota, file size limit, read-only, or the OS's own text."""
    reasons = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
               errno.EFBIG: "file size limit reached (ulimit -f)", errno.EROFS: "read-only file system"}
    return reasons.get(error.errno) or error.strerror or type(error).__name__


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)  # a write failed for want of room or rights


def check_writable(folder: Path, what: str, advice: str = "choose another folder") -> None:
    """Fail in one line naming `what` (the flag or variable that chose `folder`) and saying what to do unless
    `folder` exists or can be made, a file can be created in it and removed, and MIN_FREE bytes are free there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"{what} {folder}: is a file, not a folder; {advice}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise HarnessError(f"{what} {folder}: cannot create it or write there ({why(e)}); {advice}") from None
    if free < MIN_FREE:
        raise HarnessError(f"{what} {folder}: only {free / 2**20:.1f} MB free (a run needs {MIN_FREE // 2**20} MB); "
                           f"free some space or {advice}")


_CLAIMS: dict[Path, int] = {}  # folder -> descriptor of the lock file this process holds for it


def claim(folder: Path) -> bool:
    """Reserve `folder` (not yet written) for this process: an exclusive lock on a hidden `.<name>.lock` beside it,
    held until `release` or the process ends (a killed run leaves no stale reservation). False when another run
    holds it or the folder exists already; checked after locking, so two runs never get the same folder."""
    folder = Path(folder)
    if folder in _CLAIMS:
        return False
    lock = folder.parent / f".{folder.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break  # the lock file is still the one at `lock`: not released and removed while we waited
        os.close(fd)
    if folder.exists():
        os.unlink(lock)
        os.close(fd)
        return False
    _CLAIMS[folder] = fd
    return True


def release(folder: Path) -> None:
    """Give up the reservation of `folder`, removing its lock file; nothing when this process holds none."""
    fd = _CLAIMS.pop(Path(folder), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.unlink(Path(folder).parent / f".{Path(folder).name}.lock")
        os.close(fd)
