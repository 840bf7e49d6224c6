"""Train/eval contamination checks for the FT setting: exact duplicates and shared 13-grams.

Texts are compared as lower-cased word sequences (runs of letters and digits), so punctuation, case and
spacing do not hide a duplicate. A training text overlaps an eval text when both are the same word
sequence (exact) or when they share any run of N = 13 consecutive words, the GPT-3 paper's
contamination test (its Appendix C). Texts shorter than N words can only be exact duplicates. The normalisation is
harness/contamination/normalize.py's, the one `harness overlap` uses against a pretraining corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.contamination.normalize import DEFAULT_N, ngrams, words

N = DEFAULT_N
__all__ = ["N", "EvalIndex", "Hit", "ngrams", "words"]  # words and ngrams live in contamination/normalize.py


@dataclass(frozen=True)
class Hit:
    train_id: str
    eval_id: str
    kind: str  # "exact" or f"{N}-gram"


class EvalIndex:
    """The word sequences and N-grams of an eval split, built once, queried per training text."""

    def __init__(self, texts: Mapping[str, str], n: int = N):
        self.n = n
        self.exact: dict[tuple[str, ...], str] = {}
        self.grams: dict[tuple[str, ...], str] = {}
        for eval_id, text in texts.items():
            tokens = words(text)
            self.exact.setdefault(tokens, eval_id)
            for gram in ngrams(tokens, n):
                self.grams.setdefault(gram, eval_id)

    def find(self, train_id: str, text: str) -> Hit | None:
        """The first eval text that `text` duplicates or shares an N-gram with, or None."""
        tokens = words(text)
        if tokens in self.exact:
            return Hit(train_id, self.exact[tokens], "exact")
        for gram in ngrams(tokens, self.n):
            if gram in self.grams:
                return Hit(train_id, self.grams[gram], f"{self.n}-gram")
        return None
