"""Data loading: the data dir rule, jsonl via datasets, malformed lines reported as file:line."""

from __future__ import annotations

import pytest

from harness.tasks.data import load_task_data, resolve_data_dir
from harness.errors import HarnessError
from harness.tasks.preprocess import lambada, wikitext_documents
from harness.tasks.taskfile import load_task
from tests.conftest import TOY_MC


def toy_task(tmp_path, text=TOY_MC):
    path = tmp_path / "toy_mc.toml"
    path.write_text(text)
    return load_task(path)


def test_data_dir_flag_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_data_dir(other) == other
    with pytest.raises(HarnessError, match="--data-dir .*: not a directory"):
        resolve_data_dir(tmp_path / "missing")


def test_loads_eval_and_demo_splits(task_env):
    data = load_task_data(toy_task(task_env["root"]), task_env["data"])
    assert len(data.eval.examples) == 12 and data.eval.examples[5].id == "validation-5"
    assert data.demos.name == "train" and data.demos.examples[0].fields["goal"].startswith("Train")
    assert len(data.eval.sha256) == 64


def test_missing_demo_split_falls_back_to_eval(task_env):
    (task_env["data"] / "toy_mc" / "train.jsonl").unlink()
    data = load_task_data(toy_task(task_env["root"]), task_env["data"])
    assert data.demos is data.eval and "never the example itself" in data.note


def test_malformed_line_names_file_and_line(task_env):
    path = task_env["data"] / "toy_mc" / "validation.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = '{"goal": "broken", "sol1": '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match=r"validation.jsonl:7: malformed JSON line"):
        load_task_data(toy_task(task_env["root"]), task_env["data"])


def test_template_field_missing_from_data(task_env):
    task = toy_task(task_env["root"], TOY_MC.replace("$goal", "$question"))
    with pytest.raises(HarnessError, match=r"toy_mc.toml: prompt.query names \$question, which .* does not have"):
        load_task_data(task, task_env["data"])


def test_no_local_data_and_no_hub(task_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match=r"split 'validation' not found locally .* and the task has no hub id"):
        load_task_data(toy_task(task_env["root"]), empty)


def test_no_local_data_and_hub_unreachable(task_env, tmp_path):
    task = toy_task(task_env["root"], TOY_MC.replace('local = "toy_mc"', 'local = "toy_mc"\nhub = "someone/toy"'))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match=r"split 'validation' not found locally .* and the hub is unreachable; put"):
        load_task_data(task, empty)


def test_gzipped_jsonl(task_env):
    import gzip

    path = task_env["data"] / "toy_mc" / "validation.jsonl"
    gz = path.with_suffix(".jsonl.gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    assert len(load_task_data(toy_task(task_env["root"]), task_env["data"]).eval.examples) == 12


def test_lambada_split_at_last_space():
    assert lambada([{"text": "a b  c"}])[0] == {"text": "a b  c", "context": "a b ", "target": " c"}


def test_wikitext_documents_group_at_level_one_titles():
    rows = [{"text": ""}, {"text": " = A = \n"}, {"text": ""}, {"text": " x @-@ y , z . \n"},
            {"text": " = = Sub = = \n"}, {"text": " = B = \n"}, {"text": " w \n"}]
    docs = wikitext_documents(rows)
    assert [d["page"] for d in docs] == [" = A = \n \n x @-@ y , z . \n = = Sub = = ", " = B = \n w \n"]
    assert docs[0]["text"] == " = A =\n\nx-y, z.\n== Sub == "  # wikitext_detokenizer, by hand
