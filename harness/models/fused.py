"""Fewer elementwise passes in Llama-style transformers models while scoring: same numbers, less memory traffic.

transformers' LlamaRMSNorm runs five elementwise kernels (upcast, square, mean, rsqrt, two multiplies) and
its gated MLP allocates the product of the activation and the up projection. On CPU, where a pass over
the activations costs about as much as a small matmul, that shows in a profile. `fuse` swaps the classes
of those submodules for subclasses whose forward does the same arithmetic in the same order with torch's
single-kernel rms_norm and an in-place product: fp32 results are bitwise equal (tests/test_throughput.py
checks that against the unfused model), bf16 ones too, because the rounding points are kept.

While gradients are recorded (fine-tuning a copy) the subclasses run their parents' forward, so training
is unchanged. `unfuse` restores the original classes (`--no-fuse`). torch.compile was measured too and
not chosen: README, "Scoring engine".
"""

from __future__ import annotations

RMS_NORMS = frozenset({"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm"})  # weight * normalize(x in fp32)
GATED_MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP"})  # down(act(gate(x)) * up(x))

_subclasses: dict[type, type] = {}


def _rms_norm_forward(self, hidden):
    import torch
    import torch.nn.functional as F

    if torch.is_grad_enabled():
        return super(type(self), self).forward(hidden)
    normalized = F.rms_norm(hidden.float(), (hidden.shape[-1],), None, self.variance_epsilon)  # (..., C) fp32
    return self.weight * normalized.to(hidden.dtype)


def _gated_mlp_forward(self, x):
    import torch

    if torch.is_grad_enabled():
        return super(type(self), self).forward(x)
    inner = self.act_fn(self.gate_proj(x))  # (..., I)
    return self.down_proj(inner.mul_(self.up_proj(x)))


def _fused_class(cls: type, forward) -> type:
    if cls not in _subclasses:
        _subclasses[cls] = type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "_unfused": cls})
    return _subclasses[cls]


def fuse(module) -> int:
    """Swaps every known RMSNorm and gated MLP inside `module` for its fused subclass; how many were swapped."""
    swapped = 0
    for sub in module.modules():
        cls = type(sub)
        if getattr(cls, "_unfused", None) is not None:
            continue
        if cls.__name__ in RMS_NORMS and hasattr(sub, "variance_epsilon") and hasattr(sub, "weight"):
            sub.__class__ = _fused_class(cls, _rms_norm_forward)
        elif cls.__name__ in GATED_MLPS and all(
            hasattr(sub, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")
        ):
            sub.__class__ = _fused_class(cls, _gated_mlp_forward)
        else:
            continue
        swapped += 1
    return swapped


def unfuse(module) -> int:
    """Restores the original classes; how many were restored."""
    restored = 0
    for sub in module.modules():
        original = getattr(type(sub), "_unfused", None)
        if original is not None:
            sub.__class__ = original
            restored += 1
    return restored


def is_fused(module) -> bool:
    return any(getattr(type(sub), "_unfused", None) is not None for sub in module.modules())
