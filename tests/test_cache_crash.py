"""The result cache survives a run killed with SIGKILL mid-way: the rerun scores exactly the missing
requests. And the bf16 opt-in: its own cache key, numbers close to fp32."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.config import DType

ROOT = Path(__file__).resolve().parents[1]


def args(task_env, model_dir, name: str, *extra) -> list[str]:
    return ["run", "--model", str(model_dir), "--tasks", str(task_env["tasks"] / "toy_mc.toml"),
            "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / "results"),
            "--run-name", name, "--settings", "zs,1s", "--limit", "5", *extra]


KILLER = """
import os, signal, sys
from harness.execution import executor
from harness.cli import main
from harness.models import hf
from harness.records import RequestKind

executor.CHUNK = {kind: 4 for kind in RequestKind}
real, calls = hf.HFModel.loglikelihood, []

def dying(self, requests):
    calls.append(1)
    if len(calls) == 3:  # two chunks saved, the third in flight
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, requests)

hf.HFModel.loglikelihood = dying
main(sys.argv[1:])
"""


def test_a_killed_run_resumes_where_it_died(task_env, tiny_gpt2_dir, monkeypatch, result_cache):
    from harness.models import hf

    real, seen = hf.HFModel.loglikelihood, []
    monkeypatch.setattr(hf.HFModel, "loglikelihood", lambda self, rs: seen.extend(rs) or real(self, rs))
    assert main(args(task_env, tiny_gpt2_dir, "clean", "--no-cache")) == 0
    unique = len(seen)  # requests with distinct payloads (unconditional ones are shared by both settings)

    script = textwrap.dedent(KILLER)
    killed = subprocess.run([sys.executable, "-c", script, *args(task_env, tiny_gpt2_dir, "r")], cwd=ROOT,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (task_env["root"] / "results" / "r").exists()
    with sqlite3.connect(result_cache) as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (8,)  # the two committed chunks

    seen.clear()
    assert main(args(task_env, tiny_gpt2_dir, "r")) == 0
    assert len(seen) == unique - 8  # only the missing requests are scored again
    resumed = pd.read_csv(task_env["root"] / "results" / "r" / "scores.csv")
    clean = pd.read_csv(task_env["root"] / "results" / "clean" / "scores.csv")
    assert resumed["value"].to_numpy() == pytest.approx(clean["value"].to_numpy(), rel=1e-6)


def test_bf16_is_opt_in_with_its_own_cache_key(tiny_gpt2_dir):
    from harness.models.registry import load_model
    from harness.records import LoglikelihoodRequest

    fp32, bf16 = load_model(str(tiny_gpt2_dir)), load_model(str(tiny_gpt2_dir), dtype=DType.BF16)
    assert fp32.describe()["dtype"] == "torch.float32" and bf16.describe()["dtype"] == "torch.bfloat16"
    assert fp32.fingerprint() != bf16.fingerprint()
    requests = [LoglikelihoodRequest(str(i), "Question: what is it?\nAnswer:", c)
                for i, c in enumerate([" a cat", " no"])]
    for a, b in zip(fp32.loglikelihood(requests).values(), bf16.loglikelihood(requests).values(), strict=True):
        assert a.logprob == pytest.approx(b.logprob, rel=2e-2)
    assert bf16.pack_mode is fp32.pack_mode


def test_dtype_flag():
    from harness.cli import build_parser, config_from_args

    parse = build_parser().parse_args
    assert config_from_args(parse(["run"])).dtype is DType.FP32
    assert config_from_args(parse(["run", "--dtype", "bf16"])).dtype is DType.BF16
    with pytest.raises(SystemExit):
        parse(["run", "--dtype", "fp16"])
