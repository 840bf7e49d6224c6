"""The `api` backend: a model behind an OpenAI-completions-style HTTP endpoint (vLLM, llama.cpp's server, and
others that speak the legacy /v1/completions with `echo` and `logprobs`). The worked example of a backend with
options of its own: one module plus one line in registry.BACKENDS.

    harness run --model api:<model-name> --model-option url=http://HOST:PORT/v1/completions --model-option timeout=60

Options (`--model-option KEY=VALUE`, typed by ApiOptions): `url` (required), `timeout` (seconds to wait for
each answer), `max_length` (the served model's context in tokens: prompts are fitted to it), `eot` (the text
the server reads as its end-of-text token: what a request without a context is scored after, as the
transformers backend's prefix token).

Wire format. Each call is one POST of JSON to `url` holding a chunk of requests as a list of prompts; the
answer's `choices` are matched back to the prompts by their `index`.

  scoring (loglikelihood, rolling, counting tokens), the prompt echoed with its tokens' log-probabilities:
    {"model": "<model-name>", "prompt": ["<context><continuation>", ...], "max_tokens": 0, "echo": true,
     "logprobs": 1, "temperature": 0}
    -> {"choices": [{"index": 0, "logprobs": {"tokens": ["Hel", "lo", ...], "token_logprobs": [null, -2.1, ...],
                     "top_logprobs": [null, {"lo": -2.1}, ...], "text_offset": [0, 3, ...]}}, ...]}
  generation, greedy:
    {"model": "<model-name>", "prompt": ["<context>", ...], "max_tokens": N, "temperature": 0, "stop": [...]}
    -> {"choices": [{"index": 0, "text": "<new text>"}, ...]}

Scoring follows scoring.encode_pair on the server's own tokens: trailing spaces of the context move to the
continuation; the continuation's tokens are the echoed tokens that end after the context's text (by
`text_offset`), so a token spanning the join is the continuation's; a request with no context is scored after
`eot`. A token is greedy when its log-probability is the top one at its position. A rolling document is
scored after `eot` in one window (the server has no windows: a longer document is an error). A generation is
cut at its first stop string here too (servers may take only 4). Nothing is cut to fit: the server refuses or
cuts over-long input itself, so `truncated` is 0. Results are cached by (url, model name, options): clear a
model's results (`harness cache clear --model api:<name>`) when the server changes its weights under that name.

A server that cannot be reached, times out, refuses a call or answers in another shape stops the run in one line
naming the URL; results saved before it stay in the cache.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from harness.errors import HarnessError, first_line
from harness.models.generation import cut_at_stop
from harness.records import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RequestKind,
    RollingRequest,
    RollingResult,
)

KINDS = frozenset(RequestKind)
CHUNK = 256  # prompts per POST (and per result-cache save): the server batches them itself
MAX_STOPS = 4  # stop strings OpenAI's API takes; all of them are applied here
ECHOED = ("tokens", "token_logprobs", "top_logprobs", "text_offset")  # an echoed prompt's logprobs record


def _option(default, help: str, metavar: str):
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class ApiOptions:
    url: str = field(metadata={"help": "the completions endpoint, http(s)://HOST:PORT/v1/completions",
                               "metavar": "URL"})
    timeout: float = _option(60.0, "seconds to wait for each answer", "SECONDS")
    max_length: int = _option(2048, "the served model's context in tokens", "TOKENS")
    eot: str = _option("<|endoftext|>", "the text the server reads as its end-of-text token", "TEXT")

    def __post_init__(self):
        if not self.url.startswith(("http://", "https://")):
            raise HarnessError(f"--model-option url={self.url}: need an http:// or https:// URL")
        if not self.timeout > 0:
            raise HarnessError(f"--model-option timeout={self.timeout}: need a positive number of seconds")
        if self.max_length < 1:
            raise HarnessError(f"--model-option max_length={self.max_length}: need a positive number of tokens")


def check(spec: str) -> None:
    if not spec:
        raise HarnessError("--model api:: give the served model's name, as in api:gpt2")


def load(spec: str, options) -> ApiModel:
    """(spec, registry.LoadOptions): nothing to load; the first call reaches the server."""
    return ApiModel(options.name, spec, options.backend_options)


def _split(context: str, continuation: str, eot: str) -> tuple[str, str]:
    """(context text, continuation text) as scoring.encode_pair splits them, with `eot` for no context."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    return context or eot, continuation


class ApiModel:
    kinds = KINDS

    def __init__(self, name: str, model: str, options: ApiOptions):
        self.name, self.model, self.options = name, model, options
        self.max_length = options.max_length

    def preferred_chunk(self, kind: RequestKind) -> int:
        return CHUNK

    def count_tokens(self, text: str) -> int:
        return len(self._echo([text])[0]["tokens"])

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> dict[str, LoglikelihoodResult]:
        pairs = [_split(r.context, r.continuation, self.options.eot) for r in requests]
        echoed = self._echo([context + continuation for context, continuation in pairs])
        out = {}
        for r, (context, continuation), choice in zip(requests, pairs, echoed, strict=True):
            logprobs, greedy = self._tail(choice, len(context), len(context) + len(continuation))
            out[r.id] = LoglikelihoodResult(sum(logprobs), all(greedy), len(logprobs), 0, bool(greedy) and greedy[-1])
        return out

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest]) -> dict[str, RollingResult]:
        eot, out = self.options.eot, {}
        for r, choice in zip(requests, self._echo([eot + r.text for r in requests]), strict=True):
            logprobs, _ = self._tail(choice, len(eot), len(eot) + len(r.text))
            if len(logprobs) > self.max_length:
                raise HarnessError(f"--model {self.name}: a document of {len(logprobs)} tokens is longer than "
                                   f"max_length {self.max_length}; the api backend scores a document in one window")
            out[r.id] = RollingResult(sum(logprobs), len(logprobs))
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> dict[str, GenerateResult]:
        groups: dict[tuple, list[GenerateRequest]] = {}  # one POST per (max_new_tokens, stop)
        for r in requests:
            groups.setdefault((r.max_new_tokens, r.stop), []).append(r)
        out = {}
        for (new, stop), group in groups.items():
            stops = [s for s in stop if s][:MAX_STOPS]
            body = {"max_tokens": new, "temperature": 0, **({"stop": stops} if stops else {})}
            choices = self._post([r.context or self.options.eot for r in group], body)
            for r, choice in zip(group, choices, strict=True):
                if not isinstance(choice.get("text"), str):
                    raise self._malformed("a choice without its text")
                out[r.id] = GenerateResult(cut_at_stop(choice["text"], r.stop))
        return out

    def describe(self) -> dict:
        return {"name": self.name, "source": self.options.url, "backend": "api", "served_model": self.model,
                "max_length": self.max_length}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(["api", self.model, asdict(self.options)]).encode()).hexdigest()

    # ------------------------------------------------------------ the wire

    def _echo(self, prompts: list[str]) -> list[dict]:
        """Every prompt's echoed logprobs record (tokens, token_logprobs, top_logprobs, text_offset)."""
        body = {"max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0}
        records = [choice.get("logprobs") for choice in self._post(prompts, body)]
        for r in records:
            lists = [r.get(k) for k in ECHOED] if isinstance(r, dict) else [None]
            if not all(isinstance(x, list) for x in lists) or len({len(x) for x in lists}) != 1:
                raise self._malformed(f"no echoed logprobs ({', '.join(ECHOED)}, one entry per token)")
        return records

    def _tail(self, record: dict, join: int, end: int) -> tuple[list[float], list[bool]]:
        """Log-probabilities and greedy flags of the echoed tokens that end after character `join` of a text of
        `end` characters."""
        offsets, logprobs, tops = record["text_offset"], record["token_logprobs"], record["top_logprobs"]
        ends = [*offsets[1:], end]
        picked = [i for i, stop in enumerate(ends) if stop > join]
        if any(not isinstance(logprobs[i], (int, float)) or not tops[i] for i in picked):
            raise self._malformed("a scored token without its log-probability or top log-probability")
        return ([float(logprobs[i]) for i in picked],
                [logprobs[i] >= max(tops[i].values()) for i in picked])

    def _post(self, prompts: list[str], body: dict) -> list[dict]:
        """The server's choices for `prompts`, in prompt order."""
        data = json.dumps({"model": self.model, "prompt": prompts, **body}).encode()
        request = urllib.request.Request(self.options.url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.options.timeout) as answer:
                document = json.loads(answer.read())
        except urllib.error.HTTPError as e:
            said = first_line(e.read().decode(errors="replace")) if e.fp else ""
            raise HarnessError(f"--model {self.name}: {self.options.url} refused the call: {e.code} {e.reason}"
                               f"{': ' + said if said else ''}") from None
        except OSError as e:  # URLError, a refused connection, a timeout
            raise HarnessError(f"--model {self.name}: no answer from {self.options.url} within "
                               f"{self.options.timeout:g} s ({first_line(e)}); check --model-option url and "
                               "timeout") from None
        except ValueError:
            raise self._malformed("an answer that is not JSON") from None
        choices = document.get("choices") if isinstance(document, dict) else None
        if not (isinstance(choices, list) and len(choices) == len(prompts)
                and all(isinstance(c, dict) for c in choices)):
            raise self._malformed(f"not one choice per prompt ({len(prompts)} prompts)")
        by_index = {c.get("index", i): c for i, c in enumerate(choices)}  # no indexes: in prompt order
        if set(by_index) != set(range(len(prompts))):
            raise self._malformed("choices whose indexes are not the prompts' 0, 1, ...")
        return [by_index[i] for i in range(len(prompts))]

    def _malformed(self, what: str) -> HarnessError:
        return HarnessError(f"--model {self.name}: {self.options.url} answered {what}; the api backend needs an "
                            "OpenAI-style completions endpoint with echo and logprobs (harness/models/http_api.py)")
