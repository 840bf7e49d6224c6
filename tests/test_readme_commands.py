"""Every command of the README's "Use it" block runs as written, on the tiny offline fixtures.

COMMANDS is the one table of what the test changes in a README line, each change with its reason, and of the
lines it cannot run here (reported as skipped, with the reason). A README line the table lacks fails the test:
a new example command needs a row. Commands run in a temporary working folder that holds what the README's
relative paths name (arc_easy.yaml, my_tasks/, results/RUN_A, lmeval-out/, ...), with a temporary $HARNESS_CACHE
and result cache shared by the module (so `harness cache` sees the runs), and every run folder goes to ./out.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import SHARED_DATA, TOY_MC, make_task_env, write_tiny_gpt2
from tests.helpers import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"
LMEVAL_YAML = Path(__file__).parent / "fixtures" / "lmeval" / "arc_easy.yaml"  # after lm-eval's arc/arc_easy.yaml


@dataclass(frozen=True)
class Sub:
    """Replace `old` (it must occur exactly once in the README command) by `new`; an empty `old` appends `new`.
    `{tiny}` and `{gguf}` in `new` are the test's model folder and GGUF file."""

    old: str
    new: str
    why: str


@dataclass(frozen=True)
class Run:
    subs: tuple[Sub, ...] = ()  # none: the command runs exactly as the README writes it
    shared_data: bool = False  # reads tasks of the shared data dir (../shared/data): skipped where it is absent
    uses: str = ""  # what the test put at the README's relative paths for this command


@dataclass(frozen=True)
class Skip:
    why: str


TINY = "a real 135M model takes minutes on 2 cores: the tiny random GPT-2 runs the same code path in seconds"
DEFAULT_MODEL = Sub("", "--model {tiny}", "no --model means the default smollm2-135m; " + TINY)
LIMIT = Sub("", "--limit 2", "2 examples per task keep the test fast")
ZS = Sub("", "--settings zs", "the command gives no --settings: one setting runs it, zs,1s,fs would triple the time")
OUT = Sub("", "--output-dir out", "run folders go into the test's temporary folder, never into results/")
MORE = "`...` is the rest of a command: the fewest flags that make it run, on the test's own task folder"
REST = "--tasks my_tasks/mytask.toml --limit 2 --settings zs"
ARC_EASY = "arc_easy.yaml: tests/fixtures/lmeval/arc_easy.yaml (after lm-eval's arc/arc_easy.yaml)"
MY_TASKS = "my_tasks/mytask.toml: conftest's TOY_MC, its data in my_tasks/data/toy_mc/"

# README command (its `# comment` cut off) -> how the test runs it, or why it cannot
COMMANDS: dict[str, Run | Skip] = {
    "harness list": Run(),
    "harness validate piqa": Run(shared_data=True),
    "harness run --model smollm2-135m --tasks piqa,lambada_openai --settings zs,1s,fs --shots 5 --limit 50": Run((
        Sub("--model smollm2-135m", "--model {tiny}", TINY),
        Sub("--limit 50", "--limit 2", "2 examples per task keep the test fast"),
        OUT), shared_data=True),
    "harness run --tasks gpt3-small --limit 0": Run((
        DEFAULT_MODEL, Sub("--limit 0", "--limit 2", "whole splits of 23 tasks take hours: 2 examples each"),
        ZS, OUT), shared_data=True),
    "harness run --tasks bigbench_causal_judgment": Run((DEFAULT_MODEL, LIMIT, ZS, OUT), shared_data=True),
    "harness run --model path/to/model-folder ...": Run((
        Sub("path/to/model-folder", "{tiny}", "the tiny random GPT-2 is a transformers model folder"),
        Sub("...", REST, MORE), OUT), uses=MY_TASKS),
    "harness run --model path/to/model.gguf ...": Run((
        Sub("path/to/model.gguf", "{gguf}", "a GGUF the test writes with gguf's GGUFWriter (tests/test_models.py): "
            "the tiny GPT-2's 50,257-token vocabulary takes about 20 s to read back from GGUF metadata, so a "
            "1-layer GPT-2 over the 256 byte tokens (loads in about a second)"),
        Sub("...", REST, MORE), OUT), uses=MY_TASKS),
    "harness run --model gpt2-medium ...": Run((
        Sub("gpt2-medium", "{tiny}", "gpt2-medium needs the hub (or a 1.4 GB local HF cache) and minutes per run: "
            "the tiny random GPT-2 has the same architecture"),
        Sub("...", REST, MORE), OUT), uses=MY_TASKS),
    "harness run --model reference:smollm2-135m ...": Run((
        Sub("reference:smollm2-135m", "reference:{tiny}", "the tiny GPT-2's weights in the from-scratch decoder; "
            + TINY),
        Sub("...", REST, MORE), OUT), uses=MY_TASKS),
    "harness run --tasks lmeval:arc_easy.yaml ...": Run((
        Sub("...", "--model {tiny} --limit 2 --settings zs", MORE + "; the YAML reads arc_easy from the shared data"),
        OUT), shared_data=True, uses=ARC_EASY),
    "harness import-lmeval arc_easy.yaml --out my_tasks/arc_easy.toml": Run(uses=ARC_EASY),
    "harness run --tasks-dir my_tasks --tasks mytask": Run((DEFAULT_MODEL, LIMIT, ZS, OUT), uses=MY_TASKS),
    "harness compare results/RUN_A results/RUN_B": Run(uses="results/RUN_A: the tiny GPT-2, results/RUN_B: "
                                                        "reference:<the tiny GPT-2>, both toy_mc ZS, 4 examples"),
    "harness compare results/RUN lmeval-out/": Run(uses="results/RUN: the tiny GPT-2 on toy_mc with --format lm-eval; "
                                                    "lmeval-out/: a copy of its lm-eval/ folder (lm-eval's layout)"),
    "harness run ... --format lm-eval": Run((Sub("...", "--model {tiny} " + REST, MORE), OUT), uses=MY_TASKS),
    "harness cache info": Run(),
    "harness cache clear --model gpt2": Run((
        Sub("--model gpt2", "--model {tiny}", "gpt2 needs the hub, so the test's cache holds no gpt2 results (and "
            "--model NAME with no results is an error): the tiny GPT-2, whose results the fixture's runs cached"),)),
}


def use_it_commands() -> list[str]:
    """The command lines of the fenced bash block under "## Use it", each without its `# comment`."""
    text = README.read_text(encoding="utf-8")
    assert "\n## Use it\n" in text, "README.md has no '## Use it' section"
    section = text.split("\n## Use it\n", 1)[1].split("\n## ", 1)[0]
    assert "```bash\n" in section, "README.md: no ```bash block under '## Use it'"
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    lines = (re.split(r"\s#", line, maxsplit=1)[0] for line in block.splitlines())
    return [" ".join(line.split()) for line in lines if line.strip()]


def as_run(command: str, run: Run, values: dict[str, str]) -> list[str]:
    line = command
    for sub in run.subs:
        if sub.old:
            assert line.count(sub.old) == 1, f"COMMANDS[{command!r}]: {sub.old!r} must occur once in the command"
            line = line.replace(sub.old, sub.new)
        else:
            line = f"{line} {sub.new}"
    for key, value in values.items():
        line = line.replace("{" + key + "}", shlex.quote(value))
    argv = shlex.split(line)
    assert argv[0] == "harness", command
    return argv[1:]


# ---------------------------------------------------------------- what the README's relative paths name


@dataclass(frozen=True)
class Workdir:
    path: Path
    result_cache: Path
    values: dict[str, str]  # the placeholders of COMMANDS


@pytest.fixture(scope="module")
def readme_gpt2(tmp_path_factory, gpt2_tokenizer) -> Path:
    """tiny_gpt2_dir's model with GPT-2's own 1024 positions: gpt3-small's WMT task generates up to 256 tokens,
    more than tiny_gpt2_dir's 128 positions hold."""
    return write_tiny_gpt2(tmp_path_factory.mktemp("readme_gpt2"), gpt2_tokenizer, n_positions=1024)


@pytest.fixture(scope="module")
def byte_gguf(tmp_path_factory, gpt2_tokenizer) -> Path:
    """A 1-layer GPT-2 over the 256 byte tokens, two merges and <|endoftext|>, as a GGUF file."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.test_models import END_OF_TEXT, vocabulary, write_gpt2_gguf

    tokens = vocabulary(gpt2_tokenizer)[:256] + ["Ġt", "he", END_OF_TEXT]
    torch.manual_seed(1)
    eot = len(tokens) - 1
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=1024, vocab_size=len(tokens),
                        bos_token_id=eot, eos_token_id=eot)
    path = tmp_path_factory.mktemp("readme_gguf") / "model.gguf"
    return write_gpt2_gguf(GPT2LMHeadModel(config), tokens, ["Ġ t", "h e"], path)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for the module: the models are tiny, and on a loaded machine two threads' handshakes
    make each small op hundreds of times slower (a decoding step of the tiny GPT-2: 0.1 s instead of 1 ms).
    Numbers do not depend on the thread count (DESIGN.md, rule 12)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, one_thread, readme_gpt2, byte_gguf):
    root = tmp_path_factory.mktemp("readme")
    cache = root / "user-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(cache))
        mp.setenv("HARNESS_RESULT_CACHE", str(cache / "results.sqlite"))
        for name in ("HARNESS_TASKS_PATH", "HARNESS_DATA_DIR"):
            mp.delenv(name, raising=False)
        work = root / "work"
        env = make_task_env(work)  # work/tasks/toy_*.toml, work/data/toy_*
        # my_tasks/mytask.toml reads data.local "toy_mc" from its own folder's data/
        (work / "my_tasks").mkdir()
        (work / "my_tasks" / "mytask.toml").write_text(TOY_MC)
        shutil.copytree(env["data"] / "toy_mc", work / "my_tasks" / "data" / "toy_mc")
        shutil.copy(LMEVAL_YAML, work / "arc_easy.yaml")
        tiny = str(readme_gpt2)
        for name, model, extra in (("RUN_A", tiny, ()), ("RUN_B", f"reference:{tiny}", ()),
                                   ("RUN", tiny, ("--format", "lm-eval"))):
            assert run_cli(env, model, "--settings", "zs", "--limit", "4", *extra, tasks=("toy_mc",), name=name) == 0
        shutil.copytree(work / "results" / "RUN" / "lm-eval", work / "lmeval-out")  # lm-eval's layout
        yield Workdir(work, cache / "results.sqlite", {"tiny": tiny, "gguf": str(byte_gguf)})


@pytest.fixture()
def readme_workdir(result_cache, workdir, monkeypatch) -> Workdir:
    """The working folder, and the module's one result cache in place of conftest's per-test one, so that
    `harness cache` sees the runs of the other commands."""
    monkeypatch.setenv("HARNESS_RESULT_CACHE", str(workdir.result_cache))
    monkeypatch.chdir(workdir.path)
    return workdir


# ---------------------------------------------------------------- the tests


def test_the_table_covers_the_use_it_block():
    commands = use_it_commands()
    assert len(commands) == len(set(commands)), "a command appears twice in the README's Use it block"
    missing = [c for c in commands if c not in COMMANDS]
    stale = [c for c in COMMANDS if c not in commands]
    assert not missing, f"README Use-it commands that COMMANDS neither runs nor skips (add a row): {missing}"
    assert not stale, f"COMMANDS rows no longer in the README's Use it block: {stale}"


@pytest.mark.parametrize("command", use_it_commands(), ids=lambda command: command.removeprefix("harness "))
def test_readme_command_runs(command, request, capsys):
    entry = COMMANDS.get(command)
    assert entry is not None, f"README command {command!r} is not in COMMANDS: run it (with substitutions) or skip it"
    if isinstance(entry, Skip):
        pytest.skip(entry.why)
    if entry.shared_data and not SHARED_DATA.is_dir():
        pytest.skip(f"reads the shared data dir, absent here: {SHARED_DATA}")
    workdir = request.getfixturevalue("readme_workdir")  # after the skips: a skipped command builds nothing
    argv = as_run(command, entry, workdir.values)
    runs_before = set((workdir.path / "out").glob("*/scores.csv"))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"harness {shlex.join(argv)} exited {code}:\n{err[-4000:]}"
    assert "Traceback" not in err and not any(line.startswith("error: ") for line in err.splitlines()), err
    if argv[0] == "run":  # exactly one new run folder, in the temporary output dir
        assert len(set((workdir.path / "out").glob("*/scores.csv")) - runs_before) == 1, out + err


def test_ci_runs_the_readme_test_command_and_the_slow_tests_it_leaves_out():
    """`make test` leaves the tests marked slow out and `make test-slow` runs just those; .ci/run runs both, the
    README's test command first, so no test is left out of CI; the README counts the slow tests right."""
    root = README.parent
    ci = [line.strip() for line in (root / ".ci" / "run").read_text().splitlines()]
    assert ci.index("make test") < ci.index("make test-slow")
    makefile = (root / "Makefile").read_text()

    def recipe(target: str) -> str:  # the tab-indented lines under `target:`
        found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert found, f"the Makefile has no {target} target"
        return found.group(1)

    assert '-m pytest -m "not slow"' in recipe("test") and "-m pytest -m slow" in recipe("test-slow")
    marked = sum(path.read_text().count("\n@pytest.mark.slow\n") for path in Path(__file__).parent.glob("test_*.py"))
    readme = README.read_text()
    assert "make test    #" in readme and f"leaves out the {marked} tests marked `slow`" in readme
    assert f"runs the test suite but its {marked} slow tests" in readme
