"""The examples behind a difference as HTML: nested <details> elements (no scripts), one per comparison,
one per example inside it, the two samples side by side: the prompt (collapsed; very long prompts keep
their end, where the question is), the choices with their log-likelihoods (gold and chosen marked) or the
generation and its references, and the per-example metrics."""

from __future__ import annotations

import html

from harness.reporting.changes import Change, Comparison, Verdict
from harness.samples import Answer, ChoiceAnswer, ClozeAnswer, GenerationAnswer, Sample

PROMPT_CHARS = 6000  # the end of a longer prompt is shown; the demonstrations before it are cut
SHORT = 60

CSS = """
details.comparison { margin: 0.4em 0; } details.comparison > summary { cursor: pointer; font-size: 0.95em; }
details.example { margin: 0.3em 0 0.3em 1.2em; font-size: 0.88em; } details.example > summary { cursor: pointer; }
div.sides { display: flex; gap: 1em; } \
div.side { flex: 1; min-width: 0; border-left: 3px solid #ddd; padding-left: 0.6em; }
div.side pre { white-space: pre-wrap; background: #f7f7f7; padding: 0.4em; max-height: 30em; overflow: auto; }
span.fixed { color: #1a7f37; font-weight: 600; } span.broken { color: #b42318; font-weight: 600; }
span.other { color: #666; font-weight: 600; }
"""


def _short(text: object) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _number(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def prediction_text(sample: Sample) -> str:
    """What the model answered: the chosen choice, the generation, or whether the target was greedy."""
    return sample.answer.shown


def _prompt(sample: Sample) -> str:
    text = sample.prompt
    if not text:
        return ""
    cut = max(0, len(text) - PROMPT_CHARS)
    shown = (f"… ({cut} characters cut from the start)\n" if cut else "") + text[cut:]
    return (f"<details><summary>prompt ({len(text)} characters)</summary>"
            f"<pre>{html.escape(shown)}</pre></details>")


def _choices(a: ChoiceAnswer) -> str:
    rows = []
    for i, choice in enumerate(a.choices):
        marks = ("gold " if i == a.gold else "") + ("chosen" if i == a.prediction else "")
        score = _number(a.logprobs[i]) if i < len(a.logprobs) else ""
        rows.append(f"<tr><td>{i}</td><td>{html.escape(str(choice))}</td><td>{score}</td><td>{marks.strip()}</td></tr>")
    return ("<table><thead><tr><th>#</th><th>choice</th><th>log-likelihood</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _answer(answer: Answer) -> str:
    """The choices' table, or the generation and its references, or the cloze target."""
    esc = html.escape
    match answer:
        case ChoiceAnswer():
            return _choices(answer)
        case GenerationAnswer():
            refs = "".join(f"<li>{esc(r)}</li>" for r in answer.references)
            return (f"<p>generated:</p><pre>{esc(answer.prediction)}</pre>"
                    + (f"<p>references:</p><ul>{refs}</ul>" if refs
                       else f"<p>target: <code>{esc(answer.target)}</code></p>"))
        case ClozeAnswer():
            return (f"<p>target: <code>{esc(answer.target)}</code></p>"
                    f"<p>target greedy: {answer.is_greedy}; log-likelihood {_number(answer.logprob)}</p>")
        case _:
            return ""


def _side(label: str, sample: Sample) -> str:
    metrics = ", ".join(f"{html.escape(k)} = {_number(v)}" for k, v in sample.metrics.items())
    return (f'<div class="side"><p><b>{html.escape(label)}</b></p>{_prompt(sample)}{_answer(sample.answer)}'
            f"<p>metrics: {metrics or '–'}</p></div>")


def _example(c: Comparison, change: Change) -> str:
    esc = html.escape
    score = f"; {c.metric} {_number(change.before)} → {_number(change.after)}" if c.metric else ""
    summary = (f'{esc(str(change.example_id))}: <span class="{change.verdict.value}">{change.verdict.value}</span>'
               f"{esc(score)}; answer “{esc(_short(prediction_text(change.a)))}” "
               f"→ “{esc(_short(prediction_text(change.b)))}”")
    return (f'<details class="example"><summary>{summary}</summary><div class="sides">'
            f"{_side(c.a, change.a)}{_side(c.b, change.b)}</div></details>")


def comparison_html(c: Comparison) -> str:
    counts = ", ".join(f"{c.counts[v]} {v.value}" for v in Verdict)
    summary = (f"<b>{html.escape(c.task)}</b>: {html.escape(c.a)} → {html.escape(c.b)}: {counts} of {c.compared} "
               f"examples (showing {len(c.shown)})")
    return (f'<details class="comparison"><summary>{summary}</summary>'
            f'{"".join(_example(c, x) for x in c.shown)}</details>')


def changes_html(comparisons: tuple[Comparison, ...]) -> str:
    return "\n".join(comparison_html(c) for c in comparisons if c.shown)
