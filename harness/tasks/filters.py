"""What a generate task does to a continuation before metrics read it, as its file says (`prompt.filters`).

The model has already cut the continuation at the first stop string (lm-evaluation-harness's `until`);
filters follow in order. lm-evaluation-harness's `take_first` is implicit: one greedy continuation per prompt.
"""

from __future__ import annotations

import re

from harness.tasks.spec import Filter, TaskSpec


def apply_filters(task: TaskSpec, text: str) -> str:
    for f in task.prompt.filters:
        text = apply_filter(f, text, task.prompt.regex)
    return text


def apply_filter(f: Filter, text: str, pattern: str = "") -> str:
    match f:
        case Filter.STRIP:  # lm-evaluation-harness's remove_whitespace
            return text.strip()
        case Filter.FIRST_LINE:
            return text.split("\n", 1)[0]
        case Filter.REGEX:  # BIG-bench's output_regex: the first of re.findall, "" when nothing matches
            found = re.findall(pattern, text)
            if not found:
                return ""
            first = found[0]
            return first if isinstance(first, str) else next((g for g in first if g), "")
