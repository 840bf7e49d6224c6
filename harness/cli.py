"""Command line: `harness run | list | validate | report | compare | finetune | pretrain`. Flags map 1:1
onto RunConfig, FinetuneConfig (`--ft-<field>` in `run`) and PretrainConfig fields."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from harness.config import (
    DEFAULT_TASKS,
    DEFAULT_WORKERS,
    DType,
    ExecutorKind,
    FinetuneConfig,
    PretrainConfig,
    RunConfig,
    parse_ints,
    parse_settings,
)
from harness.errors import HarnessError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = RunConfig()

    run = sub.add_parser("run", help="evaluate a model on tasks in ZS / 1S / FS settings and write a run folder")
    run.add_argument("--model", default=defaults.model, help="registry name, model folder, .gguf file or hub id (default: %(default)s)")
    run.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task or suite names, or .toml paths (default: %(default)s)")
    run.add_argument("--settings", default="zs,1s,fs",
                     help="comma-separated: zs, 1s, fs, ft (ft fine-tunes on each task's train split first; default: %(default)s)")
    run.add_argument("--shots", default="5", help="k for the FS setting, comma-separated for a sweep (default: %(default)s)")
    run.add_argument("--seeds", type=int, default=defaults.seeds, help="demonstration draws per 1S/FS setting (default: %(default)s)")
    run.add_argument("--limit", type=int, default=defaults.limit, help="first N examples per task; 0 = all (default: %(default)s)")
    run.add_argument("--data-dir", type=Path, default=None, help="local data folder (default: $HARNESS_DATA_DIR, else shared/data beside the checkout)")
    run.add_argument("--output-dir", type=Path, default=defaults.output_dir, help="where run folders go (default: %(default)s)")
    run.add_argument("--run-name", default=None, help="run folder name (default: <UTC time>-<model>)")
    run.add_argument("--batch-tokens", type=int, default=defaults.batch_tokens, help="padded tokens per forward pass; 0 = measured per model and device on first use, then cached (default: %(default)s)")
    run.add_argument("--device", default=defaults.device, help="torch device (default: %(default)s)")
    run.add_argument("--dtype", type=DType, choices=list(DType), default=defaults.dtype, metavar="{fp32,bf16}",
                     help="weights and activations; log-softmax stays fp32 (default: fp32)")
    run.add_argument("--no-fuse", dest="fuse", action="store_false",
                     help="run Llama-style models' RMSNorm and MLP unfused (same numbers, slower; default: fused)")
    run.add_argument("--no-cache", dest="cache", action="store_false",
                     help="neither reuse nor save results in <output-dir>/.cache (default: cache on)")
    cluster = run.add_argument_group("cluster (README: Running on a cluster)")
    cluster.add_argument("--executor", type=ExecutorKind, choices=list(ExecutorKind), default=ExecutorKind.LOCAL,
                         metavar="{local,ray}", help="who runs the requests: this process, or a Ray cluster with the "
                         "same numbers (default: local)")
    cluster.add_argument("--workers", type=int, default=None,
                         help=f"Ray workers, each loading the model once; one GPU each with --device cuda (default: {DEFAULT_WORKERS})")
    cluster.add_argument("--ray-address", default=None,
                         help="join a running cluster: auto or HOST:PORT (default: start a local one-machine cluster)")
    cluster.add_argument("--shard-retries", type=int, default=defaults.shard_retries,
                         help="attempts of a shard in all before the run stops (default: %(default)s)")
    add_fields(run.add_argument_group("FT setting (fine-tuned checkpoints are kept in <output-dir>/.finetune)"),
               FinetuneConfig, prefix="ft-")

    listing = sub.add_parser("list", help="show every task file: kind, splits, metrics, where its data is")
    listing.add_argument("--data-dir", type=Path, default=None)

    validate = sub.add_parser("validate", help="check a task file and render its first prompts")
    validate.add_argument("file", type=Path)
    validate.add_argument("--data-dir", type=Path, default=None)

    report = sub.add_parser("report", help="merge run folders into one report (Markdown, LaTeX, HTML, plots)")
    report.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (several models or settings)")
    report.add_argument("--out", type=Path, default=None,
                        help="folder for report.md/.tex/.html and plots/ (default: the run folder, when there is one)")
    report.add_argument("--title", default=None, help="page title (default: the run names)")
    report.add_argument("--published-dir", type=Path, default=None,
                        help="folder of gpt3_table_h1.csv (default: $HARNESS_PUBLISHED_DIR, else shared/published beside the checkout)")

    compare = sub.add_parser("compare", help="show what changed between two runs: scores and run.json")
    compare.add_argument("run_a", type=Path, metavar="RUN_A")
    compare.add_argument("run_b", type=Path, metavar="RUN_B")

    add_finetune_parser(sub)
    add_pretrain_parser(sub)
    return parser


def add_fields(parser, config_class, prefix: str = "", skip: int = 0) -> None:
    """One flag per dataclass field from the `skip`-th on: --<prefix><name-with-dashes>, typed by its default."""
    for f in dataclasses.fields(config_class)[skip:]:
        flag, help = "--" + prefix + f.name.replace("_", "-"), f.metadata["help"].replace("%", "%%")
        if isinstance(f.default, bool):
            parser.add_argument(flag, dest=prefix.replace("-", "_") + f.name, action="store_true", help=help)
            continue
        kind = type(f.default)  # int or float
        parser.add_argument(flag, dest=prefix.replace("-", "_") + f.name, type=kind, default=f.default,
                            metavar=kind.__name__.upper(), help=help + " (default: %(default)s)")


def fields_from_args(config_class, args: argparse.Namespace, prefix: str = ""):
    names = [f.name for f in dataclasses.fields(config_class)]
    return config_class(**{name: getattr(args, prefix + name) for name in names})


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        model=args.model,
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        settings=parse_settings(args.settings),
        shots=parse_ints("--shots", args.shots),
        seeds=args.seeds,
        limit=args.limit or None,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        run_name=args.run_name,
        batch_tokens=args.batch_tokens,
        device=args.device,
        dtype=args.dtype,
        cache=args.cache,
        fuse=args.fuse,
        finetune=fields_from_args(FinetuneConfig, args, prefix="ft_"),
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        shard_retries=args.shard_retries,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from harness.pipeline import run
    from harness.reporting.results import run_folder, write_run

    config = config_from_args(args)
    folder = run_folder(config)
    output = run(config)
    write_run(output, config, folder)
    print((folder / "report.md").read_text())
    print(f"wrote {folder}/ (scores.csv, samples.jsonl, run.json, report.md/.tex/.html, plots/) in {output.seconds:.0f} s")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.reporting.pages import write_report
    from harness.reporting.runs import merge_runs

    if args.out is None and len(args.runs) > 1:
        raise HarnessError("--out: give a folder for a report that merges several runs")
    frame, samples, runs = merge_runs(args.runs)
    out = args.out or args.runs[0]
    title = args.title or "Report: " + ", ".join(r.folder.name for r in runs)
    finetune = {r.manifest.get("model", {}).get("name", r.folder.name): r.manifest.get("finetune", {}) for r in runs}
    models = {r.manifest.get("model", {}).get("name", r.folder.name): r.manifest.get("model", {}) for r in runs}
    written = write_report(out, frame, samples, title, finetune, models, args.published_dir)
    print((out / "report.md").read_text())
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.reporting.compare import compare_text
    from harness.reporting.runs import load_run

    print(compare_text(load_run(args.run_a), load_run(args.run_b)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harness.tasks.bigbench import PREFIX, bigbench_names
    from harness.tasks.bigbench_generative import generative_names
    from harness.tasks.data import local_file, resolve_data_dir
    from harness.tasks.catalog import load_suite, suite_files, task_files
    from harness.tasks.taskfile import load_task

    data_dir = resolve_data_dir(args.data_dir)
    print(f"data dir: {data_dir or '(none found)'}")
    print(f"{'task':<16} {'kind':<16} {'eval':<11} {'demos':<11} {'FT train':<9} {'metrics':<46} data")
    for name, path in task_files().items():
        try:
            t = load_task(path)
        except HarnessError as e:
            print(f"{name:<16} INVALID: {e}")
            continue
        found = local_file(t, t.data.eval_split, data_dir)
        where = str(found) if found else (f"hub {t.data.hub} (not local)" if t.data.hub else "MISSING")
        print(f"{name:<16} {t.kind.value:<16} {t.data.eval_split:<11} {t.data.demo_split or '-':<11} "
              f"{_train_where(t, data_dir):<9} "
              f"{','.join(t.metrics):<46} {where}")
    names = bigbench_names(data_dir)
    if names:
        print(f"\nBIG-bench ({len(names)} multiple-choice tasks read from {data_dir / 'bigbench'}; "
              f"run one as {PREFIX}<name>, all as the suite 'bigbench'):")
        print("  " + ", ".join(names))
    names = generative_names(data_dir)
    if names:
        print(f"\nBIG-bench generative ({len(names)} tasks read from {data_dir / 'bigbench' / 'generative'}; "
              f"run one as {PREFIX}<name>):")
        print("  " + ", ".join(names))
    print("\nsuites:")
    for name, path in suite_files().items():
        suite = load_suite(path)
        print(f"{name:<16} {', '.join(suite.tasks)}")
    return 0


def _train_where(task, data_dir) -> str:
    """The FT train split: its name when local, 'hub' when only the hub has it, '-' when the task has none."""
    from harness.tasks.data import local_file

    split = task.data.train_split
    if split is None:
        return "-"
    return split if local_file(task, split, data_dir) else ("hub" if task.data.hub else "missing")


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.records import Setting
    from harness.tasks.data import load_task_data, resolve_data_dir
    from harness.tasks.kinds import alternatives, render, without_demonstrations
    from harness.tasks.prompts import build_prompt
    from harness.tasks.taskfile import load_task

    task = load_task(args.file)
    print(f"{args.file}: task file ok ({task.kind.value}, metrics {', '.join(task.metrics)})")
    data = load_task_data(task, resolve_data_dir(args.data_dir))
    print(f"data: {len(data.eval.examples)} examples from {data.eval.source}; demos from {data.demos.source}"
          + (f" ({data.note})" if data.note else ""))
    rendered = [render(task, ex) for ex in data.eval.examples]  # every example must render
    example = data.eval.examples[0]
    k = 0 if len(data.demos.examples) < 3 or without_demonstrations(task.kind) else 1
    prompt = build_prompt(task, example, Setting.OS if k else Setting.ZS, k, 0, data.demos.examples)
    text = prompt.text if len(prompt.text) < 2000 else prompt.text[:2000] + f" [... {len(prompt.text) - 2000} more characters]"
    print(f"--- {'one-shot' if k else 'zero-shot'} prompt for {example.id} ---\n{text}")
    for extra, cont in alternatives(task, rendered[0]):
        print(f"--- {'context + ' + repr(extra) + ', ' if extra else ''}continuation: {cont!r}")
    return 0


def add_pretrain_parser(subparsers) -> None:
    """`harness pretrain`: one flag per PretrainConfig field (--n-layer for n_layer)."""
    parser = subparsers.add_parser("pretrain", help="train the reference decoder from scratch on text files (CPU)",
                                   description="Pretrain the reference decoder from scratch on plain-text files.")
    corpus, out, *_ = dataclasses.fields(PretrainConfig)
    parser.add_argument("--corpus", type=Path, nargs="+", required=True, metavar="FILE", help=corpus.metadata["help"])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help=out.metadata["help"])
    add_fields(parser, PretrainConfig, skip=2)


def pretrain_config_from_args(args: argparse.Namespace) -> PretrainConfig:
    return fields_from_args(PretrainConfig, args)


def add_finetune_parser(subparsers) -> None:
    """`harness finetune`: the FT setting's training alone, one flag per FinetuneConfig field."""
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a model on a task's train split (the FT setting) into a loadable folder",
        description="Fine-tune on a task's train split with the zero-shot prompt format, loss on the answer tokens.")
    parser.add_argument("--model", default=RunConfig().model, help="as for harness run (default: %(default)s)")
    parser.add_argument("--task", required=True, help="task name or .toml path")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the fine-tuned model folder (reused when it holds the same fine-tuning)")
    parser.add_argument("--data-dir", type=Path, default=None, help="local data folder (default: as for harness run)")
    add_fields(parser, FinetuneConfig)


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness.tasks.data import load_task_data, resolve_data_dir
    from harness.train.finetune import finetune, load_train
    from harness.models import load_model, resolve
    from harness.tasks.catalog import resolve_task

    config = fields_from_args(FinetuneConfig, args)
    resolve(args.model)
    data_dir = resolve_data_dir(args.data_dir)
    spec = resolve_task(args.task, data_dir=data_dir)
    data = load_task_data(spec, data_dir)
    train = load_train(spec, data_dir, data.eval, config.force)
    lineage = finetune(load_model(args.model), spec, train, data.eval, config, args.out)
    overlap = lineage["overlap"]
    print(f"trained on {lineage['train']['used']} of {lineage['train']['available']} examples of {spec.name} "
          f"{lineage['train']['split']} ({lineage['steps']} steps, {lineage['seconds']:.0f} s, final loss "
          f"{lineage['final_loss']:.4f}); {overlap['found']} overlapping the eval split ({overlap['checked']}): "
          f"{overlap['action'] if overlap['found'] else 'none'}")
    print(f"wrote {args.out}/ (lineage.json); evaluate it with: harness run --model {lineage['model']} --tasks {spec.name} --settings zs")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from harness.train.pretrain import CHECKPOINT, pretrain

    config = pretrain_config_from_args(args)
    try:
        folder = pretrain(config)
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command to resume from {config.out / CHECKPOINT}", file=sys.stderr)
        return 130
    print(f"wrote {folder} (loss curve: {config.out / 'loss.csv'}, loss.png); "
          f"evaluate it with: harness run --model reference:{folder}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "list": cmd_list, "validate": cmd_validate, "report": cmd_report,
                "compare": cmd_compare, "finetune": cmd_finetune, "pretrain": cmd_pretrain}
    try:
        return handlers[args.command](args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no run folder was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
