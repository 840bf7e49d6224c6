"""samples.jsonl as records: one `Sample` per example and prompt variant, its `answer` typed by the task kind.

| answer           | kinds                            | what it holds                                          |
| ---------------- | -------------------------------- | ------------------------------------------------------ |
| ChoiceAnswer     | multiple_choice, partial_scoring | per-choice log-likelihoods, greedy flags, token counts |
| ClozeAnswer      | cloze                            | the target's log-likelihood and greedy flags           |
| DocumentAnswer   | perplexity                       | the document's rolling log-likelihood, words, bytes    |
| GenerationAnswer | generate                         | the generation, its log-probability, the prediction    |

Reports, comparisons and exports read these records, never a dict by key; `to_json` / `from_json` are the
only places that know a line's keys (in the order samples.jsonl has always had). Which answer type a line
holds comes from its task's kind (run.json's `tasks.<name>.kind`, tasks/kinds.py's table), never from the
keys present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

PerExample = float | list[float]  # one metric's per-example value: a scalar, or a row of sums' terms


def argmax(values: Sequence[float]) -> int:
    """The index of the largest value, the first of equal maxima (as numpy.argmax)."""
    return max(range(len(values)), key=values.__getitem__)


@dataclass(frozen=True, kw_only=True)
class ChoiceAnswer:
    """Multiple choice and partial scoring: one log-likelihood per choice; `prediction` is their argmax."""

    keys: ClassVar[tuple[str, ...]] = ("choices", "gold", "logprobs", "prediction")  # what a line must hold
    choices: tuple[str, ...]
    gold: int
    logprobs: tuple[float, ...]
    greedy: tuple[bool, ...]
    n_tokens: tuple[int, ...]
    prediction: int
    unconditional: tuple[float, ...] = ()  # per choice, after the prefix token alone (when a metric needs it)
    truncated: int = 0
    # per choice, after the task's prompt.answer_context (when a metric needs it)
    answer_context: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {"choices": list(self.choices), "gold": self.gold, "logprobs": list(self.logprobs),
               "greedy": list(self.greedy), "n_tokens": list(self.n_tokens), "prediction": self.prediction}
        if self.unconditional:
            out["unconditional_logprobs"] = list(self.unconditional)
        if self.answer_context:
            out["answer_context_logprobs"] = list(self.answer_context)
        return out | {"truncated": self.truncated}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChoiceAnswer:
        return cls(choices=tuple(d["choices"]), gold=int(d["gold"]), logprobs=tuple(d["logprobs"]),
                   greedy=tuple(d.get("greedy") or ()), n_tokens=tuple(d.get("n_tokens") or ()),
                   prediction=int(d["prediction"]), unconditional=tuple(d.get("unconditional_logprobs") or ()),
                   truncated=int(d.get("truncated", 0) or 0),
                   answer_context=tuple(d.get("answer_context_logprobs") or ()))

    @property
    def decision(self) -> int:
        """What two prompt variants are compared on: the chosen index."""
        return self.prediction

    @property
    def shown(self) -> str:
        """The answer in a few words: the chosen choice's text."""
        ok = 0 <= self.prediction < len(self.choices)
        return self.choices[self.prediction] if ok else str(self.prediction)

    @property
    def loglikelihoods(self) -> tuple[float, ...]:
        return self.logprobs

    def agrees(self, lls: tuple[float, ...], greedy: tuple[bool, ...], tolerance: float) -> bool:
        """The same decision as another scorer's log-likelihoods of the same choices (the argmax)."""
        return argmax(self.logprobs) == argmax(lls)


@dataclass(frozen=True, kw_only=True)
class ClozeAnswer:
    """Cloze: the target's log-likelihood; greedy when every target token is the argmax."""

    keys: ClassVar[tuple[str, ...]] = ("target", "logprob", "is_greedy")
    target: str
    logprob: float
    is_greedy: bool
    last_token_greedy: bool
    n_tokens: int
    truncated: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "logprob": self.logprob, "is_greedy": self.is_greedy,
                "last_token_greedy": self.last_token_greedy, "n_tokens": self.n_tokens, "truncated": self.truncated}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClozeAnswer:
        return cls(target=str(d["target"]), logprob=float(d["logprob"]), is_greedy=bool(d["is_greedy"]),
                   last_token_greedy=bool(d.get("last_token_greedy", False)), n_tokens=int(d.get("n_tokens", 0)),
                   truncated=int(d.get("truncated", 0) or 0))

    decision: ClassVar[None] = None  # no choice to compare: a 0/1 metric that flips is the change

    @property
    def shown(self) -> str:
        return f"target {'greedy' if self.is_greedy else 'not greedy'}"

    @property
    def loglikelihoods(self) -> tuple[float, ...]:
        return (self.logprob,)

    def agrees(self, lls: tuple[float, ...], greedy: tuple[bool, ...], tolerance: float) -> bool:
        if greedy:
            return self.is_greedy == greedy[0]
        return abs(self.logprob - lls[0]) <= tolerance


@dataclass(frozen=True, kw_only=True)
class DocumentAnswer:
    """Perplexity: a document's rolling log-likelihood and the words and bytes that normalise it."""

    keys: ClassVar[tuple[str, ...]] = ("logprob", "n_tokens", "words", "bytes")
    logprob: float
    n_tokens: int
    words: int
    bytes: int
    truncated: ClassVar[int] = 0  # rolling windows never cut a document

    def to_json(self) -> dict[str, Any]:
        return {"logprob": self.logprob, "n_tokens": self.n_tokens, "words": self.words, "bytes": self.bytes}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DocumentAnswer:
        return cls(logprob=float(d["logprob"]), n_tokens=int(d["n_tokens"]), words=int(d["words"]),
                   bytes=int(d["bytes"]))

    decision: ClassVar[None] = None
    shown: ClassVar[str] = ""

    @property
    def loglikelihoods(self) -> tuple[float, ...]:
        return (self.logprob,)

    def agrees(self, lls: tuple[float, ...], greedy: tuple[bool, ...], tolerance: float) -> bool:
        return abs(self.logprob - lls[0]) <= tolerance


@dataclass(frozen=True, kw_only=True)
class GenerationAnswer:
    """Generation: the greedy continuation (cut at the first stop string) and the prediction filters made of it."""

    keys: ClassVar[tuple[str, ...]] = ("generation", "prediction", "references")
    generation: str
    prediction: str
    target: str
    references: tuple[str, ...]
    truncated: int = 0
    logprob: float | None = None  # log P(generation | prompt): the answer's confidence; None when not scored
    n_tokens: int = 0  # the generation's tokens, as that log-probability counts them

    def to_json(self) -> dict[str, Any]:
        scored = {} if self.logprob is None else {"logprob": self.logprob, "n_tokens": self.n_tokens}
        return {"generation": self.generation, "prediction": self.prediction, "target": self.target,
                "references": list(self.references), "truncated": self.truncated} | scored

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GenerationAnswer:
        logprob = d.get("logprob")
        return cls(generation=str(d["generation"]), prediction=str(d["prediction"]),
                   target=str(d.get("target", (d["references"] or [""])[0])),
                   references=tuple(d["references"]), truncated=int(d.get("truncated", 0) or 0),
                   logprob=None if logprob is None else float(logprob), n_tokens=int(d.get("n_tokens", 0) or 0))

    @property
    def decision(self) -> str:
        return self.prediction

    @property
    def shown(self) -> str:
        return self.prediction

    loglikelihoods: ClassVar[tuple[float, ...]] = ()

    def agrees(self, lls: tuple[float, ...], greedy: tuple[bool, ...], tolerance: float) -> bool:
        return False  # another scorer's generation is compared as text, with `decision`


Answer = ChoiceAnswer | ClozeAnswer | DocumentAnswer | GenerationAnswer
ANSWERS: tuple[type, ...] = (ChoiceAnswer, ClozeAnswer, DocumentAnswer, GenerationAnswer)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One samples.jsonl line: the prompt variant, the text the model read, the typed answer, per-example metrics."""

    task: str
    setting: str  # the setting's label: ZS, 1S, FS, FT
    k: int
    k_used: int
    seed: int
    example_id: str
    demo_ids: tuple[str, ...]
    prompt: str  # what the model read (perplexity: the document's first 200 characters)
    answer: Answer
    metrics: Mapping[str, PerExample] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        head = {"task": self.task, "setting": self.setting, "k": self.k, "k_used": self.k_used, "seed": self.seed,
                "example_id": self.example_id, "demo_ids": list(self.demo_ids), "prompt": self.prompt}
        return head | self.answer.to_json() | {"metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], answer: type) -> Sample:
        """A samples.jsonl line whose task kind reads its answer as `answer` (tasks/kinds.py: `read_sample`)."""
        return cls(task=str(d["task"]), setting=str(d["setting"]), k=int(d["k"]), k_used=int(d.get("k_used", d["k"])),
                   seed=int(d.get("seed", 0)), example_id=str(d["example_id"]), demo_ids=tuple(d.get("demo_ids", ())),
                   prompt=str(d.get("prompt", "")), answer=answer.from_json(d), metrics=dict(d.get("metrics", {})))

    def metric(self, name: str) -> PerExample | None:
        return self.metrics.get(name)

    def scalar(self, name: str) -> float | None:
        """The metric's per-example value when it is one finite number, else None."""
        value = self.metrics.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return value if ok else None
