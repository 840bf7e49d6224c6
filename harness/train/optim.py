"""The optimizer both training loops use (fine-tuning and pretraining): AdamW and one step of it."""

from __future__ import annotations

from collections.abc import Callable


def adamw(model, lr: float, weight_decay: float, betas: tuple[float, float]):
    """AdamW; weight decay on linear weights only (not on norms, biases or a tied embedding: a tensor shared by
    several modules counts where it first appears, the embedding in transformers models)."""
    import torch
    from torch import nn

    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                (decay if isinstance(module, nn.Linear) and name == "weight" else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)  # fused: ~4x faster steps on CPU


def optimizer_step(model, optimizer, loss_fn: Callable, lr: float, grad_clip: float) -> float:
    """Set the learning rate, backpropagate loss_fn(), clip the global gradient norm (0 = no clipping), step;
    returns the loss."""
    import torch

    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())
