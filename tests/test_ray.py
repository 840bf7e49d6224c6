"""The Ray executor on a real one-machine cluster (2 CPUs, 2 workers, the tiny GPT-2): the same bytes as a
local run; a worker killed with SIGKILL mid-run is replaced and the run completes with the same bytes and no
finished shard run twice; a driver killed mid-run, then rerun, scores only the missing shards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import build_parser, config_from_args
from harness.config import RunConfig
from harness.execution import executor, shards
from harness.execution.plan import make_plan
from harness.records import RequestKind, Setting
from tests.conftest import CLOZE_ROWS, MC_ROWS, TOY_CLOZE, TOY_DOCS, TOY_GEN, TOY_MC, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
FILES = ("scores.csv", "samples.jsonl", "report.md")


@pytest.fixture(scope="session")
def cluster():
    """A real one-machine cluster with 2 CPUs, shared by every test here; its GCS address. Its workers
    (1 thread each) and the local runs (2 threads, in subprocesses) set no variable: harness asks MKL for
    thread-invariant rounding itself (invariance.py)."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'harness[ray]' (CI installs it)")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def toy(tmp_path_factory, tiny_gpt2_dir, cluster) -> dict[str, Path]:
    """The toy tasks of conftest's task_env, shared by the tests here, and a local run of them (the reference
    every Ray run must equal): its output folder is <root>/local/r."""
    root = tmp_path_factory.mktemp("ray_toy")
    write_jsonl(root / "data" / "toy_mc" / "validation.jsonl", MC_ROWS)
    write_jsonl(root / "data" / "toy_mc" / "train.jsonl", [r | {"goal": "Train " + r["goal"]} for r in MC_ROWS])
    write_jsonl(root / "data" / "toy_cloze" / "test.jsonl", CLOZE_ROWS)
    write_jsonl(root / "data" / "toy_docs" / "test.jsonl", [{"text": "word " * 50}, {"text": "another document here"}])
    (root / "tasks").mkdir()
    for name, text in {"toy_mc": TOY_MC, "toy_cloze": TOY_CLOZE, "toy_docs": TOY_DOCS, "toy_gen": TOY_GEN}.items():
        (root / "tasks" / f"{name}.toml").write_text(text)
    env = {"data": root / "data", "tasks": root / "tasks", "root": root}
    done = harness_run(args(env, tiny_gpt2_dir, "local", "--no-cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    return env


@pytest.fixture()
def small(monkeypatch):
    """Chunks of 4 requests and shards of about 2 chunks: many shards, in which a fault can land."""
    for kind in RequestKind:
        monkeypatch.setitem(executor.CHUNK, kind, 4)
    monkeypatch.setattr(shards, "SHARD_CHARS", 400)


def args(toy, model_dir, out: str, *extra) -> list[str]:
    tasks = ",".join(str(toy["tasks"] / f"{t}.toml") for t in ("toy_mc", "toy_cloze", "toy_docs", "toy_gen"))
    return ["run", "--model", str(model_dir), "--tasks", tasks, "--data-dir", str(toy["data"]),
            "--output-dir", str(toy["root"] / out), "--run-name", "r", "--settings", "zs,1s", "--limit", "6",
            *extra]


SCRIPT = """
import os, signal, sys
from harness.cli import main
from harness.execution import cache, executor, shards
from harness.records import RequestKind

executor.CHUNK.update({kind: 4 for kind in RequestKind})  # as the fixture `small`, in place: shards.py reads it
shards.SHARD_CHARS = 400
real, saved, die_after = cache.ResultCache.put, [], int(sys.argv[1])

def dying(self, units, results):
    real(self, units, results)
    saved.append(len(units))
    if len(saved) == die_after:  # that many shards saved, others in flight
        os.kill(os.getpid(), signal.SIGKILL)

cache.ResultCache.put = dying
sys.exit(main(sys.argv[2:]))
"""


def harness_run(argv: list[str], die_after: int = 0) -> subprocess.CompletedProcess:
    """`harness run argv` in a fresh process, killed after `die_after` cache saves."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(die_after), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def files(toy, out: str) -> dict[str, bytes]:
    """The run folder's files that must not depend on the executor (run.json records how it ran; the report's
    run details line gives this process's peak memory, which differs)."""
    return {name: b"\n".join(line for line in (toy["root"] / out / "r" / name).read_bytes().split(b"\n")
                             if b"Run details:" not in line) for name in FILES}


def plan_shards(argv: list[str]):
    """The shards of the run `argv` describes, made as the executor makes them."""
    from harness.models.registry import load_model
    from harness.pipeline import fit, prepare, requests_of

    config = config_from_args(build_parser().parse_args(argv))
    model = load_model(config.model)
    tasks = [fit(t, model) for t in prepare(config)]
    return shards.make_shards(make_plan(q for t in tasks for q in requests_of(t, ft=False)))


def run_ray(argv: list[str], **hooks):
    """`harness run argv` through a RayExecutor we keep, to look at its shard runs afterwards."""
    from harness.execution.cluster import RayExecutor
    from harness.models.registry import load_options
    from harness.pipeline import executor_for, run
    from harness.reporting.results import run_folder, write_run

    config = config_from_args(build_parser().parse_args(argv))
    chosen = executor_for(config, load_options(config))
    assert isinstance(chosen, RayExecutor)
    ray_executor = RayExecutor(chosen.options, **hooks)
    write_run(run(config, executor=ray_executor), config, run_folder(config))
    return ray_executor


@pytest.mark.parametrize("workers", [1, 2])
def test_a_ray_run_gives_the_bytes_of_a_local_run(cluster, toy, tiny_gpt2_dir, small, workers):
    out = f"ray_plain{workers}"
    argv = args(toy, tiny_gpt2_dir, out, "--executor", "ray", "--workers", str(workers))
    layout = plan_shards(argv)
    assert len(layout) > 4 and len({s.kind for s in layout}) == 3  # loglikelihood, rolling, generate
    ran = run_ray(argv)
    assert sorted(r.shard for r in ran.runs) == sorted(s.name for s in layout)
    assert len({r.pid for r in ran.runs}) == workers  # every worker took part
    assert files(toy, out) == files(toy, "local")


@pytest.mark.slow
def test_a_ray_run_of_a_llama_model_in_zs_fs_and_generation_gives_the_bytes_of_a_local_run(cluster, toy,
                                                                                          tiny_llama_dir, small):
    settings = ("--settings", "zs,fs", "--shots", "2")
    local = harness_run(args(toy, tiny_llama_dir, "llama_local", "--no-cache", *settings))
    assert local.returncode == 0, local.stderr[-3000:]
    run_ray(args(toy, tiny_llama_dir, "llama_ray", "--executor", "ray", "--workers", "2", *settings))
    assert files(toy, "llama_ray") == files(toy, "llama_local")
    assert b"toy_gen" in files(toy, "llama_local")["samples.jsonl"]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_nothing_changes(cluster, toy, tiny_gpt2_dir, small, capfd):
    killed = []

    def kill_once(run, ex):  # the worker that just answered has its next shard in flight
        if not killed:
            killed.append(run.pid)
            os.kill(run.pid, signal.SIGKILL)

    argv = args(toy, tiny_gpt2_dir, "ray_worker", "--executor", "ray", "--workers", "2")
    ran = run_ray(argv, on_result=kill_once)
    names = [r.shard for r in ran.runs]
    assert len(names) == len(set(names)) == len(plan_shards(argv))  # no finished shard ran twice
    assert killed and killed[0] not in ran.pids  # the lost worker was replaced by a new process
    assert f"(pid {killed[0]}) was lost; Ray replaced it" in capfd.readouterr().err
    assert files(toy, "ray_worker") == files(toy, "local")


@pytest.mark.slow
def test_a_killed_driver_resumes_with_only_the_missing_shards(cluster, toy, tiny_gpt2_dir, small, result_cache):
    argv = args(toy, tiny_gpt2_dir, "ray_driver", "--executor", "ray", "--workers", "2", "--ray-address", cluster)
    died = harness_run(argv, die_after=3)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert not (toy["root"] / "ray_driver" / "r").exists()
    layout = plan_shards(argv)
    with sqlite3.connect(result_cache) as db:
        cached = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    assert 0 < cached < sum(len(s.units) for s in layout)  # three shards, whichever finished first

    ran = run_ray(argv)
    assert len(ran.runs) == len(layout) - 3  # the three saved shards are not scored again
    assert files(toy, "ray_driver") == files(toy, "local")


def test_a_worker_that_cannot_load_the_model_stops_the_run_in_one_line(cluster, task_env):
    from harness.errors import HarnessError
    from harness.execution.cluster import ClusterOptions, RayExecutor
    from harness.models.hf import HFModel
    from harness.pipeline import run
    from tests.fakes import BigramLM, CharTokenizer

    model = HFModel(BigramLM(max_length=512), CharTokenizer(), "no-such-model-folder", batch_tokens=4096)
    config = RunConfig(model="bigram", tasks=(str(task_env["tasks"] / "toy_mc.toml"),), data_dir=task_env["data"],
                       limit=2, settings=(Setting.ZS,), cache=False)
    with pytest.raises(HarnessError, match="^--executor ray: a worker could not load no-such-model-folder: .*") as e:
        run(config, model=model, executor=RayExecutor(ClusterOptions(workers=1)))
    assert "\n" not in str(e.value)


def test_shards_are_runs_of_whole_local_chunks_in_plan_order(monkeypatch):
    from harness.records import LoglikelihoodRequest, RollingRequest

    requests = [LoglikelihoodRequest(f"q{i}#{c}", f"question {i} " * (i % 5 + 1), f" choice {c}")
                for i in range(30) for c in range(3)] + [RollingRequest(f"d{i}", "text " * 40) for i in range(5)]
    plan = make_plan(requests)
    for kind in RequestKind:
        monkeypatch.setitem(executor.CHUNK, kind, 4)
    local = {kind: [tuple(c) for c in executor.chunks(plan.of_kind(kind), 4)] for kind in plan.kinds()}
    layout = shards.make_shards(plan, shard_chars=300)
    assert [u for s in layout for u in s.units] == list(plan.units)  # plan order, every unit once
    for kind in plan.kinds():  # a shard is a run of whole local chunks
        assert [c for s in layout if s.kind is kind for c in s.chunks] == local[kind]
    assert len(layout) > len(plan.kinds()) and all(s.chars <= 300 or len(s.chunks) == 1 for s in layout)
    assert shards.make_shards(plan, shard_chars=300) == layout  # a function of the plan alone
    assert len({s.name for s in layout}) == len(layout)


def test_flags_and_their_errors(tmp_path):
    from harness.config import ExecutorKind
    from harness.errors import HarnessError

    parse = build_parser().parse_args
    config = config_from_args(parse(["run", "--executor", "ray", "--workers", "3", "--ray-address", "auto"]))
    assert (config.executor, config.workers, config.ray_address) == (ExecutorKind.RAY, 3, "auto")
    assert config_from_args(parse(["run"])).executor is ExecutorKind.LOCAL
    with pytest.raises(HarnessError, match="--workers: only with --executor ray"):
        RunConfig(workers=2)
    with pytest.raises(HarnessError, match="--workers: need at least 1"):
        RunConfig(executor=ExecutorKind.RAY, workers=0)
    with pytest.raises(HarnessError, match="--shard-retries: need at least 1"):
        RunConfig(shard_retries=0)


def test_workers_share_the_cores_of_a_node_and_hold_a_gpu_each():
    from harness.errors import HarnessError
    from harness.execution.cluster import ClusterOptions, worker_resources
    from harness.models.registry import LoadOptions

    def nodes(*cpus, gpus=0):
        return [{"Alive": True, "Resources": {"CPU": c, "GPU": gpus}} for c in cpus]

    cuda = ClusterOptions(load=LoadOptions("gpt2", device="cuda"))  # a name read, nothing loaded

    assert worker_resources(ClusterOptions(), 2, nodes(2)) == ({"num_cpus": 1}, 1)
    assert worker_resources(ClusterOptions(), 2, nodes(16)) == ({"num_cpus": 8}, 8)
    assert worker_resources(ClusterOptions(), 2, nodes(8, 2)) == ({"num_cpus": 4}, 4)  # both fit on the big node
    assert worker_resources(ClusterOptions(), 3, nodes(8, 4)) == ({"num_cpus": 4}, 4)
    assert worker_resources(cuda, 16, nodes(8, 8, gpus=8)) == ({"num_gpus": 1, "num_cpus": 1}, 0)
    with pytest.raises(HarnessError, match="--workers 17: the cluster has 16 GPUs"):
        worker_resources(cuda, 17, nodes(8, 8, gpus=8))
    with pytest.raises(HarnessError, match="--workers 3: the cluster has 2 CPUs"):
        worker_resources(ClusterOptions(), 3, nodes(2))


@pytest.mark.slow
def test_ft_checkpoints_of_several_tasks_train_on_the_cluster_as_locally(cluster, toy, tiny_gpt2_dir, capfd):
    """Two tasks with a train split: their FT checkpoints train as Ray tasks, and the run equals a local run's:
    scores.csv byte for byte, every non-FT sample byte for byte, FT samples with the same predictions and
    log-likelihoods to 1e-4 (a worker trains with its share of the cores: on CPU the trained weights can differ
    in their last bits from a 2-thread local training). A rerun reuses the finished checkpoints."""
    for name in ("ft_a", "ft_b"):
        text = TOY_MC.replace('demo_split = "train"', 'demo_split = "train"\ntrain_split = "train"')
        (toy["tasks"] / f"{name}.toml").write_text(text)
    tasks = ",".join(str(toy["tasks"] / f"{t}.toml") for t in ("ft_a", "ft_b"))

    def argv(out: str, *extra) -> list[str]:
        return ["run", "--model", str(tiny_gpt2_dir), "--tasks", tasks, "--data-dir", str(toy["data"]),
                "--output-dir", str(toy["root"] / out), "--run-name", "r", "--settings", "zs,ft", "--limit", "4",
                "--ft-steps", "2", "--ft-batch-size", "2", "--ft-lr", "1e-3", *extra]

    local = harness_run(argv("ft_local", "--no-cache"))
    assert local.returncode == 0, local.stderr[-3000:]
    run_ray(argv("ft_ray", "--executor", "ray", "--workers", "2"))
    assert "FT: 2 checkpoints on the Ray cluster" in capfd.readouterr().err
    ours, local = files(toy, "ft_ray"), files(toy, "ft_local")
    assert ours["scores.csv"] == local["scores.csv"]
    pairs = list(zip(*(map(json.loads, f["samples.jsonl"].decode().splitlines()) for f in (ours, local)), strict=True))
    assert all(a == b for a, b in pairs if a["setting"] != "FT") and any(a["setting"] == "FT" for a, _ in pairs)
    for a, b in pairs:
        assert a["prediction"] == b["prediction"] and a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
    checkpoints = sorted(p.name for p in (toy["root"] / "ft_ray" / ".finetune").iterdir())
    assert [c.rsplit("-", 1)[0] for c in checkpoints] == ["ft_a", "ft_b"]
    assert checkpoints == sorted(p.name for p in (toy["root"] / "ft_local" / ".finetune").iterdir())
    run_ray(argv("ft_ray", "--executor", "ray", "--workers", "2", "--run-name", "again"))
    lineages = [json.loads((toy["root"] / "ft_ray" / run / "run.json").read_text())["finetune"]
                for run in ("r", "again")]
    assert lineages[0] == lineages[1] and set(lineages[0]) == {"ft_a", "ft_b"}  # same creation time: reused

