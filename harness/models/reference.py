"""Weights for the reference decoder (gpt.py): import from transformers, save and load our own folders.

Supported transformers architectures: GPT2LMHeadModel (`gpt2`, also distilgpt2) and LlamaForCausalLM
(`llama`, e.g. SmolLM2). Every name and shape is checked at the boundary; a mismatch is one line naming
the tensor.

A reference folder holds:
  reference.json      {"format": "harness-reference", "version": 1, "config": {GPTConfig fields}}
  model.safetensors   GPT.state_dict() in fp32 (a tied head is stored once, as wte.weight)
  tokenizer files     whatever tokenizer.save_pretrained writes
reference.json is written last, so a folder that has it is complete.

The reference backend (DRIVER, at the end; driver.py) scores the decoder through hf.HFModel: the TREE packed path
over hidden_states + head, its own KV cache for batched generation, and this folder format for FT checkpoints.
transformers_load.reference_decoder composes conversion (`from_hf` of whatever transformers loads); this
module never imports the loaders or the registry.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from harness.errors import HarnessError, first_line
from harness.models.fastpath import Packable, PackMode
from harness.models.generation import CachedLM
from harness.models.driver import Driver
from harness.models.gpt import GPT, Arch, AttentionImpl, GPTConfig
from harness.models.kvcache import KVCache

FORMAT, VERSION = "harness-reference", 1
CONFIG_FILE, WEIGHTS_FILE = "reference.json", "model.safetensors"
GPT2_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both are GELU's tanh approximation
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")  # buffers, not weights

# ---------------------------------------------------------------- transformers -> GPT


def from_hf(hf_model, attention: AttentionImpl = AttentionImpl.EXPLICIT) -> GPT:
    """A GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM (fp32, on CPU)."""
    model_type = getattr(hf_model.config, "model_type", None)
    try:
        arch = Arch(model_type)
    except ValueError:
        supported = ", ".join(a.value for a in Arch)
        message = f"reference decoder: unsupported architecture {model_type!r} (supported: {supported})"
        raise HarnessError(message) from None
    source = {name: t.detach() for name, t in hf_model.state_dict().items() if not name.endswith(IGNORED_SUFFIXES)}
    match arch:
        case Arch.GPT2:
            config = gpt2_config(hf_model.config, attention)
            weights = gpt2_weights(source, config)
        case Arch.LLAMA:
            config = llama_config(hf_model.config, attention)
            weights = llama_weights(source, config)
    return build(config, weights, f"{model_type} checkpoint")


def gpt2_config(hf, attention: AttentionImpl) -> GPTConfig:
    _require(hf.activation_function in GPT2_ACTIVATIONS, f"activation {hf.activation_function!r}")
    _require(hf.scale_attn_weights and not hf.scale_attn_by_inverse_layer_idx, "attention scaling other than 1/sqrt(d)")
    _require(hf.tie_word_embeddings, "an untied LM head")
    return GPTConfig(
        arch=Arch.GPT2, vocab_size=hf.vocab_size, n_positions=hf.n_positions, n_layer=hf.n_layer,
        n_head=hf.n_head, n_embd=hf.n_embd, n_inner=hf.n_inner, norm_eps=hf.layer_norm_epsilon,
        attention=attention,
    )


def llama_config(hf, attention: AttentionImpl) -> GPTConfig:
    rope = getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {}  # v5, then v4
    _require(rope.get("rope_type", "default") == "default", f"rope_type {rope.get('rope_type')!r}")
    _require(hf.hidden_act == "silu", f"activation {hf.hidden_act!r}")
    _require(not hf.attention_bias and not getattr(hf, "mlp_bias", False), "biases in attention or MLP")
    return GPTConfig(
        arch=Arch.LLAMA, vocab_size=hf.vocab_size, n_positions=hf.max_position_embeddings,
        n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads, n_embd=hf.hidden_size,
        n_kv_head=hf.num_key_value_heads, head_dim=getattr(hf, "head_dim", None), n_inner=hf.intermediate_size,
        norm_eps=hf.rms_norm_eps, rope_theta=float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))),
        tie_embeddings=hf.tie_word_embeddings, attention=attention,
    )


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise HarnessError(f"reference decoder: unsupported checkpoint: {what}")


def gpt2_weights(source: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names -> ours. GPT-2's Conv1D stores (in, out): those matrices are transposed."""
    take = _Taker(source, "GPT-2")
    out = {"wte.weight": take("transformer.wte.weight"), "wpe.weight": take("transformer.wpe.weight")}
    for i in range(config.n_layer):
        hf, ours = f"transformer.h.{i}.", f"blocks.{i}."
        pairs = [("norm_1", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
                 ("norm_2", "ln_2"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")]  # fmt: skip
        for our_name, hf_name in pairs:
            weight = take(hf + hf_name + ".weight")
            out[ours + our_name + ".weight"] = weight if our_name.startswith("norm") else weight.t()  # (out, in)
            out[ours + our_name + ".bias"] = take(hf + hf_name + ".bias")
    out["norm_f.weight"], out["norm_f.bias"] = take("transformer.ln_f.weight"), take("transformer.ln_f.bias")
    _check_tied(take("lm_head.weight"), out["wte.weight"], "GPT-2")
    take.finish()
    return out


def llama_weights(source: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """Llama names -> ours: q, k, v stacked into qkv (rows: q heads, k heads, v heads), gate and up into fc."""
    take = _Taker(source, "Llama")
    out = {"wte.weight": take("model.embed_tokens.weight")}
    for i in range(config.n_layer):
        hf, ours = f"model.layers.{i}.", f"blocks.{i}."
        out[ours + "norm_1.weight"] = take(hf + "input_layernorm.weight")
        qkv = [take(hf + f"self_attn.{p}_proj.weight") for p in "qkv"]
        out[ours + "attn.qkv.weight"] = torch.cat(qkv, dim=0)  # ((H + 2 KV) d, C)
        out[ours + "attn.proj.weight"] = take(hf + "self_attn.o_proj.weight")
        out[ours + "norm_2.weight"] = take(hf + "post_attention_layernorm.weight")
        gate_up = [take(hf + "mlp.gate_proj.weight"), take(hf + "mlp.up_proj.weight")]
        out[ours + "mlp.fc.weight"] = torch.cat(gate_up, dim=0)  # (2 mlp_width, C)
        out[ours + "mlp.proj.weight"] = take(hf + "mlp.down_proj.weight")
    out["norm_f.weight"] = take("model.norm.weight")
    if config.tie_embeddings:
        if "lm_head.weight" in source:  # transformers lists the tied head too
            _check_tied(take("lm_head.weight"), out["wte.weight"], "Llama")
    else:
        out["lm_head.weight"] = take("lm_head.weight")
    take.finish()
    return out


class _Taker:
    """Hands out source tensors by name, once each; finish() fails on any left unused."""

    def __init__(self, source: dict[str, torch.Tensor], what: str):
        self.source, self.what, self.used = source, what, set()

    def __call__(self, name: str) -> torch.Tensor:
        if name not in self.source:
            raise HarnessError(f"reference decoder: {self.what} checkpoint has no tensor {name!r}")
        self.used.add(name)
        return self.source[name]

    def finish(self) -> None:
        left = sorted(set(self.source) - self.used)
        if left:
            more = f" and {len(left) - 3} more" if len(left) > 3 else ""
            raise HarnessError(f"reference decoder: {self.what} checkpoint has unexpected tensors {left[:3]}{more}")


def _check_tied(head: torch.Tensor, embedding: torch.Tensor, what: str) -> None:
    if head.shape != embedding.shape or not torch.equal(head, embedding):
        raise HarnessError(f"reference decoder: {what} config says the head is tied, but lm_head.weight != embeddings")


def build(config: GPTConfig, weights: dict[str, torch.Tensor], where: str) -> GPT:
    """A GPT holding exactly `weights` (fp32 copies): names and shapes must match the config."""
    with torch.device("meta"):  # no random init of weights about to be replaced
        model = GPT(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise HarnessError(f"{where}: names do not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise HarnessError(f"{where}: {name} has shape {tuple(weights[name].shape)}, the config needs {shape}")
    copies = {name: t.detach().to("cpu", torch.float32).contiguous().clone() for name, t in weights.items()}
    model.load_state_dict(copies, strict=True, assign=True)
    return model.eval()


# ---------------------------------------------------------------- our folder format


def save_reference(model: GPT, tokenizer, folder: str | Path) -> Path:
    """Write model + tokenizer as a reference folder (see the module docstring)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    fields = {f.name: getattr(model.config, f.name) for f in dataclasses.fields(model.config)}
    fields = {k: v.value if isinstance(v, Arch | AttentionImpl) else v for k, v in fields.items()}
    document = {"format": FORMAT, "version": VERSION, "config": fields}
    (folder / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return folder


def is_reference_folder(spec: str | Path) -> bool:
    return (Path(spec).expanduser() / CONFIG_FILE).is_file()


def load_reference(folder: str | Path, device: str = "cpu",
                   attention: AttentionImpl | None = None) -> tuple[GPT, object]:
    """(GPT, tokenizer) from a reference folder; `attention` overrides the saved choice. (Converting any
    other model is transformers_load.reference_decoder: it loads with transformers, then from_hf.)"""
    if not is_reference_folder(folder):
        raise HarnessError(f"{folder}: not a reference folder (no {CONFIG_FILE})")
    model, tokenizer = _load_folder(Path(folder).expanduser(), attention)
    return model.to(device), tokenizer


def _load_folder(folder: Path, attention: AttentionImpl | None) -> tuple[GPT, object]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = config_from_json(folder / CONFIG_FILE)
    if attention is not None:
        config = dataclasses.replace(config, attention=attention)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise HarnessError(f"{folder}: no {WEIGHTS_FILE} next to {CONFIG_FILE}")
    try:
        weights = load_file(weights_path)
    except (SafetensorError, OSError) as e:
        raise HarnessError(f"{weights_path}: unreadable: {first_line(e)}") from None
    model = build(config, weights, str(weights_path))
    return model, _tokenizer(str(folder), {}, str(folder))


def config_from_json(path: Path) -> GPTConfig:
    """GPTConfig from reference.json; unknown keys, a wrong format or bad values name the file and key."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise HarnessError(f"{path}: unreadable: {first_line(e)}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != VERSION:
        raise HarnessError(f"{path}: not a {FORMAT} version {VERSION} file")
    fields = document.get("config")
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    if not isinstance(fields, dict):
        raise HarnessError(f"{path}: 'config' must be an object")
    for key in fields:
        if key not in known:
            raise HarnessError(f"{path}: unknown config key {key!r}")
    try:
        values = dict(fields)
        if "arch" in values:
            values["arch"] = Arch(values["arch"])
        if "attention" in values:
            values["attention"] = AttentionImpl(values["attention"])
        return GPTConfig(**values)
    except (ValueError, TypeError) as e:
        raise HarnessError(f"{path}: bad config: {first_line(e)}") from None


def _tokenizer(source: str, kwargs: dict, spec: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as e:
        raise HarnessError(f"{spec}: could not load the tokenizer: {type(e).__name__}: {first_line(e)}") from None


# ---------------------------------------------------------------- the backend


def packable(model: GPT) -> Packable:
    """TREE over our own hidden states and head: the decoder takes a (B, W, W) boolean mask directly."""

    def body(ids, positions, allowed):
        device = model.wte.weight.device
        if allowed is None:  # right padding under a causal mask: pads are never seen
            return model.hidden_states(ids.to(device))
        return model.hidden_states(ids.to(device), allowed.to(device), positions.to(device))

    return Packable((PackMode.TREE,), body, model.head, model.config.vocab_size)


def cached(model: GPT) -> CachedLM:
    """GPT.decode over a kvcache.KVCache: a prefill chunk gets a cache of exactly its columns; merging the chunks
    makes room for the new tokens, so a step writes in place."""

    def forward(ids, positions, key_mask, cache):
        cache = KVCache.empty(model.config, ids.shape[0], ids.shape[1], model.wte.weight) if cache is None else cache
        return model.decode(ids, positions, key_mask, cache), cache  # (B, V)

    return CachedLM(
        forward, KVCache.merge, lambda cache, rows, first: cache.select(rows, first), model.wte.weight.device
    )


def greedy(
    model: GPT, tokenizer, context: list[int], max_new_tokens: int, stop: tuple[str, ...], pad: int
) -> list[int]:
    """Greedy decoding of one context, the plainest way (a test oracle, not the backend's path): the argmax
    token, step by step, until the end-of-text token, a stop string in the new text, or max_new_tokens. One
    row is never padded (`pad` is unused). No KV cache: each step reruns the window of the last n_positions
    tokens."""
    device = model.wte.weight.device
    ids, new = list(context), []
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            window = torch.tensor([ids[-model.config.n_positions :]], device=device)  # (1, T)
            token = int(model(window, logits_to_keep=1).logits[0, -1].argmax())  # logits (1, 1, V)
            ids.append(token)
            new.append(token)
            if token == tokenizer.eos_token_id or any(s in tokenizer.decode(new) for s in stop):
                break
    return new


DRIVER = Driver("reference", packable, cached, save_reference)
