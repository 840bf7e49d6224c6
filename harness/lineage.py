"""How an FT checkpoint was made, as a record: `Lineage` is what finetune returns, lineage.json and run.json's
"finetune" hold (`to_json` / `from_json`), and what logs and report notes read (`summary`).

Only the standard library and no harness imports: the pipeline logs it and the report notes it, and neither
needs the training code for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, kw_only=True)
class TrainUse:
    """The train split and the examples of it that training used."""

    split: str
    source: str
    sha256: str
    available: int
    used: int
    example_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "source": self.source, "sha256": self.sha256, "available": self.available,
                "used": self.used, "example_ids": list(self.example_ids)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainUse:
        return cls(split=d["split"], source=d["source"], sha256=d["sha256"], available=d["available"],
                   used=d["used"], example_ids=tuple(d["example_ids"]))


@dataclass(frozen=True, kw_only=True)
class OverlapFound:
    """The train/eval contamination check: what was compared, how many training examples overlapped, what was done."""

    eval_split: str
    eval_examples: int
    checked: str  # "exact and 13-gram"
    found: int
    action: str  # "dropped from training" or "kept (forced)"
    hits: tuple[Mapping[str, Any], ...]  # train/overlap.py's Hit of each overlapping example, as JSON

    def to_json(self) -> dict[str, Any]:
        return {"eval_split": self.eval_split, "eval_examples": self.eval_examples, "checked": self.checked,
                "found": self.found, "action": self.action, "hits": [dict(h) for h in self.hits]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OverlapFound:
        return cls(eval_split=d["eval_split"], eval_examples=d["eval_examples"], checked=d["checked"],
                   found=d["found"], action=d["action"], hits=tuple(d.get("hits", ())))


@dataclass(frozen=True, kw_only=True)
class Lineage:
    identity: Mapping[str, Any]  # what the checkpoint is a function of (base weights, task, data, hyperparameters)
    created: str
    base_model: Mapping[str, str]  # name, source, backend
    task: Mapping[str, str]  # name, file, sha256
    train: TrainUse
    overlap: OverlapFound
    steps: int
    answer_tokens: int
    loss: tuple[float, ...]  # every step's
    final_loss: float  # the mean of the last tenth of the steps
    seconds: float
    model: str  # the --model name that loads the checkpoint
    folder: str = ""  # where `harness run --settings ft` keeps it ("" for `harness finetune --out`)

    def to_json(self) -> dict[str, Any]:
        out = {"identity": dict(self.identity), "created": self.created, "base_model": dict(self.base_model),
               "task": dict(self.task), "train": self.train.to_json(), "overlap": self.overlap.to_json(),
               "steps": self.steps, "answer_tokens": self.answer_tokens, "loss": list(self.loss),
               "final_loss": self.final_loss, "seconds": self.seconds, "model": self.model}
        return out | ({"folder": self.folder} if self.folder else {})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Lineage:
        return cls(identity=dict(d.get("identity", {})), created=d.get("created", ""),
                   base_model=dict(d.get("base_model", {})), task=dict(d.get("task", {})),
                   train=TrainUse.from_json(d["train"]), overlap=OverlapFound.from_json(d["overlap"]),
                   steps=d["steps"], answer_tokens=d.get("answer_tokens", 0), loss=tuple(d.get("loss", ())),
                   final_loss=d["final_loss"], seconds=d["seconds"], model=d["model"], folder=d.get("folder", ""))

    def kept_in(self, folder: str) -> Lineage:
        return replace(self, folder=folder)

    def summary(self, task: str) -> str:
        """`task: used of available <split> examples, steps, final loss, seconds; overlap found`."""
        found = (f"{self.overlap.found} overlapping the eval split ({self.overlap.action})" if self.overlap.found
                 else "no overlap with the eval split")
        return (f"{task}: {self.train.used} of {self.train.available} {self.train.split} examples, "
                f"{self.steps} steps, final loss {self.final_loss:.3f}, {self.seconds:.0f} s; {found}")

