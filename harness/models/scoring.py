"""Token arithmetic shared by every backend: the context/continuation boundary, truncation, rolling
windows, length-sorted batches, and log-likelihoods read off logits.

The rules are lm-evaluation-harness's (`_encode_pair`, `_loglikelihood_tokens`,
`get_rolling_token_windows` + `make_disjoint_window`), so numbers are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

Encode = Callable[[str], list[int]]

# Batch invariance (DESIGN.md rule 12): a vectorised reduction over keys (softmax sums, probs @ V) adds a
# column's term into the lane its column number picks, so a branch gives the same bits wherever it sits
# only when it starts ALIGN columns apart from where it would stand alone, and a row's padded width is a
# multiple of ALIGN (masked columns add exact zeros). 16 fp32 lanes is AVX-512's width (AVX2's 8 divides
# it). Matrix products with fewer than HEAD_ROWS rows take another kernel (gemv), so the head pads to it.
# packing.py places branches by ALIGN; the right-padded path pads its rows' width the same way.
ALIGN = 16
HEAD_ROWS = 16


def aligned(n: int) -> int:
    """n rounded up to a multiple of ALIGN."""
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class TokenPair:
    """A scoring unit: log p(continuation | context), both as token ids."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


def encode_pair(encode: Encode, context: str, continuation: str, prefix_token: int) -> TokenPair:
    """Split context+continuation into tokens the way lm-evaluation-harness does.

    Trailing spaces of the context move to the continuation; the pair is encoded whole and the
    continuation is the tail after the context's own tokens. An empty context becomes the prefix
    token (see after_prefix). If a token spans the join and swallows the whole continuation, the two
    parts are encoded separately instead (lm-evaluation-harness would score an empty tail).
    """
    if context == "":
        return after_prefix(encode(continuation), prefix_token)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    context_ids = encode(context) or [prefix_token]  # an all-space context leaves nothing
    whole = encode(context + continuation)
    tail = whole[len(context_ids) :] if context else whole
    if not tail:
        tail = encode(continuation)
    return TokenPair(tuple(context_ids), tuple(tail))


def after_prefix(tokens: Sequence[int], prefix_token: int) -> TokenPair:
    """A continuation with no context: scored after the prefix token, unless it starts with it."""
    tokens = tuple(tokens)
    if tokens and tokens[0] == prefix_token:
        return TokenPair(tokens[:1], tokens[1:])
    return TokenPair((prefix_token,), tokens)


@dataclass(frozen=True)
class ModelInput:
    """One row fed to the model: the last `n_scored` positions predict the continuation."""

    ids: tuple[int, ...]
    targets: tuple[int, ...]  # the continuation tokens that are scored
    truncated: int  # tokens cut from the left to fit


def model_input(pair: TokenPair, max_length: int) -> ModelInput:
    """(context + continuation)[-(max_length + 1):][:-1], as lm-evaluation-harness feeds it."""
    full = (pair.context + pair.continuation)[-(max_length + 1) :]
    truncated = len(pair.context) + len(pair.continuation) - len(full)
    n_scored = min(len(pair.continuation), len(full) - 1)
    return ModelInput(full[:-1], full[len(full) - n_scored :], truncated)


def rolling_windows(tokens: Sequence[int], prefix_token: int, max_length: int, stride: int = 0) -> list[TokenPair]:
    """Windows covering every token once, each with as much left context as fits.

    The first window predicts tokens[:max_length] after the end-of-text token; each later window
    predicts the next `stride` tokens (fewer at the end) after the tokens that precede them, filling
    the input to max_length. stride 0 (or >= max_length): disjoint windows of max_length (lm-eval's);
    a smaller stride overlaps the windows, so every later token sees >= max_length - stride context.
    """
    step = min(stride, max_length) if stride > 0 else max_length
    tokens = tuple(tokens)
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows = [TokenPair((prefix_token,), tokens[:first])]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, step)
        end = predicted + n
        context = tokens[end - max_length - 1 : end - n]  # fills the input to max_length tokens
        windows.append(TokenPair(context, tokens[end - n : end]))
        predicted = end
    return windows


def length_batches(rows: Sequence[ModelInput], batch_tokens: int) -> Iterator[list[int]]:
    """Indices of rows in batches, longest first, each batch's padded size within batch_tokens and all its rows
    of one padded width, aligned(len(ids)): a row's numbers then never depend on the rows beside it (an
    attention kernel's blocks follow the row width)."""
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i].ids), rows[i].ids))
    batch: list[int] = []
    for i in order:
        width = aligned(len(rows[i].ids))
        if batch and (width != aligned(len(rows[batch[0]].ids)) or (len(batch) + 1) * width > batch_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def scored_positions(rows: Sequence[ModelInput]) -> list[int]:
    """Sorted input positions whose logits some row of the batch scores (position t predicts t+1)."""
    kept: set[int] = set()
    for row in rows:
        kept.update(range(len(row.ids) - len(row.targets), len(row.ids)))
    return sorted(kept)


def score_batch(logits, rows: Sequence[ModelInput], kept: Sequence[int]) -> list[tuple[float, bool, bool]]:
    """(sum log p, every token greedy, last token greedy) per row, from right-padded logits
    (B, len(kept), V) at positions `kept`."""
    import torch

    column = {position: j for j, position in enumerate(kept)}
    picked, targets = [], []
    for b, row in enumerate(rows):
        first = column.get(len(row.ids) - len(row.targets), 0)  # a row's scored positions are contiguous in kept
        picked.append(logits[b, first : first + len(row.targets)])  # (n, V)
        targets.append(torch.tensor(row.targets, dtype=torch.long))
    flat = torch.cat(picked).float()  # (sum n, V)
    logprobs = torch.log_softmax(flat, dim=-1)
    target = torch.cat(targets).to(flat.device)  # (sum n,)
    token_lp = logprobs.gather(1, target[:, None])[:, 0]  # (sum n,)
    greedy = flat.argmax(dim=-1) == target
    return per_request(token_lp, greedy, [len(row.targets) for row in rows])


def per_request(token_lp, greedy, lengths: Sequence[int]) -> list[tuple[float, bool, bool]]:
    """(sum log p in fp64, every token greedy, last token greedy) of each consecutive run of `lengths`
    tokens in token_lp and greedy, (sum lengths,) each."""
    out, start = [], 0
    for n in lengths:
        stop = start + n
        last = bool(greedy[stop - 1]) if stop > start else True
        out.append((float(token_lp[start:stop].double().sum()), bool(greedy[start:stop].all()), last))
        start = stop
    assert start == len(token_lp), f"{start} tokens in segments, {len(token_lp)} scored"
    return out


def can_keep_logits(model) -> bool:
    """Whether the model's forward takes logits_to_keep, so the LM head can run at scored positions only."""
    import inspect

    return "logits_to_keep" in inspect.signature(model.forward).parameters


def forward_scored(model, rows: Sequence[ModelInput], can_keep: bool):
    """(logits (B, K, V), the K positions) of right-padded rows at the positions some row scores, or at
    every position when the model cannot be told which (can_keep False)."""
    import torch

    width = aligned(max(len(row.ids) for row in rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(rows), width, dtype=torch.long)  # (B, T)
    for b, row in enumerate(rows):  # right padding: real tokens never see the pads
        ids[b, : len(row.ids)] = torch.tensor(row.ids)
        mask[b, : len(row.ids)] = 1
    kept = scored_positions(rows) if can_keep else list(range(width))
    if len(rows) * len(kept) < HEAD_ROWS:  # a head of fewer rows runs another kernel: keep a few more
        kept = sorted(set(kept) | set(range(min(width, -(-HEAD_ROWS // len(rows))))))
    kwargs = {"logits_to_keep": torch.tensor(kept)} if len(kept) < width else {}
    device = next(model.parameters()).device
    return model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits, kept
