"""Data folders that combine: a tasks folder's own data/, repeatable --data-dir, the default data dir last (unless
--no-default-data-dir); `harness list` says where each task's data is; its columns, and `harness cache info`'s,
line up however long a name is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import build_parser, config_from_args, main
from harness.config import RunConfig
from harness.records import Setting
from harness.tasks.data import resolve_data_dirs
from tests.conftest import MC_ROWS, SHARED_DATA, TOY_MC, write_jsonl

needs_data = pytest.mark.skipif(not (SHARED_DATA / "piqa").is_dir(), reason="../shared/data/piqa not present")
LONG = "bigbench_conceptual_combinations__fanciful_fictional_combinations_mine"


def user_task(tasks: Path, name: str, data: Path | None = None) -> Path:
    """A multiple-choice task file <tasks>/<name>.toml reading data.local = <name>; its rows under `data`."""
    tasks.mkdir(parents=True, exist_ok=True)
    path = tasks / f"{name}.toml"
    path.write_text(TOY_MC.replace('local = "toy_mc"', f'local = "{name}"'))
    if data is not None:
        write_jsonl(data / name / "validation.jsonl", MC_ROWS)
        write_jsonl(data / name / "train.jsonl", MC_ROWS)
    return path


def listed(capsys, *args: str) -> dict[str, str]:
    """Task name -> its `harness list` line, for the task tables."""
    assert main(["list", *args]) == 0
    out = capsys.readouterr().out
    return {line.split()[0]: line for line in table_lines(out)[1:]}


def table_lines(out: str) -> list[str]:
    """The header line, then every task row of every `tasks in ...` section."""
    lines, header = [], None
    for section in out.split("\ntasks in ")[1:]:
        rows = section.split("\n\n")[0].splitlines()[1:]
        if rows:
            header = rows[0]
            lines += rows[1:]
    return [header, *lines]


@needs_data
def test_a_user_task_with_its_own_data_lists_and_runs_with_piqa(tmp_path, tiny_gpt2_dir, capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    tasks = tmp_path / "mytasks"
    user_task(tasks, "my_mc", data=tasks / "data")
    rows = listed(capsys, "--tasks-dir", str(tasks))
    assert rows["my_mc"].endswith(f"  {tasks / 'data' / 'my_mc'}") and "MISSING" not in rows["my_mc"]
    assert rows["piqa"].endswith(f"  {SHARED_DATA / 'piqa'}")

    assert main(["run", "--model", str(tiny_gpt2_dir), "--tasks", "my_mc,piqa", "--tasks-dir", str(tasks),
                 "--settings", "zs", "--limit", "2", "--output-dir", str(tmp_path / "results"), "--run-name", "r"]) == 0
    manifest = json.loads((tmp_path / "results" / "r" / "run.json").read_text())
    assert manifest["tasks"]["my_mc"]["eval"]["source"] == str(tasks / "data" / "my_mc" / "validation.jsonl")
    assert manifest["tasks"]["piqa"]["eval"]["source"].startswith(str(SHARED_DATA / "piqa"))
    assert manifest["config"]["data_dir"] is None  # as before: no --data-dir


def test_two_data_dirs_combine_in_order_then_the_default(tmp_path, tiny_gpt2_dir, capsys, monkeypatch):
    default = tmp_path / "default"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(default))
    first, second, tasks = tmp_path / "first", tmp_path / "second", tmp_path / "tasks"
    for name, data in (("in_first", first), ("in_second", second), ("in_both", first), ("in_default", default)):
        user_task(tasks, name, data)
    user_task(tasks, "in_both", second)  # the first --data-dir holding it wins
    user_task(tasks, "own", tasks / "data")
    user_task(tasks, "own", first)  # the tasks folder's own data/ comes before every data dir
    flags = ["--tasks-dir", str(tasks), "--data-dir", str(first), "--data-dir", str(second)]

    rows = listed(capsys, *flags)
    expect = {"in_first": first, "in_second": second, "in_both": first, "in_default": default, "own": tasks / "data"}
    for name, data in expect.items():
        assert rows[name].endswith(f"  {data / name}"), rows[name]
    rows = listed(capsys, *flags, "--no-default-data-dir")
    assert f"MISSING (no in_default/ in {tasks / 'data'}, {first}, {second})" in rows["in_default"]

    config = config_from_args(build_parser().parse_args(["run", *flags[2:]]))
    assert config.data_dir == (str(first), str(second), str(default))  # run.json records the whole search list
    assert resolve_data_dirs(config.data_dir).folders == (first, second, default)
    only = config_from_args(build_parser().parse_args(["run", "--no-default-data-dir", *flags[2:]]))
    assert only.data_dir == (str(first), str(second)) and resolve_data_dirs(only.data_dir).folders == (first, second)

    from harness.pipeline import prepare

    names = tuple(str(tasks / f"{n}.toml") for n in expect)
    prepared = prepare(RunConfig(tasks=names, data_dir=config.data_dir, settings=(Setting.ZS,)))
    assert {t.spec.name: Path(t.data.eval.source).parent for t in prepared} == {n: d / n for n, d in expect.items()}
    assert main(["run", "--model", str(tiny_gpt2_dir), "--tasks", "in_first,in_second", *flags, "--settings", "zs",
                 "--limit", "2", "--output-dir", str(tmp_path / "results"), "--run-name", "r"]) == 0
    manifest = json.loads((tmp_path / "results" / "r" / "run.json").read_text())
    assert manifest["config"]["data_dir"] == [str(first), str(second), str(default)]
    assert manifest["tasks"]["in_second"]["eval"]["source"] == str(second / "in_second" / "validation.jsonl")


def test_one_data_dir_is_recorded_as_before_and_searched_before_the_default(tmp_path, monkeypatch):
    default, mine = tmp_path / "default", tmp_path / "mine"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(default))
    user_task(tmp_path / "tasks", "t", default)
    mine.mkdir()
    config = config_from_args(build_parser().parse_args(["run", "--data-dir", str(mine)]))
    assert config.data_dir == mine  # a Path, as before: run.json's "data_dir" is the same string
    assert config_from_args(build_parser().parse_args(["run"])).data_dir is None
    assert resolve_data_dirs(config.data_dir).folders == (mine, default)
    assert resolve_data_dirs(None).folders == (default,)
    with pytest.raises(Exception, match=f"--data-dir {tmp_path / 'missing'}: not a directory"):
        resolve_data_dirs((str(mine), str(tmp_path / "missing")))


def test_a_missing_task_lists_the_folders_searched(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "default"))
    (tmp_path / "default").mkdir()
    mine, tasks = tmp_path / "mine", tmp_path / "tasks"
    mine.mkdir()
    user_task(tasks, "lost")
    rows = listed(capsys, "--tasks-dir", str(tasks), "--data-dir", str(mine))
    assert rows["lost"].endswith(f"  MISSING (no lost/ in {tasks / 'data'}, {mine}, {tmp_path / 'default'})")


def test_list_columns_line_up_on_long_names(tmp_path, capsys):
    tasks = tmp_path / "tasks"
    user_task(tasks, LONG, tasks / "data")
    (tasks / "broken.toml").write_text("kind = 'nope'\n")
    assert main(["list", "--tasks-dir", str(tasks)]) == 0
    header, *rows = table_lines(capsys.readouterr().out)
    starts = [m.start() for m in re.finditer(r"(?<=  )\S|^\S", header)]
    assert len(starts) == 7 and len(rows) > 20
    for row in rows:
        cells = [m.start() for m in re.finditer(r"(?<=  )\S|^\S", row)]
        if "INVALID: " in row:  # free text from the second column on
            assert cells[:2] == starts[:2], row
        else:
            assert cells[:7] == starts, row


def test_cache_info_columns_line_up_on_long_model_names(tmp_path):
    import sqlite3

    from harness.execution.cache import ResultCache, info

    path = tmp_path / "results.sqlite"
    names = {"a" * 16: "gpt2", "b" * 16: str(tmp_path / "models" / ("x" * 60)), "c" * 16: "smollm2-135m"}
    for fingerprint, name in names.items():
        ResultCache(path, fingerprint, name).close()
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO entries VALUES (?, ?, ?)",
                       [(f"{fp}{i}", fp, "{}") for fp in names for i in range(3 if fp[0] == "a" else 12345 % 97)])
    header, *rows = info(path).splitlines()[1:]
    assert len(rows) == 3
    for column in ("fingerprint", "last used (UTC)"):
        start = header.index(column)
        assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows), (column, rows)
    results_end = header.index("results") + len("results")
    assert all(row[results_end - 1].isdigit() and row[results_end] == " " for row in rows)  # right-aligned
