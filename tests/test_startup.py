"""A rerun whose every result is cached loads no model and imports no torch; peak memory in run.json and the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.reporting.build import memory_notes
from harness.models.lazy import RUN_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def run_cli(task_env, model: Path, name: str, *extra: str) -> int:
    paths = ",".join(str(task_env["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze", "toy_docs"))
    settings = [] if "--settings" in extra else ["--settings", "zs"]
    return main(["run", "--model", str(model), "--tasks", paths, "--data-dir", str(task_env["data"]), *settings,
                 "--limit", "3", "--output-dir", str(task_env["root"] / "results"), "--run-name", name, *extra])


def outputs(task_env, name: str) -> dict[str, str]:
    folder = task_env["root"] / "results" / name
    files = {f: (folder / f).read_text().replace(name, "RUN") for f in ("scores.csv", "samples.jsonl")}
    report = (folder / "report.md").read_text().replace(name, "RUN")
    files["report.md"] = "\n".join(line for line in report.splitlines() if "Run details:" not in line)
    model = json.loads((folder / "run.json").read_text())["model"]
    files["model"] = json.dumps({k: v for k, v in model.items() if k not in RUN_FIELDS})  # null when nothing ran
    return files


def refuse_loading(monkeypatch) -> None:
    """Every load of a run goes through pipeline.load_model (the lazy model's loader included)."""
    from harness import pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(pipeline, "load_model", refuse)


def test_fully_cached_rerun_loads_no_model(task_env, tiny_gpt2_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert run_cli(task_env, tiny_gpt2_dir, "run-one") == 0
    assert "loading model" in capsys.readouterr().err
    refuse_loading(monkeypatch)
    assert run_cli(task_env, tiny_gpt2_dir, "run-two") == 0
    assert "loading model" not in capsys.readouterr().err
    assert outputs(task_env, "run-two") == outputs(task_env, "run-one")  # same scores, samples, report, run.json model


def test_fully_cached_few_shot_rerun_loads_no_model(task_env, tiny_gpt2_dir, tmp_path, monkeypatch, capsys):
    """Fitting demonstrations counts tokens: the counts of the first run are kept, so the rerun needs no tokenizer."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert run_cli(task_env, tiny_gpt2_dir, "run-one", "--settings", "zs,1s,fs", "--shots", "2") == 0
    assert "loading model" in capsys.readouterr().err
    refuse_loading(monkeypatch)
    assert run_cli(task_env, tiny_gpt2_dir, "run-two", "--settings", "zs,1s,fs", "--shots", "2") == 0
    assert "loading model" not in capsys.readouterr().err
    assert outputs(task_env, "run-two") == outputs(task_env, "run-one")


def test_changed_weights_file_loads_the_model_again(task_env, tiny_gpt2_dir, tmp_path, monkeypatch, capsys):
    """The description is keyed by the files: rewriting the weights (new modification time) loads the model."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    model = shutil.copytree(tiny_gpt2_dir, tmp_path / "model")
    assert run_cli(task_env, model, "run-one") == 0
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    capsys.readouterr()
    assert run_cli(task_env, model, "run-two") == 0
    assert "loading model" in capsys.readouterr().err
    assert outputs(task_env, "run-two") == outputs(task_env, "run-one")


def test_cached_rerun_imports_no_torch_transformers_or_matplotlib(task_env, tiny_gpt2_dir, tmp_path):
    """In a fresh interpreter, as a user reruns: the heavy packages stay unimported when nothing needs them."""
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    paths = ",".join(str(task_env["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze", "toy_docs"))
    code = (
        "import sys; from harness.cli import main; "
        f"rc = main(['run', '--model', {str(tiny_gpt2_dir)!r}, '--tasks', {paths!r}, '--data-dir', "
        f"{str(task_env['data'])!r}, '--settings', 'zs', '--limit', '3', '--output-dir', "
        f"{str(task_env['root'] / 'results')!r}, '--run-name', sys.argv[1]]); "
        "print('LOADED', sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules)); sys.exit(rc)"
    )
    first = subprocess.run([sys.executable, "-c", code, "first"], env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "LOADED ['torch', 'transformers']" in first.stdout  # zero-shot only: no figure to draw
    again = subprocess.run([sys.executable, "-c", code, "again"], env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "LOADED []" in again.stdout


def test_run_json_and_report_give_peak_memory(task_env, tiny_gpt2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert run_cli(task_env, tiny_gpt2_dir, "r", "--no-cache") == 0
    folder = task_env["root"] / "results" / "r"
    memory = json.loads((folder / "run.json").read_text())["memory"]
    assert memory["rss_mib"] > 50 and memory["cuda_mib"] is None  # torch alone takes more; no CUDA here
    name = str(tiny_gpt2_dir)
    assert (f"Run details: {name}'s run peaked at {memory['rss_mib']:.0f} MiB resident memory."
            in (folder / "report.md").read_text())
    merged = tmp_path / "merged"
    assert main(["report", str(folder), "--out", str(merged)]) == 0  # `harness report` reads it back from run.json
    assert "Run details:" in (merged / "report.md").read_text()


@pytest.mark.parametrize(("memory", "expected"), [
    ({"rss_mib": 812.4, "cuda_mib": None}, "Run details: m's run peaked at 812 MiB resident memory."),
    ({"rss_mib": 812.4, "cuda_mib": 1536.6},
     "Run details: m's run peaked at 812 MiB resident memory; 1537 MiB CUDA at most allocated by torch."),
])
def test_memory_notes(memory, expected):
    assert memory_notes({"m": {"name": "m", "memory": memory}}) == (expected,)
    assert memory_notes({"m": {"name": "m"}}) == ()  # runs from before peak memory was recorded


def test_a_model_whose_files_change_while_loading_is_described_for_the_next_run(tiny_gpt2_dir, tmp_path):
    """A packaged model's first load converts it, writing its files: that run records its description under
    the key the files give afterwards, so the first rerun loads nothing."""
    from harness.models import lazy
    from harness.models.registry import LoadOptions, load_model

    folder = shutil.copytree(tiny_gpt2_dir, tmp_path / "converted")
    weights = folder / "model.safetensors"

    def converting(options):  # writes the weights again, as a conversion does: a new modification time
        data = weights.read_bytes()
        weights.unlink()
        weights.write_bytes(data)
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
        return load_model(options)

    first = lazy.LazyModel(LoadOptions(str(folder)), converting)
    described = first.describe()
    assert first.is_loaded
    again = lazy.LazyModel(LoadOptions(str(folder)), lambda options: pytest.fail("the model was loaded"))
    assert (again.fingerprint(), again.describe()["name"]) == (first.fingerprint(), described["name"])
    assert not again.is_loaded
