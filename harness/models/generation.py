"""Batched greedy decoding with a KV cache, for every backend that can run its decoder step by step.

lm-evaluation-harness's `generate_until` (lm_eval/models/huggingface.py), kept here:
- the context is encoded as the scorer encodes it, an empty one becomes the prefix token (BOS, else EOS),
  and it is left-truncated to its last max_length - max_new_tokens tokens (max_gen_toks; 256 is the
  task default there, the task file's max_new_tokens here);
- greedy: the argmax token at every step (the first on a tie, as torch.argmax and transformers do);
- a row ends at the end-of-text token (the tokenizer's, and the model's generation_config ones), or after
  max_new_tokens; its tokens are decoded with skip_special_tokens and the text is cut at the first stop
  string (`until`; lm-eval also lists the end-of-text token's text there, which skip_special_tokens has
  already removed).

Where we differ, deliberately, without changing a text:
- lm-eval decodes fixed-size left-padded batches to the end of the slowest row and cuts afterwards; here
  rows are sorted longest first into batches by a token budget, a row stops as soon as its new text holds
  a stop string that no longer continuation can move (see `finished`), and a finished row leaves the batch
  with its cache. Cutting a decoded prefix at its first stop string gives the text post-hoc cutting gives.
- lm-eval's padded batches can change a token against batch size 1 (padding shifts float sums); here
  padding is masked, positions are per row, and the tests pin every token to transformers' unpadded
  `generate(do_sample=False)`, one prompt at a time, at every batch size.
- no logits processors: a generation_config's repetition penalty or forced tokens are not applied (GPT-2
  and SmolLM2 set none).

A backend supplies a `CachedLM`: its decoder's forward over new tokens with a cache, and how a cache is
merged from row chunks and cut down to some rows and columns. transformers_driver.py has transformers',
reference.py ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

Cache = Any  # a backend's KV cache: transformers' DynamicCache, kvcache.KVCache


@dataclass(frozen=True)
class CachedLM:
    """A decoder run step by step over left-padded rows and a KV cache (one per backend)."""

    # (ids (B, T), positions (B, T), key_mask (B, S) bool, cache or None for a fresh one) -> (logits (B, V) at
    # each row's last new token, the cache now holding S columns)
    forward: Callable[[Any, Any, Any, Cache | None], tuple[Any, Cache]]
    merge: Callable[[list[Cache], int], Cache]  # caches of row chunks (equal columns), room for n more -> one
    select: Callable[[Cache, Any, int], Cache]  # (cache, rows (B',), first column) -> those rows and columns
    device: Any  # where inputs go


@dataclass(frozen=True)
class Job:
    """One generation, tokenized: the context (already truncated) and when to stop."""

    context: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...]


DEFAULT_GENERATE_TOKENS = 16384  # padded tokens (context + new) per decoding batch: bounds the KV cache
MAX_ROWS = 256


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


def finished(text: str, stop: Sequence[str]) -> bool:
    """Whether `text` (the new text so far) already decides its cut: it holds a stop string, and no stop
    string starting before the first one found could still be completed by later text. A trailing
    U+FFFD (an incomplete UTF-8 character) may still change, so it is not counted as settled text."""
    found = [text.find(s) for s in stop if s and s in text]
    if not found:
        return False
    settled = len(text.rstrip("\ufffd"))
    longest = max(len(s) for s in stop if s)
    return min(found) + longest - 1 <= settled


def context_ids(encoded: list[int], prefix_token: int, max_length: int, max_new_tokens: int) -> tuple[int, ...]:
    """lm-eval's context: the prefix token for an empty one, the last max_length - max_new_tokens tokens."""
    room = max_length - max_new_tokens
    if room <= 0:
        raise HarnessError(
            f"max_new_tokens {max_new_tokens} leaves no room for a context in the model's {max_length} positions"
        )
    return tuple((encoded or [prefix_token])[-room:])


def batches(jobs: Sequence[Job], budget: int, max_rows: int = MAX_ROWS) -> list[list[int]]:
    """Indices of jobs, longest context first (ties by content, so order never depends on arrival), in
    batches whose padded size, rows x (longest context + most new tokens), stays within `budget`."""
    order = sorted(range(len(jobs)), key=lambda i: (-len(jobs[i].context), jobs[i].context))
    out: list[list[int]] = []
    batch: list[int] = []
    width = new = 0
    for i in order:
        w, n = max(width, len(jobs[i].context)), max(new, jobs[i].max_new_tokens)
        if batch and ((len(batch) + 1) * (w + n) > budget or len(batch) == max_rows):
            out.append(batch)
            batch, w, n = [], len(jobs[i].context), jobs[i].max_new_tokens
        batch.append(i)
        width, new = w, n
    if batch:
        out.append(batch)
    return out


def generate(
    lm: CachedLM,
    jobs: Sequence[Job],
    eos: frozenset[int],
    decode: Callable[[list[int]], str],
    budget: int = DEFAULT_GENERATE_TOKENS,
    prefill_tokens: int = 1024,
    max_rows: int = MAX_ROWS,
) -> list[list[int]]:
    """The new tokens of every job (an end-of-text token included when it ended the row), in job order.
    Batches hold at most max_rows rows and `budget` padded tokens; prefill chunks about prefill_tokens."""
    import torch

    out: list[list[int]] = [[] for _ in jobs]
    with torch.inference_mode():
        for batch in batches(jobs, budget, max_rows):
            for i, new in zip(
                batch, decode_batch(lm, [jobs[i] for i in batch], eos, decode, prefill_tokens), strict=True
            ):
                out[i] = new
    return out


def decode_batch(
    lm: CachedLM, jobs: Sequence[Job], eos: frozenset[int], decode: Callable[[list[int]], str], prefill_tokens: int
) -> list[list[int]]:
    """Greedy decoding of one batch: a left-padded prefill (in row chunks of about prefill_tokens padded
    tokens), then one token per live row per step; a row that finishes leaves the batch and its cache."""
    import torch

    width = max(len(j.context) for j in jobs)
    ids = torch.zeros(len(jobs), width, dtype=torch.long)  # (B, T), pads are token 0: masked, never attended
    key_mask = torch.zeros(len(jobs), width, dtype=torch.bool)  # (B, T)
    for b, job in enumerate(jobs):
        ids[b, width - len(job.context) :] = torch.tensor(job.context)
        key_mask[b, width - len(job.context) :] = True
    positions = (key_mask.long().cumsum(1) - 1).clamp(min=0)  # (B, T): 0 at each row's first real token
    ids, key_mask, positions = ids.to(lm.device), key_mask.to(lm.device), positions.to(lm.device)

    rows_per_chunk = max(1, prefill_tokens // width)
    logits, caches = [], []
    for start in range(0, len(jobs), rows_per_chunk):
        part = slice(start, start + rows_per_chunk)
        chunk_logits, cache = lm.forward(ids[part], positions[part], key_mask[part], None)  # (b, V)
        logits.append(chunk_logits)
        caches.append(cache)
    cache = lm.merge(caches, max(j.max_new_tokens for j in jobs))
    next_logits = torch.cat(logits)  # (B, V)
    next_position = positions[:, -1] + 1  # (B,)

    new: list[list[int]] = [[] for _ in jobs]
    live = list(range(len(jobs)))  # job index of each row of the batch
    while True:
        tokens = next_logits.argmax(-1).tolist()  # (B',) the greedy token of each live row
        keep = []
        for row, (b, token) in enumerate(zip(live, tokens, strict=True)):
            new[b].append(token)
            job = jobs[b]
            done = (
                token in eos or len(new[b]) >= job.max_new_tokens or (job.stop and finished(decode(new[b]), job.stop))
            )
            if not done:
                keep.append(row)
        if not keep:
            return new
        if len(keep) < len(live):  # finished rows leave; so do pad columns no live row needs
            rows = torch.tensor(keep, device=lm.device)
            key_mask = key_mask[rows]  # (B', S)
            first = int(key_mask.any(0).long().argmax())  # the first column some live row attends
            key_mask = key_mask[:, first:]  # (B', S - first)
            cache = lm.select(cache, rows, first)
            next_position = next_position[rows]  # (B',)
            live = [live[r] for r in keep]
            tokens = [tokens[r] for r in keep]
        step = torch.tensor(tokens, device=lm.device)[:, None]  # (B', 1)
        key_mask = torch.cat([key_mask, key_mask.new_ones(len(live), 1)], dim=1)  # (B', S + 1)
        next_logits, cache = lm.forward(step, next_position[:, None], key_mask, cache)  # (B', V)
        next_position = next_position + 1
