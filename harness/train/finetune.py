"""The FT setting: fine-tune a model on a task's train split, in the zero-shot prompt format.

A training example is the ZS prompt of a train-split example (description + query, plus the gold choice
for partial-scoring tasks) followed by its gold continuation (target delimiter + gold choice or target),
tokenized exactly as the scorer tokenizes it (models/scoring.py), so training and evaluation see the same
tokens. The loss is the mean cross-entropy over the continuation tokens only.

Examples are drawn from the train split in a seeded order, skipping any that duplicate or share a 13-gram
with an example of the eval split (overlap.py), up to max_examples. Training: AdamW, linear warmup over
the first 10% of the steps and linear decay to zero, gradient clipping, right-padded batches, the LM head
only at continuation positions.

The model is reached only through the Trainable protocol (models/base.py): a deep copy of its `module`
is trained, and its backend's `save` writes the copy as a normal model folder (transformers: save_pretrained;
the reference decoder: a reference folder) that `loadable_name` loads again,
plus lineage.json: base model, task file hash, split and example ids, the overlap found,
hyperparameters, the loss of every step. It is written under a temporary name and renamed into place, so a
folder that exists is complete; a folder whose lineage has the same identity is reused, not retrained.
torch is imported inside functions.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from harness.config import FinetuneConfig
from harness.tasks.data import Split, load_split, local_file
from harness.errors import HarnessError
from harness.files import atomic_folder
from harness.lineage import Lineage, OverlapFound, TrainUse
from harness.models import scoring
from harness.models.base import LanguageModel, Trainable
from harness.train.overlap import EvalIndex, Hit
from harness.train.optim import adamw, optimizer_step
from harness.records import Example, Prompt, Rendered, Setting
from harness.tasks.kinds import demo_text, gold_pair, render, without_demonstrations
from harness.tasks.prompts import build_prompt
from harness.tasks.spec import TaskSpec

FORMAT, VERSION = "harness-finetune", 1
LINEAGE = "lineage.json"
WARMUP_FRACTION = 0.1
BETAS = (0.9, 0.999)


class NoTrainSplit(HarnessError):
    """FT is not available for the task; the message is the reason shown in reports."""


def load_train(spec: TaskSpec, data_dir: Path | None, eval_split: Split, force: bool = False) -> Split:
    """The task's train split, or NoTrainSplit with the reason. Refuses the eval split unless forced."""
    split = spec.data.train_split
    if without_demonstrations(spec.kind):
        raise NoTrainSplit(f"{spec.kind.value} tasks are not fine-tuned")
    if split is None:
        raise NoTrainSplit("no train split: the task file names no data.train_split")
    if split == eval_split.name and not force:
        raise HarnessError(
            f"{spec.path}: data.train_split {split!r} is the eval split: the model would be scored on its own "
            "training data; name another split, or pass --force (harness run: --ft-force) to do it anyway"
        )
    if local_file(spec, split, data_dir) is None:
        from harness import hub

        if not (spec.data.hub and hub.reachable()):
            raise NoTrainSplit(f"train split {split!r} is not in the data dir and the hub is unreachable")
    return load_split(spec, split, data_dir)


# ---------------------------------------------------------------- training data


def select_examples(
    spec: TaskSpec, train: Split, evaluation: Split, config: FinetuneConfig
) -> tuple[list[Example], list[Hit]]:
    """Up to max_examples train examples in a seeded order, without those that overlap the eval split
    (kept, and still reported, when forced)."""
    index = EvalIndex({ex.id: demo_text(spec, render(spec, ex)) for ex in evaluation.examples})
    order = list(range(len(train.examples)))
    random.Random(config.seed).shuffle(order)
    limit = config.max_examples or len(order)
    chosen, hits = [], []
    for i in order:
        if len(chosen) == limit:
            break
        example = train.examples[i]
        hit = index.find(example.id, demo_text(spec, render(spec, example)))
        if hit:
            hits.append(hit)
        if hit is None or config.force:
            chosen.append(example)
    return chosen, hits


def training_pair(spec: TaskSpec, prompt: Prompt, rendered: Rendered) -> tuple[str, str]:
    """(context, continuation) of the gold answer, exactly as the scorer builds the gold request (kinds.py)."""
    extra, continuation = gold_pair(spec, rendered)
    return prompt.text + extra, continuation


def training_rows(spec: TaskSpec, examples: list[Example], model: Trainable) -> list[scoring.ModelInput]:
    """Model inputs with their scored continuation tokens, as the scorer would feed the ZS prompt."""
    rows = []
    for example in examples:
        rendered = render(spec, example)
        prompt = build_prompt(spec, example, Setting.ZS, 0, 0, (), lambda ex: rendered)
        context, continuation = training_pair(spec, prompt, rendered)
        pair = scoring.encode_pair(model.encode, context, continuation, model.prefix_token)
        row = scoring.model_input(pair, model.max_length)
        if row.targets:
            rows.append(row)
    return rows


# ---------------------------------------------------------------- training


def total_steps(n_rows: int, config: FinetuneConfig) -> int:
    return config.steps or config.epochs * math.ceil(n_rows / config.batch_size)


def lr_at(step: int, total: int, config: FinetuneConfig) -> float:
    """Linear warmup over the first 10% of steps (at least one), then linear decay towards zero."""
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return config.lr * (total - step) / max(1, total - warmup)


def batch_at(step: int, n_rows: int, config: FinetuneConfig) -> list[int]:
    """Row indices of optimizer step `step`: each epoch is a fresh seeded shuffle, cut into batches."""
    per_epoch = math.ceil(n_rows / config.batch_size)
    epoch, j = divmod(step, per_epoch)
    order = list(range(n_rows))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    return order[j * config.batch_size : (j + 1) * config.batch_size]


def answer_loss(module, rows: list[scoring.ModelInput]):
    """Mean cross-entropy over the continuation tokens of right-padded rows; logits only where scored."""
    import torch
    import torch.nn.functional as F

    logits, kept = scoring.forward_scored(module, rows, scoring.can_keep_logits(module))  # (B, K, V)
    column = {position: j for j, position in enumerate(kept)}
    labels = torch.full((len(rows), len(kept)), -100, dtype=torch.long)  # (B, K); -100 is not scored
    for b, row in enumerate(rows):
        first = len(row.ids) - len(row.targets)  # position first predicts targets[0]
        for j, target in enumerate(row.targets):
            labels[b, column[first + j]] = target
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten().to(logits.device), ignore_index=-100)


def train(module, rows: list[scoring.ModelInput], config: FinetuneConfig, desc: str) -> list[float]:
    """Fine-tune `module` in place; the training loss of every step."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    total = total_steps(len(rows), config)
    optimizer = adamw(module, config.lr, config.weight_decay, BETAS)
    module.train()
    losses = []
    with tqdm(total=total, desc=desc, unit="step", file=sys.stderr) as bar:
        for step in range(total):
            batch = [rows[i] for i in batch_at(step, len(rows), config)]
            losses.append(optimizer_step(module, optimizer, lambda: answer_loss(module, batch),
                                         lr_at(step, total, config), config.grad_clip))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
    module.eval()
    return losses


# ---------------------------------------------------------------- checkpoints


def identity(
    model: LanguageModel, spec: TaskSpec, train_split: Split, evaluation: Split, config: FinetuneConfig
) -> dict:
    """Everything that decides the fine-tuned weights: equal identities may share a checkpoint."""
    return {
        "format": FORMAT, "version": VERSION, "base_fingerprint": model.fingerprint(), "task_sha256": spec.sha256,
        "train": {"split": train_split.name, "data": train_split.sha256 or train_split.source},
        "eval": {"split": evaluation.name, "data": evaluation.sha256 or evaluation.source},
        "hyperparameters": dataclasses.asdict(config),
    }


def checkpoint_folder(root: Path, spec: TaskSpec, ident: dict) -> Path:
    """<root>/<task>-<hash of the identity>: one folder per distinct fine-tuning."""
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / f"{spec.name}-{digest}"


def finetune(model: LanguageModel, spec: TaskSpec, train_split: Split, evaluation: Split, config: FinetuneConfig,
             out: Path) -> Lineage:
    """Fine-tune a copy of `model` (a Trainable) on the task and write `out`; returns the lineage, whose
    "model" is the --model name that loads `out` with the base model's backend.

    Reuses `out` when it holds a finished fine-tuning with the same identity."""
    if not isinstance(model, Trainable):
        raise HarnessError(f"--settings ft: {model.name} ({type(model).__name__}) has no trainable weights")
    out = Path(out)
    ident = identity(model, spec, train_split, evaluation, config)
    if out.exists():
        return _reuse(out, ident)
    started = time.time()
    examples, hits = select_examples(spec, train_split, evaluation, config)
    rows = training_rows(spec, examples, model)
    if not rows:
        raise HarnessError(f"task {spec.name}: no training examples left ({len(hits)} overlap the eval split)")
    module = copy.deepcopy(model.module).float()  # trained in fp32 whatever --dtype scores in
    losses = train(module, rows, config, desc=f"finetune {spec.name} ({len(rows)} examples)")
    tail = losses[-max(1, len(losses) // 10) :]
    lineage = Lineage(
        identity=ident, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        base_model={"name": model.name, "source": model.source, "backend": model.backend},
        task={"name": spec.name, "file": str(spec.path), "sha256": spec.sha256},
        train=TrainUse(split=train_split.name, source=train_split.source, sha256=train_split.sha256,
                       available=len(train_split.examples), used=len(rows), example_ids=tuple(e.id for e in examples)),
        overlap=OverlapFound(eval_split=evaluation.name, eval_examples=len(evaluation.examples),
                             checked="exact and 13-gram", found=len(hits),
                             action="kept (forced)" if config.force else "dropped from training",
                             hits=tuple(dataclasses.asdict(h) for h in hits)),
        steps=len(losses), answer_tokens=sum(len(r.targets) for r in rows), loss=tuple(round(x, 5) for x in losses),
        final_loss=sum(tail) / len(tail), seconds=round(time.time() - started, 1), model=model.loadable_name(out),
    )
    _save(module, model, out, lineage)
    return lineage


def _reuse(out: Path, ident: dict) -> Lineage:
    path = out / LINEAGE
    if not path.is_file():
        raise HarnessError(f"{out} exists and is not a fine-tuned model folder (no {LINEAGE}); "
                           "remove it or choose another")
    document = json.loads(path.read_text())
    if document.get("identity") != ident:
        raise HarnessError(f"{out} holds a fine-tuning of other inputs (see its {LINEAGE}); "
                           "remove it or choose another")
    lineage = Lineage.from_json(document)
    print(f"[harness] FT {lineage.task['name']}: reusing {out} (trained on {lineage.train.used} examples)",
          file=sys.stderr)
    return lineage


def _save(module, model: Trainable, out: Path, lineage: Lineage) -> None:
    """Model + tokenizer (the backend's folder) + lineage.json, written atomically (files.atomic_folder)."""
    with atomic_folder(out) as tmp:
        model.save(module, tmp)
        (tmp / LINEAGE).write_text(json.dumps(lineage.to_json(), indent=1) + "\n")
