"""A plan: the frozen list of request units a run asks of one model, made before any model work.

A unit is one distinct request payload with a stable content key (the request kind and its text: the same
key whatever task, prompt or run asks for it); the requests of a run that share a payload share a unit.
Units are in execution order: by request kind, and within a kind the longest context first, with the
requests of one context side by side (so the choices of a question land in one batch and the model scores
them in one packed row, models/packing.py). Executors run units; `join` gives results back by request id.
`missing` is the plan of the units a result cache lacks (execution/cached.py): what an executor is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from harness.records import Request, RequestKind, Result


def payload(request: Request) -> tuple:
    """What a request asks of the model, without its id. A rolling request's stride and window enter by name when
    they are set (so stride 1024 and window 1024 differ) and not at all when 0, so a plain rolling request's content
    key, and the result cache's, is the one it had before they existed."""
    return tuple((k, v) if k in _NAMED else v for k, v in vars(request).items()
                 if k not in ("id", "kind") and not (k in _NAMED and v == 0))


_NAMED = ("stride", "window")  # optional request fields keyed by name


def content_key(request: Request) -> str:
    """sha256 of the request kind and payload: equal keys ask the model the same question."""
    text = json.dumps([request.kind.value, *payload(request)], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def size(request: Request) -> int:
    """Characters the model reads for a request: a proxy for its cost."""
    return sum(len(v) for v in payload(request) if isinstance(v, str))


def _order(request: Request) -> tuple:
    context = getattr(request, "context", "")
    return len(context), context, size(request)


@dataclass(frozen=True)
class Unit:
    key: str  # content_key(request)
    request: Request  # the first request with this payload (its id is incidental)


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]  # distinct payloads, in execution order
    owners: Mapping[str, str]  # request id -> key of the unit that answers it
    whole: Plan | None = None  # the plan these units were cut from, when a cache held the others

    def missing(self, results: Mapping[str, Result]) -> Plan:
        """The plan of the units with no result in `results` (same order), remembering the whole plan: an
        executor whose layout must not depend on the cache (Ray's shards) cuts that one."""
        units = tuple(u for u in self.units if u.key not in results)
        keys = {u.key for u in units}
        owners = MappingProxyType({rid: key for rid, key in self.owners.items() if key in keys})
        return Plan(units, owners, self.whole or self)

    def kinds(self) -> list[RequestKind]:
        return list(dict.fromkeys(u.request.kind for u in self.units))

    def of_kind(self, kind: RequestKind) -> list[Unit]:
        return [u for u in self.units if u.request.kind is kind]

    def join(self, results: Mapping[str, Result]) -> dict[str, Result]:
        """Results by request id from results by unit key; every planned key must have arrived."""
        missing = [u.key for u in self.units if u.key not in results]
        if missing:
            raise RuntimeError(
                f"{len(missing)} of {len(self.units)} planned results did not arrive (first: {missing[0]})"
            )
        return {rid: results[key] for rid, key in self.owners.items()}


def make_plan(requests: Iterable[Request]) -> Plan:
    """One unit per distinct payload, grouped by kind (first seen first), longest context first."""
    by_kind: dict[RequestKind, dict[str, Request]] = {}  # kind -> key -> first request
    owners = {}
    for r in requests:
        key = content_key(r)
        by_kind.setdefault(r.kind, {}).setdefault(key, r)
        owners[r.id] = key
    units = [
        Unit(key, r)
        for unique in by_kind.values()
        for key, r in sorted(unique.items(), key=lambda item: _order(item[1]), reverse=True)
    ]
    return Plan(tuple(units), MappingProxyType(owners))
