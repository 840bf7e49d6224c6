"""A from-scratch decoder-only transformer in plain PyTorch: GPT-2 and a Llama-style variant.

One class, two architectures chosen by `GPTConfig.arch` (a switch, not a class hierarchy):

| part            | Arch.GPT2                            | Arch.LLAMA                                  |
| --------------- | ------------------------------------ | ------------------------------------------- |
| positions       | learned table added to the embedding | rotary, applied to queries and keys          |
| norm            | LayerNorm (weight + bias)            | RMSNorm (weight only)                        |
| attention       | multi-head, biases                   | grouped-query (n_kv_head <= n_head), no bias |
| MLP             | fc -> GELU (tanh approx.) -> proj    | SwiGLU: silu(gate) * up -> proj              |
| LM head         | tied to the token embedding          | tied or its own matrix (config)              |

Blocks are pre-norm: x + attn(norm(x)), then x + mlp(norm(x)). Query, key and value come from one
fused projection (rows: all query heads, then key heads, then value heads); the SwiGLU gate and up
projections are one fused matrix too (rows: gate, then up). reference.py maps transformers weights onto
these names.

forward returns logits at every position, or only at `logits_to_keep`; hidden_states + head split the
same computation so the scorer can run the head at scored positions only.
Padding: the harness pads on the right, so with a causal mask no real token ever attends to a pad and
a (B, T) attention mask changes nothing; it is accepted, checked to be right padding, and otherwise
unused. A (B, T, T) boolean mask with position_ids scores several choices in one packed row (packing.py).

Generation (generation.py) runs `decode` over a KVCache (kvcache.py): rows are left-padded, so every step
writes one new column for all rows; a (B, S) key mask hides the pads and each row carries its own positions.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.kvcache import KVCache


class Arch(enum.Enum):
    GPT2 = "gpt2"
    LLAMA = "llama"


class AttentionImpl(enum.Enum):
    EXPLICIT = "explicit"  # softmax(Q K^T / sqrt(d) + causal mask) V, written out
    SDPA = "sdpa"  # torch's fused scaled_dot_product_attention: same numbers, less memory


@dataclass(frozen=True)
class GPTConfig:
    """Shape and variant of the decoder. Defaults are GPT-2 small (124M)."""

    arch: Arch = Arch.GPT2
    vocab_size: int = 50257
    n_positions: int = 1024  # context length: size of the learned table (GPT-2), the limit (Llama)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_head: int | None = None  # key/value heads; None = n_head; fewer = grouped-query attention
    head_dim: int | None = None  # None = n_embd // n_head
    n_inner: int | None = None  # MLP hidden width; None = 4 * n_embd
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # rotary base (Llama only)
    tie_embeddings: bool = True  # LM head shares the token embedding matrix
    attention: AttentionImpl = AttentionImpl.EXPLICIT

    def __post_init__(self):
        for name in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.head_dim is None and self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_head % self.kv_heads:
            raise ValueError(f"GPTConfig: n_head {self.n_head} is not a multiple of n_kv_head {self.kv_heads}")
        if self.arch is Arch.GPT2 and (self.kv_heads != self.n_head or not self.tie_embeddings):
            raise ValueError("GPTConfig: the GPT-2 variant has n_kv_head == n_head and a tied head")
        if self.arch is Arch.LLAMA and self.head_size % 2:
            raise ValueError(f"GPTConfig: rotary embeddings need an even head_dim, got {self.head_size}")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def mlp_width(self) -> int:
        return self.n_inner or 4 * self.n_embd

    @property
    def model_type(self) -> str:
        return f"reference-{self.arch.value}"


@dataclass(frozen=True)
class CausalLMOutput:
    logits: torch.Tensor  # (B, T or len(logits_to_keep), V)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(config: GPTConfig) -> nn.Module:
    match config.arch:
        case Arch.GPT2:
            return nn.LayerNorm(config.n_embd, eps=config.norm_eps)
        case Arch.LLAMA:
            return RMSNorm(config.n_embd, config.norm_eps)


def rotary_tables(config: GPTConfig, n_positions: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, (T, head_dim), for rotating pairs (i, i + head_dim/2) by angle position * theta^(-2i/d)."""
    d = config.head_size
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, device=device).float() / d))  # (d/2,)
    angles = torch.arange(n_positions, device=device).float()[:, None] * inv_freq[None, :]  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (first-half, second-half) pair of a head's dims; x is (B, H, T, d), cos/sin broadcast to it."""
    first, second = x.chunk(2, dim=-1)  # (B, H, T, d/2) each
    rotated = torch.cat([-second, first], dim=-1)  # (B, H, T, d)
    return x * cos + rotated * sin


Rotary = tuple[torch.Tensor, torch.Tensor] | None  # cos, sin: (B or 1, 1, T, d), or None for GPT-2


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        bias = config.arch is Arch.GPT2
        d, h, kv = config.head_size, config.n_head, config.kv_heads
        self.qkv = nn.Linear(config.n_embd, (h + 2 * kv) * d, bias=bias)
        self.proj = nn.Linear(h * d, config.n_embd, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotary,
        allowed: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """allowed: (B, T, S) bool, True where query i may attend key j; None = causal (S = T). With a cache,
        this step's keys and values are stored in its layer `layer` and the queries read all S filled columns."""
        B, T, _ = x.shape
        d, h, kv = self.config.head_size, self.config.n_head, self.config.kv_heads
        q, k, v = self.qkv(x).split([h * d, kv * d, kv * d], dim=-1)  # (B, T, H * d), (B, T, KV * d) x 2
        q = q.view(B, T, h, d).transpose(1, 2)  # (B, H, T, d)
        k = k.view(B, T, kv, d).transpose(1, 2)  # (B, KV, T, d)
        v = v.view(B, T, kv, d).transpose(1, 2)  # (B, KV, T, d)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:
            k, v = cache.store(layer, k, v)  # (B, KV, S, d) each: the cached columns, then this step's T
        if kv != h:  # grouped-query: query head i reads key/value head i // (H / KV)
            k = k.repeat_interleave(h // kv, dim=1)  # (B, H, S, d)
            v = v.repeat_interleave(h // kv, dim=1)  # (B, H, S, d)
        match self.config.attention:
            case AttentionImpl.EXPLICIT:
                y = explicit_attention(q, k, v, allowed)
            case AttentionImpl.SDPA if allowed is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, d)
            case AttentionImpl.SDPA:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # (B, H, T, d)
        y = y.transpose(1, 2).reshape(B, T, h * d)  # (B, T, H * d)
        return self.proj(y)


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d), masked) V for queries (B, H, T, d) and keys, values (B, H, S, d): the future is
    masked (S = T), or, given allowed (B, T, S), every key j that query i may not attend (a tree mask for
    packed choices; pads and the future of a cached decoding step)."""
    T, S, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, S)
    if allowed is None:
        hidden = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(diagonal=1)  # (T, T), True above diagonal
    else:
        hidden = ~allowed[:, None]  # (B, 1, T, S)
    scores = scores.masked_fill(hidden, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, S), rows sum to 1
    return weights @ v  # (B, H, T, d)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.arch = config.arch
        match config.arch:
            case Arch.GPT2:
                self.fc = nn.Linear(config.n_embd, config.mlp_width)
            case Arch.LLAMA:  # gate and up, fused
                self.fc = nn.Linear(config.n_embd, 2 * config.mlp_width, bias=False)
        self.proj = nn.Linear(config.mlp_width, config.n_embd, bias=config.arch is Arch.GPT2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        match self.arch:
            case Arch.GPT2:
                return self.proj(F.gelu(self.fc(x), approximate="tanh"))
            case Arch.LLAMA:
                gate, up = self.fc(x).chunk(2, dim=-1)  # (B, T, mlp_width) each
                return self.proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.norm_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotary,
        allowed: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), rotary, allowed, cache, layer)
        return x + self.mlp(self.norm_2(x))


class GPT(nn.Module):
    """Decoder-only LM. `.config` carries n_positions and model_type, so HFModel can drive it."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd) if config.arch is Arch.GPT2 else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer), zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:  # each adds to the residual stream: 2 * n_layer additions in all
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    @property
    def head_weight(self) -> torch.Tensor:
        return self.wte.weight if self.lm_head is None else self.lm_head.weight  # (V, C)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        position_ids: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        """Logits (B, T, V) for input_ids (B, T); with logits_to_keep, only at those positions:
        an int n keeps the last n (0 keeps all), a 1-D LongTensor keeps the listed positions.
        attention_mask: (B, T) right padding (checked, otherwise unused), or (B, T, T) bool, True where
        query i may attend key j, with position_ids (B, T): packed rows (see packing.py)."""
        x = self.hidden_states(input_ids, attention_mask, position_ids)  # (B, T, C)
        x = keep_positions(x, logits_to_keep)  # (B, T', C)
        return CausalLMOutput(self.head(x))  # (B, T', V)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final-normed hidden states (B, T, C), which head() maps to logits."""
        B, T = input_ids.shape
        allowed = None
        if attention_mask is not None and attention_mask.dim() == 3:
            assert tuple(attention_mask.shape) == (B, T, T) and attention_mask.dtype == torch.bool, (
                "mask is (B, T, T) bool"
            )
            allowed = attention_mask
        elif attention_mask is not None:
            check_right_padded(attention_mask, (B, T))
        if position_ids is None:
            if T > self.config.n_positions:
                raise ValueError(f"sequence of {T} tokens exceeds the model's {self.config.n_positions} positions")
            position_ids = torch.arange(T, device=input_ids.device)[None]  # (1, T)
        elif int(position_ids.max()) >= self.config.n_positions:
            raise ValueError(
                f"position {int(position_ids.max())} exceeds the model's {self.config.n_positions} positions"
            )
        x, rotary = self.embed(input_ids, position_ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x, rotary, allowed)  # (B, T, C)
        return self.norm_f(x)  # (B, T, C)

    def embed(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, Rotary]:
        """Token embeddings (B, T, C), plus the learned position table (GPT-2) or the rotary tables for
        position_ids (B or 1, T) (Llama)."""
        x = self.wte(input_ids)  # (B, T, C)
        match self.config.arch:
            case Arch.GPT2:
                return x + self.wpe(position_ids), None  # (B, T, C) + (B or 1, T, C)
            case Arch.LLAMA:
                cos, sin = rotary_tables(self.config, int(position_ids.max()) + 1, input_ids.device)  # (P, d) twice
                return x, (
                    cos[position_ids][:, None].to(x.dtype),
                    sin[position_ids][:, None].to(x.dtype),
                )  # (B or 1, 1, T, d) twice

    def decode(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, key_mask: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        """Logits (B, V) at the last of T new tokens per row, input_ids and position_ids (B, T), appended to
        `cache` (which then holds S = cache.length + T columns). key_mask (B, S) bool is False at pad columns;
        the new tokens sit in the last T columns and see the unmasked columns up to their own. A query
        always sees its own column, so a pad's hidden state stays finite (it is never attended)."""
        B, T = input_ids.shape
        S = cache.length + T
        assert tuple(key_mask.shape) == (B, S) and key_mask.dtype == torch.bool, (
            f"key_mask {tuple(key_mask.shape)} != {(B, S)}"
        )
        if int(position_ids.max()) >= self.config.n_positions:
            raise ValueError(
                f"position {int(position_ids.max())} exceeds the model's {self.config.n_positions} positions"
            )
        column = torch.arange(S, device=input_ids.device)  # (S,)
        own = column[cache.length :, None]  # (T, 1): each query's own column
        allowed = key_mask[:, None, :] & (column[None, :] <= own)[None]  # (B, T, S): unmasked and not in the future
        allowed = allowed | (column[None, :] == own)[None]  # (B, T, S): and itself
        x, rotary = self.embed(input_ids, position_ids)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, rotary, allowed, cache, layer)  # (B, T, C)
        cache.length = S
        return self.head(self.norm_f(x[:, -1]))  # (B, V)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) from final-normed hidden states (..., C)."""
        return F.linear(x, self.head_weight)


def keep_positions(x: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, T', C) with transformers' meaning of logits_to_keep."""
    match logits_to_keep:
        case int() as n:
            return x[:, -n:] if n > 0 else x  # (B, n, C); 0 keeps all
        case torch.Tensor() as positions:
            assert positions.dim() == 1, f"logits_to_keep must be 1-D positions, got shape {tuple(positions.shape)}"
            return x[:, positions.to(x.device)]  # (B, len(positions), C)
        case _:
            raise TypeError(f"logits_to_keep must be an int or a 1-D LongTensor, got {type(logits_to_keep).__name__}")


def check_right_padded(attention_mask: torch.Tensor, shape: tuple[int, int]) -> None:
    """Only right padding is supported (see the module docstring): each row is ones, then zeros."""
    assert tuple(attention_mask.shape) == shape, f"attention_mask {tuple(attention_mask.shape)} != input_ids {shape}"
    mask = attention_mask.bool()  # (B, T)
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("the reference decoder supports right padding only (a real token follows a pad)")
