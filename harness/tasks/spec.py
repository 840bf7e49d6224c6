"""What a task file says, as frozen records: TaskSpec with its DataSpec and PromptSpec.

The strict loader that builds them from tasks/*.toml is taskfile.py; which prompt keys apply to which
task kind is kinds.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from harness.metrics import METRICS
from harness.records import MatchOptions, TaskKind


# metrics that compare the prediction with reference texts (translation, summaries): an empty reference is bad input
TEXT_REFERENCE_METRICS = frozenset({"bleu", "chrf", "ter", "rouge1", "rouge2", "rougeL", "rougeLsum"})


class Filter(enum.Enum):
    """What a generate task does to a continuation before metrics read it (lm-evaluation-harness's filters)."""

    STRIP = "strip"  # remove_whitespace: leading and trailing whitespace
    FIRST_LINE = "first_line"  # the text before the first newline
    # the first match of prompt.regex (its group when it has one), "" when none (BIG-bench output_regex)
    REGEX = "regex"


@dataclass(frozen=True)
class DataSpec:
    local: str | None  # folder under the data dir
    hub: str | None  # hub dataset id, used when the local files are absent
    hub_name: str | None  # hub dataset configuration
    eval_split: str
    demo_split: str | None  # falls back to eval_split (the example itself always excluded)
    files: dict[str, str] = field(default_factory=dict)  # split -> file name, default <split>.jsonl
    train_split: str | None = None  # labelled examples for the FT setting; None: FT not available
    demos_from_eval: bool = False  # no demo_split by design (BIG-bench draws from the other examples): no warning


@dataclass(frozen=True)
class PromptSpec:
    query: str = ""
    choices: tuple[str, ...] | str = ()  # templates, or one "$field" naming a list field
    answer: str = ""  # multiple_choice, partial_scoring: renders to the gold choice index (or one of answer_labels)
    answer_labels: tuple[str, ...] = ()  # answer values in choice order, matched case-insensitively
    target: str = ""  # cloze / generate: the expected continuation; partial scoring: the shared text
    text: str = ""  # perplexity: the document
    units_text: str = ""  # perplexity: text whose words/bytes normalise (default: text)
    stride: int = 0  # perplexity: tokens predicted per rolling window after the first; 0: disjoint windows (lm-eval)
    window: int = 0  # perplexity: tokens per window (GPT-2's 1024 for Table 3), at most the model's; 0: the model's
    target_delimiter: str = " "
    demo_separator: str = "\n\n"
    stop: tuple[str, ...] = ("\n\n",)
    max_new_tokens: int = 64
    references: str = ""  # generate: accepted answers, a '$field' naming a list or one template (default: target)
    filters: tuple[Filter, ...] = ()  # generate: applied in order to the continuation before metrics
    regex: str = ""  # generate: the pattern of the regex filter
    template: str = ""  # "" : $field templates; "jinja": sandboxed Jinja (tasks imported from lm-eval, tasks/jinja.py)
    choice_scores: str = ""  # multiple_choice: '$field' naming a list of numbers, the credit of each choice (BIG-bench)
    # multiple_choice: the GPT-3 paper's "answer context" (its section 2.4, e.g. "Answer:"), literal text after which
    # each choice's continuation is scored again for acc_gpt3_calibrated: log p(choice | prompt) - log p(choice | it)
    answer_context: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    path: Path
    sha256: str
    kind: TaskKind
    description: str
    metrics: tuple[str, ...]
    preprocess: str | None
    data: DataSpec
    prompt: PromptSpec
    match: MatchOptions = MatchOptions()  # [metric_options.exact_match]

    @property
    def needs_unconditional(self) -> bool:
        """Some metric of the task compares with the choice's log-likelihood after the prefix token alone."""
        return any(METRICS[m].needs_unconditional for m in self.metrics if m in METRICS)

    @property
    def needs_answer_context(self) -> bool:
        """Some metric of the task compares with the choice's log-likelihood after prompt.answer_context."""
        return any(METRICS[m].needs_answer_context for m in self.metrics if m in METRICS)

    def templates(self) -> dict[str, str]:
        """Every template of the task by its key, for field checks."""
        p = self.prompt
        keys = {"prompt.query": p.query, "prompt.answer": p.answer, "prompt.target": p.target,
                "prompt.text": p.text, "prompt.units_text": p.units_text, "prompt.references": p.references}
        if isinstance(p.choices, str):
            keys["prompt.choices"] = p.choices
        else:
            keys |= {f"prompt.choices[{i}]": c for i, c in enumerate(p.choices)}
        return {k: v for k, v in keys.items() if v}
