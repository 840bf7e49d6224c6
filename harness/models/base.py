"""The small protocols every model backend implements. Results come back keyed by request id.

LanguageModel is what scoring needs; Trainable is what the FT setting needs on top (a torch module to
train a copy of, and a way to write the trained copy as a folder its backend loads again). PrefersChunks is
optional: a model that says how many requests of a kind it takes per call (an API or vLLM backend: many at
once); any other model gets the executor's default (execution/executor.py, CHUNK and CHUNK_CHARS).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.records import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RequestKind,
    RollingRequest,
    RollingResult,
)

DEFAULT_BACKEND = "transformers"  # a --model name without a `<backend>:` prefix loads with this one


def model_name(backend: str, spec: str | Path) -> str:
    """The --model name that loads `spec` with `backend`: `<backend>:<spec>`, or the spec alone for the default."""
    return str(spec) if backend == DEFAULT_BACKEND else f"{backend}:{spec}"


@runtime_checkable
class LanguageModel(Protocol):
    name: str
    max_length: int  # positions the model can attend over
    kinds: frozenset[RequestKind]  # the request kinds it serves; the others are never sent to it

    def count_tokens(self, text: str) -> int: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> dict[str, LoglikelihoodResult]: ...

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest]) -> dict[str, RollingResult]: ...

    def generate(self, requests: Sequence[GenerateRequest]) -> dict[str, GenerateResult]: ...

    def describe(self) -> dict: ...  # what run.json records about the model

    def fingerprint(self) -> str: ...  # content hash keying the result cache


@runtime_checkable
class PrefersChunks(Protocol):
    """A model that picks its own chunk: at most this many requests of `kind` per call (and per result-cache
    save), with no limit on their characters; None: the executor's default. Batching never changes a number."""

    def preferred_chunk(self, kind: RequestKind) -> int | None: ...


@runtime_checkable
class Trainable(LanguageModel, Protocol):
    """A LanguageModel whose weights FT can train: everything train/finetune.py touches."""

    source: str  # what it was loaded from, for lineage.json
    backend: str  # the registry name of its backend, for lineage.json
    prefix_token: int  # lm-evaluation-harness's prefix for an empty context
    module: Any  # the torch.nn.Module scored; FT trains a deep copy of it

    def encode(self, text: str) -> list[int]: ...  # token ids, exactly as the scorer encodes

    def save(self, module: Any, folder: Path) -> None: ...  # `module` (a trained copy) + tokenizer into `folder`

    def loadable_name(self, folder: Path) -> str: ...  # the --model name that loads `folder` with this backend
