"""Typed run settings, validated on construction. CLI flags map 1:1 onto these fields."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, suggest, unknown
from harness.records import Setting, Variant

DEFAULT_MODEL = "smollm2-135m"  # a real pretrained model shipped inside a PyPI package: works offline
DEFAULT_TASKS = ("demo",)  # the suite in tasks/suites/demo.toml: under 3 minutes on 2 CPU cores at --limit 20
DEFAULT_SETTINGS = (Setting.ZS, Setting.ONE_SHOT, Setting.FS)  # FT trains a model per task: ask for it with --settings


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyperparameters of the FT setting. Defaults suit a 135M model on 2 CPU cores: 2 epochs over at most
    256 training examples, batch 8 (64 optimizer steps; about 2 minutes for COPA with smollm2-135m)."""

    epochs: int = _f(2, "passes over the training examples (ignored when {flag:steps} is given)")
    steps: int = _f(0, "optimizer steps in all; 0 = as many as {flag:epochs} take")
    lr: float = _f(3e-5, "peak learning rate (AdamW), after a linear warmup over the first 10% of steps, "
                   "then linear decay to 0")
    batch_size: int = _f(8, "training examples per optimizer step")
    max_examples: int = _f(256, "training examples drawn from the train split (seeded); 0 = all")
    seed: int = _f(0, "seed of the example draw, the shuffling and the weights' updates")
    weight_decay: float = _f(0.0, "AdamW decay of the linear layers' weights")
    grad_clip: float = _f(1.0, "largest global gradient norm; 0 = no clipping")
    force: bool = _f(False, "train even when the train split is the eval split (results are then contaminated)")

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            _check(getattr(self, name) >= 1, name, "need a positive integer", also="ft-")
        for name in ("steps", "max_examples", "seed", "weight_decay", "grad_clip"):
            _check(getattr(self, name) >= 0, name, "must not be negative", also="ft-")
        _check(self.lr > 0, "lr", "need a positive learning rate", also="ft-")


class DType(enum.Enum):
    """Weights and activations while scoring; log-softmax is always fp32. bf16 is opt-in: see README."""

    FP32 = "fp32"
    BF16 = "bf16"


class ExecutorKind(enum.StrEnum):
    """Who runs the plan of requests: this process, or a Ray cluster (execution/cluster.py). Same numbers.
    A StrEnum: run.json records it as its value."""

    LOCAL = "local"
    RAY = "ray"


DEFAULT_WORKERS = 2  # Ray workers when --workers is not given


OUTPUT_FORMATS = ("lm-eval",)  # --format: written beside scores.csv and samples.jsonl


TASKS_DIR_HELP = ("a folder of your own task files (and suites/), searched before the built-in tasks; repeat it or "
                  "join folders with the path separator (default: $HARNESS_TASKS_PATH)")


def _flag(default, help: str, **how):
    """A RunConfig field and its `harness run` flag (flags.add_fields). `how`: flag (its name when not --<field>),
    parse (flag value -> field value; a tuple field's flag takes comma-separated text), type (for a None
    default), append (a repeatable flag), metavar, group (a help section), switch (a second flag, `Switch`, that
    adds its const to the same repeatable value). A help without "default:" gets one.

    A help names another flag as {flag:<field>} (flags.add_fields writes that field's flag, prefix included: --steps
    in `harness finetune`, --ft-steps in `harness run`), and the model registry's names as {models}, {backends}
    and {default_backend}."""
    return field(default=default, metadata={"help": help, **how})


class _NoDefault(enum.Enum):
    """What --no-default-data-dir adds to the --data-dir values: search no default data dir."""

    NO_DEFAULT = "no default data dir"


NO_DEFAULT = _NoDefault.NO_DEFAULT


@dataclass(frozen=True)
class Switch:
    """A second flag of a repeatable field: it takes no value and adds `const` to the field's list of values."""

    flag: str
    help: str
    const: object = NO_DEFAULT


def parse_data_dirs(values: tuple) -> Path | tuple[str, ...] | None:
    """The --data-dir values (with NO_DEFAULT for --no-default-data-dir) as RunConfig.data_dir: None when there are
    none (the default data dir alone), one folder as a Path (it, then the default data dir; run.json records it as a
    single folder, as before), else the whole search list as a tuple: the folders in order, then the default data
    dir when there is one, unless --no-default-data-dir."""
    folders = tuple(dict.fromkeys(str(v) for v in values if v is not NO_DEFAULT))
    with_default = NO_DEFAULT not in values
    if with_default and len(folders) <= 1:
        return Path(folders[0]) if folders else None
    if with_default:
        from harness.tasks.data import default_data_dir  # the environment and the checkout, read once here

        found = default_data_dir()
        folders += (str(found),) if found is not None and str(found) not in folders else ()
    return folders


CLUSTER = "cluster (README: Running on a cluster)"  # the help section of the Ray flags
LOAD_FIELDS = ("model", "batch_tokens", "device", "dtype", "fuse", "model_options")  # also `harness finetune`'s


@dataclass(frozen=True)
class RunConfig:
    """Everything `harness run` takes: one field per flag, its help in the field's metadata."""

    model: str = _flag(DEFAULT_MODEL, "a registry name ({models}), a model folder, a .gguf file or a hub id "
                       "(org/name); or <backend>:<spec> to choose the backend, one of {backends} (a name without one "
                       "loads with {default_backend}), as in reference:gpt2")
    tasks: tuple[str, ...] = _flag(DEFAULT_TASKS, "comma-separated task or suite names, or .toml paths",
                                   parse=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()))
    settings: tuple[Setting, ...] = _flag(
        DEFAULT_SETTINGS, "comma-separated: zs, 1s, fs, ft (ft fine-tunes on each task's train split first; "
        "default: %(default)s)", parse=lambda text: parse_settings(text))
    shots: tuple[int, ...] = _flag((5,), "k for the FS setting, comma-separated for a sweep",
                                   parse=lambda text: parse_ints("--shots", text))
    seeds: int = _flag(1, "demonstration draws per 1S/FS setting")
    limit: int | None = _flag(20, "first N examples per task; 0 = all", parse=lambda n: n or None)
    # None: the default data dir alone; a Path: it, then the default one; a tuple: exactly these (parse_data_dirs)
    data_dir: Path | tuple[str, ...] | None = _flag(
        None, "a folder of local data, repeatable. A task's relative data.local is looked up in <the task file's "
        "folder>/data/, then in each {flag:data_dir} in the order given, then in the default data dir "
        "($HARNESS_DATA_DIR, else shared/data beside the checkout); the first folder holding it serves every split. "
        "An absolute data.local is read where it is", append=True, metavar="DIR",
        parse=lambda values: parse_data_dirs(values),
        switch=Switch("--no-default-data-dir", "search only the tasks' own data/ folders and the {flag:data_dir} "
                      "folders, never the default data dir"))
    output_dir: Path = _flag(Path("results"), "where run folders go")
    run_name: str | None = _flag(None, "run folder name, a plain name (default: <UTC time>-<model>, with -2, -3, ... "
                                 "when taken)", type=str)
    batch_tokens: int = _flag(0, "padded tokens per forward pass; 0 = measured per model and device on first use, "
                              "then cached")
    device: str = _flag("cpu", "torch device")
    dtype: DType = _flag(DType.FP32, "weights and activations; log-softmax stays fp32 (default: fp32)")
    fuse: bool = _flag(True, "run Llama-style models' RMSNorm and MLP unfused (same numbers, slower; default: fused)",
                       flag="--no-fuse")
    model_options: tuple[str, ...] = _flag(
        (), "an option of the model's backend, repeatable (api: url=URL, timeout=SECONDS; README: Backends)",
        flag="--model-option", append=True, metavar="KEY=VALUE")
    cache: bool = _flag(True, "neither reuse nor save results in the result cache, $HARNESS_CACHE/results.sqlite "
                        "(default: cache on; see harness cache info)", flag="--no-cache")
    skip_invalid: bool = _flag(False, "run the tasks that can run; the others become n/a rows with the reason "
                               "(default: stop)")
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # the FT setting's training: --ft-<field>
    executor: ExecutorKind = _flag(ExecutorKind.LOCAL, "who runs the requests: this process, or a Ray cluster with "
                                   "the same numbers (default: local)", group=CLUSTER)
    workers: int | None = _flag(None, "Ray workers, each loading the model once; one GPU each with {flag:device} cuda "
                                f"(default: {DEFAULT_WORKERS})", type=int, group=CLUSTER)
    ray_address: str | None = _flag(None, "join a running cluster: auto or HOST:PORT (default: start a local "
                                    "one-machine cluster)", type=str, group=CLUSTER)
    shard_retries: int = _flag(3, "attempts of a shard in all before the run stops", group=CLUSTER)
    tasks_dirs: tuple[str, ...] = _flag((), TASKS_DIR_HELP, flag="--tasks-dir", append=True, metavar="DIR")
    formats: tuple[str, ...] = _flag((), "also write the run in lm-eval 0.4's layout under <run folder>/lm-eval/ "
                                     "(README: Checking against lm-eval)", flag="--format", append=True,
                                     metavar="lm-eval")
    # the contamination study (harness/contamination/) a run scores its dirty and clean examples against
    overlap: Path | None = _flag(None, "an overlap study, the folder `harness overlap` wrote: every metric is also "
                                 "scored on the study's dirty and clean examples", type=Path, metavar="DIR")

    def __post_init__(self):
        if not self.tasks:
            raise HarnessError("--tasks: give at least one task")
        if not self.settings:
            raise HarnessError("--settings: give at least one of zs, 1s, fs, ft")
        if any(k < 0 for k in self.shots) or not self.shots:
            raise HarnessError(f"--shots: need non-negative integers, got {list(self.shots)}")
        for name in self.formats:
            if name not in OUTPUT_FORMATS:
                raise HarnessError(f"--format {name}: not a known output format (known: {', '.join(OUTPUT_FORMATS)})")
        if self.seeds < 1:
            raise HarnessError(f"--seeds: need at least 1, got {self.seeds}")
        if self.limit is not None and self.limit < 1:
            raise HarnessError(f"--limit: need a positive number of examples, got {self.limit}")
        if self.batch_tokens < 0:
            raise HarnessError(f"--batch-tokens: need a positive number (or 0 for the device's default), "
                               f"got {self.batch_tokens}")
        for item in self.model_options:
            if "=" not in item or not item.partition("=")[0]:
                raise HarnessError(f"--model-option {item}: expected KEY=VALUE, as in "
                                   "url=http://127.0.0.1:8000/v1/completions")
        if self.executor is ExecutorKind.LOCAL:
            for flag, value in (("--workers", self.workers), ("--ray-address", self.ray_address)):
                if value is not None:
                    raise HarnessError(f"{flag}: only with --executor ray")
        if self.workers is not None and self.workers < 1:
            raise HarnessError(f"--workers: need at least 1, got {self.workers}")
        if self.shard_retries < 1:
            raise HarnessError(f"--shard-retries: need at least 1, got {self.shard_retries}")
        check_device(self.device, here=self.executor is ExecutorKind.LOCAL)
        if self.run_name is not None:
            check_run_name(self.run_name)

    def prompt_plans(self) -> list[Variant]:
        """Every prompt variant of an example; ZS has one seed.

        FS with k = 0 is the zero-shot prompt: a sweep `--shots 0,1,2,...` runs it once, as ZS (k = 0 on plots).
        """
        zero = Variant(Setting.ZS, 0)
        plans = [zero] if Setting.FS in self.settings and 0 in self.shots else []
        for setting in self.settings:
            match setting:
                case Setting.ZS:
                    plans += [zero] if zero not in plans else []
                case Setting.ONE_SHOT:
                    plans += [Variant(setting, 1, s) for s in range(self.seeds)]
                case Setting.FS:
                    plans += [Variant(setting, k, s) for k in self.shots if k > 0 for s in range(self.seeds)]
                case Setting.FT:  # the zero-shot prompt, scored by the model fine-tuned on the task
                    plans.append(Variant(setting, 0))
        return plans


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")  # torch device types --device accepts, with an optional :N index


def check_device(device: str, here: bool = True) -> None:
    """One line for a --device that is not a torch device, or (when the model runs in this process, `here`)
    one this machine does not have. torch is imported only for a device other than the CPU."""
    kind, colon, index = device.partition(":")
    if kind in DEVICE_TYPES and colon and not index.isdigit():
        raise HarnessError(f"--device {device!r}: after ':' comes a device number, as in {kind}:0")
    if kind not in DEVICE_TYPES:
        hint = suggest(kind, DEVICE_TYPES) or f" (known: {', '.join(DEVICE_TYPES)}, each with an optional :N)"
        raise HarnessError(f"--device {device!r}: not a torch device{hint}")
    if kind == "cpu" or not here:
        return
    import torch

    backend = getattr(torch, kind, None) if kind != "mps" else torch.backends.mps
    count = ((backend.device_count() if hasattr(backend, "device_count") else 1)
             if backend and backend.is_available() else 0)
    if count == 0:
        raise HarnessError(f"--device {device}: no {kind.upper()} device on this machine (torch {torch.__version__}); "
                           "use --device cpu")
    if index and int(index) >= count:
        raise HarnessError(f"--device {device}: this machine has {count} {kind} device(s), numbered 0 to {count - 1}")


def check_run_name(name: str) -> None:
    """A run name is one plain folder name: never a path (no / or \\, not . or ..), never hidden (.tmp-, .finetune
    are harness's own), never empty, at most 200 bytes (room for the temporary folder's prefix and suffix)."""
    problems = [(not name.strip(), "is empty"),
                ("/" in name or "\\" in name or name in (".", ".."), "must be a plain folder name, not a path"),
                (name.startswith("."), "must not start with '.' (hidden names are harness's own)"),
                (any(ord(c) < 32 for c in name), "must not contain control characters"),
                (len(name.encode()) > 200, "is longer than 200 bytes")]
    problem = next((what for bad, what in problems if bad), None)
    if problem:
        raise HarnessError(f"--run-name {name!r}: {problem}; give a name like 'gpt2-piqa'")


def parse_settings(text: str) -> tuple[Setting, ...]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    known = {s.value: s for s in Setting}
    out = []
    for name in names:
        if name not in known:
            raise unknown("setting", name, known)
        out.append(known[name])
    return tuple(dict.fromkeys(out))


def parse_ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise HarnessError(f"{flag}: expected comma-separated integers, got {text!r}") from None


@dataclass(frozen=True)
class PretrainConfig:
    """Defaults: a 4-layer, 256-wide GPT-2 (16M parameters, 12.9M of them the tied 50257-token embedding),
    250 steps of 4 x 256 tokens: about 20 minutes over tinyshakespeare + war_and_peace on a shared 2-core
    CPU (measured: 4.2 s a step at 1 thread; 2 threads were slower there while other jobs ran)."""

    corpus: tuple[Path, ...] = field(metadata={"help": "UTF-8 text files, read in this order"})
    out: Path = field(metadata={"help": "folder for tokens, checkpoint, loss curve, model/; resumes its checkpoint"})
    n_layer: int = _f(4, "transformer blocks")
    n_embd: int = _f(256, "model width")
    n_head: int = _f(4, "attention heads (must divide {flag:n_embd})")
    context: int = _f(256, "tokens per training window; the model's n_positions")
    batch_size: int = _f(4, "windows per optimizer step")
    steps: int = _f(250, "optimizer steps in all")
    time_limit: float = _f(0.0, "minutes; stop earlier (checkpointed, rerun to go on); 0 = none")
    lr: float = _f(1e-3, "peak learning rate, reached after the warmup")
    min_lr: float = _f(1e-4, "learning rate at the end of the cosine decay")
    warmup_steps: int = _f(25, "steps of linear warmup")
    lr_decay_steps: int = _f(0, "step at which the cosine reaches {flag:min_lr}; 0 = {flag:steps}")
    weight_decay: float = _f(0.1, "AdamW decay of the linear layers' weights")
    grad_clip: float = _f(1.0, "largest global gradient norm; 0 = no clipping")
    eval_interval: int = _f(50, "steps between validation losses")
    eval_batches: int = _f(10, "batches of fixed validation windows per evaluation")
    val_fraction: float = _f(0.05, "tail of the token stream held out for validation")
    checkpoint_interval: int = _f(50, "steps between checkpoints")
    seed: int = _f(0, "seed of the initial weights and of the window draws")
    threads: int = _f(1, "torch CPU threads")

    def __post_init__(self):
        object.__setattr__(self, "corpus", tuple(Path(p) for p in self.corpus))
        object.__setattr__(self, "out", Path(self.out))
        if not self.corpus:
            raise HarnessError("--corpus: give at least one text file")
        for path in self.corpus:
            if not path.is_file():
                raise HarnessError(f"--corpus {path}: no such file")
        for name in ("n_layer", "n_embd", "n_head", "context", "batch_size", "steps", "eval_interval",
                     "eval_batches", "checkpoint_interval", "threads"):  # fmt: skip
            _check(getattr(self, name) >= 1, name, "need a positive integer")
        for name in ("time_limit", "lr_decay_steps", "warmup_steps", "weight_decay", "grad_clip", "seed"):
            _check(getattr(self, name) >= 0, name, "must not be negative")
        _check(self.n_embd % self.n_head == 0, "n_embd", f"must be divisible by --n-head {self.n_head}")
        _check(0 < self.lr, "lr", "need a positive learning rate")
        _check(0 <= self.min_lr <= self.lr, "min_lr", f"need 0 <= --min-lr <= --lr {self.lr}")
        _check(0 < self.val_fraction < 1, "val_fraction", "need a fraction strictly between 0 and 1")
        _check(self.warmup_steps <= self.decay_steps, "warmup_steps", f"must not exceed the decay, {self.decay_steps}")

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps or self.steps


def _check(ok: bool, name: str, what: str, also: str = "") -> None:
    """Fail naming the flag of a field (and its `also`-prefixed twin, e.g. --ft-lr in harness run)."""
    if not ok:
        flag = name.replace("_", "-")
        raise HarnessError(f"--{flag}{f' (--{also}{flag})' if also else ''}: {what}")
