"""transformers' driver for hf.HFModel (driver.py): the packed modes a transformers causal LM offers, its
decoder over a DynamicCache for batched generation (generation.py), and save_pretrained for FT checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.models.driver import Driver
from harness.models.fastpath import Packable, PackMode
from harness.models.generation import CachedLM


def transformers_packable(model) -> Packable:
    """TREE, then KV_CACHE, for a transformers model with a separate base model and an output embedding.
    transformers takes the tree as an additive (B, 1, W, W) mask, finfo.min where hidden (not -inf)."""
    import torch

    if getattr(model, "base_model", model) is model or not hasattr(model, "get_output_embeddings"):
        return Packable(())
    base, dtype = model.base_model, next(model.parameters()).dtype

    def hf_body(ids, positions, allowed):
        device = next(model.parameters()).device
        if allowed is None:
            return base(input_ids=ids.to(device), use_cache=False).last_hidden_state  # (B, W, C)
        additive = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)  # (B, W, W)
        out = base(input_ids=ids.to(device), attention_mask=additive[:, None].to(device),
                   position_ids=positions.to(device), use_cache=False)  # mask (B, 1, W, W)
        return out.last_hidden_state  # (B, W, C)

    head = model.get_output_embeddings()
    return Packable((PackMode.TREE, PackMode.KV_CACHE), hf_body, head, head.weight.shape[0])


def transformers_cached(model) -> CachedLM:
    """transformers' decoder over its DynamicCache (updated in place): a 2-D attention mask over every column
    (pads 0) and explicit position ids, as transformers' own generate passes them for left-padded batches.
    Rows and columns are cut from the cache's layers (`layers`, transformers >= 4.56)."""
    import inspect

    from transformers import DynamicCache

    parameters = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.x
    keep_one = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def forward(ids, positions, key_mask, cache):
        if cache is None:
            cache = DynamicCache(config=model.config)
            if not hasattr(cache, "layers"):
                raise HarnessError("generation needs transformers >= 4.56 (a DynamicCache with layers)")
        out = model(input_ids=ids, attention_mask=key_mask.long(), position_ids=positions, use_cache=True,
                    **{cache_arg: cache}, **keep_one)
        return out.logits[:, -1], cache  # (B, V)

    def merge(caches, room):  # a DynamicCache grows by concatenation: no room to make
        import torch

        if len(caches) == 1:
            return caches[0]
        layers = zip(*(c.layers for c in caches), strict=True)
        data = [
            (torch.cat([layer.keys for layer in parts]), torch.cat([layer.values for layer in parts]))
            for parts in layers
        ]
        return DynamicCache(data, config=model.config)  # (B, KV, S, d) per layer

    def select(cache, rows, first):
        for layer in cache.layers:
            assert not layer.is_sliding, "sliding-window caches are not cut by column"
            layer.keys = layer.keys[rows, :, first:]  # (B', KV, S - first, d)
            layer.values = layer.values[rows, :, first:]
        return cache

    return CachedLM(forward, merge, select, next(model.parameters()).device)


def save_transformers(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


TRANSFORMERS = Driver("transformers", transformers_packable, transformers_cached, save_transformers)
