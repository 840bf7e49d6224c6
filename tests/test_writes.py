"""Writing results: every way a write can fail is found before model work when it can be (output folder that is a
file, unwritable, under /proc, nearly full; an unwritable result cache), and otherwise stops in one line keeping
every finished result (disk full while saving to the cache or writing the run folder); run names are plain names
and default ones never collide; SIGTERM stops a run as Ctrl-C does; the result cache is the user's, shared by
every output folder, with `harness cache info | clear`."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import namedtuple
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import build_parser, config_from_args, main
from harness.execution import cache as cache_module
from harness.files import release, result_cache_path, user_cache
from harness.records import RequestKind

ROOT = Path(__file__).resolve().parents[1]


def argv(task_env, model_dir, *extra, out="results", name: str | None = "r") -> list[str]:
    return ["run", "--model", str(model_dir), "--tasks", str(task_env["tasks"] / "toy_mc.toml"),
            "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / out),
            "--settings", "zs,1s", "--limit", "5", *(["--run-name", name] if name is not None else []), *extra]


def one_line_error(code: int, capsys, message: str) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    assert message in errors[0], err
    return errors[0]


@pytest.fixture()
def no_model(monkeypatch):
    """Loading a model fails the test: the checks must come before any model work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("harness.pipeline.load_model", refuse)


@pytest.fixture()
def counted(monkeypatch):
    """The loglikelihood requests the model scores, in a list."""
    from harness.models import hf

    real, seen = hf.HFModel.loglikelihood, []
    monkeypatch.setattr(hf.HFModel, "loglikelihood", lambda self, rs: seen.extend(rs) or real(self, rs))
    return seen


def saved(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary folders, lock and probe files harness left in an output folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


# ---- the output folder and the cache, checked before model work -------------------------------------------


@pytest.mark.parametrize("case", ["file", "missing-under-proc", "proc-self", "read-only", "nearly-full"])
def test_an_unusable_output_folder_fails_before_model_work(task_env, tiny_gpt2_dir, capsys, monkeypatch, no_model,
                                                           case):
    out, message = {
        "file": ("a-file", "is a file, not a folder"),
        "missing-under-proc": ("/proc/harness-test-out", "cannot create it or write there"),
        "proc-self": ("/proc/self", "cannot create it or write there"),
        "read-only": ("results", "cannot create it or write there (read-only file system)"),
        "nearly-full": ("results", "only 10.0 MB free (a run needs 64 MB)"),
    }[case]
    (task_env["root"] / "a-file").write_text("not a folder")
    if case == "read-only":  # chmod cannot stop root, who runs the tests here: the file system says no instead
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr("harness.files.tempfile.mkstemp", read_only)
    if case == "nearly-full":
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr("harness.files.shutil.disk_usage", lambda path: usage(2**40, 2**40, 10 * 2**20))
    code = main(argv(task_env, tiny_gpt2_dir, out=out))
    line = one_line_error(code, capsys, message)
    assert line.startswith("error: --output-dir ")


def test_an_unwritable_result_cache_fails_before_model_work_and_no_cache_still_runs(task_env, tiny_gpt2_dir, capsys,
                                                                                     monkeypatch, no_model):
    monkeypatch.setenv("HARNESS_RESULT_CACHE", "/proc/self/harness/results.sqlite")
    line = one_line_error(main(argv(task_env, tiny_gpt2_dir)), capsys, "cannot create it or write there")
    assert line.startswith("error: result cache ($HARNESS_RESULT_CACHE) /proc/self/harness:")
    assert not (task_env["root"] / "results").exists()  # the --output-dir it made is removed again
    from harness.models.registry import load_model

    monkeypatch.setattr("harness.pipeline.load_model", load_model)  # the model may load now
    assert main(argv(task_env, tiny_gpt2_dir, "--no-cache")) == 0


# ---- failures during the run keep every finished result --------------------------------------------------


def test_disk_full_while_saving_results_stops_in_one_line_and_keeps_what_was_saved(task_env, tiny_gpt2_dir, capsys,
                                                                                   monkeypatch, counted,
                                                                                   result_cache):
    monkeypatch.setattr("harness.execution.executor.CHUNK", {kind: 4 for kind in RequestKind})
    real, writes = cache_module.ResultCache._write, []

    def filling(self, rows):
        writes.append(len(rows))
        if len(writes) == 3:  # two chunks saved, then the disk is full
            raise sqlite3.OperationalError("database or disk is full")
        real(self, rows)

    monkeypatch.setattr(cache_module.ResultCache, "_write", filling)
    line = one_line_error(main(argv(task_env, tiny_gpt2_dir)), capsys, "database or disk is full")
    assert "the 8 results this run saved before are kept" in line and "rerun the same command to resume" in line
    results = task_env["root"] / "results"
    assert not (results / "r").exists() and leftovers(results) == []
    with sqlite3.connect(result_cache) as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (8,)

    monkeypatch.setattr(cache_module.ResultCache, "_write", real)  # space freed
    assert len(counted) == 12  # three chunks scored, the third not saved
    counted.clear()
    assert main(argv(task_env, tiny_gpt2_dir)) == 0
    assert len(counted) == saved(result_cache) - 8  # everything but the two saved chunks is scored


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk full"), (errno.EFBIG, "file size limit reached")])
def test_a_failed_run_folder_write_leaves_nothing_and_the_rerun_is_served_from_the_cache(
        task_env, tiny_gpt2_dir, capsys, monkeypatch, counted, code, words):
    from harness.reporting import results as written

    real = written.write_pages

    def full(folder, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(folder / "report.html"))

    monkeypatch.setattr(written, "write_pages", full)
    line = one_line_error(main(argv(task_env, tiny_gpt2_dir)), capsys, f"could not write the run folder ({words}")
    assert line.startswith(f"error: --output-dir {task_env['root'] / 'results'}: ")
    assert "the results are in the result cache: fix that and rerun the same command" in line
    results = task_env["root"] / "results"
    assert not (results / "r").exists() and leftovers(results) == []  # no .tmp-r-*, no lock file

    monkeypatch.setattr(written, "write_pages", real)  # space freed
    counted.clear()
    assert main(argv(task_env, tiny_gpt2_dir)) == 0
    assert counted == [] and (results / "r" / "scores.csv").is_file()


def test_a_folder_made_at_the_run_name_during_the_run_is_one_line(task_env, tiny_gpt2_dir, capsys, monkeypatch):
    def meanwhile(folder, *args, **kwargs):
        target = task_env["root"] / "results" / "r"
        target.mkdir()
        (target / "theirs.txt").write_text("another program's file")

    monkeypatch.setattr("harness.reporting.results.write_pages", meanwhile)
    one_line_error(main(argv(task_env, tiny_gpt2_dir)), capsys, "appeared during the run (made by another program)")
    assert [p.name for p in (task_env["root"] / "results" / "r").iterdir()] == ["theirs.txt"]


SIGTERM_SCRIPT = """
import os, signal, sys
from harness.cli import main
from harness.execution import executor
from harness.models import hf
from harness.records import RequestKind
from harness.reporting import results

executor.CHUNK = {kind: 4 for kind in RequestKind}
real, calls = hf.HFModel.loglikelihood, []

def scoring(self, requests):
    calls.append(1)
    if len(calls) == 3:  # two chunks saved, the third in flight
        os.kill(os.getpid(), signal.SIGTERM)
    return real(self, requests)

def writing(folder, *args, **kwargs):  # the temporary run folder holds scores.csv, samples.jsonl, run.json
    os.kill(os.getpid(), signal.SIGTERM)

if sys.argv[1] == "scoring":
    hf.HFModel.loglikelihood = scoring
else:
    results.write_pages = writing
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("during", ["scoring", "writing"])
def test_sigterm_stops_a_run_as_ctrl_c_does(task_env, tiny_gpt2_dir, result_cache, counted, during):
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(SIGTERM_SCRIPT), during,
                          *argv(task_env, tiny_gpt2_dir)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 128 + signal.SIGTERM, run.stderr
    assert run.stderr.endswith("interrupted (SIGTERM): no run folder was written; finished results are in the result "
                               "cache: rerun the same command to resume\n"), run.stderr
    results = task_env["root"] / "results"
    assert not (results / "r").exists() and leftovers(results) == []  # no .tmp-r-* folder, no lock file
    before = saved(result_cache)
    assert main(argv(task_env, tiny_gpt2_dir)) == 0  # resumable
    assert before == (8 if during == "scoring" else saved(result_cache))  # writing: every result was saved
    assert len(counted) == saved(result_cache) - before


# ---- run names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "problem"), [
    ("../escaped", "must be a plain folder name, not a path"), ("a/b", "must be a plain folder name, not a path"),
    ("/abs", "must be a plain folder name, not a path"), ("..", "must be a plain folder name, not a path"),
    ("", "is empty"), (".hidden", "must not start with '.'"), ("x" * 201, "is longer than 200 bytes"),
])
def test_run_names_are_plain_names(task_env, tiny_gpt2_dir, capsys, no_model, name, problem):
    line = one_line_error(main(argv(task_env, tiny_gpt2_dir, name=name)), capsys, problem)
    assert line.startswith("error: --run-name ")
    assert sorted(p.name for p in task_env["root"].iterdir()) == ["data", "tasks"]  # nothing written anywhere


def test_default_run_names_never_collide(task_env, tiny_gpt2_dir, monkeypatch, capsys):
    from harness.reporting import results

    monkeypatch.setattr(results, "default_run_name", lambda model: "20260101-000000-tiny")  # all in one second
    out = task_env["root"] / "results"
    running = results.run_folder(config_from_args(build_parser().parse_args(argv(task_env, tiny_gpt2_dir, name=None))))
    assert running == out / "20260101-000000-tiny"  # reserved by a run still scoring
    assert main(argv(task_env, tiny_gpt2_dir, name=None)) == 0
    assert main(argv(task_env, tiny_gpt2_dir, name=None)) == 0
    taken = main(argv(task_env, tiny_gpt2_dir, name="20260101-000000-tiny"))
    one_line_error(taken, capsys, "20260101-000000-tiny is being written by another harness run now")
    release(running)  # that run failed: its name is free again
    assert main(argv(task_env, tiny_gpt2_dir, name=None)) == 0
    names = ["20260101-000000-tiny", "20260101-000000-tiny-2", "20260101-000000-tiny-3"]
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        assert json.loads((out / name / "run.json").read_text())["run"] == name
        assert set(pd.read_csv(out / name / "scores.csv").run) == {name}


# ---- the result cache: per user, shared, inspectable -----------------------------------------------------


def test_tests_never_touch_the_users_result_cache(result_cache):
    assert result_cache_path() == result_cache
    assert user_cache() not in result_cache.parents  # models: still the real cache


def test_the_result_cache_is_shared_by_every_output_folder(task_env, tiny_gpt2_dir, counted, result_cache):
    assert main(argv(task_env, tiny_gpt2_dir, out="first")) == 0
    assert counted
    counted.clear()
    assert main(argv(task_env, tiny_gpt2_dir, out="second")) == 0
    assert counted == []  # served by the user's cache
    first, second = (pd.read_csv(task_env["root"] / d / "r" / "scores.csv") for d in ("first", "second"))
    assert first.equals(second)
    assert not (task_env["root"] / "first" / ".cache").exists() and result_cache.is_file()


def test_cache_info_and_clear(task_env, tiny_gpt2_dir, capsys, result_cache):
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out == f"result cache: {result_cache} (empty: no file yet)\n"
    assert main(argv(task_env, tiny_gpt2_dir, name="fp32")) == 0
    assert main(argv(task_env, tiny_gpt2_dir, "--dtype", "bf16", name="bf16")) == 0
    capsys.readouterr()
    with sqlite3.connect(result_cache) as db:
        models = dict(db.execute("SELECT fingerprint, name FROM models").fetchall())
        counts = dict(db.execute("SELECT fingerprint, COUNT(*) FROM entries GROUP BY fingerprint").fetchall())
    [n] = set(counts.values())  # each run's results
    assert len(models) == 2 and set(models.values()) == {str(tiny_gpt2_dir)}

    assert main(["cache", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"result cache: {result_cache} (") and lines[0].endswith(f" on disk, {2 * n} results)")
    rows = [line.split() for line in lines[2:]]
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted((str(tiny_gpt2_dir), fp[:16], str(n)) for fp in models)

    one_line_error(main(["cache", "clear", "--model", "gpt2-tiny"]), capsys,
                   "--model gpt2-tiny: no results in the cache for it")
    first, second = models
    assert main(["cache", "clear", "--model", second[:12]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"removed {n} results of 1 model fingerprint ({tiny_gpt2_dir}) from {result_cache}: ")
    with sqlite3.connect(result_cache) as db:
        assert db.execute("SELECT fingerprint FROM entries GROUP BY fingerprint").fetchall() == [(first,)]
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith(f"removed {n} results of 1 model fingerprint")
    with sqlite3.connect(result_cache) as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (0,)


def test_runs_at_the_same_time_share_one_cache_safely(tmp_path):
    """Two writers on one file: each save waits for the other's transaction (busy timeout, WAL) instead of
    failing with `database is locked`; every result of both arrives."""
    from harness.execution.plan import make_plan
    from harness.records import LoglikelihoodRequest, LoglikelihoodResult

    path = tmp_path / "results.sqlite"
    plan = make_plan(LoglikelihoodRequest(str(i), f"context {i}", f" continuation {i}") for i in range(400))
    units = plan.of_kind(RequestKind.LOGLIKELIHOOD)
    results = {u.key: LoglikelihoodResult(-float(i), True, 3) for i, u in enumerate(units)}
    errors = []

    def writer(fingerprint: str) -> None:
        cache = cache_module.ResultCache(path, fingerprint, fingerprint)
        try:
            for start in range(0, len(units), 4):
                cache.put(units[start : start + 4], results)
        except Exception as e:  # noqa: BLE001  collected: the test fails on it below
            errors.append(e)
        finally:
            cache.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT fingerprint, COUNT(*) FROM entries GROUP BY 1").fetchall() == [("a", 400), ("b", 400)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    cache = cache_module.ResultCache(path, "a", "a")
    assert cache.db.execute("PRAGMA busy_timeout").fetchone() == (cache_module.BUSY_SECONDS * 1000,)
    cache.close()


def test_a_full_disk_anywhere_else_is_one_line_too(task_env, tiny_gpt2_dir, capsys, monkeypatch):
    """A write outside the cache and the run folder (a model converted into $HARNESS_CACHE, say) that fails for
    want of room is one line naming the file, not a traceback."""
    def converting(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/cache/models/x/model.safetensors")

    monkeypatch.setattr("harness.pipeline.load_model", converting)
    one_line_error(main(argv(task_env, tiny_gpt2_dir)), capsys,
                   "could not write /cache/models/x/model.safetensors (disk full)")
    assert not (task_env["root"] / "results").exists()


def test_runs_creating_a_new_cache_at_the_same_time_both_open_it(tmp_path):
    """The first open of a new cache file switches it to WAL; two runs doing that at once could get `database is
    locked` at once (no busy wait), which the opening retries. Many fresh files, four openers each."""
    errors = []

    def opener(path: Path, fingerprint: str) -> None:
        try:
            cache_module.ResultCache(path, fingerprint, fingerprint).close()
        except Exception as e:  # noqa: BLE001  collected: the test fails on it below
            errors.append(e)

    for trial in range(30):
        path = tmp_path / f"{trial}" / "results.sqlite"
        threads = [threading.Thread(target=opener, args=(path, str(i))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
