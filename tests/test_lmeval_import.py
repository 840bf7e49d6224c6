"""`harness import-lmeval` / `--tasks lmeval:PATH.yaml`: lm-eval task YAMLs (hand-written fixtures after lm-eval's own)
convert to task files whose prompts equal the built-in tasks'; hooks and sandbox escapes stop the import."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.records import Example, Setting
from harness.tasks import jinja, lmeval_import
from harness.tasks.catalog import TASKS_DIR, resolve_task
from harness.tasks.data import load_task_data
from harness.tasks.kinds import alternatives, render
from harness.tasks.lmeval_yaml import FunctionRef, read_yaml
from harness.tasks.prompts import build_prompt
from harness.tasks.taskfile import load_task
from tests.conftest import SHARED_DATA

FIXTURES = Path(__file__).parent / "fixtures" / "lmeval"
BUILTIN_TWINS = ["piqa", "arc_easy", "hellaswag", "copa", "boolq", "lambada_openai", "triviaqa", "nq_open",
                 "wmt14-fr-en", "winogrande"]


def _triviaqa_as_lm_eval(rendered):
    """lm-eval's template adds '?' after the question; 377 local contexts have none, so the built-in task (which uses
    the context as is) differs from lm-eval's template there by that '?'."""
    query = rendered.query
    if not query.endswith("?\nAnswer:"):
        query = query[: -len("\nAnswer:")].removesuffix("?") + "?\nAnswer:"
    return dataclasses.replace(rendered, query=query)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("name", BUILTIN_TWINS)
def test_converted_prompts_equal_the_builtin_task(name):
    builtin, converted = load_task(TASKS_DIR / f"{name}.toml"), lmeval_import.load(FIXTURES / f"{name}.yaml")
    assert converted.name == builtin.name
    ours, theirs = load_task_data(builtin, SHARED_DATA), load_task_data(converted, SHARED_DATA)
    assert [e.id for e in theirs.eval.examples] == [e.id for e in ours.eval.examples]
    assert [e.id for e in theirs.demos.examples] == [e.id for e in ours.demos.examples]
    fix = _triviaqa_as_lm_eval if name == "triviaqa" else (lambda r: r)
    expected = lambda ex: fix(render(builtin, ex))  # noqa: E731
    for k in (0, 3):
        for ex_ours, ex_theirs in zip(ours.eval.examples[:60], theirs.eval.examples[:60]):
            want = build_prompt(builtin, ex_ours, Setting.FS, k, 1234, ours.demos.examples, expected)
            got = build_prompt(converted, ex_theirs, Setting.FS, k, 1234, theirs.demos.examples)
            assert got.text == want.text
            r_want, r_got = expected(ex_ours), render(converted, ex_theirs)
            assert alternatives(converted, r_got) == alternatives(builtin, r_want)
            assert (r_got.gold, r_got.target, r_got.references) == (r_want.gold, r_want.target, r_want.references)


@pytest.mark.parametrize("name", ["piqa", "copa", "boolq", "nq_open", "winogrande"])
def test_plain_field_templates_become_dollar_fields(name):
    _, text = lmeval_import.convert(FIXTURES / f"{name}.yaml")
    prompt = tomllib.loads(text)["prompt"]
    builtin = tomllib.loads((TASKS_DIR / f"{name}.toml").read_text())["prompt"]
    assert "template" not in prompt
    for key in ("query", "choices", "answer", "target"):
        if key in builtin:
            assert prompt[key] == builtin[key]


@pytest.mark.parametrize("name", ["arc_easy", "lambada_openai", "triviaqa", "wmt14-fr-en"])
def test_other_templates_stay_jinja_and_name_the_engine(name):
    prompt = tomllib.loads(lmeval_import.convert(FIXTURES / f"{name}.yaml")[1])["prompt"]
    assert prompt["template"] == "jinja"
    assert "{{" in prompt["query"]


def test_include_merges_the_base_yaml():
    config = read_yaml(FIXTURES / "wmt14-fr-en.yaml")
    assert config["metric_list"][0] == {"metric": "bleu"} and config["task"] == "wmt14-fr-en"
    task = lmeval_import.load(FIXTURES / "wmt14-fr-en.yaml")
    assert task.metrics == ("bleu", "ter", "chrf") and task.prompt.stop == ("\n",)
    assert (task.data.eval_split, task.data.demo_split) == ("newstest2014", "newstest2013")


def test_function_tags_are_read_as_names_never_imported():
    config = read_yaml(FIXTURES / "copa.yaml")
    assert config["doc_to_text"] == FunctionRef("utils.doc_to_text")
    task = lmeval_import.load(FIXTURES / "copa.yaml")
    assert (task.preprocess, task.prompt.query, task.prompt.choices) == ("copa", "$query", "$choice_list")


def test_unknown_hook_stops_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "winogrande.toml"
    assert main(["import-lmeval", str(FIXTURES / "unknown_hook.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "doc_to_text" in err and "preprocess_winogrande.doc_to_text" in err and "nothing was written" in err
    assert not out.exists()


def test_sandbox_refusal_stops_the_import(tmp_path, capsys):
    out = tmp_path / "escape.toml"
    assert main(["import-lmeval", str(FIXTURES / "sandbox_escape.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "doc_to_text" in err and "sandbox refuses" in err and "the attribute '__" in err
    assert not out.exists()


def test_task_file_with_a_refused_jinja_construct_fails_to_load(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('kind = "generate"\n[data]\nlocal = "x"\neval_split = "test"\n'
                    '[prompt]\ntemplate = "jinja"\nquery = "{{ q.pop() }}"\ntarget = "{{ a }}"\n')
    with pytest.raises(HarnessError, match=r"bad.toml: prompt.query: the Jinja sandbox refuses the attribute 'pop'"):
        load_task(path)


def test_sandbox_refuses_at_render_time_what_it_cannot_see_statically():
    task = _jinja_task(query="{{ q|attr('__class__') }}")
    with pytest.raises(HarnessError, match="prompt.query: example e0"):
        render(task, Example("e0", {"q": "x", "a": "y"}))


def _jinja_task(**prompt):
    path = FIXTURES / "local_rows.yaml"
    task = lmeval_import.load(path)
    return dataclasses.replace(task, kind=task.kind.__class__("generate"),
                               prompt=dataclasses.replace(task.prompt, choices=(), answer="", target="{{ a }}",
                                                          **prompt))


def test_strict_jinja_errors_name_key_and_example():
    task = _jinja_task(query="{{ missing }}")
    with pytest.raises(HarnessError, match=r"prompt.query: example e0: .*'missing' is undefined"):
        render(task, Example("e0", {"q": "x", "a": "y"}))
    task = _jinja_task(query="Q: {{ q }}")
    with pytest.raises(HarnessError, match="prompt.query: example e1: .* gives None"):
        render(task, Example("e1", {"q": None, "a": "y"}))


def test_local_data_files_and_jinja_constructs(tmp_path):
    task = lmeval_import.load(FIXTURES / "local_rows.yaml")
    assert task.prompt.template == jinja.JINJA and task.data.local == str(FIXTURES.resolve())
    data = load_task_data(task, None)  # the YAML's own files, no data dir needed
    rendered = [render(task, ex) for ex in data.eval.examples]
    assert [r.query for r in rendered] == ["[colours] Sky? (blue, green)\nAnswer:",
                                           "Grass costs $5? (blue, green, red)\nAnswer:",
                                           "[fruit] Cherry? (red, blue)\nAnswer:"]
    assert [r.gold for r in rendered] == [0, 1, 0]
    prompt = build_prompt(task, data.eval.examples[0], Setting.ONE_SHOT, 1, 0, data.eval.examples)
    assert prompt.text.startswith("Pick one.\n\n") and prompt.text.endswith("\n\n[colours] Sky? (blue, green)\nAnswer:")


def test_empty_choice_is_an_error():
    task = lmeval_import.load(FIXTURES / "local_rows.yaml")
    with pytest.raises(HarnessError, match="example e2: choice 1 is empty"):
        render(task, Example("e2", {"topic": "", "question": "?", "options": ["a", ""], "gold_text": "a"}))


def test_lmeval_prefix_resolves_a_yaml_for_run():
    task = resolve_task(f"lmeval:{FIXTURES / 'nq_open.yaml'}")
    assert task.name == "nq_open" and task.description == "Answer these questions:\n\n"
    assert task.match.regexes_to_ignore == ("\\b(?:The |the |An |A |The |a |an )",)


def test_import_writes_a_loadable_file_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "tasks" / "piqa_lm.toml"
    assert main(["import-lmeval", str(FIXTURES / "arc_easy.yaml"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    task = load_task(out)
    assert task.prompt.answer == "{{choices.label.index(answerKey)}}" and task.prompt.template == "jinja"
    before = out.read_text()
    assert main(["import-lmeval", str(FIXTURES / "piqa.yaml"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == before


def test_two_tasks_of_one_name_are_refused_before_model_work():
    from harness.config import RunConfig
    from harness.pipeline import prepare

    config = RunConfig(tasks=("piqa", f"lmeval:{FIXTURES / 'piqa.yaml'}"))
    with pytest.raises(HarnessError, match="2 tasks are named 'piqa'.*run them separately"):
        prepare(config)


@pytest.mark.parametrize("text, key", [
    ("task: a\ninclude: b.yaml\n", "include: loops back"),
    ("task: x\ndataset_path: !!python/object/apply:os.system [\"echo hi\"]\n", "not valid YAML"),
    ("group: g\ntask: [a, b]\n", "task: is required"),
    (("task: t\ndataset_path: a/b\nvalidation_split: v\ndoc_to_text: q\ndoc_to_target: a\n"
      "process_results: !function u.pr\n"),
     "process_results: the Python hook 'u.pr'"),
    ("task: t\ndataset_path: a/b\nvalidation_split: v\ndoc_to_text: '{{ q }'\ndoc_to_target: a\n",
     "doc_to_text: is not a valid Jinja template"),
    ("task: t\ndataset_path: a/b\nvalidation_split: v\ndoc_to_text: q\ndoc_to_target: a\n"
     "generation_kwargs: {until: [x], do_sample: true}\n", "generation_kwargs: sampling"),
])
def test_what_cannot_be_imported_stops_with_one_line(tmp_path, text, key):
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(HarnessError, match=key):
        lmeval_import.convert(tmp_path / "a.yaml")


def test_dollar_signs_survive_conversion_to_field_templates(tmp_path):
    (tmp_path / "t.yaml").write_text('task: t\ndataset_path: a/b\nvalidation_split: v\n'
                                     'doc_to_text: "Price: $ {{x}}y {{ z }}z"\ndoc_to_target: "{{a}}"\n')
    task = lmeval_import.load(tmp_path / "t.yaml")
    assert task.prompt.query == "Price: $$ ${x}y ${z}z" and task.prompt.template == ""
    rendered = render(task, Example("v-0", {"x": "5", "z": "q", "a": "A"}))
    assert (rendered.query, rendered.references) == ("Price: $ 5y qz", ("A",))
