"""Text as the GPT-3 paper's contamination check reads it (Brown et al. 2020, Appendix C): lower-cased, punctuation
and whitespace dropped, a sequence of words. A word is a run of `\\w` characters (letters, digits, underscore) of
the lower-cased text, so "Don't!" is the two words "don", "t". The FT setting's train/eval check
(harness/train/overlap.py) and the task side of `harness overlap` call words(); the corpus side finds the same words
in numpy (tokens.py, built from WORD and tested against words()), so all of them agree on what a word is."""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_N = 13  # the GPT-3 paper's N, where its Table C.1 gives none
WORD = re.compile(r"\w+")


def words(text: str) -> tuple[str, ...]:
    """The words of `text`: lower-cased `\\w+` runs."""
    return tuple(WORD.findall(text.lower()))


def ngrams(tokens: tuple[str, ...], n: int = DEFAULT_N) -> Iterable[tuple[str, ...]]:
    """Every run of n consecutive words, in order."""
    return (tokens[i : i + n] for i in range(len(tokens) - n + 1))
