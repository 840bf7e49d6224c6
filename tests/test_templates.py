"""$field templates: dotted access into objects, and every way a template could paste something wrong (a null, a
whole object, an empty choice, Jinja syntax, a float label) is one line naming task file:line, key, field and
example, raised before any model work, for every example a run reads."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.config import RunConfig, parse_settings
from harness.errors import HarnessError
from harness.pipeline import prepare
from harness.records import Example, Setting
from harness.tasks.kinds import render
from harness.tasks.prompts import sample_demos
from harness.tasks.taskfile import load_task
from tests.conftest import MC_ROWS, SHARED_DATA, TOY_MC

QUERY_LINE = 10  # the line of `query =` in TOY_MC


def task(tmp_path, text=TOY_MC, **replace):
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "t.toml"
    path.write_text(text)
    return load_task(path)


def rendered(t, **fields):
    return render(t, Example("validation-7", {"goal": "g", "sol1": "a", "sol2": "b", "label": 1} | fields))


def failure(t, **fields) -> str:
    with pytest.raises(HarnessError) as error:
        rendered(t, **fields)
    assert "\n" not in str(error.value)
    return str(error.value)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------- null, missing, objects, empty choices


def test_a_null_field_is_an_error_not_the_text_none(tmp_path):
    message = failure(task(tmp_path), goal=None)
    assert message.startswith(f"{tmp_path / 't.toml'}:{QUERY_LINE}: prompt.query: $goal is null")
    assert "example validation-7" in message


def test_a_missing_field_names_the_fields_that_exist(tmp_path):
    t = task(tmp_path, **{"$goal": "$gaol"})
    assert "$gaol: example validation-7 has no field 'gaol' (its fields: goal, sol1, sol2, label)" in failure(t)


def test_an_empty_choice_is_an_error(tmp_path):
    assert "t.toml:11: prompt.choices[1]: choice 1 is empty in example validation-7" in failure(task(tmp_path), sol2="")
    listed = task(tmp_path, **{'["$sol1", "$sol2"]': '"$options"'})
    assert "prompt.choices: choice 2 is empty in example validation-7" in failure(listed, options=["a", "b", ""])
    assert "$options[1] is null in example validation-7" in failure(listed, options=["a", None])


def test_an_object_is_never_pasted_whole(tmp_path):
    message = failure(task(tmp_path), goal={"span1_text": "x", "span2_text": "y"})
    assert "$goal is an object in example validation-7 (keys: span1_text, span2_text): name one of its keys, " \
           "e.g. $goal.span1_text" in message


# ---------------------------------------------------------------- dotted fields


def test_dotted_fields_read_into_objects(tmp_path):
    t = task(tmp_path, **{"$goal": "$target.span1_text and ${target.span2_text}."})
    r = rendered(t, target={"span1_text": "Mark", "span2_text": "he"})
    assert r.query == "Question: Mark and he.\nAnswer:"
    priced = task(tmp_path, **{"Question: $goal": "Cost: $$5 for ${target.span1_text}s"})  # $$ is still a literal $
    assert rendered(priced, target={"span1_text": "Mark"}).query == "Cost: $5 for Marks\nAnswer:"


def test_a_dotted_key_that_is_missing_names_the_keys_that_exist(tmp_path):
    t = task(tmp_path, **{"$goal": "$target.span3_text"})
    message = failure(t, target={"span1_text": "Mark", "span2_text": "he"})
    assert f"t.toml:{QUERY_LINE}: prompt.query: $target.span3_text: example validation-7 $target has no key " \
           "'span3_text' (its keys: span1_text, span2_text)" in message


def test_a_dot_after_a_text_field_says_to_use_braces(tmp_path):
    t = task(tmp_path, **{"$goal": "$goal.Then"})
    assert "$goal.Then: $goal is a str ('g'), not an object, in example validation-7; to put text right after it " \
           "write ${goal}" in failure(t)


def test_arc_style_choices_list_inside_an_object(tmp_path):
    t = task(tmp_path, **{'["$sol1", "$sol2"]': '"$choices.text"', "$label": "$answerKey",
                          "[prompt]": "[prompt]\nanswer_labels = ['A', 'B', 'C']"})
    r = rendered(t, choices={"text": ["red", "green", "blue"], "label": ["A", "B", "C"]}, answerKey="C")
    assert r.choices == ("red", "green", "blue") and r.gold == 2 and r.target == "blue"
    whole = task(tmp_path, **{'["$sol1", "$sol2"]': '"$choices"'})
    assert "$choices is an object in example validation-7 (keys: text, label): name one of its keys, e.g. " \
           "$choices.text" in failure(whole, choices={"text": ["a"], "label": ["A"]})


# ---------------------------------------------------------------- template syntax, at load time


def test_jinja_syntax_is_a_one_line_load_error(tmp_path):
    with pytest.raises(HarnessError) as error:
        task(tmp_path, **{"$goal": "{{goal}}"})
    assert str(error.value) == (f"{tmp_path / 't.toml'}:{QUERY_LINE}: prompt.query: {{{{goal}}}} is Jinja syntax, "
                                "which $field templates do not read: write $goal")


def test_an_invalid_placeholder_says_why(tmp_path):
    with pytest.raises(HarnessError, match=r"t.toml:10: prompt.query: '\$\{a b\}\\nAnswer:' is not a "
                                           r"field: a field is \$name, \$\{name\} or a dotted \$name.key .*write \$\$ "
                                           r"for a literal \$"):
        task(tmp_path, **{"$goal": "${a b}"})


# ---------------------------------------------------------------- gold labels read as floats


def test_whole_float_labels_read_as_indices_and_a_fractional_one_is_blamed_on_its_own_row(tmp_path):
    from harness.tasks.data import load_task_data

    t = task(tmp_path)
    rows = [{"goal": "g", "sol1": "a", "sol2": "b", "label": label} for label in (0, 1.0, 1, 0)]
    write_jsonl(tmp_path / "data" / "toy_mc" / "validation.jsonl", rows)  # the json loader makes every label a float
    examples = load_task_data(t, tmp_path / "data").eval.examples
    assert [render(t, ex).gold for ex in examples] == [0, 1, 1, 0]
    write_jsonl(tmp_path / "data" / "toy_mc" / "validation.jsonl", rows + [rows[0] | {"label": 1.5}])
    examples = load_task_data(t, tmp_path / "data").eval.examples
    with pytest.raises(HarnessError,
                       match=r"prompt.answer: \$label is 1.5 in example validation-4, not a whole number"):
        [render(t, ex) for ex in examples]


# ---------------------------------------------------------------- every example a run reads, before the model


def run_env(tmp_path, train_rows):
    write_jsonl(tmp_path / "data" / "toy_mc" / "validation.jsonl", MC_ROWS)
    write_jsonl(tmp_path / "data" / "toy_mc" / "train.jsonl", train_rows)
    path = tmp_path / "toy_mc.toml"
    path.write_text(TOY_MC.replace('demo_split = "train"', 'demo_split = "train"\ntrain_split = "train"'))
    return path


def test_prepare_checks_the_drawn_demonstrations_before_the_model_loads(tmp_path):
    train = [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS]
    pool = [Example(f"train-{i}", r) for i, r in enumerate(train)]
    drawn = sample_demos("toy_mc", Example("validation-0", MC_ROWS[0]), pool, 1, 0)[0].id
    bad = int(drawn.split("-")[1])
    train[bad] = train[bad] | {"goal": None}
    path = run_env(tmp_path, train)
    config = RunConfig(tasks=(str(path),), settings=parse_settings("1s"), limit=1, data_dir=tmp_path / "data")
    with pytest.raises(HarnessError, match=rf"prompt.query: \$goal is null \(or missing\) in example train-{bad};"):
        prepare(config)
    zero_shot = RunConfig(tasks=(str(path),), settings=(Setting.ZS,), limit=1, data_dir=tmp_path / "data")
    assert len(prepare(zero_shot)[0].prompts) == 1  # ZS reads no demonstration


def test_prepare_checks_the_ft_train_split(tmp_path):
    train = [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS]
    train[5] = train[5] | {"sol2": ""}
    path = run_env(tmp_path, train)
    config = RunConfig(tasks=(str(path),), settings=parse_settings("ft"), limit=1, data_dir=tmp_path / "data")
    with pytest.raises(HarnessError, match=r"prompt.choices\[1\]: choice 1 is empty in example train-5"):
        prepare(config)


def test_validate_checks_every_split_and_shows_the_gold_answer(tmp_path, capsys):
    path = run_env(tmp_path, [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS])
    assert main(["validate", str(path), "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "checked: all 12 examples of split 'validation' render" in out
    assert "checked: all 12 examples of split 'train' render" in out
    assert "--- continuation: ' first answer 0'   <- gold" in out and "--- gold: choice 0 of 2: 'first answer 0'" in out
    rows = [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS]
    rows[9] = {k: v for k, v in rows[9].items() if k != "sol1"}  # a key absent from one row
    path = run_env(tmp_path, rows)
    assert main(["validate", str(path), "--data-dir", str(tmp_path / "data")]) == 2
    assert ("prompt.choices[0]: $sol1: example train-9 has no field 'sol1' (its fields: goal, sol2, label)"
            in capsys.readouterr().err)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("name", ["copa", "bigbench_causal_judgment"])
def test_validate_accepts_a_task_name(name, capsys):
    assert main(["validate", name, "--data-dir", str(SHARED_DATA)]) == 0
    out = capsys.readouterr().out
    assert "task file ok" in out and "--- gold: choice " in out and "<- gold" in out
