"""How a backend runs packed scoring (packing.py): a tree mask, a reused context KV cache, or neither.

| mode      | one forward per                       | needs                                          |
| --------- | ------------------------------------- | ---------------------------------------------- |
| TREE      | batch of packed rows (all choices)    | a 4-D attention mask and position ids           |
| KV_CACHE  | context, then its choices in a batch  | past_key_values (transformers Cache)            |
| PLAIN     | batch of requests (context repeated)  | nothing: scoring.py's right-padded path         |

TREE is the fast path for transformers GPT-2/Llama and the reference decoder (measured: see README,
"Scoring engine"); KV_CACHE is the fallback for transformers models whose forward ignores or rejects a
custom mask; PLAIN for anything else (e.g. the bigram fake in the tests). The backend says which modes its
module offers, and how TREE runs it, as a `Packable` (transformers: transformers_driver.py; the
reference decoder: reference.py); `choose` runs a tiny probe through those modes and keeps the first that
reproduces PLAIN's numbers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from harness.models import packing
from harness.models.scoring import ModelInput, per_request

Scores = list[tuple[float, bool, bool]]  # (sum log p, every token greedy, last token greedy) per row


class PackMode(enum.Enum):
    TREE = "tree-mask"
    KV_CACHE = "kv-cache"
    PLAIN = "plain"


@dataclass(frozen=True)
class Packable:
    """What a backend's module offers packed scoring: the fast modes to try, in order (none: PLAIN only),
    the hidden states and LM head the TREE mode runs, and the vocabulary size (for the probe's ids)."""

    modes: tuple[PackMode, ...]
    body: packing.Body | None = None
    head: packing.Head | None = None
    vocab: int = 0


def score_tree(packable: Packable, rows: Sequence[ModelInput], batch_tokens: int, row_limit: int) -> Scores:
    assert packable.body is not None and packable.head is not None, "TREE needs the backend's body and head"
    return packing.score_packed(rows, packable.body, packable.head, batch_tokens, row_limit)


def score_kv_cache(model, rows: Sequence[ModelInput], batch_tokens: int) -> Scores:
    """Per context: one forward with use_cache, the cache repeated over its choices, one forward of the
    right-padded choice suffixes (positions follow the cache). The head runs at scored positions only."""
    import torch

    base, head = model.base_model, model.get_output_embeddings()
    device = next(model.parameters()).device
    out: list = [None] * len(rows)
    for row in packing.pack(rows, row_limit=max(batch_tokens, 1)):
        context = torch.tensor([row.ids[: row.shared]], device=device)  # (1, c)
        first = base(input_ids=context, use_cache=True)
        hidden_last = first.last_hidden_state[0, -1]  # (C,)
        width = max(b.length for b in row.branches)
        suffix_hidden = None
        if width:
            n = len(row.branches)
            ids = torch.zeros(n, width, dtype=torch.long)  # (n, S), right padded
            mask = torch.zeros(n, row.shared + width, dtype=torch.long)  # (n, c + S)
            mask[:, : row.shared] = 1
            for j, b in enumerate(row.branches):
                ids[j, : b.length] = torch.tensor(row.ids[b.start : b.start + b.length])
                mask[j, row.shared : row.shared + b.length] = 1
            cache = first.past_key_values
            cache.batch_repeat_interleave(n)
            suffix_hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                                 use_cache=False).last_hidden_state  # (n, S, C)
        picked, targets = [], []
        for j, b in enumerate(row.branches):
            if b.targets:
                picked.append(hidden_last[None])  # (1, C)
                if b.length:
                    picked.append(suffix_hidden[j, : b.length])  # (length, C)
            targets += b.targets
        if not targets:
            out = _fill(out, row, torch.zeros(0), torch.zeros(0, dtype=torch.bool))
            continue
        token_lp, greedy = packing.head_scores(torch.cat(picked), torch.tensor(targets, device=device), head)
        out = _fill(out, row, token_lp, greedy)
    return out


def _fill(out: list, row: packing.PackedRow, token_lp, greedy) -> list:
    for b, score in zip(
        row.branches, per_request(token_lp, greedy, [len(b.targets) for b in row.branches]), strict=True
    ):
        out[b.request] = score
    return out


def choose(model, packable: Packable, plain, prefix_token: int, batch_tokens: int) -> PackMode:
    """The first of the backend's modes whose numbers match PLAIN's on a probe of two choices, one of them
    long enough that a wrong mask or wrong positions would show; else PLAIN."""
    import torch

    if not packable.modes:
        return PackMode.PLAIN
    vocab = packable.vocab
    ids = [prefix_token] + [(prefix_token + 7 * k + 3) % vocab for k in range(1, 9)]
    probe = [
        ModelInput(tuple(ids[:5] + ids[5:8]), tuple(ids[5:9]), 0),
        ModelInput(tuple(ids[:5]), (ids[8],), 0),
        ModelInput(tuple(ids[:5] + ids[6:8]), tuple(ids[6:8] + ids[4:5]), 0),
    ]
    expected = plain(probe)
    tolerance = 1e-4 if next(model.parameters()).dtype == torch.float32 else 5e-2
    for mode in packable.modes:
        try:
            with torch.inference_mode():
                got = run(mode, model, packable, probe, batch_tokens, row_limit=64)
        except Exception:  # a model that rejects the inputs cannot use the mode
            continue
        if all(abs(g[0] - e[0]) <= tolerance * (1 + abs(e[0])) for g, e in zip(got, expected, strict=True)):
            return mode
    return PackMode.PLAIN


def run(
    mode: PackMode, model, packable: Packable, rows: Sequence[ModelInput], batch_tokens: int, row_limit: int
) -> Scores:
    match mode:
        case PackMode.TREE:
            return score_tree(packable, rows, batch_tokens, row_limit)
        case PackMode.KV_CACHE:
            return score_kv_cache(model, rows, batch_tokens)
        case PackMode.PLAIN:
            raise ValueError("PLAIN is HFModel's own path")
