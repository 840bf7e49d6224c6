"""lm-evaluation-harness 0.4 output: reading its results_*.json and samples_*.jsonl (`--log_samples`), and
writing a run in the same layout (`harness run --format lm-eval`) so tools that read lm-eval output read ours.

The layout, as lm-eval 0.4.13 writes it under --output_path/<model name sanitized>/:
- results_<timestamp>.json: "results" (task -> {"alias", "<metric>,<filter>", "<metric>_stderr,<filter>"}),
  "versions", "n-shot", "configs", "higher_is_better", "n-samples", "config", ... ;
- samples_<task>_<timestamp>.jsonl: one line per document and filter with doc_id, doc, target (a string),
  arguments ({"gen_args_<i>": {"arg_<j>": ...}}, one per request), resps and filtered_resps (every leaf a
  string), filter, metrics (the names), doc_hash, prompt_hash, target_hash and one field per metric.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.errors import HarnessError
from harness.samples import Sample
from harness.tasks.kinds import lmeval_export, lmeval_output_type

ROLLING_KEY = 200  # harness samples keep the first 200 characters of a perplexity document
_RESULTS = re.compile(r"^results_(.+)\.json$")


@dataclass(frozen=True)
class LmevalSample:
    key: str  # the rendered context of the first request: what pairs it with another run's example
    doc_id: int
    metrics: dict[str, float]  # the numeric per-document metric fields
    loglikelihoods: tuple[float, ...] = ()  # loglikelihood tasks: one per request (choice)
    greedy: tuple[bool, ...] = ()
    generation: str | None = None  # generate_until: the filtered response


@dataclass(frozen=True)
class LmevalTask:
    name: str
    output_type: str
    n_shot: int
    metrics: dict[str, float]  # metric -> value, for the filter its samples carry
    samples: tuple[LmevalSample, ...]
    source: Path  # the samples file


def hash_string(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def results_files(folder: Path) -> list[Path]:
    """results_*.json in `folder` or one level below (lm-eval adds a folder named after the model)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("results_*.json") if p.is_file()]
    return sorted(found + [p for p in folder.glob("*/results_*.json") if p.is_file()])


def is_lmeval_folder(folder: Path) -> bool:
    """An lm-eval output folder: no scores.csv, and a results_*.json here or one level below."""
    return not (Path(folder) / "scores.csv").is_file() and bool(results_files(folder))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise HarnessError(f"{path}: no \"results\" object (is it lm-eval's results_<timestamp>.json?)")
    return data


def load_lmeval(folder: Path) -> dict[str, LmevalTask]:
    """Every task of an lm-eval output folder with its per-document samples; the newest file wins per task.
    A task in two folders (two models, or two settings of an export) is an error: give one of them."""
    folder = Path(folder)
    files = results_files(folder)
    if not files:
        raise HarnessError(f"{folder}: no results_*.json here or one folder below (is it an lm-eval --output_path?)")
    tasks: dict[str, LmevalTask] = {}
    for path in sorted(files, key=lambda p: _RESULTS.match(p.name).group(1)):  # oldest first: newer overwrite
        stamp, data = _RESULTS.match(path.name).group(1), _read_json(path)
        for name in data["results"]:
            if name in tasks and tasks[name].source.parent != path.parent:
                raise HarnessError(f"{folder}: task {name} is in both {tasks[name].source.parent} and {path.parent}; "
                                   "give one of the two folders")
            samples_path = path.parent / f"samples_{name}_{stamp}.jsonl"
            if not samples_path.is_file():
                raise HarnessError(f"{samples_path}: missing; run lm_eval with --log_samples to compare per document")
            tasks[name] = _task(name, data, samples_path)
    return tasks


def _task(name: str, data: dict, samples_path: Path) -> LmevalTask:
    config = data.get("configs", {}).get(name, {})
    output_type = config.get("output_type", "")
    rows, chosen = [], None
    with open(samples_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise HarnessError(f"{samples_path}:{number}: not a JSON line") from None
            chosen = row.get("filter", "none") if chosen is None else chosen
            if row.get("filter", "none") == chosen:  # one line per filter: keep the first filter's
                rows.append(_sample(row, output_type, f"{samples_path}:{number}"))
    values = {}
    for key, value in data["results"][name].items():
        metric, _, filt = key.partition(",")
        if filt == (chosen or "none") and not metric.endswith("_stderr") and isinstance(value, (int, float)):
            values[metric] = float(value)
    n_shot = data.get("n-shot", {}).get(name, config.get("num_fewshot", 0)) or 0
    return LmevalTask(name, output_type, int(n_shot), values, tuple(rows), samples_path)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sample(row: dict, output_type: str, where: str) -> LmevalSample:
    try:
        first = row["arguments"]["gen_args_0"]["arg_0"]
        filtered = row["filtered_resps"]
        doc_id = int(row["doc_id"])
    except (KeyError, TypeError, ValueError):
        raise HarnessError(f"{where}: not an lm-eval sample (needs doc_id, arguments.gen_args_0.arg_0, "
                           "filtered_resps)") from None
    metrics = {m: v for m in row.get("metrics", []) if (v := _number(row.get(m))) is not None}
    if output_type == "generate_until":
        return LmevalSample(str(first), doc_id, metrics, generation=str(filtered[0]) if filtered else "")
    if output_type == "loglikelihood_rolling":
        return LmevalSample(str(first)[:ROLLING_KEY], doc_id, metrics, loglikelihoods=(float(filtered[0]),))
    pairs = [r for r in filtered if isinstance(r, (list, tuple)) and len(r) == 2]
    return LmevalSample(str(first), doc_id, metrics, tuple(float(ll) for ll, _ in pairs),
                        tuple(str(g) == "True" for _, g in pairs))


# ---------------------------------------------------------------- writing a run in lm-eval's layout

def _strings(value):
    """lm-eval's sanitize_list: every leaf of the responses as a string."""
    return [_strings(v) for v in value] if isinstance(value, (list, tuple)) else str(value)


def export_sample(spec, prompt, rendered, example_fields: dict, sample: Sample, doc_id: int) -> dict:
    """One samples_<task>_<timestamp>.jsonl line for one harness prompt and its samples.jsonl record."""
    args, resps, filtered, target = lmeval_export(spec, prompt, rendered, sample.answer)
    out = {"doc_id": doc_id, "doc": example_fields, "target": str(target),
           "arguments": {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)} for i, arg in enumerate(args)},
           "resps": _strings(resps), "filtered_resps": _strings(filtered), "filter": "none",
           "metrics": list(sample.metrics),
           "doc_hash": hash_string(json.dumps(example_fields, indent=2, default=str, ensure_ascii=False)),
           "prompt_hash": hash_string(args[0][0]), "target_hash": hash_string(str(target))}
    return out | dict(sample.metrics)


def variant_name(setting: str, k: int, seed: int) -> str:
    """The subfolder of one (setting, k, seed): lm-eval writes one n-shot per task and file."""
    return "zs" if setting == "ZS" else "ft" if setting == "FT" else f"{setting.lower()}{k}-s{seed}"


def write_lmeval(folder: Path, output, model_name: str, limit: int) -> list[Path]:
    """`folder`/<variant>/results_<timestamp>.json and samples_<task>_<timestamp>.jsonl for every
    (setting, k, seed) of the run; returns the results files."""
    stamp = datetime.now().isoformat().replace(":", "-")
    by_key = {(s.task, s.setting, s.k, s.seed, s.example_id): s for s in output.samples}
    variants: dict[str, dict] = {}
    for task in output.tasks:
        fields = {e.id: dict(e.fields) for e in task.examples}
        order = {e.id: i for i, e in enumerate(task.examples)}
        for prompt, rendered in task.prompts:
            sample = by_key.get((task.spec.name, prompt.setting.label, prompt.k, prompt.seed, prompt.example_id))
            if sample is None:
                continue
            v = variants.setdefault(variant_name(prompt.setting.label, prompt.k, prompt.seed), {})
            line = export_sample(task.spec, prompt, rendered, fields.get(prompt.example_id, {}), sample,
                                 order.get(prompt.example_id, len(order)))
            v.setdefault(task.spec.name, (task.spec, []))[1].append(line)
    rows = {(r.task, r.setting, r.k, r.seed, r.metric): r for r in output.scores}
    written = []
    for variant, tasks in variants.items():
        target = folder / variant
        target.mkdir(parents=True, exist_ok=True)
        for name, (_, lines) in tasks.items():
            with open(target / f"samples_{name}_{stamp}.jsonl", "w", encoding="utf-8") as f:
                for line in sorted(lines, key=lambda x: x["doc_id"]):
                    f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        results = _results(variant, tasks, rows, model_name, limit)
        path = target / f"results_{stamp}.json"
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _results(variant: str, tasks: dict, rows: dict, model_name: str, limit: int) -> dict:
    from harness.metrics import METRICS

    results, configs, n_shot, higher, n_samples, hashes = {}, {}, {}, {}, {}, {}
    for name, (spec, lines) in tasks.items():
        setting, k, seed = _variant_key(variant, rows, name)
        entry = {"name": name, "alias": name, "sample_len": len(lines)}
        for metric in spec.metrics:
            row = rows.get((name, setting, k, seed, metric))
            if row is not None:
                entry[f"{metric},none"] = row.value
                entry[f"{metric}_stderr,none"] = row.stderr
        results[name] = entry
        n_shot[name] = k if setting in ("1S", "FS") else 0
        higher[name] = {m: METRICS[m].higher_is_better for m in spec.metrics}
        n_samples[name] = {"original": len(lines), "effective": len(lines)}
        hashes[name] = hash_string("".join(x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines))
        configs[name] = {"task": name, "output_type": lmeval_output_type(spec.kind), "num_fewshot": n_shot[name],
                         "description": spec.description, "target_delimiter": spec.prompt.target_delimiter,
                         "fewshot_delimiter": spec.prompt.demo_separator,
                         "metric_list": [{"metric": m, "higher_is_better": METRICS[m].higher_is_better}
                                         for m in spec.metrics],
                         "metadata": {"source": str(spec.path), "sha256": spec.sha256}}
    return {"results": results, "group_subtasks": {}, "configs": configs, "versions": dict.fromkeys(tasks, "harness"),
            "n-shot": n_shot, "higher_is_better": higher, "n-samples": n_samples,
            "config": {"model": "harness", "model_args": {"pretrained": model_name}, "limit": float(limit) or None},
            "task_hashes": hashes, "model_name": model_name, "model_name_sanitized": model_name.replace("/", "__"),
            "date": datetime.now().timestamp()}


def _variant_key(variant: str, rows: dict, name: str) -> tuple[str, int, int]:
    if variant in ("zs", "ft"):
        setting = variant.upper()
        found = [key for key in rows if key[0] == name and key[1] == setting]
        return (setting, found[0][2], found[0][3]) if found else (setting, 0, 0)
    m = re.match(r"^(fs|1s)(\d+)-s(\d+)$", variant)
    return m.group(1).upper(), int(m.group(2)), int(m.group(3))
