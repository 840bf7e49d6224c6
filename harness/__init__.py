"""harness: score causal language models on NLP tasks in zero-shot, one-shot, few-shot and fine-tuned settings.

    import harness
    table = harness.evaluate("smollm2-135m", tasks=["piqa"], settings=["zs", "fs"], shots=5, limit=100)

Importing harness does not import torch or transformers; the model backends import them when used.
"""

__version__ = "0.1.0"

from harness import invariance as _invariance  # noqa: E402  before torch: MKL's rounding mode (invariance.py)

_invariance.prepare()


def evaluate(*args, **kwargs):
    """Evaluate a model and return the long pandas table; see harness.pipeline.evaluate."""
    from harness.pipeline import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["evaluate", "__version__"]
