"""The scorer over any torch causal LM with its tokenizer, fp32 on CPU by default.

HFModel scores any torch causal LM whose forward takes input_ids and returns .logits; a `Driver` (driver.py)
holds what differs between the backends built on it (transformers, transformers_driver.py; the reference
decoder, reference.py): the packed paths offered, the decoder run step by step with a KV cache
(generation.py batches greedy decoding over it), and the folder a trained copy is saved as. Loading is
transformers_load.py's (a spec's source) and pretrained.py's (from_pretrained).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from harness.errors import say
from harness.files import result_cache_path
from harness.models import fastpath, generation, probe, scoring
from harness.models.base import model_name
from harness.models.driver import Driver
from harness.models.fastpath import Packable, PackMode
from harness.models.generation import Job, cut_at_stop
from harness.models.transformers_driver import TRANSFORMERS
from harness.records import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RequestKind,
    RollingRequest,
    RollingResult,
)

DEFAULT_BATCH_TOKENS = 8192  # padded tokens per forward pass on an accelerator, when no probe decides (probe.py)
CPU_BATCH_TOKENS = 1024  # on CPU, when no probe decides: gpt2-small's best (1.2x end to end against 8192)
GENERATE_FACTOR = 16  # a decoding batch holds batch_tokens x 16 padded tokens (context + new): one token per
# row per step, so rows are cheap; batch_tokens bounds each chunk of the prefill


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX tiles on x86, BF16 on Arm), as
    oneDNN's fast bf16 kernels need; without, bf16 matmuls are emulated."""
    import platform

    import torch

    if platform.machine().lower() in ("arm64", "aarch64"):
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return any(
        getattr(torch.cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def default_batch_tokens(device: str) -> int:
    return CPU_BATCH_TOKENS if str(device).startswith("cpu") else DEFAULT_BATCH_TOKENS


DEFAULT_MAX_LENGTH = 2048  # when neither config nor tokenizer says


class HFModel:
    """A LanguageModel (and Trainable) over a torch causal LM and its tokenizer."""

    kinds = frozenset(RequestKind)

    def __init__(
        self,
        module,
        tokenizer,
        name: str,
        batch_tokens: int | None = DEFAULT_BATCH_TOKENS,
        source: str = "",
        pack: PackMode | None = None,
        driver: Driver | None = None,
    ):
        self.module = module.eval()
        self.driver = driver or TRANSFORMERS
        self.backend = self.driver.backend
        self.tokenizer = tokenizer
        self.name = name
        self.source = source or name
        # None: probed on first use (probe.py), or read from an earlier probe's cache
        self._batch: probe.Choice | None = probe.Choice(batch_tokens, "flag", {}) if batch_tokens else None
        self.max_length = max_length_of(module, tokenizer)
        # lm-evaluation-harness's prefix for empty contexts and rolling windows: BOS if any, else EOS
        self.prefix_token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if self.prefix_token is None:
            raise ValueError(f"{name}: tokenizer has neither a beginning- nor an end-of-text token")
        self._prefix_text = tokenizer.decode([self.prefix_token])
        self._fingerprint: str | None = None
        # the LM head runs only at scored positions when the model's forward can be told which
        self._can_keep_logits = scoring.can_keep_logits(module)
        self._pack = pack  # how requests sharing a context are scored; None: probed on first use (fastpath.py)
        self._packable: Packable | None = None
        # a packed row holds its context once and choices after it: up to twice the model's length
        self.row_limit = 2 * self.max_length

    def describe(self) -> dict:
        config = self.module.config
        return {
            "name": self.name,
            "source": self.source,
            "backend": self.backend,
            "model_type": getattr(config, "model_type", None),
            "parameters": sum(p.numel() for p in self.module.parameters()),
            "dtype": str(next(self.module.parameters()).dtype),
            "device": str(next(self.module.parameters()).device),
            "max_length": self.max_length,
            "scoring": self.pack_mode.value,
            # how many padded tokens a forward pass held, and whether a probe chose it (None: nothing ran)
            "batch_tokens": self._batch.batch_tokens if self._batch else None,
            "batch_tokens_from": self._batch.how if self._batch else None,
        }

    @property
    def batch_tokens(self) -> int:
        if self._batch is None:
            self._batch = self._probe_batch()
        return self._batch.batch_tokens

    def _probe_batch(self) -> probe.Choice:
        import torch

        parameter = next(self.module.parameters())
        device = str(parameter.device)
        key = probe.cache_key(probe.shape_of(self.module), device, str(parameter.dtype), torch.get_num_threads())
        path = result_cache_path().parent / probe.CACHE_FILE  # the user's cache folder (tests: their own)
        oom = (MemoryError, torch.OutOfMemoryError)
        choice = probe.choose(
            key,
            path,
            self._probe_pass,
            probe.candidates(device),
            default_batch_tokens(device),
            clock=probe.clock_for(parameter.device),
            out_of_memory=oom,
        )
        if choice.how == "probed":
            rates = ", ".join(f"{b}: {r:.0f}" for b, r in choice.rates.items())
            say(f"batch size: {choice.batch_tokens} tokens per forward pass (tokens/s {rates}; kept in {path})")
        return choice

    def _probe_pass(self, budget: int) -> None:
        """One forward pass of `budget` synthetic tokens, the LM head at each row's last position."""
        import torch

        ids = probe.synthetic_ids(budget, self.packable.vocab or self.tokenizer.vocab_size, self.max_length)
        try:
            with torch.inference_mode():
                if self.packable.body is not None and self.packable.head is not None:
                    hidden = self.packable.body(ids, None, None)  # (B, W, C)
                    self.packable.head(hidden[:, -1])  # (B, V)
                else:
                    scoring.forward_scored(
                        self.module,
                        [scoring.ModelInput(tuple(r), (r[-1],), 0) for r in ids.tolist()],
                        self._can_keep_logits,
                    )
        finally:
            if next(self.module.parameters()).device.type == "cuda":
                torch.cuda.empty_cache()

    @property
    def packable(self) -> Packable:
        if self._packable is None:
            self._packable = self.driver.packable(self.module)
        return self._packable

    @property
    def pack_mode(self) -> PackMode:
        if self._pack is None and _sliding(self.module):
            # a sliding-window layer must not see keys beyond its window, which the packed paths' masks do not
            # say (and their probe's short rows cannot show): transformers builds those masks from plain rows
            self._pack = PackMode.PLAIN
        if self._pack is None:
            # the mode probe's rows are a few tokens: any budget holds them, and the batch-size probe can wait
            plain = lambda rows: self._score_plain(rows, CPU_BATCH_TOKENS)
            self._pack = fastpath.choose(self.module, self.packable, plain, self.prefix_token, CPU_BATCH_TOKENS)
        return self._pack

    def save(self, module, folder: Path) -> None:
        """`module` (this model's architecture, e.g. a fine-tuned copy) and the tokenizer, as a folder
        that loadable_name(folder) loads with this backend."""
        self.driver.save(module, self.tokenizer, Path(folder))

    def loadable_name(self, folder: Path) -> str:
        return model_name(self.backend, folder)

    def fingerprint(self) -> str:
        """A content hash of everything that decides results: weights, tokenizer, context length."""
        import torch

        if self._fingerprint is None:
            dtype = next(self.module.parameters()).dtype
            digest = hashlib.sha256(
                f"{type(self.module).__name__}|{self.max_length}|{self.prefix_token}|{dtype}".encode()
            )
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            vocab = backend.to_str() if backend is not None else json.dumps(self.tokenizer.get_vocab(), sort_keys=True)
            digest.update(vocab.encode())
            for name, tensor in sorted(self.module.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def encode(self, text: str) -> list[int]:
        """The tokenizer's own special-token default (a BOS for Llama-2/Gemma-style tokenizers, nothing
        for GPT-2), except for text that already starts with the prefix token: lm-evaluation-harness."""
        if self._prefix_text and text.startswith(self._prefix_text):
            return self.tokenizer.encode(text, add_special_tokens=False)
        return self.tokenizer.encode(text)

    def _encode_pair(self, context: str, continuation: str) -> scoring.TokenPair:
        if context == "":  # scored after the prefix token alone (unless it already starts with it)
            tokens = self.tokenizer.encode(continuation, add_special_tokens=False)
            return scoring.after_prefix(tokens, self.prefix_token)
        return scoring.encode_pair(self.encode, context, continuation, self.prefix_token)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> dict[str, LoglikelihoodResult]:
        pairs = [self._encode_pair(r.context, r.continuation) for r in requests]
        rows = [scoring.model_input(p, self.max_length) for p in pairs]
        scores = self._score_rows(rows)
        return {
            r.id: LoglikelihoodResult(lp, greedy, len(row.targets), row.truncated, last)
            for r, row, (lp, greedy, last) in zip(requests, rows, scores, strict=True)
        }

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest]) -> dict[str, RollingResult]:
        rows, owner = [], []
        for r in requests:
            length = min(r.window, self.max_length) if r.window else self.max_length
            for window in scoring.rolling_windows(self.encode(r.text), self.prefix_token, length, r.stride):
                rows.append(scoring.model_input(window, self.max_length))
                owner.append(r.id)
        scores = self._score_rows(rows)
        totals = {r.id: [0.0, 0] for r in requests}
        for request_id, row, (lp, _, _) in zip(owner, rows, scores, strict=True):
            totals[request_id][0] += lp
            totals[request_id][1] += len(row.targets)
        return {rid: RollingResult(lp, n) for rid, (lp, n) in totals.items()}

    def _score_rows(self, rows: list[scoring.ModelInput]) -> list[tuple[float, bool, bool]]:
        import torch

        mode = self.pack_mode
        if mode is PackMode.PLAIN:
            return self._score_plain(rows)
        with torch.inference_mode():
            return fastpath.run(mode, self.module, self.packable, rows, self.batch_tokens, self.row_limit)

    def _score_plain(
        self, rows: list[scoring.ModelInput], batch_tokens: int | None = None
    ) -> list[tuple[float, bool, bool]]:
        """One right-padded row per request, the context repeated for every choice."""
        import torch

        out: list[tuple[float, bool, bool] | None] = [None] * len(rows)
        with torch.inference_mode():
            for batch in scoring.length_batches(rows, batch_tokens or self.batch_tokens):
                chunk = [rows[i] for i in batch]
                logits, kept = scoring.forward_scored(self.module, chunk, self._can_keep_logits)  # (B, K, V)
                for i, score in zip(batch, scoring.score_batch(logits, chunk, kept), strict=True):
                    out[i] = score
        return out  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> dict[str, GenerateResult]:
        """Greedy continuations, batched over a KV cache, cut at the first stop string: lm-evaluation-harness's
        generate_until (generation.py says where and why the procedure differs; the texts do not)."""
        jobs, cut = [], []
        for r in requests:
            encoded = self.encode(r.context)
            context = generation.context_ids(encoded, self.prefix_token, self.max_length, r.max_new_tokens)
            jobs.append(Job(context, r.max_new_tokens, tuple(r.stop)))
            cut.append(max(0, len(encoded) - len(context)))  # the prefix token of an empty context cuts nothing
        decode = self._decode_new
        new = generation.generate(
            self.driver.cached(self.module),
            jobs,
            self.eos_ids,
            decode,
            GENERATE_FACTOR * self.batch_tokens,
            self.batch_tokens,
            # a sliding-window layer's cache (Gemma 3) keeps only its window, so it cannot be cut by column when rows
            # leave a batch: such a model decodes one row at a time, as transformers' generate does
            max_rows=1 if _sliding(self.module) else generation.MAX_ROWS,
        )
        texts = [cut_at_stop(decode(ids), r.stop) for r, ids in zip(requests, new, strict=True)]
        # the answer's confidence, scored as a loglikelihood request of its text: the batch-invariant scorer, so
        # the same for any batch composition (decoding's own logits are not: rows leave the batch as they end)
        scored = self.loglikelihood([LoglikelihoodRequest(r.id, r.context, t)
                                     for r, t in zip(requests, texts, strict=True) if t])
        return {
            r.id: GenerateResult(t, n, scored[r.id].logprob, scored[r.id].n_tokens) if t else GenerateResult(t, n)
            for r, t, n in zip(requests, texts, cut, strict=True)
        }

    def _decode_new(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @property
    def eos_ids(self) -> frozenset[int]:
        """Tokens that end a generation: the tokenizer's end of text and the model's generation_config ones."""
        ids = {self.tokenizer.eos_token_id}
        config_eos = getattr(getattr(self.module, "generation_config", None), "eos_token_id", None)
        ids.update(config_eos if isinstance(config_eos, list) else [config_eos])
        return frozenset(i for i in ids if i is not None)


def max_length_of(model, tokenizer) -> int:
    """Context length as lm-evaluation-harness reads it: config first, then the tokenizer."""
    config = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return DEFAULT_MAX_LENGTH


def _sliding(module) -> bool:
    """Whether some attention layer of the model attends a sliding window (its config's layer_types)."""
    return "sliding_attention" in (getattr(getattr(module, "config", None), "layer_types", None) or ())
