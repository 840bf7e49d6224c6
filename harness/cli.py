"""Command line: the `harness` subcommands (the list `harness --help` shows is made from the subparsers). Flags map
1:1 onto RunConfig, FinetuneConfig (`--ft-<field>` in `run`) and PretrainConfig fields (flags.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from harness.config import LOAD_FIELDS, TASKS_DIR_HELP, FinetuneConfig, PretrainConfig, RunConfig
from harness.errors import HarnessError
from harness.files import WRITE_ERRNOS, release, result_cache_path, why
from harness.flags import DATA_FIELDS, Parser, add_fields, field_values, fields_from_args
from harness.interrupt import describe, exit_code, sigterm_as_interrupt


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on tasks in ZS / 1S / FS settings and write a run folder")
    add_fields(run, RunConfig)  # one flag per field, its help from the field (config.py)
    add_fields(run.add_argument_group("FT setting (fine-tuned checkpoints are kept in <output-dir>/.finetune)"),
               FinetuneConfig, prefix="ft-")

    listing = sub.add_parser("list", help="show every task file: kind, splits, metrics, where its data is")
    add_fields(listing, RunConfig, only=DATA_FIELDS)
    listing.add_argument("--tasks-dir", action="append", default=[], metavar="DIR", help=TASKS_DIR_HELP)

    validate = sub.add_parser("validate", help="check a task and every example it would read; "
                              "show a prompt and its gold answer")
    validate.add_argument("task", help="a task file (.toml) or a task name (piqa, bigbench_<name>)")
    add_fields(validate, RunConfig, only=DATA_FIELDS)

    report = sub.add_parser("report", help="merge run folders into one report (Markdown, LaTeX, HTML, plots)")
    report.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR",
                        help="run folders (several models or settings)")
    report.add_argument("--out", type=Path, default=None,
                        help="folder for report.md/.tex/.html and plots/ (default: the run folder, when there is one)")
    report.add_argument("--title", default=None, help="page title (default: the run names)")
    report.add_argument("--published-dir", type=Path, default=None,
                        help="folder of gpt3_table_h1.csv (default: $HARNESS_PUBLISHED_DIR, "
                        "else shared/published beside the checkout)")

    compare = sub.add_parser("compare", help="show what changed between two runs (scores, paired tests, run.json), "
                             "or a run against lm-eval output (--log_samples) of the same model")
    compare.add_argument("run_a", type=Path, metavar="RUN_A")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="a run folder or an lm-eval --output_path folder")
    compare.add_argument("--task-map", action="append", default=None, metavar="LMEVAL_TASK=HARNESS_TASK",
                         help="pair an lm-eval task with a harness task of another name (repeatable)")

    imports = sub.add_parser("import-lmeval", help="translate an lm-evaluation-harness task YAML into a task file")
    imports.add_argument("yaml", type=Path, metavar="PATH.yaml")
    imports.add_argument("--out", type=Path, default=None,
                         help="the task file to write (default: tasks/<task>.toml in a checkout, "
                         "./<task>.toml for an installed harness)")

    cache = sub.add_parser("cache", help="the per-user result cache: where it is and what it holds, or clear it")
    cache.add_argument("action", choices=["info", "clear"], help="info: path, size, results per model; clear: remove")
    cache.add_argument("--model", default=None, help="clear: only this model's results (a name or fingerprint shown "
                       "by info; default: all)")

    add_finetune_parser(sub)
    add_overlap_parser(sub)
    add_pretrain_parser(sub)
    parser.description = _description(sub)  # last: it names every subcommand added above
    return parser


def _description(subcommands) -> str:
    """`harness --help`'s description, naming every subcommand of the subparsers action `subcommands`."""
    return ("Score causal language models on NLP tasks in zero-shot, one-shot, few-shot and fine-tuned settings. "
            f"Subcommands: {', '.join(subcommands.choices)}; harness <subcommand> --help shows its flags.")


def cmd_import_lmeval(args: argparse.Namespace) -> int:
    from harness.files import in_checkout
    from harness.tasks.catalog import TASKS_DIR
    from harness.tasks.lmeval_import import import_file

    # a checkout's tasks/ folder; an installed harness never writes into its own package: the working folder
    out, task = import_file(args.yaml, args.out, TASKS_DIR if in_checkout() else Path.cwd())
    engine = "Jinja (sandboxed)" if task.prompt.template else "$field"
    print(f"wrote {out}: task {task.name}, {task.kind.value}, {engine} templates, metrics {', '.join(task.metrics)}; "
          f"check it with: harness validate {out}")
    return 0


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(**field_values(RunConfig, args), finetune=fields_from_args(FinetuneConfig, args, prefix="ft_"))


def cmd_run(args: argparse.Namespace) -> int:
    from harness.pipeline import run
    from harness.reporting.pages import terminal_summary
    from harness.reporting.results import run_folder, write_run

    config = config_from_args(args)
    made = not Path(config.output_dir).exists()
    folder = run_folder(config)  # checked writable and reserved before any model work
    try:
        output = run(config)
        report = write_run(output, config, folder)
    finally:
        release(folder)
        if made and not any(folder.parent.iterdir()):  # a failed run leaves no empty --output-dir behind
            folder.parent.rmdir()
    print(terminal_summary(report))
    extra = ", lm-eval/" if "lm-eval" in config.formats else ""
    print(f"\nwrote {folder}/ (scores.csv, samples.jsonl, run.json, report.md/.tex/.html, plots/{extra}) "
          f"in {output.seconds:.0f} s; the whole report: {folder / 'report.md'} (or report.html)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.contamination.runfiles import read_files
    from harness.reporting.build import with_memory
    from harness.reporting.pages import write_report
    from harness.reporting.runs import lineages, merge_runs

    if args.out is None and len(args.runs) > 1:
        raise HarnessError("--out: give a folder for a report that merges several runs")
    frame, samples, runs = merge_runs(args.runs)
    out = args.out or args.runs[0]
    title = args.title or "Report: " + ", ".join(r.folder.name for r in runs)
    finetune = {r.manifest.get("model", {}).get("name", r.folder.name): lineages(r.manifest) for r in runs}
    models = {r.manifest.get("model", {}).get("name", r.folder.name):
              with_memory(r.manifest.get("model", {}), r.manifest) for r in runs}
    warnings = [(f"{r.folder.name}: " if len(runs) > 1 else "") + w
                for r in runs for w in r.manifest.get("warnings", [])]
    studies = tuple(c for r in runs if (c := read_files(r.folder, r.manifest)) is not None)  # runs with --overlap
    written = write_report(out, frame, samples, title, finetune, models, args.published_dir, warnings, studies)
    print((out / "report.md").read_text())
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.reporting.compare import compare_text
    from harness.reporting.lmeval_compare import compare_lmeval_text, parse_task_map
    from harness.reporting.lmeval_io import is_lmeval_folder, load_lmeval
    from harness.reporting.runs import load_run

    task_map = parse_task_map(args.task_map)
    run, other = (args.run_b, args.run_a) if is_lmeval_folder(args.run_a) else (args.run_a, args.run_b)
    if is_lmeval_folder(other):
        print(compare_lmeval_text(load_run(run), load_lmeval(other), task_map, str(other)))
    elif task_map:
        raise HarnessError("--task-map: only when one folder is lm-eval output (results_*.json)")
    else:
        print(compare_text(load_run(args.run_a), load_run(args.run_b)))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness.execution.cache import clear, info

    if args.model is not None and args.action != "clear":
        raise HarnessError("--model: only with harness cache clear")
    print(info(result_cache_path()) if args.action == "info" else clear(result_cache_path(), args.model))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harness.tasks.listing import list_tasks

    list_tasks(field_values(RunConfig, args, only=DATA_FIELDS)["data_dir"], args.tasks_dir)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.tasks.validate import validate

    validate(args.task, field_values(RunConfig, args, only=DATA_FIELDS)["data_dir"])
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
    """`harness finetune`: the FT setting's training alone, one flag per FinetuneConfig field, and the model's
    load flags as `harness run` has them (--model, --device, --dtype, --batch-tokens, --no-fuse, --model-option)."""
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a model on a task's train split (the FT setting) into a loadable folder",
        description="Fine-tune on a task's train split with the zero-shot prompt format, loss on the answer tokens.")
    add_fields(parser, RunConfig, only=LOAD_FIELDS)
    parser.add_argument("--task", required=True, help="task name or .toml path")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the fine-tuned model folder (reused when it holds the same fine-tuning)")
    add_fields(parser, RunConfig, only=DATA_FIELDS)
    parser.add_argument("--tasks-dir", action="append", default=[], metavar="DIR", help=TASKS_DIR_HELP)
    add_fields(parser, FinetuneConfig)


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness.errors import say
    from harness.models.registry import check_serves, load_model, load_options
    from harness.tasks.catalog import resolve_task, search_path, shadowing
    from harness.tasks.data import load_task_data, resolve_data_dirs
    from harness.train.finetune import finetune, load_train

    config = fields_from_args(FinetuneConfig, args)
    options = load_options(RunConfig(**field_values(RunConfig, args, only=LOAD_FIELDS)))  # checked, loads nothing
    check_serves(options.model, (), finetune=True)
    data_dir = resolve_data_dirs(field_values(RunConfig, args, only=DATA_FIELDS)["data_dir"])
    dirs = search_path(args.tasks_dir)
    for line in shadowing(dirs, {args.task}):
        say(line)
    spec = resolve_task(args.task, dirs, data_dir)
    data = load_task_data(spec, data_dir)
    train = load_train(spec, data_dir, data.eval, config.force)
    lineage = finetune(load_model(options), spec, train, data.eval, config, args.out)
    train, overlap = lineage.train, lineage.overlap
    print(f"trained on {train.used} of {train.available} examples of {spec.name} {train.split} ({lineage.steps} "
          f"steps, {lineage.seconds:.0f} s, final loss {lineage.final_loss:.4f}); {overlap.found} overlapping the "
          f"eval split ({overlap.checked}): {overlap.action if overlap.found else 'none'}")
    print(f"wrote {args.out}/ (lineage.json); evaluate it with: harness run --model {lineage.model} "
          f"--tasks {spec.name} --settings zs")
    return 0


def add_overlap_parser(subparsers) -> None:
    """`harness overlap`: task examples' N-gram overlap with a training corpus (flags: contamination/flags.py)."""
    from harness.contamination.flags import add_arguments

    add_arguments(subparsers.add_parser("overlap", help="mark each task example dirty or clean by N-gram overlap "
                                        "with a training corpus (GPT-3 paper, Appendix C)"))


def cmd_overlap(args: argparse.Namespace) -> int:
    from harness.contamination.run import config_from_args, run_overlap, stdout_table

    print(stdout_table(run_overlap(config_from_args(args))))
    print(f"wrote {args.out / 'overlap.csv'}, {args.out / 'study.json'}, {args.out / 'summary.md'}; score a run "
          f"on its dirty and clean examples with: harness run ... --overlap {args.out}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from harness.train.pretrain import CHECKPOINT, pretrain

    config = pretrain_config_from_args(args)
    try:
        folder = pretrain(config)
    except KeyboardInterrupt as e:
        print(f"interrupted: rerun the same command to resume from {config.out / CHECKPOINT}", file=sys.stderr)
        return exit_code(e)
    print(f"wrote {folder} (loss curve: {config.out / 'loss.csv'}, loss.png); "
          f"evaluate it with: harness run --model reference:{folder}")  # fmt: skip
    return 0


def _interrupted(args: argparse.Namespace) -> str:
    if args.command != "run":
        return "stopped"
    return ("no run folder was written; finished results are in the result cache: rerun the same command to resume"
            if args.cache else "no run folder was written (--no-cache: nothing was kept)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "list": cmd_list, "validate": cmd_validate, "report": cmd_report,
                "compare": cmd_compare, "cache": cmd_cache, "finetune": cmd_finetune, "pretrain": cmd_pretrain,
                "import-lmeval": cmd_import_lmeval, "overlap": cmd_overlap}
    try:
        with sigterm_as_interrupt():
            return handlers[args.command](args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"error: could not write {e.filename or ''} ({why(e)}): free some space or fix the folder, then rerun",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted ({describe(e)}): {_interrupted(args)}", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
