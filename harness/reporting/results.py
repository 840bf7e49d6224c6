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
from harness.reporting.build import with_memory
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
        document = manifest(output, config, folder.name)
        (tmp / "run.json").write_text(json.dumps(document, indent=2) + "\n")
        samples = samples_frame(output.samples, output.model.get("name", folder.name))
        name = output.model.get("name", folder.name)
        write_report(tmp, frame, samples, title=f"Run {folder.name}", finetune={name: output.finetune},
                     models={name: with_memory(output.model, document)})  # report.md, .tex, .html, plots/
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
        "memory": peak_memory(),
    }


def peak_memory() -> dict:
    """This process's peak resident memory so far, and torch's peak CUDA allocation where CUDA was used, in MiB
    (Ray workers are other processes: not counted)."""
    import resource

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak = {"rss_mib": round(rss_kib / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1), "cuda_mib": None}
    torch = sys.modules.get("torch")  # never imported here just to ask
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        allocated = sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
        peak["cuda_mib"] = round(allocated / (1 << 20), 1)
    return peak
