"""A backend in one file, as a new one (vLLM, a remote API) would be: the hand-computable bigram fake of
tests/fakes.py behind the LanguageModel protocol, scored in plain Python. It serves log-likelihoods only,
and says so in `kinds`; its weights are not trainable. Register it with one line:

    monkeypatch.setitem(BACKENDS, "bigram", bigram.BACKEND)      # then --model bigram:<seed>
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from harness.errors import HarnessError
from harness.models import scoring
from harness.models.registry import Backend, LoadOptions
from harness.records import LoglikelihoodRequest, LoglikelihoodResult, RequestKind
from tests.fakes import BigramLM, CharTokenizer, hand_logprob

KINDS = frozenset({RequestKind.LOGLIKELIHOOD})
MAX_LENGTH = 64
PREFIX_TOKEN = 0  # CharTokenizer's end-of-text


class BigramModel:
    kinds = KINDS

    def __init__(self, name: str, seed: int, max_length: int = MAX_LENGTH):
        self.name, self.seed, self.max_length = name, seed, max_length
        self.table = BigramLM(max_length, seed).table.detach()  # (V, V): logits of the next token
        self.tokenizer = CharTokenizer()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> dict[str, LoglikelihoodResult]:
        out = {}
        for r in requests:
            pair = scoring.encode_pair(self.tokenizer.encode, r.context, r.continuation, PREFIX_TOKEN)
            row = scoring.model_input(pair, self.max_length)
            previous = row.ids[len(row.ids) - len(row.targets) :]  # the token before each target
            greedy = [int(self.table[p].argmax()) == t for p, t in zip(previous, row.targets, strict=True)]
            logprob = sum(hand_logprob(self.table, p, t) for p, t in zip(previous, row.targets, strict=True))
            out[r.id] = LoglikelihoodResult(logprob, all(greedy), len(row.targets), row.truncated,
                                            bool(greedy) and greedy[-1])
        return out

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError(f"{self.name} serves log-likelihoods only")

    def generate(self, requests):
        raise NotImplementedError(f"{self.name} serves log-likelihoods only")

    def describe(self) -> dict:
        return {"name": self.name, "source": self.name, "backend": "bigram", "max_length": self.max_length}

    def fingerprint(self) -> str:
        return hashlib.sha256(f"bigram|{self.seed}|{self.max_length}".encode()).hexdigest()


def check(spec: str) -> None:
    if not spec.isdigit():
        raise HarnessError(f"--model bigram:{spec}: the bigram backend takes a seed (bigram:<integer>)")


def load(spec: str, options: LoadOptions) -> BigramModel:
    return BigramModel(options.name, int(spec))


BACKEND = Backend("bigram", load, KINDS, trainable=False, check=check)
