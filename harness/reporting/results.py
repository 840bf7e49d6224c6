"""The long results table and the run folder: scores.csv, samples.jsonl, run.json, reports and plots.

A run folder is written under a hidden temporary name and renamed into place when complete, so an
interrupted or failed run never leaves a half-written folder behind.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.files import atomic_folder
from harness.pipeline import RunOutput
from harness.provenance import package_versions
from harness.records import SCORE_COLUMNS
from harness.reporting.lmeval_io import write_lmeval
from harness.reporting.pages import write_report
from harness.reporting.runs import samples_frame


def scores_frame(output: RunOutput, run: str) -> pd.DataFrame:
    frame = pd.DataFrame(output.scores)
    frame.insert(0, "run", run)
    return frame.reindex(columns=SCORE_COLUMNS)


def default_run_name(model: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(model).name or model).strip("-.")
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{slug or 'model'}"


def run_folder(config: RunConfig) -> Path:
    """The final folder of a run; refuses to overwrite an earlier run."""
    folder = Path(config.output_dir) / (config.run_name or default_run_name(config.model))
    if folder.exists():
        raise HarnessError(f"--run-name: {folder} already exists; choose another name or remove it")
    return folder


def write_run(output: RunOutput, config: RunConfig, folder: Path) -> pd.DataFrame:
    """Write every file of the run into `folder`, atomically."""
    frame = scores_frame(output, folder.name)
    with atomic_folder(folder) as tmp:
        frame.to_csv(tmp / "scores.csv", index=False)
        with open(tmp / "samples.jsonl", "w", encoding="utf-8") as f:
            for sample in output.samples:
                f.write(json.dumps(sample, ensure_ascii=False) + "\n")
        (tmp / "run.json").write_text(json.dumps(manifest(output, config, folder.name), indent=2) + "\n")
        samples = samples_frame(output.samples, output.model.get("name", folder.name))
        name = output.model.get("name", folder.name)
        write_report(tmp, frame, samples, title=f"Run {folder.name}", finetune={name: output.finetune},
                     models={name: output.model})  # report.md, .tex, .html, plots/
        if "lm-eval" in config.formats:
            write_lmeval(tmp / "lm-eval", output, name, config.limit or 0)
    return frame


def manifest(output: RunOutput, config: RunConfig, run: str) -> dict:
    """Everything needed to reproduce and audit a run."""
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    cfg["settings"] = [s.value for s in config.settings]
    cfg["dtype"] = config.dtype.value
    return {
        "run": run,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(output.seconds, 1),
        "command": sys.argv,
        "config": cfg,
        "model": output.model,
        "tasks": {
            t.spec.name: {
                "file": str(t.spec.path),
                "sha256": t.spec.sha256,
                "kind": t.spec.kind.value,
                "eval": {"split": t.data.eval.name, "source": t.data.eval.source, "sha256": t.data.eval.sha256,
                         "examples": len(t.data.eval.examples), "evaluated": len(t.examples)},
                "demos": {"split": t.data.demos.name, "source": t.data.demos.source, "sha256": t.data.demos.sha256,
                          "note": t.data.note},
            }
            for t in output.tasks
        },
        "versions": {"python": platform.python_version(), **package_versions()},
        "platform": platform.platform(),
        "git": output.git,
        "finetune": output.finetune,  # task -> lineage of the FT checkpoint (base model, data, examples, losses)
    }
