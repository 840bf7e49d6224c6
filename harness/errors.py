"""One error type for everything a user can fix: bad flags, bad task files, missing data or weights.

The CLI prints `error: <message>` and exits with code 2; nothing deeper than this is shown to users.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A problem with the user's input, stated in one line that says what to do."""


def suggest(name: str, known: Iterable[str]) -> str:
    """' (did you mean: a, b?)' for close matches of `name` among `known`, else ''. Short names (3 characters
    or fewer: 'xs' for 'zs') are close at one changed character, which the usual 0.6 similarity misses."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5 if len(name) <= 3 else 0.6)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class UnknownName(HarnessError):
    """A name that no registry holds: a typo to fix, never something `--skip-invalid` skips."""


def unknown(what: str, name: str, known: Iterable[str]) -> HarnessError:
    """The error for a name missing from a registry, with close-match suggestions."""
    known = sorted(known)
    hint = suggest(name, known) or f" (known: {', '.join(known)})"
    return UnknownName(f"unknown {what} {name!r}{hint}")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, at most 300 characters: for one-line errors."""
    return (str(error).strip().splitlines() or [""])[0][:300]


def say(message: str) -> None:
    """A progress line on stderr, as every stage reports it: `[harness] message`."""
    _stderr_line(f"[harness] {message}")


def warn(message: str) -> None:
    """A fallback the run took, on stderr: `warning: message` (also recorded in run.json and the report)."""
    _stderr_line(f"warning: {message}")


def _stderr_line(line: str) -> None:
    """One line on stderr, above the progress bar when one is open (never inside it)."""
    import sys

    tqdm = sys.modules.get("tqdm")  # loaded by whatever opened a bar; never imported here just to ask
    if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)
