"""The long results table and the run folder: scores.csv, samples.jsonl, run.json, reports and plots.

A run folder is written under a hidden temporary name and renamed into place when complete, so an
interrupted or failed run never leaves a half-written folder behind.
"""

from __future__ import annotations

import errno
import json
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import invariance
from harness.config import RunConfig
from harness.contamination.runfiles import write_files as write_contamination
from harness.errors import HarnessError
from harness.files import atomic_folder, check_writable, claim, release, why
from harness.pipeline import RunOutput
from harness.provenance import package_versions
from harness.records import SCORE_COLUMNS
from harness.reporting.lmeval_io import write_lmeval
from harness.reporting.build import Report, build_report, with_memory
from harness.reporting.pages import write_pages
from harness.reporting.runs import samples_frame


def scores_frame(output: RunOutput, run: str) -> pd.DataFrame:
    frame = pd.DataFrame(output.scores)
    frame.insert(0, "run", run)
    return frame.reindex(columns=SCORE_COLUMNS)


def default_run_name(model: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(model).name or model).strip("-.")
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{slug or 'model'}"


def run_folder(config: RunConfig) -> Path:
    """The final folder of a run, checked and reserved for this process before any model work: --output-dir is
    (or can be made) a writable folder with room to spare, and the folder is neither written nor being written by
    another run. A default name already taken becomes <name>-2, -3, ...; a given --run-name never changes."""
    output = Path(config.output_dir)
    check_writable(output, "--output-dir")
    if config.run_name:
        folder = output / config.run_name
        if not claim(folder):
            doing = "already exists" if folder.exists() else "is being written by another harness run now"
            raise HarnessError(f"--run-name: {folder} {doing}; choose another name" +
                               (" or remove it" if folder.exists() else ""))
        return folder
    base = default_run_name(config.model)
    for n in range(1, 1000):
        folder = output / (base if n == 1 else f"{base}-{n}")
        if claim(folder):
            return folder
    raise HarnessError(f"--run-name: {output / base} and 998 more names after it are taken; give --run-name")


def write_run(output: RunOutput, config: RunConfig, folder: Path) -> Report:
    """Write every file of the run into `folder`, atomically; a failed write (disk full, file size limit, a folder
    made at `folder` meanwhile) is one line, leaves nothing behind, and gives up the folder's reservation.
    Returns the report written (its terminal summary is what `harness run` prints)."""
    frame = scores_frame(output, folder.name)
    kept = ("the results are in the result cache: fix that and rerun the same command" if config.cache
            else "with --no-cache the results are lost: fix that and rerun")
    try:
        with atomic_folder(folder) as tmp:
            report = _write_files(tmp, frame, output, config, folder.name)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and e.filename2 and Path(e.filename2) == folder:
            raise HarnessError(f"--run-name: {folder} appeared during the run (made by another program); the results "
                               "are in the result cache: rerun with another --run-name") from None
        raise HarnessError(f"--output-dir {folder.parent}: could not write the run folder ({why(e)}"
                           f"{f': {e.filename}' if e.filename else ''}); nothing was left there; {kept}") from None
    finally:
        release(folder)
    return report


def _write_files(tmp: Path, frame: pd.DataFrame, output: RunOutput, config: RunConfig, run: str) -> Report:
    frame.to_csv(tmp / "scores.csv", index=False)
    with open(tmp / "samples.jsonl", "w", encoding="utf-8") as f:
        for sample in output.samples:
            f.write(json.dumps(sample.to_json(), ensure_ascii=False) + "\n")
    if output.contamination is not None:  # --overlap: contamination.csv and the examples' labels (overlap.csv)
        write_contamination(output.contamination, tmp, run)
    document = manifest(output, config, run)
    (tmp / "run.json").write_text(json.dumps(document, indent=2) + "\n")
    name = output.model.get("name", run)
    samples = samples_frame(output.samples, name)
    # report.md, .tex, .html, plots/
    report = build_report(frame, samples, title=f"Run {run}", finetune={name: output.finetune},
                          models={name: with_memory(output.model, document)}, warnings=output.warnings,
                          contamination=(output.contamination,) if output.contamination else ())
    write_pages(tmp, report)
    if "lm-eval" in config.formats:
        write_lmeval(tmp / "lm-eval", output, name, config.limit or 0)
    return report


def manifest(output: RunOutput, config: RunConfig, run: str) -> dict:
    """Everything needed to reproduce and audit a run."""
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    cfg["settings"] = [s.value for s in config.settings]
    cfg["dtype"] = config.dtype.value
    if config.overlap is None:  # a run without --overlap writes the run.json it always wrote
        del cfg["overlap"]
    study = {"contamination": output.contamination.to_json()} if output.contamination else {}
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
        "numerics": invariance.facts(output.model),  # what the numbers depend on besides weights and requests
        "versions": {"python": platform.python_version(), **package_versions()},
        "platform": platform.platform(),
        "git": output.git,
        # task -> lineage of the FT checkpoint (base model, data, examples, losses)
        "finetune": {task: lineage.to_json() for task, lineage in output.finetune.items()},
        "warnings": list(output.warnings),  # fallbacks the run took, as said on stderr
        "skipped": output.skipped,  # task -> why it could not run (--skip-invalid)
        "memory": peak_memory(),
        **study,  # --overlap: the study used (path, sha256 of overlap.csv, N per task, corpus files), what it covered
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
