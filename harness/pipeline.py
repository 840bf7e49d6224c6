"""A run in four steps: prepare -> fit -> execute -> score.

prepare   tasks, data, every example rendered once, prompts: everything that can fail on user input, before
          any model work
fit       drop whole demonstrations until each prompt fits the model
execute   the requests of all prompts as one frozen plan, run by an executor (execution/), results by id
score     outcomes, metrics, rows of the long table and samples (score.py)

FT is an explicit step (`finetuned`): the executor makes each task's checkpoint (on a cluster, in parallel), and
each tuned model is a second model that executes that task's FT prompts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_MODEL, DEFAULT_WORKERS, ExecutorKind, RunConfig
from harness.errors import HarnessError, UnknownName, say, warn
from harness.execution.cache import open_checked
from harness.execution.executor import Executor, FinetuneJob, LocalExecutor
from harness.execution.plan import make_plan
from harness.files import result_cache_path
from harness.lineage import lineage_summary
from harness.models.base import LanguageModel, Trainable
from harness.models.lazy import LazyModel
from harness.models.registry import LoadOptions, check_serves, load_model, resolve
from harness.provenance import git_state
from harness.records import Example, Prompt, Rendered, Setting
from harness.score import needs_unconditional, score_task, skipped_rows
from harness.tasks.catalog import expand_suites, resolve_task, search_path, shadowing
from harness.tasks.data import Split, TaskData, load_task_data, resolve_data_dir
from harness.tasks.kinds import KINDS, alternatives, render, requests_for, without_demonstrations
from harness.tasks.prompts import build_prompt, check_pool, fit_prompt
from harness.tasks.spec import TaskSpec
from harness.train.finetune import NoTrainSplit, checkpoint_folder, identity, load_train


@dataclass(frozen=True)
class PreparedTask:
    spec: TaskSpec
    data: TaskData
    examples: tuple[Example, ...]  # the evaluated slice of the eval split
    prompts: tuple[tuple[Prompt, Rendered], ...]  # every example x (setting, k, seed), with its rendered example
    train: Split | None = None  # the FT setting's training data, when it was asked for and exists
    unavailable: tuple[tuple[Setting, int, str], ...] = ()  # (setting, k, reason): shown as n/a, never a gap
    warnings: tuple[str, ...] = ()  # fallbacks taken (demonstrations from the eval split, no train split)


@dataclass(frozen=True)
class RunOutput:
    scores: tuple[dict[str, Any], ...]  # rows of the long table
    samples: tuple[dict[str, Any], ...]  # one per example x prompt variant
    tasks: tuple[PreparedTask, ...]
    model: dict[str, Any]
    seconds: float
    git: dict[str, Any] = field(default_factory=dict)  # the checkout's state when the run started
    finetune: dict[str, dict] = field(default_factory=dict)  # task -> lineage of its FT checkpoint
    warnings: tuple[str, ...] = ()  # every task's fallbacks: stderr, run.json "warnings", the report's Warnings
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it could not run (--skip-invalid)


def prepare(config: RunConfig) -> list[PreparedTask]:
    """Load and check every task, its data and its prompts, before any model work."""
    return prepare_all(config)[0]


def prepare_all(config: RunConfig) -> tuple[list[PreparedTask], dict[str, str]]:
    """The tasks that can run, and task name -> why for the others (kept only with --skip-invalid).

    Every task is tried, so one error lists every task that cannot run (one line each), not just the first."""
    data_dir, dirs = resolve_data_dir(config.data_dir), search_path(config.tasks_dirs)
    names = expand_suites(config.tasks, dirs, data_dir)
    for line in shadowing(dirs, {*config.tasks, *names}):
        say(line)
    specs, skipped, errors = [], {}, []
    for name in names:
        try:
            specs.append(resolve_task(name, dirs, data_dir))
        except UnknownName:
            raise  # a typo in --tasks stops the run even with --skip-invalid
        except HarnessError as e:
            skipped[name] = str(e)
            errors.append(e)
    for spec in specs:  # results are keyed by task name (e.g. tasks/piqa.toml and lmeval:piqa.yaml are both piqa)
        same = sorted({str(Path(other.path).resolve()) for other in specs if other.name == spec.name})
        if len(same) > 1:
            raise HarnessError(f"--tasks: {len(same)} tasks are named {spec.name!r} ({', '.join(same)}); "
                               "their results would mix: run them separately")
    tasks = []
    for spec in specs:
        try:
            tasks.append(_prepare_task(spec, data_dir, config))
        except HarnessError as e:
            skipped[spec.name] = str(e)
            errors.append(e)
    if len(skipped) == 1 and not config.skip_invalid:  # its own one-line error, as when it runs alone
        if not tasks:
            raise errors[0]
        raise HarnessError(f"{errors[0]} (or pass --skip-invalid to run the other {len(tasks)} tasks)")
    if skipped and not config.skip_invalid:
        lines = "".join(f"\n  {name}: {reason}" for name, reason in skipped.items())
        hint = f"fix them, or pass --skip-invalid to run the other {len(tasks)}" if tasks else "fix them"
        raise HarnessError(f"{len(skipped)} of {len(tasks) + len(skipped)} tasks cannot run ({hint}):{lines}")
    if skipped and not tasks:
        raise HarnessError(f"--skip-invalid: none of the {len(skipped)} tasks can run:" +
                           "".join(f"\n  {name}: {reason}" for name, reason in skipped.items()))
    for name, reason in skipped.items():
        say(f"skipping {name} (--skip-invalid): {reason}")
    for message in dict.fromkeys(w for t in tasks for w in t.warnings):
        warn(message)
    return tasks, skipped


def _prepare_task(spec: TaskSpec, data_dir: Path | None, config: RunConfig) -> PreparedTask:
    data = load_task_data(spec, data_dir)
    examples = data.eval.examples[: config.limit]
    plans, train, unavailable = _applicable(spec, data, data_dir, config)
    warnings = [data.warning] if data.warning and any(k > 0 for _, k, _ in plans) else []
    warnings += [f"task {spec.name}: FT not run: {reason}" for s, _, reason in unavailable
                 if s is Setting.FT and spec.data.train_split is not None]
    for _, k, _ in plans:
        check_pool(spec, data.demos.examples, data.demos is data.eval, k)
    memo: dict[str, Rendered] = {}  # example id -> its rendering: each example is rendered once

    def rendered(ex: Example) -> Rendered:
        if ex.id not in memo:
            memo[ex.id] = render(spec, ex)
        return memo[ex.id]

    eval_rendered = [rendered(ex) for ex in examples]  # bad data fails here, before the model loads
    for ex in touched(train, data):  # and every example FT reads: it runs after the other settings are scored
        rendered(ex)
    prompts = tuple((build_prompt(spec, ex, setting, k, seed, data.demos.examples, rendered), r)
                    for ex, r in zip(examples, eval_rendered, strict=True) for setting, k, seed in plans)
    return PreparedTask(spec, data, examples, prompts, train, tuple(unavailable), tuple(warnings))


def touched(train: Split | None, data: TaskData) -> tuple[Example, ...]:
    """The examples FT reads besides the eval slice: the train split, and the whole eval split (its overlap check
    renders it). Demonstrations are rendered as prompts draw them, also before any model work; `harness validate`
    renders the whole pool (rendering sst2's 67k train rows on every run would cost seconds)."""
    return (*data.eval.examples, *train.examples) if train is not None else ()


def _applicable(spec: TaskSpec, data: TaskData, data_dir: Path | None, config: RunConfig):
    """(plans that apply to the task, its FT training split or None, (setting, k, reason) of the others)."""
    plans, unavailable = config.prompt_plans(), []
    if reason := without_demonstrations(spec.kind):
        shots = dict.fromkeys((s, k) for s, k, _ in plans if s in (Setting.OS, Setting.FS))
        unavailable += [(s, k, f"no demonstrations: {reason}") for s, k in shots]
        plans = [(s, k, seed) for s, k, seed in plans if s not in (Setting.OS, Setting.FS)]
    train = None
    if any(s is Setting.FT for s, _, _ in plans):
        try:
            train = load_train(spec, data_dir, data.eval, config.finetune.force)
        except NoTrainSplit as e:
            unavailable.append((Setting.FT, 0, str(e)))
            plans = [plan for plan in plans if plan[0] is not Setting.FT]
    return plans, train, unavailable


def fit(t: PreparedTask, model: LanguageModel) -> PreparedTask:
    """Drop whole demonstrations until each prompt and its longest continuation fit the model."""
    budget = KINDS[t.spec.kind].budget
    if budget is None:
        return t
    tokens = budget(t.spec, model.max_length)
    fitted = []
    for p, r in t.prompts:
        longest = max((extra + cont for extra, cont in alternatives(t.spec, r)), key=len, default="")
        fitted.append((fit_prompt(p, longest, model.count_tokens, tokens) if p.demos else p, r))
    return replace(t, prompts=tuple(fitted))


def requests_of(t: PreparedTask, ft: bool) -> list:
    """The requests of a task's FT prompts (ft=True) or of all its other prompts."""
    unconditional = needs_unconditional(t.spec)
    return [q for p, r in t.prompts if (p.setting is Setting.FT) == ft for q in requests_for(t.spec, p, r, unconditional)]


def run(config: RunConfig, model: LanguageModel | None = None, executor: Executor | None = None) -> RunOutput:
    """Evaluate `config.model` (or the given LanguageModel) on every task and prompt variant."""
    started, git = time.time(), git_state()
    if model is None:
        resolve(config.model)  # an unknown name fails before any data is read
    tasks, skipped = prepare_all(config)
    check_model(config.model if model is None else model, tasks)
    executor = executor or executor_for(config)  # a cluster that cannot be joined fails before the model loads
    if model is None:
        model = model_for(config, tasks)
    tasks = [fit(t, model) for t in tasks]
    plan = make_plan(q for t in tasks for q in requests_of(t, ft=False))
    results = plan.join(executor.execute(plan, model))
    lineages = {}
    for t, lineage in finetuned(model, tasks, config, executor):  # FT: the ZS prompts, scored by the tuned model
        lineages[t.spec.name] = lineage
        tuned = load_model(lineage["model"], config.device, config.batch_tokens, config.dtype, config.fuse)
        ft_plan = make_plan(requests_of(t, ft=True))
        results |= ft_plan.join(executor.execute(ft_plan, tuned))
        del tuned
    described = model.describe()
    scored = [score_task(t.spec, t.prompts, t.unavailable, results, described["name"]) for t in tasks]
    rows = [r for s in scored for r in s.rows]
    rows += [r for name, reason in skipped.items() for r in skipped_rows(described["name"], name, reason, config)]
    return RunOutput(tuple(rows), tuple(x for s in scored for x in s.samples), tuple(tasks), described,
                     time.time() - started, git, lineages, tuple(w for t in tasks for w in t.warnings), skipped)


def model_for(config: RunConfig, tasks: list[PreparedTask]) -> LanguageModel:
    """`config.model`, loaded when a request first needs it when results are cached (a fully cached rerun
    loads nothing: models/lazy.py), else now; FT trains the weights, so it loads them now."""
    if config.cache and all(t.train is None for t in tasks):
        return LazyModel(LoadOptions(config.model, config.device, config.batch_tokens, config.dtype, config.fuse),
                         lambda: load_model(config.model, config.device, config.batch_tokens, config.dtype, config.fuse))
    say(f"loading model {config.model}")
    return load_model(config.model, config.device, config.batch_tokens, config.dtype, config.fuse)


def executor_for(config: RunConfig) -> Executor:
    """The one place where --executor picks who runs the plan, and where the result cache is checked (writable,
    with room to spare) before any model work."""
    cache = result_cache_path() if config.cache else None
    if cache:
        open_checked(cache)
    match config.executor:
        case ExecutorKind.LOCAL:
            return LocalExecutor(cache)
        case ExecutorKind.RAY:
            from harness.execution.cluster import ClusterOptions, RayExecutor

            options = ClusterOptions(config.ray_address, config.workers or DEFAULT_WORKERS, config.device,
                                     config.dtype, config.batch_tokens, config.shard_retries, fuse=config.fuse)
            return RayExecutor(cache, options)


def check_model(model: str | LanguageModel, tasks: list[PreparedTask]) -> None:
    """Fail with one line, before any model work, when the model cannot serve what the tasks need."""
    kinds = {KINDS[t.spec.kind].request_kind for t in tasks}
    finetune = any(t.train is not None for t in tasks)
    if isinstance(model, str):
        check_serves(model, kinds, finetune)
    elif missing := kinds - model.kinds:
        raise HarnessError(f"{model.name}: serves no {', '.join(sorted(k.value for k in missing))} requests, "
                           "which the tasks need")
    elif finetune and not isinstance(model, Trainable):
        raise HarnessError(f"--settings ft: {type(model).__name__} has no trainable weights (needs a transformers "
                           "or reference model)")


def finetuned(model: Trainable, tasks: list[PreparedTask], config: RunConfig, executor: Executor) -> list[tuple]:
    """(task, lineage of its FT checkpoint) for every task with a train split: each trained once (by the executor,
    in parallel where it can), then reused from <output_dir>/.finetune/<task>-<hash of base weights, task file,
    data and hyperparameters>."""
    wanted = [t for t in tasks if t.train is not None]
    jobs = [FinetuneJob(t.spec, t.train, t.data.eval, config.finetune,
                        checkpoint_folder(Path(config.output_dir) / ".finetune", t.spec,
                                          identity(model, t.spec, t.train, t.data.eval, config.finetune)))
            for t in wanted]
    lineages = executor.finetune(jobs, model) if jobs else []
    for t, job, lineage in zip(wanted, jobs, lineages, strict=True):
        say(f"FT {lineage_summary(t.spec.name, lineage)}; scoring {lineage['model']}")
    return [(t, lineage | {"folder": str(job.folder)}) for t, job, lineage in zip(wanted, jobs, lineages, strict=True)]


def evaluate(model: str | LanguageModel = DEFAULT_MODEL, tasks=None, settings=None, **kwargs):
    """Python API: evaluate and return the long pandas table. No run folder is written, and the
    result cache is off unless cache=True (then it is the user's, as for `harness run`).

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
        output = run(RunConfig(model=model, **fields))
    else:
        output = run(RunConfig(model=getattr(model, "name", "model"), **fields), model=model)
    return pd.DataFrame(list(output.scores))
