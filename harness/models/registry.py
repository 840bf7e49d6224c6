"""Model names -> backends -> loaded models. Two literal registries in one visible place:

  BACKENDS  `<backend>:<spec>` -> how to load it, and what it can do (request kinds served, trainable);
            a name without a known prefix is the default backend's (transformers) spec
  MODELS    (transformers_load.py) short names of the transformers backend; any other spec is a folder, a
            .gguf file or a hub id

The model is one value, `LoadOptions`: the --model name, read once into a `ModelName` (backend and spec) when
the options are made, the load flags, and the backend's own options (`--model-option KEY=VALUE`, typed by the
backend's options dataclass). A run makes it once (`load_options`) and passes it whole: to the lazy model, to
Ray workers (pickled, not read again), and, with another name, to the FT model (`dataclasses.replace`).

`resolve`, `backend_for` and `check_serves` read a name alone: they load nothing and import no torch, so a
run fails with one line before any work. Offline by default: hub ids load from the local Hugging Face
cache when the hub is unreachable; packaged GGUF models are converted once into the cache (gguf.py).

A new backend (vLLM, a remote API) is one module with a `load(spec, options) -> LanguageModel` (and, if it
has options of its own, their dataclass) plus one line in BACKENDS; models/http_api.py is the worked example.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from harness import invariance
from harness.config import DType, RunConfig
from harness.errors import HarnessError, suggest, unknown
from harness.files import user_cache
from harness.models import http_api
from harness.models.base import DEFAULT_BACKEND, LanguageModel
from harness.models.gguf import PackagedGGUF, SplitGGUF
from harness.models.transformers_load import load_transformers, reference_decoder, source_of
from harness.records import RequestKind

__all__ = ["BACKENDS", "Backend", "LoadOptions", "ModelName", "PackagedGGUF", "SplitGGUF", "backend_for",
           "check_serves", "load_model", "load_options", "model_files", "resolve"]

REFERENCE_CONFIG = "reference.json"  # reference.CONFIG_FILE, named here so that reading a name imports no torch


@dataclass(frozen=True)
class LoadOptions:
    """A model to load, as one value. Making it reads the name (`model`) and types `model_options` by the
    backend's options class (`backend_options`), failing in one line on a bad name or option; a copy made
    with `dataclasses.replace(options, name=...)` reads its own name. Pickled whole to Ray workers."""

    name: str  # the whole --model name, recorded as the model's name and source
    device: str = "cpu"
    batch_tokens: int | None = None  # None or 0: the backend's default for the device
    dtype: DType = DType.FP32
    fuse: bool = True  # fused RMSNorm / gated MLP while scoring (fused.py); same numbers
    model_options: tuple[str, ...] = ()  # --model-option KEY=VALUE items, as given
    model: ModelName = field(init=False, repr=False, compare=False)  # `name` read once
    backend_options: Any = field(init=False, repr=False, compare=False)  # the backend's options; None: it has none

    def __post_init__(self):
        model = resolve(self.name)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "backend_options", own_options(model, self.model_options))


def _accept(spec: str) -> None:
    """A backend whose specs cannot be checked before loading."""


def _no_files(spec: str) -> Path | None:
    """A backend whose specs name no local files."""
    return None


@dataclass(frozen=True)
class Backend:
    name: str
    load: Callable[[str, LoadOptions], LanguageModel]  # (spec, options) -> the model; imports torch inside
    kinds: frozenset[RequestKind]  # request kinds its models serve (the models' `kinds` say the same)
    trainable: bool  # its models are Trainable (base.py): the FT setting can fine-tune them
    check: Callable[[str], None] = _accept  # fails fast on a spec it could never load; loads nothing
    files: Callable[[str], Path | None] = _no_files  # the local folder or file a spec loads from, when there
    options: type | None = None  # a dataclass of its own options (str/int/float/bool fields, "help" metadata)


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


def _transformers_files(spec: str) -> Path | None:
    """A folder or .gguf file, or a packaged model's converted folder once it exists; None for a hub id."""
    match source_of(spec):
        case PackagedGGUF() | SplitGGUF():
            folder = user_cache() / "models" / spec
            return folder if (folder / "config.json").is_file() else None
        case Path() as path:
            return path
        case _:
            return None


def _reference_files(spec: str) -> Path | None:
    folder = Path(spec).expanduser()
    return folder if (folder / REFERENCE_CONFIG).is_file() else _transformers_files(spec)


BACKENDS: dict[str, Backend] = {
    "transformers": Backend("transformers", _load_transformers, frozenset(RequestKind), True, _check_transformers,
                            _transformers_files),
    "reference": Backend("reference", _load_reference, frozenset(RequestKind), True, _check_reference,
                         _reference_files),
    "api": Backend("api", http_api.load, http_api.KINDS, False, http_api.check, options=http_api.ApiOptions),
}

_PREFIX = re.compile(r"[A-Za-z][\w.-]*")  # what `<backend>:` may look like; hub ids never hold a colon


@dataclass(frozen=True)
class ModelName:
    """A --model name read once: the backend it loads with and the spec that backend loads."""

    name: str  # the whole --model name
    backend: Backend
    spec: str  # what the backend loads: for transformers a MODELS name, folder, .gguf file or hub id


def parse(name: str) -> ModelName:
    """The backend and spec of a --model name; an unknown `<backend>:` prefix fails with close matches.
    An existing path is a spec of the default backend even when it holds a colon."""
    prefix, colon, spec = name.partition(":")
    if not colon or not _PREFIX.fullmatch(prefix) or Path(name).expanduser().exists():
        return ModelName(name, BACKENDS[DEFAULT_BACKEND], name)
    if prefix not in BACKENDS:
        raise HarnessError(f"--model {name}: {unknown('backend', prefix, BACKENDS)}")
    return ModelName(name, BACKENDS[prefix], spec)


def resolve(name: str) -> ModelName:
    """What a --model name refers to, without loading anything: fails fast on unknown names."""
    parsed = parse(name)
    parsed.backend.check(parsed.spec)
    return parsed


def backend_for(name: str) -> Backend:
    """The backend a --model name loads with, and so what it can do; checks the name, loads nothing."""
    return resolve(name).backend


def check_serves(name: ModelName | str, kinds: Iterable[RequestKind], finetune: bool = False) -> Backend:
    """Fail with one line, before any work, when the backend of `name` cannot serve the request kinds the
    tasks need, or cannot be fine-tuned when the FT setting is asked for."""
    model = name if isinstance(name, ModelName) else resolve(name)
    backend, name = model.backend, model.name
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


def load_options(config: RunConfig) -> LoadOptions:
    """The run's model as one value, from its flags (--model, --device, --batch-tokens, --dtype, --no-fuse,
    --model-option). Here rather than on RunConfig: reading the name needs this registry, which reads config."""
    return LoadOptions(config.model, config.device, config.batch_tokens, config.dtype, config.fuse,
                       config.model_options)


def load_model(options: LoadOptions | str, *args, **kwargs) -> LanguageModel:
    """The LanguageModel `options` describe: `<backend>:<spec>`, or a registry name, a local folder, a .gguf file
    or a hub id (transformers), loaded in fp32 and cast to `options.dtype`. A name, with LoadOptions' other
    fields after it, is short for LoadOptions(name, ...): for scripts and the Python API."""
    if not isinstance(options, LoadOptions):
        options = LoadOptions(options, *args, **kwargs)
    if options.device.startswith("cuda"):
        invariance.deterministic_cuda()
    return options.model.backend.load(options.model.spec, options)


def own_options(model: ModelName, given: tuple[str, ...]) -> Any:
    """--model-option KEY=VALUE items as an instance of the backend's options dataclass (None for a backend
    without one): a key is a field, a value is read as the field's type. Anything else is one line naming the
    flag, the key and what the backend accepts."""
    backend, kind = model.backend, model.backend.options
    if kind is None:
        if given:
            takes = ", ".join(name for name, b in BACKENDS.items() if b.options) or "none"
            raise HarnessError(f"--model-option {given[0]}: the {backend.name} backend of --model {model.name} takes "
                               f"no options (backends with options: {takes})")
        return None
    fields, types = {f.name: f for f in dataclasses.fields(kind)}, get_type_hints(kind)
    accepts = "; ".join(f"{f.name}={f.metadata.get('metavar', 'VALUE')} ({f.metadata.get('help', '')}"
                        + (", required" if _required(f) else f", default {f.default}") + ")" for f in fields.values())
    values = {}
    for item in given:
        key, equals, text = item.partition("=")
        if not equals or key not in fields:
            what = f"has no option {key!r}{suggest(key, fields)}" if equals else "needs KEY=VALUE"
            raise HarnessError(f"--model-option {item}: the {backend.name} backend {what}; it accepts {accepts}")
        values[key] = _read_value(types[key], text, f"--model-option {item}: {key} takes")
    missing = [name for name, f in fields.items() if _required(f) and name not in values]
    if missing:
        raise HarnessError(f"--model-option {missing[0]}=...: the {backend.name} backend needs it; "
                           f"it accepts {accepts}")
    return kind(**values)  # its own checks (__post_init__) fail in one line too


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _read_value(kind: type, text: str, takes: str):
    """`text` as a str, int, float or bool (true/false, 1/0, yes/no)."""
    if kind is bool:
        known = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in known:
            raise HarnessError(f"{takes} true or false, got {text!r}")
        return known[text.lower()]
    try:
        return kind(text)
    except ValueError:
        raise HarnessError(f"{takes} {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def check_dtype(options: LoadOptions) -> None:
    """bf16 on a CPU without native bf16 arithmetic (AVX512-BF16 or AMX) runs emulated, several times slower
    than fp32: refused, before any weights load."""
    from harness.models.hf import cpu_has_bf16

    if options.dtype is DType.BF16 and str(options.device).startswith("cpu") and not cpu_has_bf16():
        raise HarnessError("--dtype bf16: this CPU has no native bf16 arithmetic (no avx512_bf16 or amx_bf16 "
                           "flag), where bf16 is slower than fp32; use --dtype fp32")


def model_files(name: ModelName | str) -> Path | None:
    """The local folder or file that the model reads its weights and tokenizer from, when it is already there
    (a converted packaged model, a folder, a .gguf file), as its backend says; None for a hub id, a packaged
    model not yet converted, or a backend with no files. Loads and converts nothing."""
    model = name if isinstance(name, ModelName) else resolve(name)
    return model.backend.files(model.spec)


def _cast(module, options: LoadOptions):
    import torch

    match options.dtype:
        case DType.FP32:
            return module.to(options.device, torch.float32)
        case DType.BF16:
            return module.to(options.device, torch.bfloat16)
