"""transformers backend: any causal LM with its tokenizer, fp32 on CPU by default."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from harness.models import fastpath, scoring
from harness.models.fastpath import PackMode
from harness.records import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

DEFAULT_BATCH_TOKENS = 8192  # padded tokens per forward pass on an accelerator
CPU_BATCH_TOKENS = 1024  # on CPU, batches whose activations stay in cache run faster: measured 1.2x end to end,
# 1.7x on LAMBADA-shaped rows, against 8192 (2 cores, gpt2-small and smollm2-135m)


def default_batch_tokens(device: str) -> int:
    return CPU_BATCH_TOKENS if str(device).startswith("cpu") else DEFAULT_BATCH_TOKENS
DEFAULT_MAX_LENGTH = 2048  # when neither config nor tokenizer says


class HFModel:
    """A LanguageModel over a transformers model object and its tokenizer."""

    def __init__(
        self, model, tokenizer, name: str, batch_tokens: int = DEFAULT_BATCH_TOKENS, source: str = "",
        backend: str = "transformers", pack: PackMode | None = None,
    ):
        self.model = model.eval()
        self.backend = backend  # "transformers", or "reference" for our decoder behind the same interface
        self.tokenizer = tokenizer
        self.name = name
        self.source = source or name
        self.batch_tokens = batch_tokens
        self.max_length = max_length_of(model, tokenizer)
        # lm-evaluation-harness's prefix for empty contexts and rolling windows: BOS if any, else EOS
        self.prefix_token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if self.prefix_token is None:
            raise ValueError(f"{name}: tokenizer has neither a beginning- nor an end-of-text token")
        self._prefix_text = tokenizer.decode([self.prefix_token])
        self._fingerprint: str | None = None
        # the LM head runs only at scored positions when the model's forward can be told which
        self._can_keep_logits = scoring.can_keep_logits(model)
        self._pack = pack  # how requests sharing a context are scored; None: probed on first use (fastpath.py)
        # a packed row holds its context once and choices after it: up to twice the model's length
        self.row_limit = 2 * self.max_length

    def describe(self) -> dict:
        config = self.model.config
        return {
            "name": self.name,
            "source": self.source,
            "backend": self.backend,
            "model_type": getattr(config, "model_type", None),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(next(self.model.parameters()).dtype),
            "max_length": self.max_length,
            "scoring": self.pack_mode.value,
        }

    @property
    def pack_mode(self) -> PackMode:
        if self._pack is None:
            self._pack = fastpath.choose(self.model, self._score_plain, self.prefix_token, self.batch_tokens)
        return self._pack

    def fingerprint(self) -> str:
        """A content hash of everything that decides results: weights, tokenizer, context length."""
        import torch

        if self._fingerprint is None:
            dtype = next(self.model.parameters()).dtype
            digest = hashlib.sha256(f"{type(self.model).__name__}|{self.max_length}|{self.prefix_token}|{dtype}".encode())
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            vocab = backend.to_str() if backend is not None else json.dumps(self.tokenizer.get_vocab(), sort_keys=True)
            digest.update(vocab.encode())
            for name, tensor in sorted(self.model.state_dict().items()):
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
            for window in scoring.rolling_windows(self.encode(r.text), self.prefix_token, self.max_length):
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
            return fastpath.run(mode, self.model, rows, self.batch_tokens, self.row_limit)

    def _score_plain(self, rows: list[scoring.ModelInput]) -> list[tuple[float, bool, bool]]:
        """One right-padded row per request, the context repeated for every choice."""
        import torch

        out: list[tuple[float, bool, bool] | None] = [None] * len(rows)
        with torch.inference_mode():
            for batch in scoring.length_batches(rows, self.batch_tokens):
                chunk = [rows[i] for i in batch]
                logits, kept = scoring.forward_scored(self.model, chunk, self._can_keep_logits)  # (B, K, V)
                for i, score in zip(batch, scoring.score_batch(logits, chunk, kept), strict=True):
                    out[i] = score
        return out  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> dict[str, GenerateResult]:
        import torch

        results = {}
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for r in requests:
                context = self.encode(r.context) or [self.prefix_token]
                context = context[-(self.max_length - r.max_new_tokens) :]
                ids = torch.tensor([context], device=device)
                out = self.model.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=r.max_new_tokens, do_sample=False,
                    pad_token_id=self.prefix_token, stop_strings=list(r.stop) or None, tokenizer=self.tokenizer,
                )
                text = self.tokenizer.decode(out[0, len(context) :], skip_special_tokens=True)
                results[r.id] = GenerateResult(cut_at_stop(text, r.stop))
        return results


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


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
