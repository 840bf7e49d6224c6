"""Help that is true: every --flag a help text names is a flag of that same subcommand, every subcommand is named in
`harness --help`, and --model's help names what the model registries hold."""

from __future__ import annotations

import argparse
import re

import pytest

from harness.cli import build_parser

# Our flags are dashed words; lm-eval's flags that a help may name (--log_samples, --output_path) hold an underscore.
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w-])")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@pytest.fixture
def parser(monkeypatch) -> argparse.ArgumentParser:
    monkeypatch.setenv("COLUMNS", "100")
    return build_parser()


def test_every_flag_a_help_names_is_a_flag_of_that_subcommand(parser):
    for name, sub in subcommands(parser).items():
        text = sub.format_help()
        named = set(FLAG.findall(text))
        assert named, name  # at least --help
        unknown = named - flags_of(sub)
        assert not unknown, f"harness {name} --help names flags it does not have: {sorted(unknown)}\n{text}"
    top = parser.format_help()
    assert set(FLAG.findall(top)) <= flags_of(parser) | {"--help"}


def test_help_never_cuts_a_flag_at_a_hyphen(parser):
    for name, sub in subcommands(parser).items():
        for line in sub.format_help().splitlines():
            assert not re.search(r"--[a-z0-9-]*-$", line), f"harness {name} --help: {line!r}"


def test_top_level_help_names_every_subcommand(parser):
    text = " ".join(parser.format_help().split())
    description = text.split("Subcommands: ", 1)[1]
    for name in subcommands(parser):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", description), name


def test_the_ft_help_names_the_flags_of_its_own_subcommand(parser):
    run, finetune = (" ".join(subcommands(parser)[n].format_help().split()) for n in ("run", "finetune"))
    assert "ignored when --ft-steps is given" in run and "as many as --ft-epochs take" in run
    assert "ignored when --steps is given" in finetune and "as many as --epochs take" in finetune


def test_model_help_lists_the_registry(parser):
    from harness.models.registry import BACKENDS
    from harness.models.transformers_load import MODELS

    for name in ("run", "finetune"):
        text = " ".join(subcommands(parser)[name].format_help().split())
        model = text.split("--model MODEL ", 1)[1]
        assert all(m in model for m in MODELS) and all(f"{b}:" in model for b in BACKENDS), model


def test_an_unknown_placeholder_fails_while_the_parser_is_built():
    from harness.flags import _help

    assert _help("as many as {flag:epochs} take", {"epochs": "--ft-epochs"}) == "as many as --ft-epochs take"
    with pytest.raises(KeyError, match="names no flag of this parser"):
        _help("ignored when {flag:steps} is given", {"epochs": "--epochs"})
