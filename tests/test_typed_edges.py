"""Records stay typed to the edges (DESIGN rule 13): no module but tasks/kinds.py branches on a task kind's
string, and no reporting module reads a sample back by guessing which of its keys are present."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import harness
from harness.records import TaskKind
from harness.samples import ANSWERS
from harness.tasks.kinds import KINDS, read_sample

PACKAGE = Path(harness.__file__).parent
KIND_VALUES = {k.value for k in TaskKind}
# every key an answer's to_json writes: what a reader would sniff for
ANSWER_KEYS = {"choices", "gold", "logprobs", "greedy", "n_tokens", "prediction", "unconditional_logprobs",
               "truncated", "target", "logprob", "is_greedy", "last_token_greedy", "words", "bytes", "generation",
               "references"}


def _modules(folder: Path = PACKAGE):
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _mentions_kind(node: ast.AST) -> bool:
    return "kind" in ast.unparse(node).lower()


def kind_string_branches(tree: ast.AST) -> list[str]:
    """Comparisons of something named like a kind with a task kind's string, and `match ...kind...: case "..."`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            strings = {s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)}
            strings |= {e.value for s in sides if isinstance(s, (ast.Tuple, ast.List, ast.Set))
                        for e in s.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if strings & KIND_VALUES and any(_mentions_kind(s) for s in sides):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Match) and _mentions_kind(node.subject):
            for case in node.cases:
                values = [p.value.value for p in ast.walk(case.pattern)
                          if isinstance(p, ast.MatchValue) and isinstance(p.value, ast.Constant)]
                if set(values) & KIND_VALUES:
                    found.append(f"line {case.pattern.lineno}: case {ast.unparse(case.pattern)}")
    return found


def key_sniffing(tree: ast.AST) -> list[str]:
    """`x.get("choices")`, `"choices" in x` and `x["choices"]` with an answer's key: reading a sample as a dict."""
    found = []
    for node in ast.walk(tree):
        key = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args):
            key = node.args[0]
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            key = node.left
        elif isinstance(node, ast.Subscript):
            key = node.slice
        if isinstance(key, ast.Constant) and key.value in ANSWER_KEYS:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_kind_string_branches_outside_the_kinds_table():
    kinds_py = PACKAGE / "tasks" / "kinds.py"
    found = {str(p.relative_to(PACKAGE)): hits for p, tree in _modules() if p != kinds_py
             if (hits := kind_string_branches(tree))}
    assert found == {}


def test_reporting_reads_samples_as_records_not_by_key():
    found = {p.name: hits for p, tree in _modules(PACKAGE / "reporting") if (hits := key_sniffing(tree))}
    assert found == {}


def test_the_scanners_find_what_they_look_for():
    """Each scanner flags the patterns this tree used to hold (so an empty result above means something)."""
    old = ast.parse('if kind == "generate":\n    pass\nelif spec.kind.value in ("cloze", "perplexity"):\n    pass\n'
                    'match spec.kind.value:\n    case "cloze":\n        pass\n')
    assert len(kind_string_branches(old)) == 3
    assert kind_string_branches(ast.parse('if name == "generate":\n    pass\n')) == []  # not a kind
    sniffing = ast.parse('if record.get("choices"):\n    pass\nif "prediction" in a and "prediction" in b:\n'
                         '    x = sample["logprobs"]\n')
    assert len(key_sniffing(sniffing)) == 4


@pytest.mark.parametrize("kind", list(TaskKind))
def test_every_kind_has_a_complete_row(kind):
    rules = KINDS[kind]
    assert rules.answer in ANSWERS and rules.lmeval_output_type and callable(rules.describe_gold)


@pytest.mark.parametrize("line, kind", [
    ({"task": "t", "setting": "ZS", "k": 0, "k_used": 0, "seed": 0, "example_id": "validation-0", "demo_ids": [],
      "prompt": "Q?", "choices": ["a", "b"], "gold": 1, "logprobs": [-2.0, -1.0], "greedy": [False, True],
      "n_tokens": [1, 1], "prediction": 1, "truncated": 0, "metrics": {"acc": 1.0}}, TaskKind.MULTIPLE_CHOICE),
    ({"task": "t", "setting": "FS", "k": 2, "k_used": 2, "seed": 1, "example_id": "test-3", "demo_ids": ["a", "b"],
      "prompt": "x", "target": " y", "logprob": -0.5, "is_greedy": True, "last_token_greedy": True, "n_tokens": 1,
      "truncated": 4, "metrics": {"acc": 1.0, "perplexity": -0.5}}, TaskKind.CLOZE),
    ({"task": "t", "setting": "ZS", "k": 0, "k_used": 0, "seed": 0, "example_id": "test-0", "demo_ids": [],
      "prompt": "doc", "logprob": -9.0, "n_tokens": 3, "words": 2, "bytes": 10,
      "metrics": {"word_perplexity": [-9.0, 2.0]}}, TaskKind.PERPLEXITY),
    ({"task": "t", "setting": "1S", "k": 1, "k_used": 1, "seed": 0, "example_id": "dev-0", "demo_ids": ["dev-1"],
      "prompt": "Q:", "generation": " Paris\n", "prediction": "Paris", "target": "Paris", "references": ["Paris"],
      "truncated": 0, "metrics": {"exact_match": 1.0}}, TaskKind.GENERATE),
    ({"task": "t", "setting": "ZS", "k": 0, "k_used": 0, "seed": 0, "example_id": "dev-2", "demo_ids": [],
      "prompt": "Q:", "generation": " Rome", "prediction": "Rome", "target": "Paris", "references": ["Paris"],
      "truncated": 0, "logprob": -3.25, "n_tokens": 2, "metrics": {"exact_match": 0.0}}, TaskKind.GENERATE),
])
def test_a_samples_line_reads_back_byte_for_byte(line, kind):
    """The record writes the line it was read from, key for key and in order; run folders older than run.json's
    task kinds read the same record from the keys alone."""
    sample = read_sample(line, kind)
    assert isinstance(sample.answer, KINDS[kind].answer)
    assert json.dumps(sample.to_json()) == json.dumps(line)
    assert read_sample(line, None) == sample
