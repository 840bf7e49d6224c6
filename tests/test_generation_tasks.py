"""Generation tasks: prompts pinned to lm-evaluation-harness's own (golden strings built with its code from the
same local files), filters, BIG-bench generative tasks, and bad input failing in one line before model work."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.records import Setting, TaskKind
from harness.tasks.catalog import expand_suites, load_suite, resolve_task, suite_files
from harness.tasks.filters import apply_filter
from harness.tasks.spec import Filter
from tests.conftest import SHARED_DATA, write_jsonl

# lm-evaluation-harness 0.4.13: task.fewshot_context(doc, 0), doc_to_target(doc) and generation_kwargs["until"]
# for the first three rows of each local file (arithmetic after its utils.process_docs; TriviaQA's question
# taken from the file's context). Checked by hand against the task YAMLs.
GOLDEN = {
    "anagrams1": (["\nskicts =", "\nmoirrr =", "\neletasbhsis ="], [" sticks", " mirror", " establishes"], ["\n"]),
    "arithmetic_2da": (["Question: What is 98 plus 45?\nAnswer:", "Question: What is 95 plus 58?\nAnswer:",
                        "Question: What is 0 plus 25?\nAnswer:"], [" 143", " 153", " 25"], None),
    "triviaqa": (["Question: Brunswick, Lancastrian and Pearl Pickler are types of which vegetable?\nAnswer:",
                  "Question: What type of animal is a dik-dik?\nAnswer:",
                  "Question: What type of animal is a Garron?\nAnswer:"],
                 ["Onion skins", "Botswanan Antelopes", "Horse"], ["\n", ".", ","]),
    "nq_open": (["Answer these questions:\n\nQ: when was the last time anyone was on the moon?\nA:",
                 "Answer these questions:\n\nQ: who wrote he ain't heavy he's my brother lyrics?\nA:",
                 "Answer these questions:\n\nQ: how many seasons of the bastard executioner are there?\nA:"],
                [["14 December 1972 UTC", "December 1972"], ["Bobby Scott", "Bob Russell"], ["one", "one season"]],
                ["\n", ".", ","]),
    "wmt14-fr-en": (['French phrase: Spectaculaire saut en "wingsuit" au-dessus de Bogota\nEnglish phrase:'], 
                    [" Spectacular Wingsuit Jump Over Bogota"], ["\n"]),
}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_zero_shot_prompts_equal_lm_eval(name):
    from harness.tasks.data import load_task_data
    from harness.tasks.kinds import render
    from harness.tasks.prompts import build_prompt

    prompts, targets, until = GOLDEN[name]
    task = resolve_task(name)
    data = load_task_data(task, SHARED_DATA)
    for example, prompt, target in zip(data.eval.examples, prompts, targets, strict=False):
        rendered = render(task, example)
        assert build_prompt(task, example, Setting.ZS, 0, 0, data.demos.examples).text == prompt
        assert (list(rendered.references) if isinstance(target, list) else rendered.target) == target
    if until is not None:
        assert task.kind is TaskKind.GENERATE and list(task.prompt.stop) == until
    else:  # lm-evaluation-harness scores arithmetic as loglikelihood: acc = the completion is greedy
        assert task.kind is TaskKind.CLOZE and task.metrics == ("acc",) and task.prompt.target_delimiter == ""


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_triviaqa_and_nq_open_demos_show_the_first_reference():
    from harness.tasks.data import load_task_data
    from harness.tasks.prompts import build_prompt

    task = resolve_task("nq_open")
    data = load_task_data(task, SHARED_DATA)
    prompt = build_prompt(task, data.eval.examples[0], Setting.ONE_SHOT, 1, 0, data.demos.examples)
    demo = next(e for e in data.demos.examples if e.id == prompt.demo_ids[0])
    assert prompt.text == (f"Answer these questions:\n\nQ: {demo.fields['question']}?\nA: {demo.fields['answer'][0]}\n"
                           "Q: when was the last time anyone was on the moon?\nA:")


def test_filters():
    assert apply_filter(Filter.STRIP, "  Paris \n") == "Paris"
    assert apply_filter(Filter.FIRST_LINE, "42\nQ: next") == "42"
    assert apply_filter(Filter.REGEX, "The answer is -12, not 3", r"[-+]?\d+") == "-12"
    assert apply_filter(Filter.REGEX, "17.", r"([-+]?\d+)[.]{0,1}$") == "17"
    assert apply_filter(Filter.REGEX, "none", r"\d+") == ""


def test_gpt3_generation_suite_names_existing_tasks():
    suite = load_suite(suite_files()["gpt3-generation"])
    assert ({"anagrams1", "arithmetic_2da", "triviaqa", "nq_open", "squadv2", "wmt14-fr-en", "wmt16-en-de"}
            <= set(suite.tasks))
    for name in suite.tasks:
        resolve_task(name)


# ---------------------------------------------------------------- BIG-bench generative


def _bigbench_dir(tmp_path, meta, rows):
    folder = tmp_path / "bigbench" / "generative"
    write_jsonl(folder / "toy_gen.jsonl", rows)
    (folder / "toy_gen.meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_bigbench_generative_task_follows_its_meta(tmp_path):
    from harness.tasks.data import load_task_data
    from harness.tasks.kinds import render
    from harness.tasks.prompts import build_prompt

    meta = {"task_prefix": "Add.", "example_input_prefix": "\nIn: ", "example_output_prefix": "\nOut: ",
            "output_regex": "[-+]?\\d+", "stop_string": ".", "metrics": ["exact_str_match", "rouge", "bleurt"]}
    rows = [{"input": "1 + 1", "target": "2"}, {"input": "2 + 2", "target": ["4", "four"]},
            {"input": "2 + 2", "target": ["4", "four"]}]
    data_dir = _bigbench_dir(tmp_path, meta, rows)
    task = resolve_task("bigbench_toy_gen", data_dir=data_dir)
    assert task.kind is TaskKind.GENERATE and task.metrics == ("exact_str_match", "rouge1", "rouge2", "rougeLsum")
    assert task.prompt.stop == (".",) and task.prompt.filters == (Filter.REGEX,)
    data = load_task_data(task, data_dir)
    assert len(data.eval.examples) == 2  # the duplicate dropped, as BIG-bench does
    second = render(task, data.eval.examples[1])
    assert second.references == ("4", "four") and second.target == "4"
    prompt = build_prompt(task, data.eval.examples[1], Setting.ONE_SHOT, 1, 0, data.demos.examples)
    assert prompt.text == "Add.\nIn: 1 + 1\nOut: 2\n\nIn: 2 + 2\nOut: "
    assert "bigbench_toy_gen" in expand_suites(["bigbench"], data_dir=data_dir)


def test_bigbench_generative_reads_targets_as_written(tmp_path):
    """datasets' loader would turn "112" into a number and "null" into None."""
    from harness.tasks.data import load_task_data
    from harness.tasks.kinds import render

    data_dir = _bigbench_dir(tmp_path, {"metrics": ["exact_str_match"]},
                             [{"input": "a", "target": "112"}, {"input": "b", "target": "null"},
                              {"input": "c", "target": "x"}])
    task = resolve_task("bigbench_toy_gen", data_dir=data_dir)
    rendered = [render(task, e) for e in load_task_data(task, data_dir).eval.examples]
    assert [r.references for r in rendered] == [("112",), ("null",), ("x",)]
    assert task.prompt.stop == ("\n",)  # no stop_string: the few-shot separator, where the next example starts


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


GEN_TASK = """
kind = "generate"
metrics = ["exact_match"]
[data]
local = "gen"
eval_split = "validation"
[prompt]
query = "Q: $question\\nA:"
target = "$answers"
stop = ["\\n"]
max_new_tokens = 8
"""


@pytest.mark.parametrize(("change", "rows", "message"), [
    (('target = "$answers"\n', ""), None, "t.toml: prompt.target: is required for kind = 'generate'"),
    (('target = "$answers"', 'target = ""'), None, "t.toml: prompt.target: is empty"),
    (("", ""), [{"question": "q", "answers": []}],
     "t.toml:9: prompt.target: example validation-0 has an empty list in $answers"),
    (("max_new_tokens = 8", "max_new_tokens = 0"), None, "t.toml: prompt.max_new_tokens: must be a positive integer"),
    (('stop = ["\\n"]', 'stop = ["\\n", ""]'), None, "t.toml: prompt.stop: holds an empty stop string"),
    (('metrics = ["exact_match"]', 'metrics = ["bleu"]'), [{"question": "q", "answers": ["a", " "]}],
     "t.toml: prompt.target: example validation-0 has an empty reference, which bleu cannot score"),
    (('metrics = ["exact_match"]', 'metrics = ["acc_norm"]'), None,
     "t.toml: metrics: 'acc_norm' applies to kind multiple_choice, partial_scoring, not 'generate'"),
    (('metrics = ["exact_match"]', 'metrics = ["bleu"]\n[metric_options.exact_match]\nignore_case = true'), None,
     "t.toml: metric_options.exact_match: is given but metrics does not list exact_match"),
    (("max_new_tokens = 8", 'max_new_tokens = 8\nfilters = ["stripp"]'), None,
     "t.toml: prompt.filters: unknown value 'stripp' (did you mean: strip?)"),
    (("max_new_tokens = 8", 'max_new_tokens = 8\nfilters = ["regex"]'), None,
     "t.toml: prompt.filters: the regex filter and prompt.regex go together"),
    (("max_new_tokens = 8", 'max_new_tokens = 8\nfilters = ["regex"]\nregex = "("'), None,
     "t.toml: prompt.regex: is not a valid regular expression"),
    (('metrics = ["exact_match"]',
      'metrics = ["exact_match"]\n[metric_options.exact_match]\nignore_case = "yes"'), None,
     "t.toml: metric_options.exact_match.ignore_case: must be true or false"),
])
def test_bad_generation_input_fails_in_one_line_before_model_work(tmp_path, capsys, monkeypatch, change, rows, message):
    import harness.pipeline

    monkeypatch.setattr(harness.pipeline, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    write_jsonl(tmp_path / "data" / "gen" / "validation.jsonl", rows or [{"question": "q", "answers": ["a", "b"]}])
    (tmp_path / "t.toml").write_text(GEN_TASK.replace(*change))
    code = main(["run", "--model", "gpt2", "--tasks", str(tmp_path / "t.toml"), "--data-dir", str(tmp_path / "data"),
                 "--output-dir", str(tmp_path / "results"), "--run-name", "r", "--settings", "zs"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_references_key_separates_what_demos_show_from_what_scores(tmp_path):
    """squadv2's shape: demonstrations show target; metrics read references."""
    from harness.tasks.taskfile import load_task
    from harness.tasks.kinds import render
    from harness.records import Example

    (tmp_path / "t.toml").write_text(
        GEN_TASK.replace('target = "$answers"', 'target = " $shown"\nreferences = "$answers"'))
    task = load_task(tmp_path / "t.toml")
    r = render(task, Example("validation-0", {"question": "q", "shown": "unanswerable", "answers": [""]}))
    assert r.target == " unanswerable" and r.references == ("",)
    with pytest.raises(HarnessError, match="prompt.references: example validation-0 has an empty list"):
        render(task, Example("validation-0", {"question": "q", "shown": "x", "answers": []}))


def test_a_generation_context_cut_to_fit_is_counted(tmp_path, tiny_gpt2_dir, gpt2_tokenizer):
    """A context longer than the model's window less max_new_tokens is cut from the left (as lm-eval does); the
    cut is counted in samples.jsonl and scores.csv (n_truncated), as for the scored kinds, never silent."""
    import pandas as pd

    long_question = " ".join(["word"] * 300)  # well past the tiny model's 128 positions
    write_jsonl(tmp_path / "data" / "gen" / "validation.jsonl",
                [{"question": long_question, "answers": ["a"]}, {"question": "short", "answers": ["b"]}])
    (tmp_path / "t.toml").write_text(GEN_TASK)
    assert main(["run", "--model", str(tiny_gpt2_dir), "--tasks", str(tmp_path / "t.toml"), "--data-dir",
                 str(tmp_path / "data"), "--output-dir", str(tmp_path / "results"), "--run-name", "r",
                 "--settings", "zs", "--no-cache"]) == 0
    samples = [json.loads(line) for line in (tmp_path / "results" / "r" / "samples.jsonl").read_text().splitlines()]
    context_tokens = len(gpt2_tokenizer(f"Q: {long_question}\nA:")["input_ids"])
    assert [s["truncated"] for s in samples] == [context_tokens - (128 - 8), 0]  # window 128, max_new_tokens 8
    scores = pd.read_csv(tmp_path / "results" / "r" / "scores.csv")
    assert (scores["n_truncated"] == 1).all()
