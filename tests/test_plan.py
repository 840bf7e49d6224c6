"""The plan -> execute -> score seam: a plan made before any model work, units with content keys, and
executors that cannot change a number (the same plan run in another order and other chunks gives the
same scores and samples)."""

from __future__ import annotations

import pytest

from harness.config import RunConfig
from harness.execution.executor import LocalExecutor, call_model
from harness.execution.plan import Plan, content_key, make_plan
from harness.models.hf import HFModel
from harness.pipeline import run
from harness.records import LoglikelihoodRequest, RollingRequest, Setting
from tests.conftest import write_jsonl
from tests.fakes import BigramLM, CharTokenizer

ROWS = [{"q": f"is {w} a word?", "a": "yes", "b": "no", "label": i % 2, "text": f"the {w} sat on the mat"}
        for i, w in enumerate(["cat", "dog", "bird", "fish", "cow", "hen", "pig", "fox"])]
TASKS = {
    "toy_choice.toml": 'kind = "multiple_choice"\nmetrics = ["acc", "acc_norm", "acc_calibrated"]\n'
                       '[data]\nlocal = "toy"\neval_split = "test"\n[prompt]\nquery = "q: $q\\na:"\n'
                       'choices = ["$a", "$b"]\nanswer = "$label"\n',
    "toy_words.toml": 'kind = "cloze"\n[data]\nlocal = "toy"\neval_split = "test"\n[prompt]\nquery = "$q"\n'
                      'target = "$a"\n',
}


def test_units_are_distinct_payloads_with_content_keys():
    a, b = LoglikelihoodRequest("x#1", "ctx", " yes"), LoglikelihoodRequest("y#7", "ctx", " yes")
    c = LoglikelihoodRequest("x#2", "a longer context", " no")
    plan = make_plan([a, b, c, RollingRequest("d", "ctx yes")])
    assert content_key(a) == content_key(b) != content_key(c)  # the key is the question, not who asks it
    assert [u.request.kind.value for u in plan.units] == ["loglikelihood", "loglikelihood", "rolling"]
    assert plan.units[0].request is c  # longest context first within a kind
    assert plan.owners["x#1"] == plan.owners["y#7"] == content_key(a)
    results = {u.key: i for i, u in enumerate(plan.units)}
    assert plan.join(results) == {"x#1": 1, "y#7": 1, "x#2": 0, "d": 2}
    with pytest.raises(RuntimeError, match="1 of 3 planned results did not arrive"):
        plan.join({u.key: 0 for u in plan.units[1:]})


def test_a_rolling_requests_stride_and_window_are_keyed_by_name():
    """Stride 1024 and window 1024 ask different questions; unset (0) they leave the key of a plain request."""
    keys = [content_key(RollingRequest("d", "text", *how)) for how in ((), (1024,), (0, 1024), (512, 1024))]
    assert len(set(keys)) == 4
    assert content_key(RollingRequest("d", "text", 0, 0)) == keys[0]


class OneByOneBackwards:
    """An executor that runs the units last first, one per model call: a different order and other batches."""

    def __init__(self):
        self.calls = 0

    def execute(self, plan: Plan, model) -> dict:
        results = {}
        for unit in reversed(plan.units):
            self.calls += 1
            results |= call_model(model, unit.request.kind, [unit])
        return results


def test_results_never_depend_on_the_executor(tmp_path):
    write_jsonl(tmp_path / "data" / "toy" / "test.jsonl", ROWS)
    for name, text in TASKS.items():
        (tmp_path / name).write_text(text)
    config = RunConfig(model="bigram", tasks=tuple(str(tmp_path / n) for n in TASKS), shots=(2,), limit=6,
                       settings=(Setting.ZS, Setting.ONE_SHOT, Setting.FS), data_dir=tmp_path / "data", cache=False)
    model = HFModel(BigramLM(max_length=512), CharTokenizer(), "bigram", batch_tokens=4096)
    local = run(config, model=model, executor=LocalExecutor())
    backwards = OneByOneBackwards()
    other = run(config, model=model, executor=backwards)
    assert backwards.calls > 1
    assert local.scores == other.scores
    assert local.samples == other.samples
    assert {s.task for s in local.samples} == {"toy_choice", "toy_words"} and len(local.samples) == 2 * 6 * 3
