"""A model loaded only when something needs its weights: a rerun whose every result is cached loads nothing.

Such a rerun needs three facts about the model, not its weights: its fingerprint (which keys the result
cache), its context length (prompt fitting) and its description (run.json). After a model is loaded and has
scored, those are written to described/<key>.json beside the result cache, keyed by:

  the files it loads from: every file's name, size and modification time, the content of the small ones
  (config, tokenizer) and the first and last MiB of the large ones (weights);
  the --model name, backend, device, dtype and batch size; the torch and transformers versions; SCHEMA.

A run whose key is on file reads the three facts back. Token counts (fitting demonstrations into the
context) are kept beside them, in <key>.counts.json, by the sha256 of the text. Anything else (a request the
result cache does not hold, a text not counted before; FT never comes here) loads the model at that moment,
once. Models with no local files (hub ids) are never described ahead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from harness.errors import say
from harness.files import result_cache_path
from harness.models.base import LanguageModel, PrefersChunks
from harness.models.registry import LoadOptions, load_model, model_files
from harness.records import RequestKind

SCHEMA = 1  # bump when HFModel.fingerprint or describe changes what they say for the same files
SMALL = 16 << 20  # files up to this size are keyed by content
EDGE = 1 << 20  # larger ones by size, modification time and their first and last MiB


def _versions() -> dict[str, str | None]:
    found = {}
    for package in ("torch", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _file_key(path: Path) -> list:
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if stat.st_size <= SMALL:
            digest.update(f.read())
        else:
            digest.update(f.read(EDGE))
            f.seek(-EDGE, os.SEEK_END)
            digest.update(f.read(EDGE))
    return [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]


def files_key(where: Path) -> dict[str, list]:
    """name -> [size, mtime_ns, sha256 of content or of its edges] for a file, or every file under a folder."""
    if where.is_file():
        return {where.name: _file_key(where)}
    return {str(p.relative_to(where)): _file_key(p) for p in sorted(where.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(where).parts)}


def description_key(options: LoadOptions) -> dict | None:
    """What decides a model's fingerprint and description, read from its files without loading; None when the
    model has no local files yet."""
    where = model_files(options.model)
    if where is None or not where.exists():
        return None
    return {"schema": SCHEMA, "name": options.name, "backend": options.model.backend.name,
            "device": options.device, "dtype": options.dtype.value, "batch_tokens": options.batch_tokens,
            "versions": _versions(), "files": str(where.resolve()), "content": files_key(where)}


def _record_path(key: dict) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return result_cache_path().parent / "described" / f"{name}.json"  # beside the results it lets a rerun read


def read_description(key: dict | None) -> dict | None:
    """The recorded {"fingerprint", "max_length", "describe"} for `key`, if any (an unreadable record is none)."""
    if key is None:
        return None
    try:
        record = json.loads(_record_path(key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    return record


RUN_FIELDS = ("batch_tokens", "batch_tokens_from")  # what one run did (its forward passes), not the model


def write_description(key: dict, fingerprint: str, max_length: int, described: dict) -> None:
    """The model's description for later reruns; a rerun that runs no forward pass says so (null batch fields)."""
    described = described | {field: None for field in RUN_FIELDS if field in described}
    _write_json(_record_path(key), {"key": key, "fingerprint": fingerprint, "max_length": max_length,
                                    "describe": described})


def _write_json(path: Path, document) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(document, indent=1) + "\n")
        os.replace(tmp, path)  # whole or not at all
    except OSError:  # a read-only cache only costs the next run its load
        pass


def _read_counts(path: Path) -> dict[str, int]:
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(counts, dict):
        return {}
    return {k: v for k, v in counts.items() if isinstance(k, str) and type(v) is int}


class LazyModel:
    """A LanguageModel that loads the model `options` describe on first need, by `loader(options)`."""

    def __init__(self, options: LoadOptions, loader: Callable[[LoadOptions], LanguageModel] = load_model):
        self.options = options
        self.name = options.name
        self.kinds: frozenset[RequestKind] = options.model.backend.kinds
        self._loader = loader
        self._loaded: LanguageModel | None = None
        self._key = description_key(options)
        self._record = read_description(self._key)
        self._counts: dict[str, int] | None = None  # sha256 of a text -> its token count
        self._counted = False  # a count was added this run: write them back

    @property
    def loaded(self) -> LanguageModel:
        if self._loaded is None:
            say(f"loading model {self.name}")
            self._loaded = self._loader(self.options)
            # the files as the next run will find them (a packaged model's first load converts it: its folder
            # appears, or fills, only now), so the description is recorded under the key that run computes
            self._key = description_key(self.options)
        return self._loaded

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def max_length(self) -> int:
        return self._record["max_length"] if self._record and not self._loaded else self.loaded.max_length

    def fingerprint(self) -> str:
        return self._record["fingerprint"] if self._record else self.loaded.fingerprint()

    def describe(self) -> dict:
        if self._loaded is None and self._record:
            return self._record["describe"]
        described = self.loaded.describe()
        if self._key is not None:
            write_description(self._key, self.fingerprint(), self.loaded.max_length, described)
            if self._counted:
                _write_json(_record_path(self._key).with_suffix(".counts.json"), self._counts)
        return described

    def count_tokens(self, text: str) -> int:
        if self._key is None:
            return self.loaded.count_tokens(text)
        if self._counts is None:
            self._counts = _read_counts(_record_path(self._key).with_suffix(".counts.json"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest not in self._counts:
            self._counts[digest] = self.loaded.count_tokens(text)
            self._counted = True
        return self._counts[digest]

    def preferred_chunk(self, kind: RequestKind) -> int | None:
        """The loaded model's choice; before it loads (a described model), the executor's default."""
        return self._loaded.preferred_chunk(kind) if isinstance(self._loaded, PrefersChunks) else None

    def loglikelihood(self, requests):
        return self.loaded.loglikelihood(requests)

    def loglikelihood_rolling(self, requests):
        return self.loaded.loglikelihood_rolling(requests)

    def generate(self, requests):
        return self.loaded.generate(requests)
