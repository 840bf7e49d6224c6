"""The pipeline: tasks -> prompts -> requests -> one batched model call per request kind -> metrics.

Everything that can fail on user input (task files, data, pools, templates) is checked before the
model is loaded. Results are joined to prompts by request id, never by position.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from harness.execution.cache import ResultCache, payload
from harness.config import DEFAULT_MODEL, RunConfig
from harness.tasks.data import Split, TaskData, load_task_data, resolve_data_dir
from harness.errors import HarnessError
from harness.train.finetune import NoTrainSplit, load_train
from harness.metrics import METRICS, Outcome
from harness.provenance import git_state
from harness.tasks.prompts import build_prompt, check_pool, choices_of, fit_prompt, gold_of, target_of
from harness.records import Example, Prompt, RequestKind, Setting
from harness.requests import alternatives, choice_id, requests_for, target_id, unconditional_id
from harness.tasks.catalog import expand_suites, resolve_task
from harness.tasks.spec import TaskKind, TaskSpec


@dataclass(frozen=True)
class PreparedTask:
    spec: TaskSpec
    data: TaskData
    examples: tuple[Example, ...]  # the evaluated slice of the eval split
    prompts: tuple[Prompt, ...]  # unfitted: every example x (setting, k, seed)
    train: Split | None = None  # the FT setting's training data, when it was asked for and exists
    unavailable: tuple[tuple[Setting, int, str], ...] = ()  # (setting, k, reason): shown as n/a, never a gap


@dataclass
class RunOutput:
    scores: list[dict[str, Any]] = field(default_factory=list)  # rows of the long table
    samples: list[dict[str, Any]] = field(default_factory=list)  # one per example x prompt variant
    tasks: list[PreparedTask] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    git: dict[str, Any] = field(default_factory=dict)  # the checkout's state when the run started
    finetune: dict[str, dict] = field(default_factory=dict)  # task -> lineage of its FT checkpoint


def prepare(config: RunConfig) -> list[PreparedTask]:
    """Load and check every task, its data and its prompts, before any model work."""
    data_dir = resolve_data_dir(config.data_dir)
    prepared = []
    for name in expand_suites(config.tasks, data_dir=data_dir):
        spec = resolve_task(name, data_dir=data_dir)
        data = load_task_data(spec, data_dir)
        examples = data.eval.examples[: config.limit]
        plans, train, unavailable = _applicable(spec, data, data_dir, config)
        same_split = data.demos is data.eval
        for _, k, _ in plans:
            check_pool(spec, data.demos.examples, same_split, k)
        prompts = tuple(
            build_prompt(spec, ex, setting, k, seed, data.demos.examples) for ex in examples for setting, k, seed in plans
        )
        for ex in examples:  # render every choice and answer now, so bad data fails before the model loads
            alternatives(spec, ex)
            if spec.kind is not TaskKind.PERPLEXITY:
                target_of(spec, ex)
        prepared.append(PreparedTask(spec, data, examples, prompts, train, tuple(unavailable)))
    return prepared


def _applicable(spec: TaskSpec, data: TaskData, data_dir: Path | None, config: RunConfig):
    """(plans that apply to the task, its FT training split or None, (setting, k, reason) of the others)."""
    plans, unavailable = config.prompt_plans(), []
    if spec.kind is TaskKind.PERPLEXITY:
        shots = dict.fromkeys((s, k) for s, k, _ in plans if s in (Setting.OS, Setting.FS))
        unavailable += [(s, k, "no demonstrations: perplexity over documents") for s, k in shots]
        plans = [(s, k, seed) for s, k, seed in plans if s not in (Setting.OS, Setting.FS)]
    train = None
    if any(s is Setting.FT for s, _, _ in plans):
        try:
            train = load_train(spec, data_dir, data.eval, config.finetune.force)
        except NoTrainSplit as e:
            unavailable.append((Setting.FT, 0, str(e)))
            plans = [plan for plan in plans if plan[0] is not Setting.FT]
    return plans, train, unavailable


def run(config: RunConfig, model=None) -> RunOutput:
    """Evaluate `config.model` (or the given LanguageModel) on every task and prompt variant."""
    started, git = time.time(), git_state()
    if model is None:
        from harness.models import resolve

        resolve(config.model)  # an unknown name fails before any data is read
    tasks = prepare(config)
    if model is None:
        from harness.models import load_model

        _say(f"loading model {config.model}")
        model = load_model(config.model, config.device, config.batch_tokens, config.dtype)
    tasks = [_fit(t, model) for t in tasks]
    out = RunOutput(tasks=tasks, model=model.describe(), git=git)
    results = _results(model, [r for t in tasks for r in _requests(t, lambda s: s is not Setting.FT)], config)
    for t in tasks:  # FT: the zero-shot prompts, scored by the model fine-tuned on the task
        if t.train is not None:
            tuned, out.finetune[t.spec.name] = _finetuned(model, t, config)
            results |= _results(tuned, _requests(t, lambda s: s is Setting.FT), config)
            del tuned
    for t in tasks:
        _score_task(t, results, out.model["name"], out)
    out.seconds = time.time() - started
    return out


def _requests(t: PreparedTask, wanted) -> list:
    """The requests of a task's prompts whose setting passes `wanted`."""
    return [
        r
        for p, ex in zip(t.prompts, _examples_per_prompt(t), strict=True)
        if wanted(p.setting)
        for r in requests_for(t.spec, p, ex, _needs_unconditional(t.spec))
    ]


def _results(model, requests: list, config: RunConfig) -> dict[str, Any]:
    """Results of `requests` by id, through the model's result cache when it is on."""
    path = Path(config.output_dir) / ".cache" / "results.sqlite"
    cache = ResultCache(path, model.fingerprint()) if config.cache and requests else None
    try:
        return _call_model(model, requests, cache)
    finally:
        if cache:
            cache.close()


def _finetuned(model, t: PreparedTask, config: RunConfig):
    """(the model fine-tuned on t's train split, its lineage): trained once, then reused from
    <output_dir>/.finetune/<task>-<hash of base weights, task file, data and hyperparameters>."""
    from harness.train.finetune import checkpoint_folder, finetune, identity, lineage_summary
    from harness.models import Trainable, load_model

    if not isinstance(model, Trainable):
        raise HarnessError(f"--settings ft: {type(model).__name__} has no trainable weights (needs a transformers "
                           "or reference model)")
    folder = checkpoint_folder(Path(config.output_dir) / ".finetune", t.spec,
                               identity(model, t.spec, t.train, t.data.eval, config.finetune))
    lineage = finetune(model, t.spec, t.train, t.data.eval, config.finetune, folder)
    _say(f"FT {lineage_summary(t.spec.name, lineage)}; scoring {lineage['model']}")
    return load_model(lineage["model"], config.device, config.batch_tokens, config.dtype), lineage | {"folder": str(folder)}


def _examples_per_prompt(t: PreparedTask) -> list[Example]:
    by_id = {ex.id: ex for ex in t.examples}
    return [by_id[p.example_id] for p in t.prompts]


def _needs_unconditional(spec: TaskSpec) -> bool:
    return any(METRICS[m].needs_unconditional for m in spec.metrics)


def _fit(t: PreparedTask, model) -> PreparedTask:
    """Drop whole demonstrations until each prompt and its longest continuation fit the model."""
    if t.spec.kind is TaskKind.PERPLEXITY:
        return t
    if t.spec.kind is TaskKind.GENERATE:
        budget = model.max_length - t.spec.prompt.max_new_tokens
    else:
        budget = model.max_length + 1  # the last continuation token is never an input
    fitted = []
    for p, ex in zip(t.prompts, _examples_per_prompt(t), strict=True):
        longest = max((extra + cont for extra, cont in alternatives(t.spec, ex)), key=len, default="")
        fitted.append(fit_prompt(p, longest, model.count_tokens, budget) if p.demos else p)
    return replace(t, prompts=tuple(fitted))


CHUNK = {RequestKind.LOGLIKELIHOOD: 64, RequestKind.ROLLING: 2, RequestKind.GENERATE: 8}  # requests per save, at most
CHUNK_CHARS = 40_000  # and characters per save (about half a minute of a 135M model on 2 cores)


def _call_model(model, requests, cache: ResultCache | None) -> dict[str, Any]:
    """One pass per request kind over the unique payloads, longest first, saved chunk by chunk."""
    by_kind = defaultdict(dict)  # kind -> payload -> first request
    alias = {}  # request id -> id of the request that carries its payload
    for r in requests:
        first = by_kind[r.kind].setdefault(payload(r), r)
        alias[r.id] = first.id
    results: dict[str, Any] = {}
    for kind, unique in by_kind.items():
        todo = list(unique.values())
        found = cache.get(todo) if cache else {}
        results |= found
        missing = sorted((r for r in todo if r.id not in found), key=_order, reverse=True)
        if found:
            _say(f"{kind.value}: {len(found)} of {len(todo)} results from the cache")
        # progress in characters, not requests: the longest come first, so a request count would mislead the ETA
        total = sum(map(_size, missing))
        with tqdm(total=total, desc=f"{kind.value} ({len(missing)} requests)", unit="char", unit_scale=True,
                  file=sys.stderr) as bar:
            for chunk in _chunks(missing, CHUNK[kind]):
                got = _dispatch(model, kind, chunk)
                if cache:
                    cache.put(chunk, got)
                results |= got
                bar.update(sum(map(_size, chunk)))
    return {rid: results[first] for rid, first in alias.items()}


def _chunks(requests: list, most: int):
    """Consecutive runs of at most `most` requests and about CHUNK_CHARS characters (at least one request)."""
    chunk, chars = [], 0
    for r in requests:
        if chunk and (len(chunk) == most or chars + _size(r) > CHUNK_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(r)
        chars += _size(r)
    if chunk:
        yield chunk


def _order(request) -> tuple:
    """Longest context first, and the requests of one context side by side, so the choices of a question
    land in the same chunk and the model scores them in one packed row (models/packing.py)."""
    context = getattr(request, "context", "")
    return len(context), context, _size(request)


def _size(request) -> int:
    """Characters the model reads for a request: a proxy for its cost."""
    return sum(len(v) for v in payload(request) if isinstance(v, str))


def _dispatch(model, kind: RequestKind, requests: list) -> dict[str, Any]:
    match kind:
        case RequestKind.LOGLIKELIHOOD:
            return model.loglikelihood(requests)
        case RequestKind.ROLLING:
            return model.loglikelihood_rolling(requests)
        case RequestKind.GENERATE:
            return model.generate(requests)


def _score_task(t: PreparedTask, results: dict[str, Any], model_name: str, out: RunOutput) -> None:
    groups = defaultdict(list)  # (setting, k, seed) -> [(prompt, example)]
    for p, ex in zip(t.prompts, _examples_per_prompt(t), strict=True):
        groups[(p.setting, p.k, p.seed)].append((p, ex))
    for (setting, k, seed), members in groups.items():
        outcomes = [_outcome(t.spec, p, ex, results) for p, ex in members]
        scored = {name: METRICS[name].score(outcomes) for name in t.spec.metrics}  # values, value, stderr
        samples = [
            _sample(t.spec, p, o, results, {m: _per_example(values[i]) for m, (values, _, _) in scored.items()})
            for i, ((p, _), o) in enumerate(zip(members, outcomes, strict=True))
        ]
        out.samples += samples
        n_truncated = sum(s.get("truncated", 0) > 0 for s in samples)
        if n_truncated:
            _say(f"{t.spec.name} {setting.label} k={k}: {n_truncated} of {len(samples)} inputs exceeded the model's "
                 f"context and were cut from the left (see 'truncated' in samples.jsonl)")
        k_used = sum(p.k_used for p, _ in members) / len(members)
        for name, (_, value, stderr) in scored.items():
            out.scores.append(_row(model_name, t.spec.name, setting, k, seed, name, value, stderr, len(outcomes),
                                   k_used=k_used, n_truncated=n_truncated))
    for setting, k, reason in t.unavailable:  # a row per metric, so every table shows n/a and why
        for name in t.spec.metrics:
            out.scores.append(_row(model_name, t.spec.name, setting, k, 0, name, math.nan, math.nan, 0, note=reason))


def _row(model: str, task: str, setting: Setting, k: int, seed: int, metric: str, value: float, stderr: float,
         n: int, k_used: float = math.nan, n_truncated: int = 0, note: str = "") -> dict[str, Any]:
    """One row of the long table (records.SCORE_COLUMNS); `note` says why a cell has no value."""
    return {
        "model": model, "task": task, "setting": setting.label, "k": k, "k_used_mean": k_used, "seed": seed,
        "metric": metric, "value": value, "stderr": stderr, "n": n, "n_truncated": n_truncated,
        "higher_is_better": METRICS[metric].higher_is_better, "note": note,
    }


def _per_example(row) -> float | list[float]:
    return float(row[0]) if len(row) == 1 else [float(x) for x in row]


def _outcome(spec: TaskSpec, p: Prompt, ex: Example, results: dict[str, Any]) -> Outcome:
    match spec.kind:
        case TaskKind.MULTIPLE_CHOICE:
            choices = choices_of(spec, ex)
            scored = [results[choice_id(p, i)] for i in range(len(choices))]
            uncond = [results[unconditional_id(p, i)].logprob for i in range(len(choices))] if _needs_unconditional(spec) else []
            return Outcome(
                choices=tuple(choices), gold=gold_of(spec, ex, len(choices)),
                logprobs=tuple(r.logprob for r in scored), greedy=tuple(r.is_greedy for r in scored),
                n_tokens=tuple(r.n_tokens for r in scored), unconditional=tuple(uncond),
            )
        case TaskKind.CLOZE:
            r = results[target_id(p)]
            return Outcome(logprobs=(r.logprob,), greedy=(r.is_greedy,), last_greedy=(r.last_greedy,),
                           n_tokens=(r.n_tokens,), target=target_of(spec, ex))
        case TaskKind.PERPLEXITY:
            from harness.tasks.preprocess import units_text

            r = results[target_id(p)]
            units = units_text(spec, ex)
            return Outcome(logprobs=(r.logprob,), n_tokens=(r.n_tokens,), words=count_words(units), bytes=len(units.encode("utf-8")))
        case TaskKind.GENERATE:
            return Outcome(generated=results[target_id(p)].text, target=target_of(spec, ex))


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them for word_perplexity: re.split(r'\\s+', text)."""
    import re

    return len(re.split(r"\s+", text))


def _sample(spec: TaskSpec, p: Prompt, o: Outcome, results: dict[str, Any], metrics: dict) -> dict[str, Any]:
    sample = {
        "task": spec.name, "setting": p.setting.label, "k": p.k, "k_used": p.k_used, "seed": p.seed,
        "example_id": p.example_id, "demo_ids": list(p.demo_ids), "prompt": p.text,
    }
    match spec.kind:
        case TaskKind.MULTIPLE_CHOICE:
            import numpy as np

            sample |= {"choices": list(o.choices), "gold": o.gold, "logprobs": list(o.logprobs),
                       "n_tokens": list(o.n_tokens), "prediction": int(np.argmax(o.logprobs))}
            if o.unconditional:
                sample["unconditional_logprobs"] = list(o.unconditional)
            sample["truncated"] = max(results[choice_id(p, i)].truncated for i in range(len(o.choices)))
        case TaskKind.CLOZE:
            sample |= {"target": o.target, "logprob": o.logprobs[0], "is_greedy": o.greedy[0],
                       "last_token_greedy": o.last_greedy[0],
                       "n_tokens": o.n_tokens[0], "truncated": results[target_id(p)].truncated}
        case TaskKind.PERPLEXITY:
            sample |= {"prompt": p.text[:200], "logprob": o.logprobs[0], "n_tokens": o.n_tokens[0],
                       "words": o.words, "bytes": o.bytes}
        case TaskKind.GENERATE:
            sample |= {"target": o.target, "prediction": o.generated}
    return sample | {"metrics": metrics}


def _say(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


def evaluate(model: str | Any = DEFAULT_MODEL, tasks=None, settings=None, **kwargs):
    """Python API: evaluate and return the long pandas table. No run folder is written, and the
    result cache is off unless cache=True (then it lives in <output_dir>/.cache).

    `model` is a name/path or a LanguageModel; other arguments are RunConfig fields, e.g.
    evaluate("gpt2", tasks=["piqa"], settings=["zs", "fs"], shots=[5], limit=100).
    """
    import pandas as pd

    from harness.config import parse_settings

    if settings is not None:
        settings = parse_settings(",".join(settings) if not isinstance(settings, str) else settings)
    fields = {"tasks": tuple(tasks) if tasks else None, "settings": settings, "cache": False, **kwargs}
    if "shots" in fields and isinstance(fields["shots"], int):
        fields["shots"] = (fields["shots"],)
    fields = {k: v for k, v in fields.items() if v is not None}
    if isinstance(model, str):
        config = RunConfig(model=model, **fields)
        output = run(config)
    else:
        config = RunConfig(model=getattr(model, "name", "model"), **fields)
        output = run(config, model=model)
    return pd.DataFrame(output.scores)
