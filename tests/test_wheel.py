"""The wheel is complete: every module, harness/reporting/published.toml, and a copy of the top-level
tasks/ folder as harness/builtin_tasks/, which an installed harness (no checkout around it) lists.

Built offline from a copy of the sources (pip builds in the source tree and would leave build/ and
*.egg-info behind), with the setuptools of this environment (the `test` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "harness", "tasks"]


def pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    out = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"pip {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"


def test_wheel_carries_modules_and_builtin_tasks_and_an_installed_harness_lists_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("harness-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        tasks = sorted(p.stem for p in (ROOT / "tasks").glob("*.toml"))
        suites = sorted(p.stem for p in (ROOT / "tasks" / "suites").glob("*.toml"))
        assert tasks and suites
        for path in [*(ROOT / "tasks").glob("*.toml"), *(ROOT / "tasks" / "suites").glob("*.toml")]:
            inside = "harness/builtin_tasks/" + path.relative_to(ROOT / "tasks").as_posix()
            assert inside in names, f"{inside} is missing from {wheel.name}"
            assert zf.read(inside) == path.read_bytes(), f"{inside} differs from {path.relative_to(ROOT)}"
        modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "harness").rglob("*.py")]
        missing = sorted(m for m in [*modules, "harness/reporting/published.toml"] if m not in names)
        assert not missing, f"missing from {wheel.name} (a package not listed in pyproject.toml?): {missing}"

    site = tmp_path / "site"
    pip("install", "--no-deps", "--no-compile", "--target", str(site), str(wheel), cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_DATA")}
    env["PYTHONPATH"] = str(site)
    code = "import sys, harness; print(harness.__file__); from harness.cli import main; sys.exit(main(['list']))"
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == str(site / "harness" / "__init__.py")  # the installed copy, not the checkout
    listed = {line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()}
    assert set(tasks) <= listed, f"tasks not listed by the installed harness: {sorted(set(tasks) - listed)}"
    assert set(suites) <= listed, f"suites not listed by the installed harness: {sorted(set(suites) - listed)}"
