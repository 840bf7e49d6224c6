"""The task loader: every shipped file loads and renders; bad files fail naming the file and key."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.tasks.catalog import TASKS_DIR, resolve_task, task_files
from harness.records import TaskKind
from harness.tasks.taskfile import load_task
from tests.conftest import SHARED_DATA, TOY_MC


def write(tmp_path, text, name="t.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toy_task_loads(tmp_path):
    task = load_task(write(tmp_path, TOY_MC))
    assert task.kind is TaskKind.MULTIPLE_CHOICE
    assert task.prompt.choices == ("$sol1", "$sol2")
    assert task.prompt.target_delimiter == " " and task.prompt.demo_separator == "\n\n"
    assert task.description == "Pick the right answer.\n\n"
    assert len(task.sha256) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[prompt]", "[prompt]\nquerry = 'x'"), "t.toml: prompt.querry: unknown key (did you mean: query?)"),
        (('kind = "multiple_choice"', 'kind = "multiple_choise"'),
         "t.toml: kind: unknown value 'multiple_choise' (did you mean: multiple_choice?)"),
        (('metrics = ["acc", "acc_norm", "acc_per_token", "acc_calibrated"]', 'metrics = ["accuracy"]'),
         "t.toml: metrics: unknown metric 'accuracy' (known: acc, acc_calibrated"),
        (('metrics = ["acc", "acc_norm", "acc_per_token", "acc_calibrated"]', 'metrics = ["perplexity"]'),
         "t.toml: metrics: 'perplexity' applies to kind cloze, not 'multiple_choice'"),
        (('answer = "$label"\n', ""), "t.toml: prompt.answer: is required for kind = 'multiple_choice'"),
        (('choices = ["$sol1", "$sol2"]', "choices = []"), "t.toml: prompt.choices: is empty"),
        (('local = "toy_mc"\n', ""), "t.toml: data: needs `local`"),
        (('query = "Question: $goal\\nAnswer:"', 'query = "Question: $ goal"'),
         "t.toml:10: prompt.query: '$ goal' is not a field"),
        (("[data]", "preprocess = 'lambda'\n[data]"),
         "t.toml: preprocess: unknown preprocess function 'lambda' (did you mean: lambada, lambada_word?)"),
        (("[data]", "colour = 1\n[data]"), "t.toml: colour: unknown key"),
    ],
)
def test_bad_task_files_name_file_and_key(tmp_path, change, message):
    before, after = change
    assert before in TOY_MC
    with pytest.raises(HarnessError) as error:
        load_task(write(tmp_path, TOY_MC.replace(before, after, 1)))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_invalid_toml_is_one_line(tmp_path):
    with pytest.raises(HarnessError, match="t.toml: not valid TOML"):
        load_task(write(tmp_path, "kind = "))


def test_unknown_task_name_suggests():
    with pytest.raises(HarnessError, match=r"unknown task 'piqaa' \(did you mean: piqa"):
        resolve_task("piqaa")


@pytest.mark.parametrize("name", sorted(task_files()))
def test_every_shipped_task_loads(name):
    task = load_task(TASKS_DIR / f"{name}.toml")
    assert task.metrics


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("name", sorted(task_files()))
def test_every_shipped_task_renders_prompts_on_shared_data(name):
    from harness.tasks.data import load_task_data
    from harness.tasks.prompts import build_prompt
    from harness.records import Setting
    from harness.tasks.kinds import alternatives, render

    task = load_task(TASKS_DIR / f"{name}.toml")
    data = load_task_data(task, SHARED_DATA)
    for example in data.eval.examples[:20]:
        rendered = render(task, example)
        conts = alternatives(task, rendered)
        if task.kind is TaskKind.GENERATE:  # nothing scored: the budget keeps max_new_tokens free instead
            assert (not conts and rendered.references and rendered.target == rendered.references[0]
                    or task.prompt.references)
            conts = [rendered.target]
        if task.kind is TaskKind.PERPLEXITY:
            prompt = build_prompt(task, example, Setting.ZS, 0, 0, data.demos.examples)
            assert prompt.text and not conts
            continue
        prompt = build_prompt(task, example, Setting.FS, 3, 0, data.demos.examples)
        assert prompt.k_used == 3 and example.id not in prompt.demo_ids
        assert prompt.text.endswith(prompt.query) and conts


def test_suites_expand_in_order_without_duplicates():
    from harness.tasks.catalog import expand_suites, load_suite, suite_files

    demo = load_suite(suite_files()["demo"])
    assert expand_suites(["demo", "piqa", "wikitext2"]) == [*demo.tasks, "wikitext2"]
    for path in suite_files().values():  # every suite names existing tasks
        for name in load_suite(path).tasks:
            resolve_task(name)


def test_partial_scoring_rejects_calibrated_accuracy(tmp_path):
    text = TOY_MC.replace('answer = "$label"', 'answer = "$label"\ntarget = "$goal"')
    text = text.replace('kind = "multiple_choice"', 'kind = "partial_scoring"')
    with pytest.raises(HarnessError, match="acc_calibrated needs a continuation per choice"):
        load_task(write(tmp_path, text))


def test_partial_scoring_is_explicit_and_an_old_file_says_how_to_migrate(tmp_path):
    """Before, "multiple_choice with a prompt.target" meant partial scoring implicitly."""
    old = TOY_MC.replace('answer = "$label"', 'answer = "$label"\ntarget = "$goal"')
    with pytest.raises(HarnessError, match=r't.toml: prompt.target: .*write kind = "partial_scoring"'):
        load_task(write(tmp_path, old))
    new = old.replace('kind = "multiple_choice"', 'kind = "partial_scoring"').replace(', "acc_calibrated"', "")
    task = load_task(write(tmp_path, new))
    assert task.kind is TaskKind.PARTIAL_SCORING and "acc_calibrated" not in task.metrics


@pytest.mark.parametrize(("kind", "key"), [("cloze", "choices"), ("perplexity", "target_delimiter"),
                                           ("multiple_choice", "stop"), ("cloze", "max_new_tokens")])
def test_prompt_keys_that_do_not_apply_to_the_kind_are_errors(tmp_path, kind, key):
    text = f'kind = "{kind}"\n[data]\nlocal = "x"\neval_split = "test"\n[prompt]\nquery = "$q"\ntarget = "$t"\n' \
           f'text = "$d"\nchoices = ["$a"]\nanswer = "$g"\n'
    lines = [line for line in text.splitlines()
             if line.split(" = ")[0] in ("kind", "[data]", "local", "eval_split", "[prompt]")
             or line.split(" = ")[0] in KINDS_REQUIRED[kind]]
    lines.append(f'{key} = {"1" if key == "max_new_tokens" else chr(34) + "x" + chr(34)}'
                 if key != "stop" else 'stop = ["x"]')
    with pytest.raises(HarnessError, match=rf"t.toml: prompt.{key}: does not apply to kind = '{kind}'"):
        load_task(write(tmp_path, "\n".join(lines) + "\n"))


KINDS_REQUIRED = {"cloze": ("query", "target"), "perplexity": ("text",),
                  "multiple_choice": ("query", "choices", "answer")}
