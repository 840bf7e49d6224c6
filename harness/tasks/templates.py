"""The `$field` templates of a task file, filled from one example. Every failure names the file, the key
and the example. kinds.py calls these once per example to build its Rendered record."""

from __future__ import annotations

import string

from harness.errors import HarnessError
from harness.records import Example
from harness.tasks import jinja
from harness.tasks.spec import TaskSpec


def fill(task: TaskSpec, key: str, template: str, example: Example) -> str:
    """Fill a $field template from an example; a missing field names the file, key and example."""
    if task.prompt.template == jinja.JINJA:
        return jinja.text(task, key, template, example)
    try:
        return string.Template(template).substitute({k: _text(v) for k, v in example.fields.items()})
    except KeyError as e:
        raise HarnessError(f"{task.path}: {key} names ${e.args[0]}, missing in example {example.id}") from None


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _named_list(template: str, example: Example) -> tuple[str, list | tuple | None]:
    """(field, its list) when the template is exactly one '$field' naming a list of the example, else ("", None)."""
    names = string.Template(template).get_identifiers()
    value = example.fields.get(names[0]) if len(names) == 1 else None
    if isinstance(value, (list, tuple)) and template.strip() in (f"${names[0]}", f"${{{names[0]}}}"):
        return names[0], value
    return "", None


def choices_of(task: TaskSpec, example: Example) -> list[str]:
    """The answer choices: a list of templates, or one '$field' naming a list field."""
    if task.prompt.template == jinja.JINJA:
        return jinja.choices(task, example)
    spec = task.prompt.choices
    if isinstance(spec, str):
        _, value = _named_list(spec, example)
        if value is None:
            raise HarnessError(f"{task.path}: prompt.choices {spec!r} must name one list field (example {example.id})")
        choices = [_text(v) for v in value]
    else:
        choices = [fill(task, f"prompt.choices[{i}]", t, example) for i, t in enumerate(spec)]
    if not choices:
        raise HarnessError(f"{task.path}: prompt.choices: example {example.id} has an empty choice list")
    return choices


def gold_of(task: TaskSpec, example: Example, n_choices: int) -> int:
    """The gold choice index, checked against the number of choices."""
    if task.prompt.template == jinja.JINJA:
        return jinja.gold(task, example, n_choices)
    raw = fill(task, "prompt.answer", task.prompt.answer, example).strip()
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


def texts_of(task: TaskSpec, key: str, template: str, example: Example) -> list[str]:
    """A template that is one '$field' naming a list gives its items; any other template gives one text.
    An empty list names the file, key and example."""
    if task.prompt.template == jinja.JINJA:
        return jinja.texts(task, key, template, example)
    field, value = _named_list(template, example)
    if value is not None:
        if not value:
            raise HarnessError(f"{task.path}: {key}: example {example.id} has an empty list in ${field}")
        return [_text(v) for v in value]
    return [fill(task, key, template, example)]


def references_of(task: TaskSpec, example: Example) -> tuple[str, tuple[str, ...]]:
    """(the gold continuation, every accepted reference) of a generate task's example: the target (its first
    item when it names a list) and prompt.references, which defaults to the target's texts."""
    targets = texts_of(task, "prompt.target", task.prompt.target, example)
    if not task.prompt.references:
        return targets[0], tuple(targets)
    return targets[0], tuple(texts_of(task, "prompt.references", task.prompt.references, example))
