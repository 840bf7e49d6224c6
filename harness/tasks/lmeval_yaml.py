"""Reading lm-evaluation-harness task YAMLs as data: `!function` tags become FunctionRef values (never imported,
never run), and `include:` merges a base YAML named relative to the including one. `stop` is the one-line error
every step of the import (lmeval_import.py, lmeval_prompt.py) raises for what it cannot translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


class ImportStop(HarnessError):
    """An lm-eval config the importer cannot translate: nothing was written."""


def stop(path: Path, key: str, message: str) -> ImportStop:
    return ImportStop(f"{path}: {key}: {message}; nothing was written")


@dataclass(frozen=True)
class FunctionRef:
    """A `!function module.name` tag: a Python hook, recorded by name only."""

    name: str


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: FunctionRef(str(loader.construct_scalar(node))))
    return Loader


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML's keys with its `include:` chain merged in (the including file's keys win, as in lm-eval)."""
    import yaml

    path = Path(path)
    if path.resolve() in seen:
        raise HarnessError(f"{path}: include: loops back to itself ({' -> '.join(str(p) for p in seen)})")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such lm-eval task file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: an lm-eval task file is a mapping of keys, got {type(config).__name__}")
    includes = config.pop("include", None)
    if includes is None:
        return config
    merged: dict[str, Any] = {}
    for name in [includes] if isinstance(includes, str) else includes or []:
        if not isinstance(name, str):
            raise HarnessError(f"{path}: include: must name a YAML file, got {name!r}")
        base = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        if not base.is_file():
            raise HarnessError(f"{path}: include: {name!r} not found beside it ({base})")
        merged |= read_yaml(base, (*seen, path.resolve()))
    return merged | config
