"""Jinja templates of a task whose [prompt] says `template = "jinja"` (tasks imported from lm-evaluation-harness).

Rendered with jinja2's immutable sandbox: attribute and item access, list methods that read (`.index`,
`.split`), filters such as `|join`, `{% if %}`; anything that would call unsafe code or change a value is
refused. Undefined names are errors (StrictUndefined), so is a `{{ }}` that yields None and an empty choice.

The values follow lm-evaluation-harness's reading of a template: a template that is one `{{ expression }}`
gives the expression's value (a list of choices, a gold index, a list of references); any other template
renders to text, and text that spells a Python list (`['a', 'b']`) is read back as one, as lm-eval does.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Any

from harness.errors import HarnessError
from harness.records import Example
from harness.tasks.spec import TaskSpec

JINJA = "jinja"  # the value of prompt.template that selects this engine ("" : $field templates)
_ONE_EXPRESSION = re.compile(r"\{\{(?P<expr>.*)\}\}", re.DOTALL)


class _NoneValue(Exception):
    pass


def _finalize(value: Any) -> Any:
    if value is None:
        raise _NoneValue()
    return value


@lru_cache(maxsize=1)
def environment():
    """The one sandboxed environment (as lm-eval's: undefined names fail, a trailing newline is kept)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                                         finalize=_finalize)


def syntax_error(template: str) -> str:
    """'' when the template parses, else jinja2's message."""
    from jinja2 import TemplateSyntaxError

    try:
        environment().parse(template)
    except TemplateSyntaxError as e:
        return f"line {e.lineno}: {e.message}"
    return ""


_MUTATING = frozenset({"append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault",
                       "add", "discard", "sort", "reverse", "difference_update", "intersection_update",
                       "symmetric_difference_update", "format", "format_map", "mro"})


def refused(template: str) -> str:
    """'' when the sandbox would allow every construct of the template, else the first one it refuses:
    private or internal attributes, methods that change a value, and {% import/include/extends %}."""
    from jinja2 import nodes
    from jinja2 import sandbox

    unsafe = _MUTATING.union(sandbox.UNSAFE_FUNCTION_ATTRIBUTES, sandbox.UNSAFE_METHOD_ATTRIBUTES,
                             sandbox.UNSAFE_GENERATOR_ATTRIBUTES, sandbox.UNSAFE_COROUTINE_ATTRIBUTES,
                             sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES)
    tree = environment().parse(template)
    for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        return f"{{% {type(node).__name__.lower()} %}} (templates cannot load other templates)"
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attr, str) and (attr.startswith("_") or attr in unsafe):
            return f"the attribute {attr!r}"
    return ""


def names(template: str) -> set[str]:
    """The example fields a template reads (its undeclared top-level variables)."""
    from jinja2 import meta

    return set(meta.find_undeclared_variables(environment().parse(template)))


def expression(template: str) -> str | None:
    """The expression of a template that is exactly one `{{ expression }}`, else None."""
    match = _ONE_EXPRESSION.fullmatch(template)
    if match is None:
        return None
    expr = match["expr"]
    return None if any(mark in expr for mark in ("{{", "}}", "{%", "%}", "{#")) else expr.strip()


@lru_cache(maxsize=256)
def _compiled(template: str):
    """(the expression's evaluator or None, the whole template)."""
    env = environment()
    expr = expression(template)
    return ((env.compile_expression(expr, undefined_to_none=False) if expr is not None else None),
            env.from_string(template))


def _evaluate(task: TaskSpec, key: str, template: str, example: Example, as_text: bool) -> Any:
    from jinja2 import TemplateError, Undefined
    from jinja2.exceptions import SecurityError

    where = f"{task.path}: {key}: example {example.id}"
    evaluate, whole = _compiled(template)
    try:
        value = whole.render(**example.fields) if as_text or evaluate is None else evaluate(**example.fields)
        if isinstance(value, Undefined):
            str(value)  # StrictUndefined: raises UndefinedError naming the field
    except _NoneValue:
        raise HarnessError(f"{where}: the template {template!r} gives None (a missing value in the data)") from None
    except SecurityError as e:
        raise HarnessError(f"{where}: the Jinja sandbox refused {template!r}: {e}") from None
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as e:
        raise HarnessError(f"{where}: the template {template!r} failed: {type(e).__name__}: {e}") from None
    if value is None:
        raise HarnessError(f"{where}: the template {template!r} gives None (a missing value in the data)")
    return value


def text(task: TaskSpec, key: str, template: str, example: Example) -> str:
    """The template rendered to text."""
    return _evaluate(task, key, template, example, as_text=True)


def _as_list(value: Any) -> list | None:
    """lm-eval reads rendered text that spells a list back into the list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and len(value) >= 2 and value[0] == "[" and value[-1] == "]":
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        return list(parsed) if isinstance(parsed, (list, tuple)) else None
    return None


def choices(task: TaskSpec, example: Example) -> list[str]:
    """prompt.choices: a list of templates (each one choice), or one template that gives the list."""
    spec = task.prompt.choices
    if isinstance(spec, str):
        value = _evaluate(task, "prompt.choices", spec, example, as_text=False)
        items = _as_list(value)
        if items is None:
            raise HarnessError(f"{task.path}: prompt.choices: example {example.id}: {spec!r} gives "
                               f"{type(value).__name__} {str(value)[:80]!r}, not a list of choices")
    else:
        items = [text(task, f"prompt.choices[{i}]", t, example) for i, t in enumerate(spec)]
    if not items:
        raise HarnessError(f"{task.path}: prompt.choices: example {example.id} has an empty choice list")
    for i, item in enumerate(items):
        if item is None or item == "":
            raise HarnessError(f"{task.path}: prompt.choices: example {example.id}: choice {i} is "
                               f"{'None' if item is None else 'empty'}")
    return [item if isinstance(item, str) else str(item) for item in items]


def gold(task: TaskSpec, example: Example, n_choices: int) -> int:
    """prompt.answer: an index, digits, or the text of the gold choice (as lm-eval reads doc_to_target)."""
    value = _evaluate(task, "prompt.answer", task.prompt.answer, example, as_text=False)
    where = f"{task.path}: prompt.answer: example {example.id}"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    elif isinstance(value, str):
        options = choices(task, example)
        if value not in options:
            raise HarnessError(f"{where}: {value!r} is neither an index nor one of the choices {options}")
        value = options.index(value)
    if not isinstance(value, int):
        raise HarnessError(f"{where}: gives {type(value).__name__} {value!r}, not a choice index")
    if not 0 <= value < n_choices:
        raise HarnessError(f"{where}: gold label {value} out of range ({n_choices} choices)")
    return int(value)


def texts(task: TaskSpec, key: str, template: str, example: Example) -> list[str]:
    """A target or references template: a list value gives its items, anything else one text."""
    value = _evaluate(task, key, template, example, as_text=False)
    items = _as_list(value)
    if items is None:
        return [value if isinstance(value, str) else str(value)]
    if not items:
        raise HarnessError(f"{task.path}: {key}: example {example.id}: {template!r} gives an empty list")
    return [item if isinstance(item, str) else str(item) for item in items]


def check_fields(task: TaskSpec, example: Example, source: str) -> None:
    """Every field the task's templates read must exist in the data."""
    for key, template in task.templates().items():
        for name in sorted(names(template)):
            if name not in example.fields:
                have = ", ".join(sorted(example.fields))
                raise HarnessError(f"{task.path}: {key} reads {{{{ {name} }}}}, "
                                   f"which {source} does not have (fields: {have})")
