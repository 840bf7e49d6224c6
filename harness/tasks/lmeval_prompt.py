"""An lm-eval task config's prompt as harness's [prompt] table (lmeval_import.py does the rest of the task file).

Templates that are plain fields (`{{ goal }}`, text around such fields, a list of them) become `$field` templates;
any other makes the table say `template = "jinja"` and keep lm-eval's templates as they are, rendered by the
sandboxed engine in jinja.py. Generation options, stop strings and filters are translated where harness has an
equivalent; anything else stops the import with one line naming the YAML key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.records import TaskKind
from harness.tasks import jinja
from harness.tasks.lmeval_yaml import stop

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FIELD_LIST = re.compile(r"\{\{\s*\[\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\]\s*\}\}")


def translate_prompt(path: Path, config: dict[str, Any], kind: TaskKind) -> dict[str, Any]:
    """The harness [prompt] table of an lm-eval config's doc_to_* templates, delimiters and generation options."""
    text, target, choice = config.get("doc_to_text"), config.get("doc_to_target"), config.get("doc_to_choice")
    match kind:
        case TaskKind.PERPLEXITY:
            raw = {"text": _template(path, "doc_to_target", target)}
        case TaskKind.PARTIAL_SCORING:  # lm-eval's multiple input: doc_to_text gives the gold, the choices are contexts
            raw = {"query": _Template("", ""), "choices": _choices(path, choice),
                   "target": _template(path, "doc_to_target", target), "answer": _template(path, "doc_to_text", text)}
        case TaskKind.MULTIPLE_CHOICE:
            raw = {"query": _template(path, "doc_to_text", text), "choices": _choices(path, choice),
                   "answer": _template(path, "doc_to_target", target)}
        case TaskKind.CLOZE | TaskKind.GENERATE:
            raw = {"query": _template(path, "doc_to_text", text), "target": _template(path, "doc_to_target", target)}
    prompt = _as_fields(raw)
    if prompt is None:
        prompt = {"template": "jinja"} | {key: value.jinja if isinstance(value, _Template) else [t.jinja for t in value]
                                          for key, value in raw.items()}
    if kind is TaskKind.PERPLEXITY:
        return prompt
    if kind is TaskKind.CLOZE:  # lm-eval's loglikelihood request is (context, target): no delimiter between them
        prompt["target_delimiter"] = ""
    elif "target_delimiter" in config:
        prompt["target_delimiter"] = plain(path, "target_delimiter", config["target_delimiter"])
    if "fewshot_delimiter" in config:
        prompt["demo_separator"] = plain(path, "fewshot_delimiter", config["fewshot_delimiter"])
    if kind is TaskKind.GENERATE:
        prompt |= _generation(path, config)
    if config.get("repeats", 1) != 1:
        raise stop(path, "repeats", "harness generates once per prompt (greedy)")
    sampler = (config.get("fewshot_config") or {}).get("sampler", "default")
    if sampler != "default":
        raise stop(path, "fewshot_config.sampler", f"{sampler!r}: harness samples demonstrations at random only")
    return prompt


class _Template:
    """One lm-eval template: its Jinja text, and its $field form when it has one (None when it needs Jinja)."""

    def __init__(self, jinja: str, fields: str | None):
        self.jinja, self.fields = jinja, fields


def _template(path: Path, key: str, value: Any) -> _Template:
    if value is None:
        raise stop(path, key, "is required for this output_type")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise stop(path, key, f"must be a template string, a field name or an index, got {value!r}")
    if isinstance(value, int):
        return _Template(str(value), str(value))
    if _FIELD.fullmatch(value):  # lm-eval reads a bare name as the document's field
        return _Template("{{ " + value + " }}", "$" + value)
    if error := jinja.syntax_error(value):
        raise stop(path, key, f"is not a valid Jinja template ({error})")
    if construct := jinja.refused(value):
        raise stop(path, key, f"the Jinja sandbox refuses {construct}")
    return _Template(value, _to_fields(value))


def _to_fields(template: str) -> str | None:
    """The $field form of a template whose only Jinja is `{{ name }}` placeholders, else None."""
    rest = _PLACEHOLDER.sub("", template)
    if any(mark in rest for mark in ("{{", "}}", "{%", "%}", "{#", "#}")):
        return None
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out += [template[last:match.start()].replace("$", "$$"), "${" + match[1] + "}"]
        last = match.end()
    out.append(template[last:].replace("$", "$$"))
    return re.sub(r"\$\{(\w+)\}(?!\w)", r"$\1", "".join(out))


def _choices(path: Path, value: Any) -> _Template | list[_Template]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):  # literal choices, never templates in lm-eval
        if not value or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise stop(path, "doc_to_choice", f"must list choice texts, got {value!r}")
        return [_Template("{% raw %}" + str(v) + "{% endraw %}" if "{" in str(v) else str(v), str(v).replace("$", "$$"))
                for v in value]
    template = _template(path, "doc_to_choice", value)
    names = _FIELD_LIST.fullmatch(template.jinja)
    if names:  # {{[sol1, sol2]}}: one choice per field
        return [_Template("{{ " + n.strip() + " }}", "$" + n.strip()) for n in names[1].split(",")]
    return template


def _as_fields(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The prompt in $field templates, or None when any template needs Jinja."""
    out = {}
    for key, value in raw.items():
        items = [value] if isinstance(value, _Template) else value
        if any(t.fields is None for t in items):
            return None
        out[key] = value.fields if isinstance(value, _Template) else [t.fields for t in value]
    return out


def _generation(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(config.get("generation_kwargs") or {})
    if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) not in (0, 0.0, None):
        raise stop(path, "generation_kwargs", "sampling (do_sample, temperature > 0): harness decodes greedily")
    until = kwargs.pop("until", [config.get("fewshot_delimiter", "\n\n")])
    until = [until] if isinstance(until, str) else until
    if not isinstance(until, list) or not all(isinstance(u, str) and u for u in until):
        raise stop(path, "generation_kwargs.until", f"must list non-empty stop strings, got {until!r}")
    out = {"stop": until, "max_new_tokens": kwargs.pop("max_gen_toks", 256)}
    if kwargs:
        raise stop(path, "generation_kwargs", f"options {sorted(kwargs)} are not translated")
    return out | _filters(path, config.get("filter_list"))


def _filters(path: Path, filters: Any) -> dict[str, Any]:
    if filters is None:
        return {}
    if not isinstance(filters, list) or len(filters) != 1:
        raise stop(path, "filter_list", "harness scores one filter pipeline per task")
    steps = [step.get("function") if isinstance(step, dict) else step for step in filters[0].get("filter", [])]
    if steps == ["remove_whitespace", "take_first"]:
        return {"filters": ["strip"]}
    if steps == ["take_first"]:
        return {}
    raise stop(path, "filter_list", f"filters {steps} are not translated (remove_whitespace, take_first are)")


def plain(path: Path, key: str, value: Any) -> str:
    """A text lm-eval uses as is (a description with Jinja in it is rendered per document there: not imported)."""
    if not isinstance(value, str):
        raise stop(path, key, f"must be a string, got {value!r}")
    if "{{" in value or "{%" in value:
        raise stop(path, key, "is a Jinja template; harness's description and delimiters are plain text")
    return value
