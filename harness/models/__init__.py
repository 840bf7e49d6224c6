"""Model backends. `load_model` resolves `<backend>:<spec>` (or a registry name, folder, GGUF file or hub id
for the default transformers backend) to a LanguageModel; `check_serves` says, from the name alone, whether
its backend serves what a run needs."""

from harness.models.base import LanguageModel, Trainable
from harness.models.registry import (
           BACKENDS,
           Backend,
           backend_for,
           check_serves,
           load_model,
           resolve,
)
from harness.models.transformers_load import MODELS

__all__ = ["BACKENDS", "MODELS", "Backend", "LanguageModel", "Trainable", "backend_for", "check_serves", "load_model",
           "resolve"]
