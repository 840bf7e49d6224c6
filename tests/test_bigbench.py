"""BIG-bench JSON tasks: golden prompts (whitespace included) under BIG-bench's prefix conventions,
gold from target_scores, loud errors, and every task in the shared data dir loading and rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.tasks.bigbench import bigbench_names, bigbench_preprocess, bigbench_rows, bigbench_task, listed_order
from harness.errors import HarnessError
from harness.metrics import METRICS
from harness.tasks.prompts import build_prompt
from harness.tasks.templates import choices_of
from harness.records import Example, LoglikelihoodRequest, Setting
from harness.tasks.kinds import KINDS, render, requests_for
from harness.records import TaskKind
from tests.conftest import SHARED_DATA, write_jsonl

ROWS = [
    {"input": "What is 1 + 1?", "target_scores": {"2": 1, "3": 0, "11": 0}},
    {"input": "What is 2 + 2?", "target_scores": {"4": 1, "5": 0, "22": 0}},
    {"input": "Pick a prime.", "target_scores": {"4": 0, "7": 1, "5": 1}},  # two correct: first one is gold
    {"input": "Which feeling fits a rainbow?", "target_scores": {"joy": 0.69, "trust": 0.33, "anger": 0.0}},
]
META = {"name": "toy", "task_prefix": "Answer the questions.\n", "metrics": ["multiple_choice_grade"], "canary": "x"}


def make_task(data: Path, name: str, meta, rows=ROWS) -> None:
    folder = data / "bigbench" / "tasks"
    write_jsonl(folder / f"{name}.jsonl", rows)
    (folder / f"{name}.meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))


def load(data: Path, name: str) -> tuple:
    """The task and its examples, read the way data.py does after wiring (plain JSON lines here)."""
    task = bigbench_task(name, data)
    path = data / "bigbench" / task.data.files["examples"]
    rows = bigbench_preprocess(task, [json.loads(line) for line in path.read_text().split("\n") if line.strip()])
    return task, [Example(f"examples-{i}", row) for i, row in enumerate(rows)]


@pytest.fixture()
def data(tmp_path) -> Path:
    make_task(tmp_path, "toy", META)
    return tmp_path


def test_task_spec_shape(data):
    task = bigbench_task("toy", data)
    assert task.name == "bigbench_toy" and task.kind is TaskKind.MULTIPLE_CHOICE
    assert task.path == data / "bigbench" / "tasks" / "toy.meta.json" and len(task.sha256) == 64
    assert task.description == "Answer the questions.\n" and task.preprocess == "bigbench"
    assert task.data.local == "bigbench" and task.data.eval_split == "examples" and task.data.demo_split is None
    assert task.data.files == {"examples": "tasks/toy.jsonl"}
    p = task.prompt
    assert (p.query, p.choices, p.answer) == ("\nQ: $bb_query\nA: ", "$bb_choices", "$bb_gold")
    assert (p.target_delimiter, p.demo_separator) == ("", "\n")
    assert all(m in METRICS and KINDS[TaskKind.MULTIPLE_CHOICE].outcome in METRICS[m].reads for m in task.metrics)
    assert bigbench_task("bigbench_toy", data) == task  # the harness name works too


def test_zero_shot_golden_with_default_prefixes(data):
    task, examples = load(data, "toy")
    prompt = build_prompt(task, examples[0], Setting.ZS, 0, 0, examples)
    assert prompt.text == (
        "Answer the questions.\n"
        "\nQ: What is 1 + 1?\n  choice: 2\n  choice: 11\n  choice: 3\nA: "
    )


def test_one_shot_golden_with_default_separator(data):
    task, examples = load(data, "toy")
    prompt = build_prompt(task, examples[0], Setting.ONE_SHOT, 1, 0, examples)
    assert prompt.demo_ids == ("examples-2",)
    assert prompt.text == (
        "Answer the questions.\n"
        "\nQ: Pick a prime.\n  choice: 5\n  choice: 4\n  choice: 7\nA: 7"  # demo answer follows the prefix directly
        "\n"
        "\nQ: What is 1 + 1?\n  choice: 2\n  choice: 11\n  choice: 3\nA: "
    )


def test_requests_score_each_choice_after_the_prompt(data):
    """The whole path: one loglikelihood request per target_scores key, no delimiter before it."""
    task, examples = load(data, "toy")
    prompt = build_prompt(task, examples[1], Setting.ZS, 0, 0, examples)
    requests = requests_for(task, prompt, render(task, examples[1]))
    assert all(isinstance(r, LoglikelihoodRequest) and r.context == prompt.text for r in requests)
    assert [r.continuation for r in requests] == ["4", "5", "22"]  # file order; only the listing is shuffled
    assert render(task, examples[1]).target == "4"


def test_gold_is_first_top_scored_choice(data):
    _, examples = load(data, "toy")
    assert [e.fields["bb_gold"] for e in examples] == [0, 0, 1, 0]
    assert examples[2].fields["bb_choices"] == ["4", "7", "5"]  # "7" and "5" both score 1: "7" comes first
    assert examples[3].fields["bb_scores"] == [0.69, 0.33, 0.0]  # fractional scores: the highest is gold


def test_append_choices_false_and_custom_prefixes(tmp_path):
    meta = {"example_input_prefix": "\nStatement: ", "example_output_prefix": "\nCost: $", "choice_prefix": " | ",
            "append_choices_to_input": False, "few_shot_example_separator": "\n-----\n"}
    make_task(tmp_path, "custom", meta)
    task, examples = load(tmp_path, "custom")
    assert task.description == "" and task.prompt.query == "\nStatement: $bb_query\nCost: $$"
    prompt = build_prompt(task, examples[0], Setting.ONE_SHOT, 1, 0, examples)
    assert prompt.demo_ids == ("examples-1",)
    assert prompt.text == "\nStatement: What is 2 + 2?\nCost: $4\n-----\n\nStatement: What is 1 + 1?\nCost: $"


def test_custom_choice_prefix_is_appended(tmp_path):
    make_task(tmp_path, "opts",
              {"choice_prefix": "\n option: ", "example_input_prefix": "", "example_output_prefix": "\nAnswer: "})
    task, examples = load(tmp_path, "opts")
    prompt = build_prompt(task, examples[3], Setting.ZS, 0, 0, examples)
    assert prompt.text == "Which feeling fits a rainbow?\n option: joy\n option: anger\n option: trust\nAnswer: "
    assert choices_of(task, examples[3]) == ["joy", "trust", "anger"]


def test_listed_order_depends_only_on_input_and_choice_set():
    order = listed_order("Q?", ["b", "a", "c", "d"])
    assert sorted(order) == ["a", "b", "c", "d"]
    assert listed_order("Q?", ["d", "c", "b", "a"]) == order  # not on target_scores order
    rows = bigbench_rows([{"input": "x", "target_scores": {"n": 0, "y": 1}}, ROWS[0]], META)
    alone = bigbench_rows([ROWS[0]], META)
    assert rows[1]["bb_query"] == alone[0]["bb_query"]  # not on the row's position


def test_duplicates_dropped_and_loader_nulls_ignored():
    rows = [ROWS[0], dict(ROWS[0]), {"input": "Q", "target_scores": {"a": 1, "b": 0, "c": None}}]
    out = bigbench_rows(rows, {"append_choices_to_input": False})
    assert len(out) == 2 and out[1]["bb_choices"] == ["a", "b"] and out[1]["bb_query"] == "Q"


def test_not_multiple_choice_names_the_file(tmp_path):
    make_task(tmp_path, "gen", META, rows=[{"input": "2 + 2 =", "target": "4"}])
    with pytest.raises(HarnessError, match=r"gen\.jsonl:1: example has no target_scores: not a multiple-choice task"):
        bigbench_task("gen", tmp_path)
    with pytest.raises(HarnessError, match=r"^rows\.jsonl: example 1 has no target_scores: not a multiple-choice task"):
        bigbench_rows([ROWS[0], {"input": "2 + 2 =", "target": "4"}], META, source="rows.jsonl")


def test_malformed_meta_names_the_file(tmp_path):
    make_task(tmp_path, "broken", '{"task_prefix": "x",\n  "metrics": [}')
    with pytest.raises(HarnessError, match=r"broken\.meta\.json:2: not valid JSON"):
        bigbench_task("broken", tmp_path)
    make_task(tmp_path, "typed", {"append_choices_to_input": "yes"})
    with pytest.raises(HarnessError, match=r"typed\.meta\.json: append_choices_to_input: must be true or false"):
        bigbench_task("typed", tmp_path)
    make_task(tmp_path, "listy", ["not", "an", "object"])
    with pytest.raises(HarnessError, match=r"listy\.meta\.json: must be a JSON object"):
        bigbench_task("listy", tmp_path)


def test_missing_meta_and_bad_scores(tmp_path):
    make_task(tmp_path, "toy", META)
    (tmp_path / "bigbench" / "tasks" / "toy.meta.json").unlink()
    with pytest.raises(HarnessError, match=r"toy\.meta\.json: no such file"):
        bigbench_task("toy", tmp_path)
    with pytest.raises(HarnessError, match=r"example 0: target_scores must map at least two choices to numbers"):
        bigbench_rows([{"input": "Q", "target_scores": {"a": "1", "b": 0}}], META)


def test_unknown_name_suggests_close_matches(data):
    with pytest.raises(HarnessError, match=r"unknown BIG-bench task 'tyo' \(did you mean: toy\?\)"):
        bigbench_task("bigbench_tyo", data)
    with pytest.raises(HarnessError, match="needs a data dir"):
        bigbench_task("toy", None)


def test_names_and_missing_folder(data, tmp_path):
    make_task(data, "another_task", META)
    assert bigbench_names(data) == ["another_task", "toy"]
    assert bigbench_names(tmp_path / "nowhere") == [] and bigbench_names(None) == []


def test_meta_changed_after_loading(data):
    task = bigbench_task("toy", data)
    (data / "bigbench" / "tasks" / "toy.meta.json").write_text(json.dumps(META | {"task_prefix": "Other"}))
    with pytest.raises(HarnessError, match="changed since task bigbench_toy was loaded"):
        bigbench_preprocess(task, ROWS)


def test_through_data_py(data):
    """data.load_task_data dispatches to bigbench_preprocess for BIG-bench specs."""
    from harness.tasks.data import load_task_data
    from harness.tasks.catalog import expand_suites, resolve_task

    task = resolve_task("bigbench_toy", data_dir=data)
    assert expand_suites(["bigbench"], data_dir=data) == ["bigbench_toy"]
    loaded = load_task_data(task, data)
    assert loaded.demos is loaded.eval and len(loaded.eval.examples) == 4
    assert loaded.eval.source.endswith("bigbench/tasks/toy.jsonl") and len(loaded.eval.sha256) == 64
    prompt = build_prompt(task, loaded.eval.examples[0], Setting.ZS, 0, 0, loaded.eval.examples)
    assert prompt.text.endswith("\nQ: What is 1 + 1?\n  choice: 2\n  choice: 11\n  choice: 3\nA: ")


REAL = SHARED_DATA / "bigbench"


@pytest.mark.skipif(not (REAL / "tasks").is_dir(), reason="no shared BIG-bench data")
def test_every_shared_task_loads_and_renders():
    names = bigbench_names(SHARED_DATA)
    assert names
    refused = []  # an empty choice is refused in one line (scored, it would be the bare delimiter)
    for name in names:
        try:
            task, examples = load(SHARED_DATA, name)
        except HarnessError as e:
            assert "choice 1 is empty" in str(e), str(e)
            refused.append((name, str(e).split(": ")[1]))
            continue
        for i, example in enumerate(examples):
            choices = choices_of(task, example)
            assert len(choices) >= 2 and len(set(choices)) == len(choices), (name, example.id)
            target = example.fields.get("target")
            if isinstance(target, str):  # BIG-bench demonstrates with `target` when given: it is our gold
                assert target == render(task, example).target, (name, example.id)
            k = 1 if i < 20 else 0  # every example zero-shot, the first twenty one-shot too
            prompt = build_prompt(task, example, Setting.ONE_SHOT if k else Setting.ZS, k, 0, examples)
            assert prompt.text.startswith(task.description) and prompt.k_used == k
            assert len(requests_for(task, prompt, render(task, example))) == len(choices)
    assert refused == [("cryobiology_spanish", "example 140")]  # its data has the distractor ""


@pytest.mark.parametrize("value, appended", [(False, False), ("false", False), ("False", False), (0, False),
                                             (True, True), ("true", True), ("TRUE", True), (1, True)])
def test_append_choices_flag_in_every_form_big_bench_uses(tmp_path, value, appended):
    """The string "false" hides the choices (it is truthy in Python, so a plain truth test would show them)."""
    make_task(tmp_path, "flag", {"append_choices_to_input": value})
    task, examples = load(tmp_path, "flag")
    assert ("choice: " in build_prompt(task, examples[0], Setting.ZS, 0, 0, examples).text) is appended


@pytest.mark.parametrize("value", ["no", 2, None, [], "0"])
def test_other_flag_forms_are_an_error_naming_file_and_key(tmp_path, value):
    make_task(tmp_path, "flag", {"append_choices_to_input": value})
    with pytest.raises(HarnessError, match=r"flag\.meta\.json: append_choices_to_input: must be true or false"):
        bigbench_task("flag", tmp_path)


def bad_suite(data: Path) -> None:
    """Beside the good `toy`: one task with a bad flag, one whose third example has no target_scores."""
    make_task(data, "bad_flag", {"append_choices_to_input": "nope"})
    make_task(data, "bad_rows", META, rows=ROWS[:2] + [{"input": "2 + 2 =", "target": "4"}])


def test_list_shows_tasks_that_cannot_run_with_the_reason(data, capsys):
    from harness.cli import main

    bad_suite(data)
    assert main(["list", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    runnable = out.split("BIG-bench (")[1].split("\n")[1]
    assert "toy" in runnable and "bad_flag" not in runnable
    assert "bigbench_bad_flag: INVALID: " in out and "append_choices_to_input: must be true or false" in out
    assert "bigbench_bad_rows: INVALID: " in out and "example 2 has no target_scores" in out  # every example checked


def test_a_suite_reports_every_member_that_cannot_run(data):
    from harness.config import RunConfig
    from harness.pipeline import prepare_all

    bad_suite(data)
    with pytest.raises(HarnessError) as error:
        prepare_all(RunConfig(tasks=("bigbench",), data_dir=data, settings=(Setting.ZS,)))
    lines = str(error.value).splitlines()
    assert lines[0] == "2 of 3 tasks cannot run (fix them, or pass --skip-invalid to run the other 1):"
    assert lines[1].startswith("  bigbench_bad_flag: ") and "append_choices_to_input" in lines[1]
    assert lines[2].startswith("  bigbench_bad_rows: ") and "example 2 has no target_scores" in lines[2]
    tasks, skipped = prepare_all(RunConfig(tasks=("bigbench",), data_dir=data, settings=(Setting.ZS,),
                                           skip_invalid=True))
    assert ([t.spec.name for t in tasks] == ["bigbench_toy"]
            and list(skipped) == ["bigbench_bad_flag", "bigbench_bad_rows"])


def test_skip_invalid_runs_the_rest_with_n_a_rows(data, tiny_gpt2_dir, tmp_path):
    import pandas as pd

    from harness.cli import main

    bad_suite(data)
    out = tmp_path / "results"
    args = ["run", "--model", str(tiny_gpt2_dir), "--tasks", "bigbench", "--data-dir", str(data), "--settings", "zs,1s",
            "--output-dir", str(out), "--run-name", "r", "--no-cache"]
    assert main(args) == 2 and not (out / "r").exists()  # stops before any model work
    assert main(args + ["--skip-invalid"]) == 0
    scores = pd.read_csv(out / "r" / "scores.csv", keep_default_na=False)
    skipped = scores[scores.task == "bigbench_bad_flag"]
    assert list(skipped.setting) == ["ZS", "1S"] and (skipped.value == "").all()
    assert skipped.note.str.startswith("skipped: ").all() and skipped.note.str.contains("append_choices_to_input").all()
    assert set(scores[scores.task == "bigbench_toy"].metric) == {"acc", "acc_norm", "multiple_choice_grade"}
    report = (out / "r" / "report.md").read_text()
    assert "n/a (skipped: " in report and "bigbench_bad_rows" in report
    assert (json.loads((out / "r" / "run.json").read_text())["skipped"].keys()
            == {"bigbench_bad_flag", "bigbench_bad_rows"})


def outcome(logprobs, credit=(), gold=0):
    from harness.records import ChoiceOutcome

    n = len(logprobs)
    return ChoiceOutcome(tuple("abcd"[:n]), gold, tuple(logprobs), (False,) * n, (1,) * n, credit=tuple(credit))


@pytest.mark.parametrize("logprobs, credit, acc, grade", [
    ((-1.0, -2.0, -3.0), (1, 0, 0), 1.0, 1.0),  # one target, picked
    ((-3.0, -2.0, -1.0), (0, 1, 1), 0.0, 1.0),  # a second top-scored target: acc credits only the first
    ((-1.0, -2.0, -3.0), (0.69, 0.33, 0.0), 1.0, 0.69),  # fractional target_scores: the pick's score
    ((-2.0, -1.0, -3.0), (0.69, 0.33, 0.0), 0.0, 0.33),
    ((-1.0, -1.0, -3.0), (1, 0, 0), 1.0, 0.5),  # a tie in log-likelihood: the mean credit of the tied choices
])
def test_multiple_choice_grade_credits_the_target_score_of_the_pick(logprobs, credit, acc, grade):
    o = outcome(logprobs, credit, gold=credit.index(max(credit)))
    assert METRICS["acc"].per_example(o) == (acc,)
    assert METRICS["multiple_choice_grade"].per_example(o) == pytest.approx((grade,))


def test_multiple_choice_grade_without_target_scores_credits_the_gold_choice():
    assert METRICS["multiple_choice_grade"].per_example(outcome((-2.0, -1.0), gold=1)) == (1.0,)
    assert METRICS["multiple_choice_grade"].per_example(outcome((-2.0, -1.0), gold=0)) == (0.0,)


def test_big_bench_examples_carry_target_scores_to_the_outcome(data):
    task, examples = load(data, "toy")
    assert "multiple_choice_grade" in task.metrics
    assert render(task, examples[2]).credit == (0.0, 1.0, 1.0) and render(task, examples[3]).credit == (0.69, 0.33, 0.0)


def test_skip_invalid_never_skips_a_typo_in_tasks(data, capsys):
    """--skip-invalid skips tasks that exist and cannot run; a name no folder holds is a typo: the run stops."""
    from harness.cli import main

    code = main(["run", "--model", "gpt2", "--tasks", "bigbench_toy,bigbench_tyo", "--data-dir", str(data),
                 "--settings", "zs", "--skip-invalid"])
    err = capsys.readouterr().err
    assert code == 2 and "'tyo'" in err and "did you mean" in err and "skipping" not in err, err
