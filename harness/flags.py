"""Flags from config fields: one flag per dataclass field with a help, its type, default and help text from the
field's metadata (config._flag), so `harness run`, `finetune` and `pretrain` flags map 1:1 onto RunConfig,
FinetuneConfig (`--ft-<field>` in `run`) and PretrainConfig. A help text that names another flag names its field
({flag:<field>}), and add_fields writes that field's flag as the subcommand spells it, so help cannot drift."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import re
import textwrap


class _Formatter(argparse.HelpFormatter):
    """Help text wrapped between words only: a flag such as --ft-steps is never cut at a hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """The parser of harness and of every subcommand (add_subparsers makes its parsers of the same class)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"formatter_class": _Formatter, **kwargs})


DATA_FIELDS = ("data_dir",)  # --data-dir and --no-default-data-dir: also in list, validate, finetune


def add_fields(parser, config_class, prefix: str = "", skip: int = 0, only: tuple[str, ...] | None = None) -> None:
    """One flag per dataclass field with a help, from the `skip`-th on (or those named in `only`):
    --<prefix><name-with-dashes> or the flag its metadata names, typed by its default or metadata (config._flag);
    a field with a `group` goes into that section of the help, one with a `switch` gets that second flag too.
    A help's {flag:<field>} becomes that field's flag here; the field must be among those added by this call."""
    chosen = [f for f in dataclasses.fields(config_class)[skip:]
              if "help" in f.metadata and (only is None or f.name in only)]
    flags = {f.name: f.metadata.get("flag", "--" + prefix + f.name.replace("_", "-")) for f in chosen}
    groups: dict = {}  # help section -> its argparse group
    for f in chosen:
        group = f.metadata.get("group")
        if group is not None and group not in groups:
            groups[group] = parser.add_argument_group(group)
        into = parser if group is None else groups[group]
        dest = prefix.replace("-", "_") + f.name
        into.add_argument(flags[f.name], dest=dest, **_flag_options(f, _help(f.metadata["help"], flags)))
        if (switch := f.metadata.get("switch")) is not None:
            into.add_argument(switch.flag, dest=dest, action="append_const", const=switch.const,
                              help=_escape(_help(switch.help, flags)))


_PLACEHOLDER = re.compile(r"\{(flag:)?([a-z_]+)\}")  # {flag:<field>}, {models}


def _help(text: str, flags: dict[str, str]) -> str:
    """A help text with {flag:<field>} written as that field's flag in `flags`, and {models}, {backends},
    {default_backend} as the model registries name them. An unknown name fails while the parser is built (and
    tests/test_help.py builds every parser)."""
    def fill(match: re.Match) -> str:
        names = flags if match[1] else _registry_names()
        if match[2] not in names:
            raise KeyError(f"help text {text!r}: {match[0]} names no {'flag of this parser' if match[1] else 'list'}")
        return names[match[2]]

    return _PLACEHOLDER.sub(fill, text)


@functools.cache
def _registry_names() -> dict[str, str]:
    """The model names --model takes, from the registries' literal dicts (importing them loads no torch)."""
    from harness.models.base import DEFAULT_BACKEND
    from harness.models.registry import BACKENDS
    from harness.models.transformers_load import MODELS, HubModel

    hub = [name for name, model in MODELS.items() if isinstance(model, HubModel)]
    packaged = [name for name in MODELS if name not in hub]
    return {"models": f"{', '.join(packaged)}: offline, from a pip package; {', '.join(hub)}: from the hub",
            "backends": ", ".join(f"{name}:" for name in BACKENDS), "default_backend": DEFAULT_BACKEND}


def _escape(help: str) -> str:
    """A help text for argparse: % doubled, except in %(default)s."""
    return help.replace("%", "%%").replace("%%(default)s", "%(default)s")


def _flag_options(f: dataclasses.Field, help: str) -> dict:
    """argparse's keywords for a field's flag, with its help text (placeholders filled)."""
    how, default = f.metadata, f.default
    help = _escape(help)
    if isinstance(default, bool):  # --no-<x> for a field that is on by default
        return {"action": "store_false" if default else "store_true", "help": help}
    if how.get("append"):
        return {"action": "append", "default": None, "metavar": how.get("metavar"), "help": help}
    help += "" if "default:" in help else " (default: %(default)s)"
    if isinstance(default, enum.Enum):
        kind = type(default)
        return {"type": kind, "choices": list(kind), "default": default,
                "metavar": "{" + ",".join(k.value for k in kind) + "}", "help": help}
    if isinstance(default, tuple):  # comma-separated text, read by the field's `parse`
        return {"default": ",".join(str(getattr(v, "value", v)) for v in default), "help": help}
    kind = how.get("type", type(default))
    metavar = how.get("metavar", kind.__name__.upper() if kind in (int, float) else None)
    return {"type": kind, "default": default, "metavar": metavar, "help": help}


def field_values(config_class, args: argparse.Namespace, prefix: str = "", only: tuple[str, ...] | None = None):
    """Field name -> value, from the flags add_fields made (a repeatable flag as a tuple, `parse` applied)."""
    values = {}
    for f in dataclasses.fields(config_class):
        if "help" not in f.metadata or (only is not None and f.name not in only):
            continue
        value = getattr(args, prefix + f.name)
        value = tuple(value or ()) if f.metadata.get("append") else value
        values[f.name] = f.metadata["parse"](value) if "parse" in f.metadata else value
    return values


def fields_from_args(config_class, args: argparse.Namespace, prefix: str = ""):
    return config_class(**field_values(config_class, args, prefix))
