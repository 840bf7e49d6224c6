"""The reference decoder's KV cache (gpt.GPT.decode writes it; generation.py drives it through reference.py).

Keys and values per layer live in buffers (B, KV, capacity, d) with room for `capacity` columns, of which the
first `length` are filled. Rows are left-padded, so a column is one slot of every row and a step writes the
same columns in all rows.
"""

from __future__ import annotations

from typing import Protocol

import torch


class CacheShape(Protocol):
    """What a cache's buffers are sized by: gpt.GPTConfig."""

    n_layer: int

    @property
    def kv_heads(self) -> int: ...

    @property
    def head_size(self) -> int: ...


class KVCache:
    """Keys and values of every layer for B rows, in buffers with room for `capacity` columns, of which the
    first `length` are filled. A column is one slot of every row (left padding aligns the rows' ends), so a
    step writes the same columns in all rows; GPT.decode advances `length` after its last layer. Owned by one
    decoding loop, never shared: it is the one mutable object of the decoder."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int):
        self.keys, self.values, self.length = keys, values, length  # per layer (B, KV, capacity, d)

    @classmethod
    def empty(cls, config: CacheShape, batch: int, capacity: int, like: torch.Tensor) -> KVCache:
        shape = (batch, config.kv_heads, capacity, config.head_size)  # (B, KV, capacity, d)

        def make() -> list[torch.Tensor]:
            return [like.new_empty(shape) for _ in range(config.n_layer)]

        return cls(make(), make(), 0)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's k, v (B, KV, T, d) at columns [length, length + T) of `layer`; returns the
        filled columns (B, KV, length + T, d), views into the buffers."""
        end = self.length + k.shape[2]
        assert end <= self.capacity, f"KV cache full: {end} columns > capacity {self.capacity}"
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # (B, KV, S, d) each

    def select(self, rows: torch.Tensor, first: int) -> KVCache:
        """A new cache of `rows` (a 1-D index) and columns from `first` on: finished rows leave the batch
        and pad columns no remaining row needs go with them."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t[rows.to(t.device), :, first:]  # (B', KV, capacity - first, d), a copy

        return KVCache([pick(k) for k in self.keys], [pick(v) for v in self.values], self.length - first)

    @staticmethod
    def merge(caches: list[KVCache], room: int) -> KVCache:
        """The rows of several caches of equal length, one after another, with room for `room` more columns."""
        length = caches[0].length
        assert all(c.length == length for c in caches), "merged caches must have the same columns"
        layers = range(len(caches[0].keys))
        keys = [_join([c.keys[i] for c in caches], length, room) for i in layers]
        values = [_join([c.values[i] for c in caches], length, room) for i in layers]
        return KVCache(keys, values, length)


def _join(parts: list[torch.Tensor], length: int, room: int) -> torch.Tensor:
    """One layer's buffers (B_i, KV, >= length, d) stacked by row: their first `length` columns, then `room`
    empty ones."""
    rows = torch.cat([p[:, :, :length] for p in parts])  # (B, KV, length, d)
    out = rows.new_empty(rows.shape[0], rows.shape[1], length + room, rows.shape[3])  # (B, KV, length + room, d)
    out[:, :, :length] = rows
    return out
