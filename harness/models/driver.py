"""The seam of the backends that score a torch module through hf.HFModel: what differs between them.

| backend      | driver                           | packed modes   | KV cache                   | saved as           |
| ------------ | -------------------------------- | -------------- | -------------------------- | ------------------ |
| transformers | transformers_driver.TRANSFORMERS | TREE, KV_CACHE | transformers' DynamicCache | save_pretrained    |
| reference    | reference.DRIVER                 | TREE           | kvcache.KVCache            | a reference folder |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.fastpath import Packable
from harness.models.generation import CachedLM


@dataclass(frozen=True)
class Driver:
    """What differs between the backends that score a torch module through HFModel."""

    backend: str  # the registry name, recorded in run.json and lineage.json
    packable: Callable[[Any], Packable]  # module -> the packed modes it offers (fastpath.py)
    cached: Callable[[Any], CachedLM]  # module -> its decoder run step by step over a KV cache (generation.py)
    save: Callable[[Any, Any, Path], None]  # (module, tokenizer, folder): a folder this backend loads again
