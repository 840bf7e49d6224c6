"""What produced a run: package versions and the git state of the checkout."""

from __future__ import annotations

import subprocess
from importlib import metadata

from harness.files import CHECKOUT_ROOT

PACKAGES = ["harness", "torch", "transformers", "datasets", "pandas", "numpy", "tokenizers"]


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict[str, str | bool | None]:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=CHECKOUT_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}
