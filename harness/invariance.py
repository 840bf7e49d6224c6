"""What a number depends on (DESIGN.md rule 12): the weights, dtype, device type and request text, never the
batch budget, thread count, executor or machine load.

The scoring engine (models/scoring.py, packing.py) gives every request the same reductions whatever shares its
forward pass: branches aligned to ALIGN columns, widths padded to ALIGN, the LM head never below HEAD_ROWS
rows. What remains is the BLAS's own choice of reduction order by thread count: MKL's conditional numerical
reproducibility (CNR) in STRICT mode removes it, and must be chosen before MKL's first call. harness sets
`MKL_CBWR=AUTO,STRICT` when imported (before torch is, by harness itself or by a Ray worker, which inherits it)
unless the user set MKL_CBWR; `blas_strict` checks that it took. `ENGINE` names this engine in the result
cache's keys, so numbers from an engine that did not hold this are never mixed with its own.

On CUDA, `deterministic_cuda` (called by models.registry.load_model for a CUDA device) turns on the modes that
make a pass give the same bits every time: deterministic cuDNN and cuBLAS (a fixed workspace, set here before
CUDA starts), no TF32, no reduced-precision reductions in half-precision matmuls. They cost little for scoring
(no atomics-based kernels are used there). cuBLAS may still choose its kernel by a product's row count, so
batch invariance on a GPU is measured, not assumed: tests/test_gpu.py counts the predictions that differ
between batch budgets.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENGINE = "invariant-2"  # bump when a change to the scoring engine can change a number's bits
CBWR = ("MKL_CBWR", "AUTO,STRICT")
_STRICT_BIT = 0x10000  # MKL_CBWR_STRICT
_ALL = -1  # MKL_CBWR_ALL: branch and strict bits together


CUBLAS = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; read when CUDA starts


def prepare() -> None:
    """Ask MKL for thread-count invariant rounding and cuBLAS for deterministic kernels; the user's own settings
    win."""
    os.environ.setdefault(*CBWR)
    os.environ.setdefault(*CUBLAS)


def deterministic_cuda() -> None:
    """The same bits from every CUDA pass of one shape (see the module docstring)."""
    import torch

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


def blas_strict() -> bool | None:
    """Whether MKL runs in STRICT CNR mode (None: torch not imported yet, or not an MKL build)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    return bool(get(_ALL) & _STRICT_BIT)


def blas() -> str | None:
    """The BLAS torch was built with, as its build configuration names it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if "Math Kernel Library" in line or "OpenBLAS" in line or "Accelerate" in line:
            return line
    return None


def facts(model: dict) -> dict:
    """The facts a run's numbers depend on besides weights and requests, for run.json."""
    torch = sys.modules.get("torch")
    device = str(model.get("device", "")).split(":")[0] or None
    out = {"engine": ENGINE, "dtype": model.get("dtype"), "device": device,
           "torch": getattr(torch, "__version__", None), "blas": blas(), "blas_strict": blas_strict()}
    if device == "cuda" and torch is not None:
        out |= {"cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(),
                "cudnn_deterministic": torch.backends.cudnn.deterministic}
    return out
