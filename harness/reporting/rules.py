"""A scoring-rule atlas: how a multiple-choice score depends on the rule that turns log-likelihoods into a pick.

Every rule reads the log-likelihoods already in samples.jsonl (no model call) and picks the argmax (the first
of equal maxima) of a per-choice score:

| rule            | score of a choice                                   | metric of ours (harness/metrics.py) |
| --------------- | --------------------------------------------------- | ----------------------------------- |
| ACC             | log p(choice | prompt)                              | acc                                 |
| ACC_NORM        | ... / characters of the choice text                 | acc_norm (lm-eval's)                |
| ACC_BYTES       | ... / UTF-8 bytes of the choice text                | none (lm-eval's acc_bytes)          |
| PER_TOKEN       | ... / tokens of the continuation                    | acc_per_token                       |
| UNCONDITIONAL   | ... - log p(choice | end-of-text)                   | acc_calibrated (lm-eval's acc_mutual_info) |
| GPT3_CALIBRATED | ... - log p(choice | answer context, "Answer:")     | acc_gpt3_calibrated                 |

The lengths are those of the choice text without the target delimiter, as lm-evaluation-harness counts them
(len(doc_to_choice(doc)[i]), and its UTF-8 bytes for acc_bytes) and as acc_norm here does (partial scoring:
the choice is the context option, as metrics.py reads it). A rule whose inputs
some sample lacks (no unconditional or answer-context log-likelihoods, no token counts) is left out.

The atlas gives each rule's accuracy and, for every pair, the examples that flip: fixed (right under the second
rule only), broken (right under the first only), changed (another choice picked). Which rule a published number
used comes from the data that already say so: a Published record's metric, and for the GPT-3 paper the first
metric gpt3.H1_NAMES prefers for a task (per-token for most multiple-choice tasks, the answer-context
calibration for ARC, OpenBookQA and RACE; gpt3.SOURCE.notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import combinations

import numpy as np

from harness.errors import HarnessError
from harness.reporting import gpt3
from harness.reporting.published import Published
from harness.samples import ChoiceAnswer, Sample


class Rule(Enum):
    """A scoring rule; the value is our metric of that name (acc_bytes has no metric here)."""

    ACC = "acc"
    ACC_NORM = "acc_norm"
    ACC_BYTES = "acc_bytes"
    PER_TOKEN = "acc_per_token"
    UNCONDITIONAL = "acc_calibrated"
    GPT3_CALIBRATED = "acc_gpt3_calibrated"


RULE_OF_METRIC: dict[str, Rule] = {rule.value: rule for rule in Rule}

Key = tuple[str, int]  # (example id, demonstration seed)


def has_inputs(answer: ChoiceAnswer, rule: Rule) -> bool:
    """Whether the answer carries what the rule reads (one value per choice)."""
    k = len(answer.logprobs)
    match rule:
        case Rule.ACC | Rule.ACC_NORM | Rule.ACC_BYTES:
            return len(answer.choices) == k
        case Rule.PER_TOKEN:
            return len(answer.n_tokens) == k
        case Rule.UNCONDITIONAL:
            return len(answer.unconditional) == k
        case Rule.GPT3_CALIBRATED:
            return len(answer.answer_context) == k


def rule_scores(answer: ChoiceAnswer, rule: Rule) -> np.ndarray:
    """The per-choice scores (k,) whose argmax is the rule's pick (the arithmetic of harness/metrics.py)."""
    lp = np.array(answer.logprobs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty choice text: as metrics.py, no guard
        match rule:
            case Rule.ACC:
                return lp
            case Rule.ACC_NORM:
                return lp / np.array([len(c) for c in answer.choices])
            case Rule.ACC_BYTES:
                return lp / np.array([len(c.encode("utf-8")) for c in answer.choices])
            case Rule.PER_TOKEN:
                return lp / np.maximum(np.array(answer.n_tokens), 1)
            case Rule.UNCONDITIONAL:
                return lp - np.array(answer.unconditional)
            case Rule.GPT3_CALIBRATED:
                return lp - np.array(answer.answer_context)


def pick(answer: ChoiceAnswer, rule: Rule) -> int:
    """The choice the rule picks: the argmax, the first of equal maxima."""
    return int(np.argmax(rule_scores(answer, rule)))


@dataclass(frozen=True)
class Flip:
    """Between two rules, the examples whose pick differs: fixed = right under `b` only, broken = under `a` only."""

    a: Rule
    b: Rule
    fixed: tuple[Key, ...]
    broken: tuple[Key, ...]
    changed: tuple[Key, ...]  # every example with another pick, fixed and broken among them

    @property
    def net(self) -> int:
        """accuracy(b) - accuracy(a), in examples."""
        return len(self.fixed) - len(self.broken)


@dataclass(frozen=True)
class Atlas:
    """Each available rule's accuracy on the same examples, and the flips between every pair of them."""

    n: int
    rules: tuple[Rule, ...]  # those every sample has the inputs of, in Rule order
    accuracy: tuple[float, ...]  # per rule in `rules`
    missing: tuple[Rule, ...]  # left out: some sample lacks the inputs
    flips: tuple[Flip, ...]  # every pair (a before b in `rules`)

    def accuracy_of(self, rule: Rule) -> float:
        return self.accuracy[self.rules.index(rule)]


def rule_atlas(samples: Sequence[Sample]) -> Atlas:
    """The atlas of one cell's multiple-choice samples (one task, setting and k; seeds keep their own rows)."""
    if not samples:
        raise HarnessError("a rule atlas needs at least one multiple-choice sample")
    for s in samples:
        if not isinstance(s.answer, ChoiceAnswer):
            raise HarnessError(f"a rule atlas reads multiple-choice samples; {s.task} example {s.example_id} holds "
                               f"a {type(s.answer).__name__}")
    answers = [s.answer for s in samples]
    keys = [(s.example_id, s.seed) for s in samples]
    rules = tuple(r for r in Rule if all(has_inputs(a, r) for a in answers))
    picks = {r: np.array([pick(a, r) for a in answers]) for r in rules}  # rule -> (n,)
    gold = np.array([a.gold for a in answers])
    right = {r: picks[r] == gold for r in rules}
    flips = tuple(Flip(a, b, _keys(keys, right[b] & ~right[a]), _keys(keys, right[a] & ~right[b]),
                       _keys(keys, picks[a] != picks[b])) for a, b in combinations(rules, 2))
    return Atlas(len(samples), rules, tuple(float(right[r].mean()) for r in rules),
                 tuple(r for r in Rule if r not in rules), flips)


def _keys(keys: list[Key], mask: np.ndarray) -> tuple[Key, ...]:
    return tuple(k for k, m in zip(keys, mask, strict=True) if m)


def published_rule(number: Published) -> Rule | None:
    """The rule behind a published multiple-choice number: its metric's (None for a metric that is no rule)."""
    return RULE_OF_METRIC.get(number.metric)


def gpt3_rule(task: str) -> Rule | None:
    """The rule GPT-3's Table H.1 number of one of our multiple-choice tasks used: the first metric H1_NAMES
    prefers for the task, when it is a rule (None for a task Table H.1 lacks or one scored otherwise)."""
    for (_, paper_metric), name in gpt3.H1_NAMES.items():
        if name.task == task and paper_metric == "acc" and name.metrics[0] in RULE_OF_METRIC:
            return RULE_OF_METRIC[name.metrics[0]]
    return None
