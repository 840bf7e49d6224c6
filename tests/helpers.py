"""Helpers that several test modules share: the CLI run on the tiny GPT-2 and its clean-failure check, and the
hand-made score frames, sample records and GPT-3 CSV of the report tests. Fixtures stay in conftest.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.cli import main
from harness.reporting import gpt3
from harness.samples import Sample
from harness.tasks.kinds import read_sample

# ---- the CLI ------------------------------------------------------------------------------------------------


def run_cli(task_env, tiny_gpt2_dir, *extra, tasks=("toy_mc", "toy_cloze", "toy_docs"), name="r"):
    paths = ",".join(str(task_env["tasks"] / f"{t}.toml") for t in tasks)
    args = ["run", "--model", str(tiny_gpt2_dir), "--tasks", paths, "--data-dir", str(task_env["data"]),
            "--output-dir", str(task_env["root"] / "results"), "--run-name", name, *extra]
    return main(args)


def assert_clean_failure(code, capsys, task_env, message):
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    assert message in errors[0], err
    results = task_env["root"] / "results"
    assert not results.exists() or not any(results.iterdir())


# ---- score frames (test_report.py, test_report_generative.py, test_html_chromium.py) ------------------------


def row(model, task, setting, k, seed, metric, value, stderr=0.05, n=40, k_used=None, note=""):
    return {"run": f"run-{model}", "model": model, "task": task, "setting": setting, "k": k,
            "k_used_mean": k if k_used is None else k_used, "seed": seed, "metric": metric, "value": value,
            "stderr": stderr, "n": n, "n_truncated": 0, "higher_is_better": metric != "word_perplexity", "note": note}


def synthetic_frame() -> pd.DataFrame:
    rows = []
    for model, base in (("gpt2", 0.50), ("tiny", 0.30)):
        rows.append(row(model, "piqa", "ZS", 0, 0, "acc", base))
        for seed in (0, 1):
            rows.append(row(model, "piqa", "1S", 1, seed, "acc", base + 0.02 + 0.02 * seed))
            rows.append(row(model, "piqa", "FS", 2, seed, "acc", base + 0.05))
            rows.append(row(model, "piqa", "FS", 4, seed, "acc", base + 0.10 + 0.04 * seed, k_used=3.5))
        rows.append(row(model, "piqa", "FT", 0, 0, "acc", base + 0.2))
        rows.append(row(model, "lambada_openai", "ZS", 0, 0, "perplexity", 40.0, stderr=2.0))
        rows.append(row(model, "wikitext2", "ZS", 0, 0, "word_perplexity", 37.5, stderr=1.0))
        rows.append(row(model, "wikitext2", "1S", 1, 0, "word_perplexity", math.nan, math.nan, n=0,
                        note="no demonstrations for perplexity tasks"))
        rows.append(row(model, "wikitext2", "FT", 0, 0, "word_perplexity", math.nan, math.nan, n=0,
                        note="no train split"))
    return pd.DataFrame(rows)


def synthetic_samples() -> pd.DataFrame:
    """piqa acc per example: gpt2's FT fixes 20 of 40 examples (significant), tiny's 1S changes nothing."""
    zs = np.array([1.0] * 20 + [0.0] * 20)
    rows = []
    for setting, k, seed, values in (("ZS", 0, 0, zs), ("FT", 0, 0, np.ones(40)), ("1S", 1, 0, zs)):
        for model in ("gpt2", "tiny"):
            rows += [{"model": model, "task": "piqa", "setting": setting, "k": k, "seed": seed,
                      "example_id": f"validation-{i}", "metric": "acc", "value": v} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def band_frame() -> pd.DataFrame:
    rows = []
    for model, base in (("gpt2", 0.2), ("gpt2-medium", 0.3)):
        for setting, k in (("ZS", 0), ("1S", 1), ("FS", 4), ("FS", 8)):
            rows.append(row(model, "triviaqa", setting, k, 0, "exact_match", base + k / 100))
            rows.append(row(model, "lambada_openai", setting, k, 0, "acc", base))
        rows.append(row(model, "sst2", "ZS", 0, 0, "acc", 0.5))
    return pd.DataFrame(rows)


# ---- GPT-3's Table H.1 as a CSV -------------------------------------------------------------------------------


HEADER = "task,metric,split,setting,model,params,value,k,finetune_sota,test_server_175b\n"
SIZES = [("GPT-3 Small", "125M"), ("GPT-3 Medium", "350M"), ("GPT-3 Large", "760M")]


def write_csv(folder, lines) -> None:
    (folder / gpt3.CSV_NAME).write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")


def hand_csv(folder) -> None:
    """TriviaQA and LAMBADA acc for three sizes (value = 10 x size index + setting index), one unmapped row."""
    lines = []
    for task, k in (("TriviaQA", 64), ("LAMBADA", 15)):
        for j, setting in enumerate(("ZS", "1S", "FS")):
            lines += [f"{task},acc,dev,{setting},{model},{params},{10 * (i + 1) + j},{k},," for i, (model, params)
                      in enumerate(SIZES)]
    lines.append("SAT Analogies,acc,n/a,ZS,GPT-3 Small,125M,30.0,20,,")
    write_csv(folder, lines)


# ---- per-example sample records -------------------------------------------------------------------------------


def choice_record(setting, k, seed, i, prediction, gold=0):
    return {"task": "piqa", "setting": setting, "k": k, "k_used": k, "seed": seed, "example_id": f"validation-{i}",
            "prompt": f"Question {i} <b>&</b>?\nAnswer:", "choices": ["left", "right"], "gold": gold,
            "logprobs": [-1.0, -2.0] if prediction == 0 else [-2.0, -1.0], "prediction": prediction,
            "metrics": {"acc": float(prediction == gold), "acc_norm": float(prediction == gold)}}


def generation_record(setting, k, seed, i, generated, references=("Paris",)):
    return {"task": "triviaqa", "setting": setting, "k": k, "k_used": k, "seed": seed, "example_id": f"dev-{i}",
            "prompt": "Q: capital of France?\nA:" * (1 + k), "generation": " " + generated, "prediction": generated,
            "target": references[0], "references": list(references),
            "metrics": {"exact_match": float(generated in references), "bleu": [1.0, 2.0]}}


def as_samples(records: list[dict]) -> list[Sample]:
    """samples.jsonl lines as the records a run folder reads back."""
    return [read_sample(r, None) for r in records]


def change_samples() -> list[dict]:
    """piqa: 30 examples, ZS predicts 0 everywhere; FS(4) seed 0 predicts 1 on 0-23 (gold 1 on 0-11: 12 fixed,
    12 broken), seed 1 changes nothing. triviaqa: ZS 'Lyon' on 0-2; FS(4) 'Paris' on 0 (fixed), 'Nice' on 1 (other)."""
    records = [choice_record("ZS", 0, 0, i, 0, gold=int(i < 12)) for i in range(30)]
    records += [choice_record("FS", 4, 0, i, int(i < 24), gold=int(i < 12)) for i in range(30)]
    records += [choice_record("FS", 4, 1, i, 0, gold=int(i < 12)) for i in range(30)]
    records += [choice_record("FS", 2, 0, i, 1) for i in range(30)]  # a smaller k: not the comparison
    records += [generation_record("ZS", 0, 0, i, "Lyon") for i in range(3)]
    records += [generation_record("FS", 4, 0, i, g) for i, g in enumerate(["Paris", "Nice", "Lyon"])]
    return records
