"""Prompt building: golden strings (whitespace included), deterministic demonstration sampling that
never includes the example itself, and context fitting by whole demonstrations."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.tasks.prompts import build_prompt, check_pool, fit_prompt, sample_demos
from harness.records import Example, Setting
from harness.tasks.taskfile import load_task
from tests.conftest import MC_ROWS, TOY_CLOZE, TOY_MC


@pytest.fixture()
def mc_task(tmp_path):
    path = tmp_path / "toy_mc.toml"
    path.write_text(TOY_MC)
    return load_task(path)


def examples(split, rows):
    return [Example(f"{split}-{i}", r) for i, r in enumerate(rows)]


EVAL = examples("validation", MC_ROWS)
POOL = examples("train", [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS])


def test_zero_shot_golden(mc_task):
    prompt = build_prompt(mc_task, EVAL[3], Setting.ZS, 0, 0, POOL)
    assert prompt.text == "Pick the right answer.\n\nQuestion: Goal number 3?\nAnswer:"
    assert prompt.k_used == 0 and prompt.demo_ids == ()


def test_one_shot_golden(mc_task):
    prompt = build_prompt(mc_task, EVAL[3], Setting.ONE_SHOT, 1, 0, POOL)
    assert prompt.demo_ids == ("train-4",)
    assert prompt.text == (
        "Pick the right answer.\n\n"
        "Question: Train Goal number 4?\nAnswer: first answer 4\n\n"
        "Question: Goal number 3?\nAnswer:"
    )


def test_few_shot_golden(mc_task):
    prompt = build_prompt(mc_task, EVAL[3], Setting.FS, 3, 0, POOL)
    assert prompt.demo_ids == ("train-10", "train-9", "train-4")
    assert prompt.text == (
        "Pick the right answer.\n\n"
        "Question: Train Goal number 10?\nAnswer: first answer 10\n\n"
        "Question: Train Goal number 9?\nAnswer: second answer 9\n\n"
        "Question: Train Goal number 4?\nAnswer: first answer 4\n\n"
        "Question: Goal number 3?\nAnswer:"
    )


def test_cloze_demo_keeps_the_original_text(tmp_path):
    """lambada: the target carries its own space and the delimiter is empty, so a demo is the passage."""
    from harness.tasks.preprocess import lambada

    path = tmp_path / "toy_cloze.toml"
    path.write_text(TOY_CLOZE)
    task = load_task(path)
    rows = lambada([{"text": "a b c"}, {"text": "d e f"}])
    pool = examples("test", rows)
    prompt = build_prompt(task, pool[0], Setting.ONE_SHOT, 1, 0, pool)
    assert prompt.text == "d e f\n\na b"


def test_sampling_is_deterministic_and_independent_of_order_and_limit():
    first = [sample_demos("t", ex, POOL, 4, 0) for ex in EVAL]
    again = [sample_demos("t", ex, POOL, 4, 0) for ex in reversed(EVAL)][::-1]
    assert first == again
    shuffled_pool_same_ids = sample_demos("t", EVAL[0], POOL, 4, 0)
    assert shuffled_pool_same_ids == first[0]
    assert sample_demos("t", EVAL[0], POOL, 4, 1) != first[0]  # another seed, another draw
    assert sample_demos("other", EVAL[0], POOL, 4, 0) != first[0]


def test_example_is_never_its_own_demonstration():
    for ex in EVAL:
        for seed in range(20):
            demos = sample_demos("t", ex, EVAL, len(EVAL) - 1, seed)
            assert ex not in demos
            assert len({d.id for d in demos}) == len(EVAL) - 1


def test_shots_larger_than_pool(mc_task):
    with pytest.raises(HarnessError, match=r"--shots 12 is larger than the demonstration pool \(11 examples besides"):
        check_pool(mc_task, EVAL, same_split=True, k=12)
    check_pool(mc_task, POOL, same_split=False, k=12)


def test_fit_drops_whole_demonstrations_from_the_end(mc_task):
    prompt = build_prompt(mc_task, EVAL[3], Setting.FS, 3, 0, POOL)
    count = len  # one token per character
    budget = len(prompt.text) - 1
    fitted = fit_prompt(prompt, " second answer 3", count, budget + len(" second answer 3"))
    assert fitted.k_used == 2 and fitted.demo_ids == prompt.demo_ids[:2]
    assert fitted.text == prompt.text.replace("Question: Train Goal number 4?\nAnswer: first answer 4\n\n", "")
    nothing_fits = fit_prompt(prompt, "x", count, 5)
    assert nothing_fits.k_used == 0 and nothing_fits.query == prompt.query


PARTIAL = """
kind = "partial_scoring"
preprocess = "winogrande"
metrics = ["acc"]
[data]
local = "w"
eval_split = "validation"
[prompt]
query = ""
choices = "$filled"
target = "$rest"
answer = "$gold"
"""


def test_partial_scoring_requests_and_demo(tmp_path):
    """Winogrande: each option completes the context; the text after the blank is what is scored."""
    from harness.tasks.preprocess import winogrande
    from harness.tasks.kinds import requests_for, render

    path = tmp_path / "w.toml"
    path.write_text(PARTIAL)
    task = load_task(path)
    rows = winogrande([
        {"sentence": "Ann beat Bo because _ was faster.", "option1": "Ann", "option2": "Bo", "answer": "1"},
        {"sentence": "The cup broke when _ fell.", "option1": "it", "option2": "he", "answer": "1"},
    ])
    pool = examples("validation", rows)
    prompt = build_prompt(task, pool[0], Setting.ONE_SHOT, 1, 0, pool)
    assert prompt.text == "The cup broke when it fell.\n\n"
    requests = requests_for(task, prompt, render(task, pool[0]))
    assert [(r.context, r.continuation) for r in requests] == [
        ("The cup broke when it fell.\n\nAnn beat Bo because Ann", " was faster."),
        ("The cup broke when it fell.\n\nAnn beat Bo because Bo", " was faster."),
    ]


def test_answer_labels_map_strings_case_insensitively(tmp_path):
    from harness.tasks.templates import gold_of

    toml = TOY_MC.replace('answer = "$label"', 'answer = "$label"\nanswer_labels = ["false", "true"]')
    path = tmp_path / "labels.toml"
    path.write_text(toml)
    task = load_task(path)
    assert gold_of(task, Example("x-0", {"label": "True"}), 2) == 1
    assert gold_of(task, Example("x-1", {"label": False}), 2) == 0
    with pytest.raises(HarnessError, match=r"renders to 'maybe' for example x-2, not one of answer_labels"):
        gold_of(task, Example("x-2", {"label": "maybe"}), 2)
