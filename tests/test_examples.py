"""The committed example runs (results/examples.toml) are current with the code: every folder under results/ is
listed with the command that makes it, and each run holds the columns, tasks, metrics and run.json keys that
command writes today. A stale example fails here; `make examples` (tests/tools/examples.py) regenerates them."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from harness.config import RunConfig
from harness.records import SCORE_COLUMNS
from harness.tasks.catalog import expand_suites, resolve_task
from tests.conftest import make_task_env
from tests.helpers import run_cli
from tests.tools.examples import RESULTS, load_manifest, names

MANIFEST = load_manifest()
RUNS = {entry["name"]: entry for entry in MANIFEST["run"] if entry.get("committed", True)}
DEFAULT_TASKS = ",".join(RunConfig.__dataclass_fields__["tasks"].default)


def _flag(args: list[str], flag: str, default: str) -> str:
    return args[args.index(flag) + 1] if flag in args else default


def test_every_folder_under_results_is_a_listed_example():
    # the folders git tracks: a user's own runs (`make run`'s, say, gitignored) sit beside them and are not examples
    tracked = subprocess.run(["git", "ls-files", "--", "."], cwd=RESULTS, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip(f"not a git checkout: {tracked.stderr.strip()}")
    folders = {line.split("/", 1)[0] for line in tracked.stdout.splitlines() if "/" in line}
    assert folders == set(names(MANIFEST, committed_only=True))


@pytest.fixture(scope="module")
def current_manifest(tmp_path_factory, tiny_gpt2_dir):
    """The run.json a run writes with today's code (a tiny model on the tiny tasks)."""
    env = make_task_env(tmp_path_factory.mktemp("examples"))
    assert run_cli(env, tiny_gpt2_dir, "--settings", "zs", "--limit", "2", "--no-cache") == 0
    return json.loads((env["root"] / "results" / "r" / "run.json").read_text())


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_committed_run_is_what_its_command_writes_today(name, current_manifest):
    folder, args = RESULTS / name, RUNS[name]["args"]
    scores = pd.read_csv(folder / "scores.csv", keep_default_na=False)
    assert list(scores.columns) == list(SCORE_COLUMNS), f"{name}: scores.csv columns are stale"
    document = json.loads((folder / "run.json").read_text())
    assert set(document) == set(current_manifest), f"{name}: run.json keys are stale"
    assert set(document["config"]) == set(current_manifest["config"]), f"{name}: run.json config keys are stale"
    made_by = document["command"][2:]
    assert made_by[-2:] == ["--run-name", name] and len(made_by) == len(args) + 2, f"{name}: {made_by}"
    for recorded, listed in zip(made_by, args):
        assert recorded == listed or ("{" in listed and recorded.startswith(listed.split("{")[0])), name
    wanted = expand_suites(_flag(args, "--tasks", DEFAULT_TASKS).split(","))
    for task in wanted:
        have = set(scores.loc[scores["task"] == task, "metric"])
        missing = set(resolve_task(task).metrics) - have
        assert not missing, f"{name}: {task} has no rows for {sorted(missing) if have else 'any metric'}"
