"""Prompt building: template rendering, per-example demonstration sampling, fitting the context.

The prompt text follows lm-evaluation-harness: description + (demo + separator) * k + query, where a
demo is its query + target_delimiter + its answer.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import replace

from harness.errors import HarnessError
from harness.records import Example, Prompt, Setting
from harness.tasks.spec import TaskKind, TaskSpec


def render(task: TaskSpec, key: str, template: str, example: Example) -> str:
    """Fill a $field template from an example; a missing field names the file, key and example."""
    try:
        return string.Template(template).substitute({k: _text(v) for k, v in example.fields.items()})
    except KeyError as e:
        raise HarnessError(f"{task.path}: {key} names ${e.args[0]}, missing in example {example.id}") from None


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def choices_of(task: TaskSpec, example: Example) -> list[str]:
    """The answer choices: a list of templates, or one '$field' naming a list field."""
    spec = task.prompt.choices
    if isinstance(spec, str):
        names = string.Template(spec).get_identifiers()
        value = example.fields.get(names[0]) if len(names) == 1 else None
        if isinstance(value, (list, tuple)) and spec.strip() in (f"${names[0]}", f"${{{names[0]}}}"):
            choices = [_text(v) for v in value]
        else:
            raise HarnessError(f"{task.path}: prompt.choices {spec!r} must name one list field (example {example.id})")
    else:
        choices = [render(task, f"prompt.choices[{i}]", t, example) for i, t in enumerate(spec)]
    if not choices:
        raise HarnessError(f"{task.path}: prompt.choices: example {example.id} has an empty choice list")
    return choices


def gold_of(task: TaskSpec, example: Example, n_choices: int) -> int:
    """The gold choice index, checked against the number of choices."""
    raw = render(task, "prompt.answer", task.prompt.answer, example).strip()
    labels = [label.lower() for label in task.prompt.answer_labels]
    if labels:
        if raw.lower() not in labels:
            raise HarnessError(
                f"{task.path}: prompt.answer renders to {raw!r} for example {example.id}, not one of answer_labels {labels}"
            )
        gold = labels.index(raw.lower())
    else:
        try:
            gold = int(raw)
        except ValueError:
            raise HarnessError(f"{task.path}: prompt.answer renders to {raw!r} for example {example.id}, not an index") from None
    if not 0 <= gold < n_choices:
        raise HarnessError(
            f"{task.path}: prompt.answer: gold label {gold} out of range for example {example.id} ({n_choices} choices)"
        )
    return gold


def query_of(task: TaskSpec, example: Example) -> str:
    """The question part of the prompt; for perplexity tasks, the document itself."""
    if task.kind is TaskKind.PERPLEXITY:
        return render(task, "prompt.text", task.prompt.text, example)
    return render(task, "prompt.query", task.prompt.query, example)


def target_of(task: TaskSpec, example: Example) -> str:
    """The gold answer text (without the target delimiter); for partial scoring, the shared target."""
    if task.kind is TaskKind.MULTIPLE_CHOICE and not task.is_partial:
        choices = choices_of(task, example)
        return choices[gold_of(task, example, len(choices))]
    return render(task, "prompt.target", task.prompt.target, example)


def demo_text(task: TaskSpec, example: Example) -> str:
    """A solved demonstration: query + target delimiter + answer (partial: query + gold choice + ...)."""
    query = query_of(task, example)
    if task.is_partial:
        choices = choices_of(task, example)
        query += choices[gold_of(task, example, len(choices))]
    return query + task.prompt.target_delimiter + target_of(task, example)


def demo_seed(task: str, example_id: str, k: int, seed: int) -> int:
    """The sampling seed of one example's demonstrations: independent of order, limit and batching."""
    digest = hashlib.sha256(f"{task}\x1f{example_id}\x1f{k}\x1f{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sample_demos(task: str, example: Example, pool: Sequence[Example], k: int, seed: int) -> list[Example]:
    """k demonstrations for `example` from `pool`, never the example itself."""
    if k == 0:
        return []
    rng = random.Random(demo_seed(task, example.id, k, seed))
    picked = rng.sample(range(len(pool)), min(k + 1, len(pool)))  # one spare, in case it is the example
    demos = [pool[i] for i in picked if pool[i].id != example.id][:k]
    if len(demos) < k:
        raise HarnessError(f"task {task}: --shots {k} is larger than the demonstration pool ({len(pool)} examples)")
    return demos


def check_pool(task: TaskSpec, pool: Sequence[Example], same_split: bool, k: int) -> None:
    """Fail early when k demonstrations cannot be drawn for every example."""
    size = len(pool) - (1 if same_split else 0)
    if k > size:
        raise HarnessError(
            f"task {task.name}: --shots {k} is larger than the demonstration pool "
            f"({size} examples{' besides the example itself' if same_split else ''})"
        )


def build_prompt(
    task: TaskSpec, example: Example, setting: Setting, k: int, seed: int, pool: Sequence[Example]
) -> Prompt:
    demos = sample_demos(task.name, example, pool, k, seed)
    return Prompt(
        task=task.name,
        example_id=example.id,
        setting=setting,
        k=k,
        seed=seed,
        description=task.description,
        demos=tuple(demo_text(task, d) for d in demos),
        demo_ids=tuple(d.id for d in demos),
        query=query_of(task, example),
        demo_separator=task.prompt.demo_separator,
    )


def fit_prompt(prompt: Prompt, longest_continuation: str, count_tokens: Callable[[str], int], budget: int) -> Prompt:
    """Drop whole demonstrations from the end until context + continuation fit in `budget` tokens.

    Never cuts text: a prompt whose query alone is too long is returned with no demonstrations, and
    the scorer left-truncates it as lm-evaluation-harness does (recorded per example).
    """
    while prompt.demos and count_tokens(prompt.text + longest_continuation) > budget:
        prompt = replace(prompt, demos=prompt.demos[:-1], demo_ids=prompt.demo_ids[:-1])
    return prompt
