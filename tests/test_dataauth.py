"""Bad data files, bad --device / --settings, split typos and loud fallbacks, users' own task folders."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from harness.cli import main
from harness.config import RunConfig, parse_settings
from harness.errors import HarnessError
from harness.tasks.data import load_task_data
from harness.tasks.taskfile import load_task
from tests.conftest import MC_ROWS, TOY_MC
from tests.helpers import assert_clean_failure, run_cli


def toy(task_env, text=TOY_MC):
    path = task_env["tasks"] / "toy_mc.toml"
    path.write_text(text)
    return load_task(path)


def validation(task_env):
    return task_env["data"] / "toy_mc" / "validation.jsonl"


# ---------------------------------------------------------------- data files


def _not_utf8(path):
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"goal": "', b'"goal": "caf\xe9 ')
    path.write_bytes(b"\n".join(lines))


def _truncated_gzip(path):
    packed = gzip.compress(path.read_bytes())
    path.with_suffix(".jsonl.gz").write_bytes(packed[: len(packed) // 2])
    path.unlink()


def _malformed(path):
    lines = path.read_text().splitlines()
    lines[6] = '{"goal": "broken", "sol1": '
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("damage", "message"), [
    (_not_utf8, "validation.jsonl:4: not UTF-8 (byte 0xe9 at column 14); save the file as UTF-8"),
    (_truncated_gzip, "validation.jsonl.gz: truncated or corrupt gzip file"),
    (_malformed, "validation.jsonl:7: malformed JSON line: Expecting value (column 1)"),
    (lambda path: path.write_text(""), "validation.jsonl: empty file: no JSON lines"),
    (lambda path: path.write_text('{"goal": "g"}\n[1, 2]\n'),
     "validation.jsonl:2: each line must be a JSON object, got list"),
])
def test_bad_data_file_is_one_line_on_stderr(task_env, tiny_gpt2_dir, capsys, damage, message):
    damage(validation(task_env))
    code = run_cli(task_env, tiny_gpt2_dir, tasks=("toy_mc",))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err  # nothing else


def test_rows_are_read_as_written(task_env):
    """Each line as json.loads reads it: key order, strings that look like numbers or null, no keys added from
    other lines (a column-typed loader changes all three)."""
    rows = [r | {"extra": "112", "note": "null"} for r in MC_ROWS]
    rows[0] = {"sol2": rows[0]["sol2"], **{k: v for k, v in rows[0].items() if k != "sol2"}, "only_here": 1.5}
    rows[1] = {**rows[1], "extra": 7}
    validation(task_env).write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n\n" for r in rows).encode())
    examples = load_task_data(toy(task_env), task_env["data"]).eval.examples
    assert [list(e.fields.items()) for e in examples] == [list(r.items()) for r in rows]


# ---------------------------------------------------------------- --device, --settings


def test_device_not_a_torch_device():
    with pytest.raises(HarnessError, match=r"^--device 'nonsense': not a torch device \(known: cpu, cuda, mps, xpu"):
        RunConfig(device="nonsense")
    with pytest.raises(HarnessError, match=r"^--device 'cuda:x': after ':' comes a device number, as in cuda:0$"):
        RunConfig(device="cuda:x")
    with pytest.raises(HarnessError, match=r"did you mean: cuda"):
        RunConfig(device="cdua")


def test_device_cuda_without_cuda_fails_before_model_work(task_env, tiny_gpt2_dir, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = run_cli(task_env, tiny_gpt2_dir, "--device", "cuda", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "--device cuda: no CUDA device on this machine")
    assert RunConfig(device="cuda", executor="ray").device == "cuda"  # Ray workers may have what this machine lacks


def test_short_setting_typo_gets_a_suggestion(task_env, tiny_gpt2_dir, capsys):
    code = run_cli(task_env, tiny_gpt2_dir, "--settings", "xs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "unknown setting 'xs' (did you mean: zs")


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize(("key", "line", "message"), [
    ("demo_split", 'demo_split = "trian"', "data.demo_split 'trian': no such split in"),
    ("train_split", 'demo_split = "train"\ntrain_split = "trian"', "data.train_split 'trian': no such split in"),
])
def test_split_typo_is_an_error_with_the_splits_found(task_env, key, line, message):
    task = toy(task_env, TOY_MC.replace('demo_split = "train"', line))
    with pytest.raises(HarnessError,
                       match=message + r" .*toy_mc \(splits found: train, validation\) \(did you mean: train\?\)"):
        load_task_data(task, task_env["data"])


def test_eval_split_typo_and_folder_case(task_env):
    task = toy(task_env, TOY_MC.replace('eval_split = "validation"', 'eval_split = "valdation"'))
    with pytest.raises(HarnessError, match=r"data.eval_split 'valdation': .*\(splits found: train, validation\) "
                                           r"\(did you mean: validation\?\)"):
        load_task_data(task, task_env["data"])
    task = toy(task_env, TOY_MC.replace('eval_split = "validation"', 'eval_split = "test"'))
    with pytest.raises(HarnessError,
                       match=r"data.eval_split 'test': no such split .*\(splits found: train, validation\)$"):
        load_task_data(task, task_env["data"])
    task = toy(task_env, TOY_MC.replace('local = "toy_mc"', 'local = "Toy_MC"'))
    with pytest.raises(HarnessError, match=r"data.local 'Toy_MC': no such folder in .* \(did you mean: toy_mc\?\)"):
        load_task_data(task, task_env["data"])


def test_demo_fallbacks_are_warnings(task_env):
    data = load_task_data(toy(task_env, TOY_MC.replace('demo_split = "train"\n', "")), task_env["data"])
    assert data.demos is data.eval and data.warning.startswith("task toy_mc: no data.demo_split: demonstrations from")
    (task_env["data"] / "toy_mc" / "train.jsonl").unlink()  # a named split absent offline, as for piqa's train
    data = load_task_data(toy(task_env), task_env["data"])
    assert (data.demos is data.eval
            and "demo split 'train' not in the data dir (splits found: validation)" in data.warning)


def test_fallback_warning_on_stderr_in_run_json_and_report(task_env, tiny_gpt2_dir, capsys):
    toy(task_env, TOY_MC.replace('demo_split = "train"\n', ""))
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs,1s", "--limit", "2", tasks=("toy_mc",)) == 0
    warning = ("task toy_mc: no data.demo_split: demonstrations from the eval split, "
               "never the example itself ('validation')")
    assert capsys.readouterr().err.count(f"warning: {warning}\n") == 1
    folder = task_env["root"] / "results" / "r"
    assert json.loads((folder / "run.json").read_text())["warnings"] == [warning]
    assert f"## Warnings\n\n- {warning}\n" in (folder / "report.md").read_text()
    assert "<h2>Warnings</h2>" in (folder / "report.html").read_text()
    assert run_cli(task_env, tiny_gpt2_dir, "--settings", "zs", "--limit", "2", tasks=("toy_mc",), name="zs") == 0
    assert "warning" not in capsys.readouterr().err  # zero-shot takes no demonstrations: nothing fell back


# ---------------------------------------------------------------- users' task folders


def test_tasks_dir_flag_and_environment(task_env, tmp_path, monkeypatch, capsys):
    from harness.tasks.catalog import expand_suites, resolve_task, search_path

    mine, more = tmp_path / "mine", tmp_path / "more"
    (mine / "suites").mkdir(parents=True)
    more.mkdir()
    (mine / "my_mc.toml").write_text(TOY_MC)
    (mine / "suites" / "my_suite.toml").write_text('description = "mine"\ntasks = ["my_mc", "copa"]\n')
    (more / "copa.toml").write_text(TOY_MC)
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(more))
    dirs = search_path([str(mine)])
    assert [(d.path, d.origin) for d in dirs[:2]] == [(mine, "--tasks-dir"), (more, "$HARNESS_TASKS_PATH")]
    assert resolve_task("my_mc", dirs).path == mine / "my_mc.toml"
    assert resolve_task("copa", dirs).path == more / "copa.toml"  # a user file wins over the built-in one
    assert expand_suites(["my_suite"], dirs) == ["my_mc", "copa"]
    assert main(["list", "--tasks-dir", str(mine)]) == 0
    out = capsys.readouterr().out
    assert f"tasks in {mine} (--tasks-dir):" in out and f"tasks in {more} ($HARNESS_TASKS_PATH):" in out
    assert f"(shadowed by {more / 'copa.toml'})" in out and "my_suite" in out


def test_run_finds_user_tasks_and_says_which_one_wins(task_env, tiny_gpt2_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HARNESS_TASKS_PATH", raising=False)
    (task_env["tasks"] / "copa.toml").write_text(TOY_MC)
    args = ["run", "--model", str(tiny_gpt2_dir), "--tasks", "copa,toy_mc", "--tasks-dir", str(task_env["tasks"]),
            "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / "results"),
            "--settings", "zs", "--limit", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (err.count("task 'copa': ") == 1
            and f"{task_env['tasks'] / 'copa.toml'} (--tasks-dir) is used, not the built-in" in err)
    assert "task 'toy_mc'" not in err
    shutil.rmtree(task_env["root"] / "results")
    code = main(["run", "--tasks-dir", str(tmp_path / "missing"), "--tasks", "copa"])
    assert_clean_failure(code, capsys, task_env, f"--tasks-dir {tmp_path / 'missing'}: not a directory")


def test_missing_train_split_for_ft_is_a_warning(task_env):
    from harness.pipeline import prepare

    toy(task_env, TOY_MC.replace('demo_split = "train"', 'demo_split = "validation"\ntrain_split = "train"'))
    (task_env["data"] / "toy_mc" / "train.jsonl").unlink()
    config = RunConfig(tasks=(str(task_env["tasks"] / "toy_mc.toml"),), settings=parse_settings("zs,ft"),
                       data_dir=task_env["data"])
    [task] = prepare(config)
    warning = "task toy_mc: FT not run: train split 'train' is not in the data dir and the hub is unreachable"
    assert task.warnings == (warning,)
