"""The `$field` templates of a task file, filled from one example. kinds.py calls these once per example to build
its Rendered record.

A placeholder is `$name` or `${name}`; a dotted name reads into an object (`$target.span1_text`, and
`$choices.text` for ARC's `choices: {text: [...], label: [...]}`); `$$` is a literal `$`. Nothing is ever pasted
as "None" or as a whole object: a missing or null field, a key an object lacks, an object or list where text is
expected, an empty choice and Jinja's `{{...}}` are each one line naming the task file:line, the key, the field
and the example.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from pathlib import Path

from harness.errors import HarnessError
from harness.records import Example
from harness.tasks import jinja
from harness.tasks.spec import TaskSpec

_NAME = r"[_a-z][_a-z0-9]*"


class FieldTemplate(string.Template):
    """string.Template whose names may be dotted: `$a.b`, `${a.b}`."""

    idpattern = rf"(?a:{_NAME}(?:\.{_NAME})*)"


_JINJA = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}|\{%.*?%\}", re.S)


def template_problem(template: str) -> str:
    """Why `template` is not a valid $field template, or '' when it is."""
    if m := _JINJA.search(template):
        inner, shown = m.group(1) or "", " ".join(m.group(0).split())[:60]
        fix = (f"write ${inner}" if re.fullmatch(rf"(?ai:{_NAME}(?:\.{_NAME})*)", inner)
               else "write it with $field placeholders, or import the lm-eval task (harness import-lmeval)")
        return f"{shown} is Jinja syntax, which $field templates do not read: {fix}"
    for m in FieldTemplate.pattern.finditer(template):
        if m.group("invalid") is not None:
            return (f"{template[m.start():][:20]!r} is not a field: a field is $name, ${{name}} or a "
                    "dotted $name.key (letters, digits, _); write $$ for a literal $")
    return ""


@functools.lru_cache(maxsize=256)
def _checked(template: str) -> str:
    return template_problem(template)


def key_line(path: Path, key: str) -> int | None:
    """The line of `key` (e.g. 'prompt.query', 'prompt.choices[1]') in a TOML task file, when it can be found."""
    key = key.split("[")[0]
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    table = ""
    for number, line in enumerate(lines, 1):
        if header := re.match(r"\s*\[\s*([\w.\-\"]+?)\s*\]", line):
            table = header.group(1).replace('"', "")
        elif assign := re.match(r"\s*\"?([\w.\-]+)\"?\s*=", line):
            if (f"{table}.{assign.group(1)}" if table else assign.group(1)) == key:
                return number
    return None


def where(task: TaskSpec, key: str) -> str:
    """'<task file>:<line>: <key>' (the line when the key is found in the file)."""
    line = key_line(task.path, key) if Path(task.path).suffix == ".toml" else None
    return f"{task.path}:{line}: {key}" if line else f"{task.path}: {key}"


def _error(task: TaskSpec, key: str, message: str) -> HarnessError:
    return HarnessError(f"{where(task, key)}: {message}")


def lookup(task: TaskSpec, key: str, name: str, example: Example):
    """The value of a (dotted) field name in an example; missing, null, and keys an object lacks are errors."""
    value, path = example.fields, ""
    for part in name.split("."):
        if not isinstance(value, Mapping):
            raise _error(task, key, f"${name}: ${path} is {_kind(value)}, not an object, in example {example.id}"
                         + (f"; to put text right after it write ${{{path}}}" if isinstance(value, str) else ""))
        if part not in value:
            owner = f"${path} has no key" if path else "has no field"
            raise _error(task, key, f"${name}: example {example.id} {owner} {part!r} "
                         f"(its {'keys' if path else 'fields'}: {', '.join(map(str, value)) or 'none'})")
        value, path = value[part], f"{path}.{part}" if path else part
    if value is None:
        raise _error(task, key, f"${name} is null (or missing) in example {example.id}; fix the data, or drop the "
                     "example in a preprocess function")
    return value


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return "a list" if isinstance(value, (list, tuple)) else f"a {type(value).__name__} ({value!r})"[:60]


def _text(task: TaskSpec, key: str, name: str, value, example: Example) -> str:
    """A field value as text: strings as they are, numbers by str(); objects and lists are errors."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        hint = f", e.g. ${name}.{keys[0]}" if keys else ""
        raise _error(task, key, f"${name} is an object in example {example.id} (keys: {', '.join(keys) or 'none'}): "
                     f"name one of its keys{hint}")
    if isinstance(value, (list, tuple)):
        raise _error(task, key, f"${name} is a list in example {example.id}, where text is expected; only a template "
                     "that is exactly one '$field' may name a list (choices, target, references)")
    return str(value)


def fill(task: TaskSpec, key: str, template: str, example: Example) -> str:
    """Fill a $field template (or, in a task that says template = "jinja", a sandboxed Jinja one) from an example."""
    if task.prompt.template == jinja.JINJA:
        return jinja.text(task, key, template, example)
    if problem := _checked(template):
        raise _error(task, key, problem)

    def one(m: re.Match) -> str:
        if m.group("escaped") is not None:
            return "$"
        name = m.group("named") or m.group("braced")
        return _text(task, key, name, lookup(task, key, name, example), example)

    return FieldTemplate.pattern.sub(one, template)


def _named_list(task: TaskSpec, key: str, template: str, example: Example) -> tuple[str, list | tuple | None]:
    """(field, its list) when the template is exactly one '$field' naming a list of the example, else ("", None)."""
    m = FieldTemplate.pattern.fullmatch(template.strip())
    name = m and (m.group("named") or m.group("braced"))
    if not name:
        return "", None
    value = lookup(task, key, name, example)
    return (name, value) if isinstance(value, (list, tuple)) else ("", None)


def _items(task: TaskSpec, key: str, name: str, value, example: Example) -> list[str]:
    """The items of a list field as texts: a null, object or list item is an error naming its position."""
    out = []
    for i, item in enumerate(value):
        if item is None or isinstance(item, (Mapping, list, tuple)):
            raise _error(task, key, f"${name}[{i}] is {_kind(item)} in example {example.id}, not text")
        out.append(item if isinstance(item, str) else str(item))
    return out


def choices_of(task: TaskSpec, example: Example) -> list[str]:
    """The answer choices: a list of templates, or one '$field' naming a list field. An empty choice is an error
    (scored, it would be the bare delimiter, and acc_norm would divide by its length 0)."""
    if task.prompt.template == jinja.JINJA:
        return jinja.choices(task, example)
    spec = task.prompt.choices
    if isinstance(spec, str):
        name, value = _named_list(task, "prompt.choices", spec, example)
        if value is None:
            m = FieldTemplate.pattern.fullmatch(spec.strip())
            if name := m and (m.group("named") or m.group("braced")):  # an object names its keys
                _text(task, "prompt.choices", name, lookup(task, "prompt.choices", name, example), example)
            raise _error(task, "prompt.choices", f"{spec!r} must name one list field (example {example.id})")
        choices = _items(task, "prompt.choices", name, value, example)
    else:
        choices = [fill(task, f"prompt.choices[{i}]", t, example) for i, t in enumerate(spec)]
    if not choices:
        raise _error(task, "prompt.choices", f"example {example.id} has an empty choice list")
    for i, choice in enumerate(choices):
        if not choice:
            key = "prompt.choices" if isinstance(spec, str) else f"prompt.choices[{i}]"
            raise _error(task, key, f"choice {i} is empty in example {example.id}; "
                         "every choice needs text to be scored")
    return choices


def gold_of(task: TaskSpec, example: Example, n_choices: int) -> int:
    """The gold choice index, checked against the number of choices. A whole float (1.0) reads as its integer:
    the json loader turns a whole column into floats when any row holds one, so the row at fault is the one
    whose value is not whole."""
    if task.prompt.template == jinja.JINJA:
        return jinja.gold(task, example, n_choices)
    m = FieldTemplate.pattern.fullmatch(task.prompt.answer.strip())
    name = m and (m.group("named") or m.group("braced"))
    value = lookup(task, "prompt.answer", name, example) if name else None
    if isinstance(value, float):
        if not value.is_integer():
            raise _error(task, "prompt.answer", f"${name} is {value!r} in example {example.id}, not a whole number")
        raw = str(int(value))
    else:
        raw = fill(task, "prompt.answer", task.prompt.answer, example).strip()
    labels = [label.lower() for label in task.prompt.answer_labels]
    if labels:
        if raw.lower() not in labels:
            raise _error(task, "prompt.answer", f"renders to {raw!r} for example {example.id}, "
                         f"not one of answer_labels {labels}")
        gold = labels.index(raw.lower())
    else:
        try:
            gold = int(raw)
        except ValueError:
            raise _error(task, "prompt.answer", f"renders to {raw!r} for example {example.id}, not an index") from None
    if not 0 <= gold < n_choices:
        raise _error(task, "prompt.answer", f"gold label {gold} out of range for example {example.id} "
                     f"({n_choices} choices)")
    return gold


def texts_of(task: TaskSpec, key: str, template: str, example: Example) -> list[str]:
    """A template that is one '$field' naming a list gives its items; any other template gives one text.
    An empty list names the file, key and example."""
    if task.prompt.template == jinja.JINJA:
        return jinja.texts(task, key, template, example)
    name, value = _named_list(task, key, template, example)
    if value is not None:
        if not value:
            raise _error(task, key, f"example {example.id} has an empty list in ${name}")
        return _items(task, key, name, value, example)
    return [fill(task, key, template, example)]


def references_of(task: TaskSpec, example: Example) -> tuple[str, tuple[str, ...]]:
    """(the gold continuation, every accepted reference) of a generate task's example: the target (its first
    item when it names a list) and prompt.references, which defaults to the target's texts."""
    targets = texts_of(task, "prompt.target", task.prompt.target, example)
    if not task.prompt.references:
        return targets[0], tuple(targets)
    return targets[0], tuple(texts_of(task, "prompt.references", task.prompt.references, example))
