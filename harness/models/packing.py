"""Shared-prefix scoring: every continuation of one context in a single row with a tree attention mask.

lm-evaluation-harness runs context + choice once per choice. Here the requests (already truncated by
scoring.model_input) that feed the same context tokens to the model are packed into one row:

    columns   | c_0 ... c_{n-1} | a_1 ... a_p | b_1 ... b_q |     (context, then each branch's suffix)
    positions | 0   ...   n-1   | n ... n+p-1 | n ... n+q-1 |     (restart after the context)
    segment   | 0   ...   0     | 1 ... 1     | 2 ... 2     |     (-1 on padding)

Column i may attend to column j <= i when j is in the context or in i's own branch, so each branch
sees exactly the tokens (and positions) it would see alone: the numbers equal one forward per request.
A branch's suffix is its scored tokens but the last (those are never inputs); its first token is
predicted at the context's last column. Positions never exceed the request's own input length - 1 <
max_length, although a packed row may be longer than max_length. The LM head runs only at scored
columns, chunk by chunk, so neither (B, T, V) logits nor a full-vocabulary log-softmax of unscored
positions is ever formed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from harness.models.scoring import ALIGN, HEAD_ROWS, ModelInput, aligned, per_request

HEAD_CHUNK = 1024  # scored positions per LM-head matmul: bounds the (N, V) fp32 logits at ~200 MB


@dataclass(frozen=True)
class Branch:
    """One request inside a packed row."""

    request: int  # index into the caller's rows
    start: int  # column of the first suffix token
    length: int  # suffix tokens: n_targets - 1 (0 for a one-token continuation)
    targets: tuple[int, ...]  # the scored tokens


@dataclass(frozen=True)
class PackedRow:
    ids: tuple[int, ...]
    positions: tuple[int, ...]
    shared: int  # context columns, all in segment 0
    branches: tuple[Branch, ...]

    def scored_columns(self, branch: Branch) -> list[int]:
        """Columns whose hidden states predict branch.targets, in order."""
        if not branch.targets:
            return []
        return [self.shared - 1, *range(branch.start, branch.start + branch.length)]

    def segments(self) -> list[int]:
        """Per column: 0 for the context, k for branch k's suffix, -1 for the alignment gaps."""
        out = [0] * self.shared + [-1] * (len(self.ids) - self.shared)
        for k, branch in enumerate(self.branches, start=1):
            out[branch.start : branch.start + branch.length] = [k] * branch.length
        return out


def split(row: ModelInput) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shared context, suffix): the suffix is the inputs after the position predicting targets[0]."""
    n = len(row.targets)
    cut = len(row.ids) - n + 1 if n else len(row.ids)
    assert 1 <= cut <= len(row.ids), f"bad model input: {len(row.ids)} ids, {n} targets"
    suffix = row.ids[cut:]
    assert suffix == row.targets[:-1], "the scored targets must be the continuation of the inputs"
    return row.ids[:cut], suffix


def pack(rows: Sequence[ModelInput], row_limit: int) -> list[PackedRow]:
    """Rows sharing the same context ids are packed together, branches in request order, a packed row
    growing up to row_limit columns (a row holds its context and at least one branch). A branch starts a
    multiple of ALIGN columns after the context's end, padding before it, so its numbers never depend on
    the branches that share its row."""
    groups: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}
    for i, row in enumerate(rows):
        shared, suffix = split(row)
        groups.setdefault(shared, []).append((i, suffix))
    packed = []
    for shared, members in groups.items():
        ids, positions, branches = list(shared), list(range(len(shared))), []
        for i, suffix in members:
            gap = (len(shared) - len(ids)) % ALIGN if suffix else 0
            if branches and len(ids) + gap + len(suffix) > row_limit:
                packed.append(PackedRow(tuple(ids), tuple(positions), len(shared), tuple(branches)))
                ids, positions, branches, gap = list(shared), list(range(len(shared))), [], 0
            ids += [0] * gap
            positions += [0] * gap
            branches.append(Branch(i, len(ids), len(suffix), rows[i].targets))
            ids += suffix
            positions += range(len(shared), len(shared) + len(suffix))
        packed.append(PackedRow(tuple(ids), tuple(positions), len(shared), tuple(branches)))
    return packed


def is_tree(row: PackedRow) -> bool:
    """More than one branch with suffix tokens: a plain causal mask would let branches see each other."""
    return sum(b.length > 0 for b in row.branches) > 1


def batches(rows: Sequence[PackedRow], batch_tokens: int) -> Iterator[list[int]]:
    """Indices of rows, causal-only rows first, then longest first; padded size within batch_tokens, and the
    rows of a batch all of one padded width, aligned(len(ids)), so that a row's numbers never depend on which
    rows share its forward pass (CPU flash attention's key blocks are the row width up to 512)."""
    order = sorted(range(len(rows)), key=lambda i: (is_tree(rows[i]), -len(rows[i].ids), rows[i].ids))
    batch: list[int] = []
    for i in order:
        width = aligned(len(rows[i].ids))
        same = not batch or (is_tree(rows[batch[0]]), aligned(len(rows[batch[0]].ids))) == (is_tree(rows[i]), width)
        if batch and (not same or (len(batch) + 1) * width > batch_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@dataclass(frozen=True)
class Tensors:
    ids: object  # (B, W) long, right padded with 0
    positions: object  # (B, W) long
    allowed: object | None  # (B, W, W) bool, True where query i may attend key j; None = plain causal
    rows: object  # (N,) long: batch row of each scored position
    columns: object  # (N,) long: its column
    targets: object  # (N,) long


def tensors(chunk: Sequence[PackedRow]) -> Tensors:
    """Model inputs for a batch of packed rows, and the (row, column, target) of every scored position."""
    import torch

    width = aligned(max(len(r.ids) for r in chunk))
    ids = torch.zeros(len(chunk), width, dtype=torch.long)  # (B, W)
    positions = torch.zeros(len(chunk), width, dtype=torch.long)  # (B, W)
    segment = torch.full((len(chunk), width), -1, dtype=torch.long)  # (B, W), -1 = padding
    where, targets = [], []
    for b, row in enumerate(chunk):
        ids[b, : len(row.ids)] = torch.tensor(row.ids)
        positions[b, : len(row.ids)] = torch.tensor(row.positions)
        segment[b, : len(row.ids)] = torch.tensor(row.segments())
        for branch in row.branches:
            where += [(b, col) for col in row.scored_columns(branch)]
            targets += branch.targets
    allowed = tree_mask(segment)  # always a mask: a causal-only kernel would round differently than this one
    index = torch.tensor(where, dtype=torch.long).reshape(-1, 2)  # (N, 2)
    return Tensors(ids, positions, allowed, index[:, 0], index[:, 1], torch.tensor(targets, dtype=torch.long))


def tree_mask(segment):
    """(B, W) segments -> (B, W, W) bool: key j <= query i, and j in the context or in i's branch.
    A padding column (segment -1) sees the context and earlier padding, so no softmax row is empty."""
    import torch

    width = segment.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()  # (W, W)
    query, key = segment[:, :, None], segment[:, None, :]  # (B, W, 1), (B, 1, W)
    return causal & ((key == 0) | (key == query))  # (B, W, W)


Body = Callable[[object, object, object], object]  # (ids, positions, allowed) -> hidden (B, W, C)
Head = Callable[[object], object]  # hidden (N, C) -> logits (N, V)


def score_packed(
    rows: Sequence[ModelInput], body: Body, head: Head, batch_tokens: int, row_limit: int
) -> list[tuple[float, bool, bool]]:
    """(sum log p, every token greedy, last token greedy) per row, in order, via packed rows."""
    packed = pack(rows, row_limit)
    out: list[tuple[float, bool, bool] | None] = [None] * len(rows)
    for batch in batches(packed, batch_tokens):
        chunk = [packed[i] for i in batch]
        t = tensors(chunk)
        hidden = body(t.ids, t.positions, t.allowed)  # (B, W, C)
        picked = hidden[t.rows.to(hidden.device), t.columns.to(hidden.device)]  # (N, C)
        token_lp, greedy = head_scores(picked, t.targets.to(hidden.device), head)  # (N,), (N,)
        branches = [branch for row in chunk for branch in row.branches]
        scores = per_request(token_lp, greedy, [len(b.targets) for b in branches])
        for branch, score in zip(branches, scores, strict=True):
            out[branch.request] = score
    assert all(s is not None for s in out)
    return out  # type: ignore[return-value]


def head_scores(hidden, targets, head: Head):
    """log p(target) in float64 and argmax == target, (N,) each, from hidden (N, C), HEAD_CHUNK at a time."""
    import torch

    lps, greedy = [], []
    for start in range(0, hidden.shape[0], HEAD_CHUNK):
        rows = hidden[start : start + HEAD_CHUNK]  # (n, C)
        target = targets[start : start + HEAD_CHUNK]  # (n,)
        pad = max(0, HEAD_ROWS - rows.shape[0])
        logits = head(torch.cat([rows, rows.new_zeros(pad, rows.shape[1])]) if pad else rows)[: rows.shape[0]]
        logits = logits.float()  # (n, V)
        logprobs = torch.log_softmax(logits, dim=-1)  # (n, V)
        lps.append(logprobs.gather(1, target[:, None])[:, 0].double())  # (n,)
        greedy.append(logits.argmax(dim=-1) == target)  # (n,)
    if not lps:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
    return torch.cat(lps).cpu(), torch.cat(greedy).cpu()
