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
from harness.contamination.study import load_study
from harness.contamination.subsets import Contamination, coverage, score_subsets
from harness.errors import HarnessError, UnknownName, say, warn
from harness.execution import cached
from harness.execution.cache import open_checked
from harness.execution.executor import Executor, FinetuneJob, LocalExecutor
from harness.execution.plan import make_plan
from harness.files import result_cache_path
from harness.lineage import Lineage
from harness.models.base import LanguageModel, Trainable
from harness.models.lazy import LazyModel
from harness.models.registry import LoadOptions, ModelName, check_serves, load_model, load_options
from harness.provenance import git_state
from harness.records import Example, Prompt, Rendered, ScoreRow, Setting, Variant
from harness.samples import Sample
from harness.score import Unavailable, score_task, skipped_rows
from harness.tasks.catalog import expand_suites, resolve_task, search_path, shadowing
from harness.tasks.data import Split, TaskData, load_task_data, resolve_data_dirs
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
    unavailable: tuple[Unavailable, ...] = ()  # variants that cannot run and why: shown as n/a, never a gap
    warnings: tuple[str, ...] = ()  # fallbacks taken (demonstrations from the eval split, no train split)


@dataclass(frozen=True)
class RunOutput:
    scores: tuple[ScoreRow, ...]  # rows of the long table
    samples: tuple[Sample, ...]  # one per example x prompt variant
    tasks: tuple[PreparedTask, ...]
    model: dict[str, Any]
    seconds: float
    git: dict[str, Any] = field(default_factory=dict)  # the checkout's state when the run started
    finetune: dict[str, Lineage] = field(default_factory=dict)  # task -> lineage of its FT checkpoint
    warnings: tuple[str, ...] = ()  # every task's fallbacks: stderr, run.json "warnings", the report's Warnings
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it could not run (--skip-invalid)
    contamination: Contamination | None = None  # --overlap: the study used, dirty / clean scores (contamination/)


def prepare(config: RunConfig) -> list[PreparedTask]:
    """Load and check every task, its data and its prompts, before any model work."""
    return prepare_all(config)[0]


def prepare_all(config: RunConfig) -> tuple[list[PreparedTask], dict[str, str]]:
    """The tasks that can run, and task name -> why for the others (kept only with --skip-invalid).

    Every task is tried, so one error lists every task that cannot run (one line each), not just the first."""
    data_dir, dirs = resolve_data_dirs(config.data_dir), search_path(config.tasks_dirs)
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
    warnings = [data.warning] if data.warning and any(v.k > 0 for v in plans) else []
    warnings += [f"task {spec.name}: FT not run: {u.reason}" for u in unavailable
                 if u.variant.setting is Setting.FT and spec.data.train_split is not None]
    for v in plans:
        check_pool(spec, data.demos.examples, data.demos is data.eval, v.k)
    memo: dict[str, Rendered] = {}  # example id -> its rendering: each example is rendered once

    def rendered(ex: Example) -> Rendered:
        if ex.id not in memo:
            memo[ex.id] = render(spec, ex)
        return memo[ex.id]

    eval_rendered = [rendered(ex) for ex in examples]  # bad data fails here, before the model loads
    for ex in touched(train, data):  # and every example FT reads: it runs after the other settings are scored
        rendered(ex)
    prompts = tuple((build_prompt(spec, ex, v.setting, v.k, v.seed, data.demos.examples, rendered), r)
                    for ex, r in zip(examples, eval_rendered, strict=True) for v in plans)
    return PreparedTask(spec, data, examples, prompts, train, tuple(unavailable), tuple(warnings))


def touched(train: Split | None, data: TaskData) -> tuple[Example, ...]:
    """The examples FT reads besides the eval slice: the train split, and the whole eval split (its overlap check
    renders it). Demonstrations are rendered as prompts draw them, also before any model work; `harness validate`
    renders the whole pool (rendering sst2's 67k train rows on every run would cost seconds)."""
    return (*data.eval.examples, *train.examples) if train is not None else ()


def _applicable(spec: TaskSpec, data: TaskData, data_dir: Path | None, config: RunConfig):
    """(variants that apply to the task, its FT training split or None, the others and why)."""
    plans, unavailable = config.prompt_plans(), []
    if reason := without_demonstrations(spec.kind):
        shots = dict.fromkeys(Variant(v.setting, v.k) for v in plans if v.setting in (Setting.ONE_SHOT, Setting.FS))
        unavailable += [Unavailable(v, f"no demonstrations: {reason}") for v in shots]
        plans = [v for v in plans if v.setting not in (Setting.ONE_SHOT, Setting.FS)]
    train = None
    if any(v.setting is Setting.FT for v in plans):
        try:
            train = load_train(spec, data_dir, data.eval, config.finetune.force)
        except NoTrainSplit as e:
            unavailable.append(Unavailable(Variant(Setting.FT, 0), str(e)))
            plans = [v for v in plans if v.setting is not Setting.FT]
    return plans, train, unavailable


def fit(t: PreparedTask, model: LanguageModel) -> PreparedTask:
    """Drop whole demonstrations until each prompt and its longest continuation fit the model."""
    budget = KINDS[t.spec.kind].budget
    if budget is None:
        return t
    tokens = budget(t.spec, model.max_length)
    if tokens <= 0:  # a generation's max_new_tokens fills the whole window: one line, before any request is scored
        raise HarnessError(f"{t.spec.path}: prompt.max_new_tokens {t.spec.prompt.max_new_tokens} leaves no room for "
                           f"a context in the {model.max_length} positions of {model.name}; lower it in the task "
                           "file or use a model with a longer context")
    fitted = []
    for p, r in t.prompts:
        longest = max((extra + cont for extra, cont in alternatives(t.spec, r)), key=len, default="")
        fitted.append((fit_prompt(p, longest, model.count_tokens, tokens) if p.demos else p, r))
    return replace(t, prompts=tuple(fitted))


def requests_of(t: PreparedTask, ft: bool) -> list:
    """The requests of a task's FT prompts (ft=True) or of all its other prompts."""
    return [q for p, r in t.prompts if (p.setting is Setting.FT) == ft for q in requests_for(t.spec, p, r)]


def run(config: RunConfig, model: LanguageModel | None = None, executor: Executor | None = None) -> RunOutput:
    """Evaluate `config.model` (or the given LanguageModel) on every task and prompt variant."""
    started, git = time.time(), git_state()
    # the model as one value, its name read once: a bad name or --model-option fails before any data is read
    options = load_options(config) if model is None else None
    study = load_study(config.overlap) if config.overlap is not None else None  # read and checked before the data
    tasks, skipped = prepare_all(config)
    covered = coverage(study, {t.spec.name: [ex.id for ex in t.examples] for t in tasks}) if study else None
    for message in covered.warnings if covered else ():
        warn(message)
    check_model(options.model if options else model, tasks)
    cache = result_cache(config)
    executor = executor or executor_for(config, options)
    if model is None:
        model = model_for(options, config, tasks)
    tasks = [fit(t, model) for t in tasks]
    plan = make_plan(q for t in tasks for q in requests_of(t, ft=False))
    results = plan.join(cached.execute(executor, plan, model, cache))
    lineages = {}
    for t, lineage in finetuned(model, tasks, config, executor):  # FT: the ZS prompts, scored by the tuned model
        lineages[t.spec.name] = lineage
        name = lineage.model  # the base model's load options, another name
        tuned = load_model(replace(options, name=name) if options else load_options(replace(config, model=name)))
        ft_plan = make_plan(requests_of(t, ft=True))
        results |= ft_plan.join(cached.execute(executor, ft_plan, tuned, cache))
        del tuned
    described = model.describe()
    scored = [score_task(t.spec, t.prompts, t.unavailable, results, described["name"]) for t in tasks]
    rows = [r for s in scored for r in s.rows]
    rows += [r for name, reason in skipped.items() for r in skipped_rows(described["name"], name, reason,
                                                                           config.prompt_plans())]
    samples = tuple(x for s in scored for x in s.samples)
    found = score_subsets(covered, {t.spec.name: t.spec.metrics for t in tasks}, samples, described["name"]) \
        if covered else None
    warnings = tuple(w for t in tasks for w in t.warnings) + (covered.warnings if covered else ())
    return RunOutput(tuple(rows), samples, tuple(tasks), described, time.time() - started, git, lineages, warnings,
                     skipped, found)


def model_for(options: LoadOptions, config: RunConfig, tasks: list[PreparedTask]) -> LanguageModel:
    """The model `options` describe, loaded when a request first needs it when results are cached (a fully
    cached rerun loads nothing: models/lazy.py), else now; FT trains the weights, so it loads them now."""
    if config.cache and all(t.train is None for t in tasks):
        return LazyModel(options, load_model)
    say(f"loading model {options.name}")
    return load_model(options)


def result_cache(config: RunConfig) -> Path | None:
    """The result cache the run reads and writes (None: --no-cache), checked before any model work: writable,
    with room to spare."""
    path = result_cache_path() if config.cache else None
    if path:
        open_checked(path)
    return path


def executor_for(config: RunConfig, options: LoadOptions | None = None) -> Executor:
    """The one place where --executor picks who runs the plan (Ray workers load the model `options` describe).
    Nothing connects here: a Ray executor joins its cluster when it first has work."""
    match config.executor:
        case ExecutorKind.LOCAL:
            return LocalExecutor()
        case ExecutorKind.RAY:
            from harness.execution.cluster import ClusterOptions, RayExecutor

            workers = config.workers or DEFAULT_WORKERS
            return RayExecutor(ClusterOptions(config.ray_address, workers, config.shard_retries, load=options))


def check_model(model: ModelName | LanguageModel, tasks: list[PreparedTask]) -> None:
    """Fail with one line, before any model work, when the model cannot serve what the tasks need."""
    kinds = {KINDS[t.spec.kind].request_kind for t in tasks}
    finetune = any(t.train is not None for t in tasks)
    if isinstance(model, ModelName):
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
        say(f"FT {lineage.summary(t.spec.name)}; scoring {lineage.model}")
    return [(t, lineage.kept_in(str(job.folder))) for t, job, lineage in zip(wanted, jobs, lineages, strict=True)]


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
