"""Regenerate the committed example runs of results/examples.toml: `make examples` (all) or
`.venv/bin/python tests/tools/examples.py NAME...` (some, in the file's order).

Each entry runs the real command line (`harness pretrain`, `harness run ... --run-name NAME`, `harness report`), so
run.json records the command a reader can repeat. The old folder is moved aside first and put back if the command
fails, so a failed regeneration never leaves an example half-written.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
MANIFEST = RESULTS / "examples.toml"


def load_manifest(path: Path = MANIFEST) -> dict[str, list[dict]]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def names(manifest: dict[str, list[dict]], committed_only: bool = False) -> list[str]:
    """The examples in order; `committed_only`: those results/ holds (not `committed = false`)."""
    return [entry["name"] for kind in ("pretrain", "run", "report") for entry in manifest.get(kind, [])
            if not committed_only or entry.get("committed", True)]


def _harness() -> str:
    script = Path(sys.executable).parent / "harness"
    return str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)


def _expand(args: list[str], model: str) -> list[str]:
    from harness.tasks.data import resolve_data_dir

    data = str(resolve_data_dir(None))
    return [str(Path(a).expanduser()) if a.startswith("~") else a.replace("{data}", data).replace("{model}", model)
            for a in args]


def _replace(name: str, command: list[str], after=None) -> None:
    """Run `command` with results/<name> moved aside; put it back if the command fails."""
    folder, aside = RESULTS / name, RESULTS / f".tmp-regenerate-{name}"
    shutil.rmtree(aside, ignore_errors=True)
    if folder.exists():
        folder.rename(aside)
    print("$ " + " ".join(command), flush=True)
    try:
        subprocess.run(command, cwd=ROOT, check=True)
        if after:
            after(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if aside.exists():
            aside.rename(folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def regenerate(wanted: list[str]) -> None:
    manifest = load_manifest()
    wanted = wanted or names(manifest, committed_only=True)
    unknown = sorted(set(wanted) - set(names(manifest)))
    if unknown:
        raise SystemExit(f"examples.py: not in {MANIFEST.name}: {', '.join(unknown)} (known: "
                         f"{', '.join(names(manifest))})")
    model = ""
    for entry in manifest.get("pretrain", []):
        out = Path(entry["out"]).expanduser()
        model = str(out / "model")
        if entry["name"] in wanted:
            def keep(folder: Path, entry=entry, out=out) -> None:
                folder.mkdir(parents=True, exist_ok=True)
                for file in entry["keep"]:
                    shutil.copy2(out / file, folder / file)
            command = [_harness(), "pretrain", *_expand(entry["args"], model), "--out", str(out)]
            _replace(entry["name"], command, keep)
    for entry in manifest.get("run", []):
        if entry["name"] in wanted:
            _replace(entry["name"], [_harness(), "run", *_expand(entry["args"], model), "--run-name", entry["name"]])
    for entry in manifest.get("report", []):
        if entry["name"] in wanted:
            runs = [f"results/{run}" for run in entry["runs"]]
            _replace(entry["name"], [_harness(), "report", *runs, "--out", f"results/{entry['name']}",
                                     "--title", entry["title"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="examples to regenerate (default: every committed one)")
    regenerate(parser.parse_args().names)


if __name__ == "__main__":
    main()
