"""A task kind is one record in one table: the prompt keys its file may give, how an example renders, the
requests a prompt asks of the model, the outcome built from their results, what a sample records, the gold
pair that demonstrations and fine-tuning use, and its default metrics. Below, d is prompt.target_delimiter.

| kind            | requests per prompt                               | outcome           | gold (extra, continuation) |
| --------------- | ------------------------------------------------- | ----------------- | -------------------------- |
| multiple_choice | loglikelihood of d + choice, for each choice      | ChoiceOutcome     | ("", d + gold choice)      |
| partial_scoring | loglikelihood of d + target after each choice     | ChoiceOutcome     | (gold choice, d + target)  |
| cloze           | loglikelihood of d + target                       | ClozeOutcome      | ("", d + target)           |
| perplexity      | rolling loglikelihood of the document             | DocumentOutcome   | none: no demos, no FT      |
| generate        | greedy continuation until a stop string, filtered | GenerationOutcome | ("", d + first reference)  |

A demonstration is query + extra + continuation of its gold pair; FT trains on (prompt + extra, continuation).
A row also says what a samples.jsonl line records (an answer type of samples.py), how `harness validate`
shows the gold answer, and how the kind is written in lm-evaluation-harness's samples layout (`harness run
--format lm-eval`). A new kind is one TaskKind member, one record here, its outcome and answer types
(records.py, samples.py), and metrics that read its outcome type (metrics.py).
Request ids extend the prompt's key, so results join back by id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.records import (ChoiceOutcome, ClozeOutcome, DocumentOutcome, Example, GenerateRequest, GenerateResult,
                             GenerationOutcome, LoglikelihoodRequest, Outcome, Prompt, Rendered, Request, RequestKind,
                             Result, RollingRequest, TaskKind)
from harness.samples import (ANSWERS, Answer, ChoiceAnswer, ClozeAnswer, DocumentAnswer, GenerationAnswer, Sample,
                             argmax)
from harness.tasks.filters import apply_filters
from harness.tasks.spec import TEXT_REFERENCE_METRICS, TaskSpec
from harness.tasks.templates import choices_of, fill, gold_of, references_of

Results = Mapping[str, Result]
Pair = tuple[str, str]  # (text appended to the prompt, scored continuation)
Export = tuple[list[tuple], list, list, str]  # lm-eval's (arguments, resps, filtered_resps, target) of one doc


@dataclass(frozen=True)
class KindRules:
    request_kind: RequestKind  # what its requests ask of a model (a backend must serve it)
    required: tuple[str, ...]  # prompt keys the task file must give
    allowed: frozenset[str]  # every prompt key that applies; any other is an error
    render: Callable[[TaskSpec, Example], Rendered]
    requests: Callable[[TaskSpec, Prompt, Rendered], list[Request]]
    outcome: type  # the one outcome type of the kind, which metrics declare they read
    build_outcome: Callable[[TaskSpec, Prompt, Rendered, Results], Outcome]
    answer: type  # the answer record of its samples.jsonl lines (samples.py)
    sample: Callable[[Outcome], Answer]  # the answer an outcome records
    describe_gold: Callable[[Rendered], str]  # the gold answer in words (`harness validate`)
    lmeval_output_type: str  # lm-evaluation-harness's output_type of such a task
    lmeval_export: Callable[[TaskSpec, Prompt, Rendered, Answer], Export]
    default_metrics: tuple[str, ...]
    pairs: Callable[[Rendered, str], list[Pair]] = lambda r, delimiter: []  # what fitting must leave room for
    gold: Callable[[Rendered, str], Pair] | None = None  # None: no demonstrations and no FT, for `why_no_gold`
    why_no_gold: str = ""
    budget: Callable[[TaskSpec, int], int] | None = None  # tokens for prompt + longest pair; None: not fitted
    hints: Mapping[str, str] = field(default_factory=dict)  # prompt key -> what to write instead
    refused_metrics: Mapping[str, str] = field(default_factory=dict)  # metric -> why it does not apply
    sample_prompt: Callable[[Prompt], str] = lambda p: p.text  # the prompt text a samples.jsonl line keeps


# ---------------------------------------------------------------- ids


def choice_id(prompt: Prompt, i: int) -> str:
    return f"{prompt.key}#choice{i}"


def unconditional_id(prompt: Prompt, i: int) -> str:
    return f"{prompt.key}#uncond{i}"


def answer_context_id(prompt: Prompt, i: int) -> str:
    return f"{prompt.key}#actx{i}"


def target_id(prompt: Prompt) -> str:
    return f"{prompt.key}#target"


# ---------------------------------------------------------------- rendering


def _render_choices(task: TaskSpec, ex: Example) -> Rendered:
    choices = tuple(choices_of(task, ex))
    gold = gold_of(task, ex, len(choices))
    return Rendered(ex.id, fill(task, "prompt.query", task.prompt.query, ex), choices, gold, choices[gold],
                    credit=_credit(task, ex, len(choices)))


def _credit(task: TaskSpec, ex: Example, n_choices: int) -> tuple[float, ...]:
    """The score of each choice from the field prompt.choice_scores names (set by BIG-bench tasks), else ()."""
    if not task.prompt.choice_scores:
        return ()
    field_name = task.prompt.choice_scores.removeprefix("$")
    value = ex.fields.get(field_name)
    if (not isinstance(value, (list, tuple)) or len(value) != n_choices
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise HarnessError(f"{task.path}: example {ex.id}: {field_name} must list one number per choice "
                           f"({n_choices}), got {value!r}")
    return tuple(float(v) for v in value)


def _render_partial(task: TaskSpec, ex: Example) -> Rendered:
    choices = tuple(choices_of(task, ex))
    gold = gold_of(task, ex, len(choices))
    query, target = (fill(task, "prompt.query", task.prompt.query, ex),
                     fill(task, "prompt.target", task.prompt.target, ex))
    return Rendered(ex.id, query, choices, gold, target)


def _render_target(task: TaskSpec, ex: Example) -> Rendered:
    query, target = (fill(task, "prompt.query", task.prompt.query, ex),
                     fill(task, "prompt.target", task.prompt.target, ex))
    return Rendered(ex.id, query, target=target)


def _render_generation(task: TaskSpec, ex: Example) -> Rendered:
    query = fill(task, "prompt.query", task.prompt.query, ex)
    target, references = references_of(task, ex)
    if TEXT_REFERENCE_METRICS & set(task.metrics) and not all(ref.strip() for ref in references):
        key = "prompt.references" if task.prompt.references else "prompt.target"
        raise HarnessError(f"{task.path}: {key}: example {ex.id} has an empty reference, which "
                           f"{', '.join(sorted(TEXT_REFERENCE_METRICS & set(task.metrics)))} cannot score")
    return Rendered(ex.id, query, target=target, references=references)


def _render_document(task: TaskSpec, ex: Example) -> Rendered:
    text = fill(task, "prompt.text", task.prompt.text, ex)
    units = fill(task, "prompt.units_text", task.prompt.units_text or task.prompt.text, ex)
    return Rendered(ex.id, text, units=units)


# ---------------------------------------------------------------- requests


def _choice_scored(task: TaskSpec, p: Prompt, r: Rendered) -> list[LoglikelihoodRequest]:
    pairs = alternatives(task, r)
    return [LoglikelihoodRequest(choice_id(p, i), p.text + extra, cont) for i, (extra, cont) in enumerate(pairs)]


def _choice_requests(task: TaskSpec, p: Prompt, r: Rendered) -> list[Request]:
    out: list[Request] = list(_choice_scored(task, p, r))
    if task.needs_unconditional:  # lm-evaluation-harness's acc_mutual_info: the choice after the prefix token alone
        out += [LoglikelihoodRequest(unconditional_id(p, i), "", cont)
                for i, (_, cont) in enumerate(alternatives(task, r))]
    if task.needs_answer_context:  # the GPT-3 paper's calibration: the choice after its answer context ("Answer:")
        out += [LoglikelihoodRequest(answer_context_id(p, i), task.prompt.answer_context, cont)
                for i, (_, cont) in enumerate(alternatives(task, r))]
    return out


def _cloze_requests(task: TaskSpec, p: Prompt, r: Rendered) -> list[Request]:
    return [LoglikelihoodRequest(target_id(p), p.text, task.prompt.target_delimiter + r.target)]


def _rolling_requests(task: TaskSpec, p: Prompt, r: Rendered) -> list[Request]:
    return [RollingRequest(target_id(p), p.query, task.prompt.stride, task.prompt.window)]


def _generate_requests(task: TaskSpec, p: Prompt, r: Rendered) -> list[Request]:
    return [GenerateRequest(target_id(p), p.text, task.prompt.stop, task.prompt.max_new_tokens)]


# ---------------------------------------------------------------- outcomes and samples


def _choice_outcome(task: TaskSpec, p: Prompt, r: Rendered, results: Results) -> ChoiceOutcome:
    scored = [results[choice_id(p, i)] for i in range(len(r.choices))]
    uncond = (tuple(results[unconditional_id(p, i)].logprob for i in range(len(r.choices)))
              if task.needs_unconditional else ())
    actx = (tuple(results[answer_context_id(p, i)].logprob for i in range(len(r.choices)))
            if task.needs_answer_context else ())
    return ChoiceOutcome(r.choices, r.gold, tuple(s.logprob for s in scored), tuple(s.is_greedy for s in scored),
                         tuple(s.n_tokens for s in scored), uncond, max(s.truncated for s in scored), r.credit, actx)


def _cloze_outcome(task: TaskSpec, p: Prompt, r: Rendered, results: Results) -> ClozeOutcome:
    s = results[target_id(p)]
    return ClozeOutcome(r.target, s.logprob, s.is_greedy, s.last_greedy, s.n_tokens, s.truncated)


def _document_outcome(task: TaskSpec, p: Prompt, r: Rendered, results: Results) -> DocumentOutcome:
    s = results[target_id(p)]
    return DocumentOutcome(s.logprob, s.n_tokens, count_words(r.units), len(r.units.encode("utf-8")),
                           count_dataset_tokens(r.units))


def _generation_outcome(task: TaskSpec, p: Prompt, r: Rendered, results: Results) -> GenerationOutcome:
    return generation_outcome(task, r, results[target_id(p)])


def generation_outcome(task: TaskSpec, r: Rendered, result: GenerateResult) -> GenerationOutcome:
    """A generation as the metrics read it: after the task's filters, beside the example's references."""
    prediction = apply_filters(task, result.text) if task.prompt.filters else None
    return GenerationOutcome(result.text, r.references, prediction, result.truncated, result.logprob, result.n_tokens)


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them for word_perplexity: re.split(r'\\s+', text)."""
    return len(re.split(r"\s+", text))


def count_dataset_tokens(text: str) -> int:
    """A tokenized dataset's own token count (PTB, WikiText: the GPT-2 paper's normalisation, the SOTA row's):
    its whitespace-separated tokens plus one <eos> per line (each newline)."""
    return len(text.split()) + text.count("\n")


def _choice_sample(o: ChoiceOutcome) -> ChoiceAnswer:
    return ChoiceAnswer(choices=o.choices, gold=o.gold, logprobs=o.logprobs, greedy=o.greedy, n_tokens=o.n_tokens,
                        prediction=argmax(o.logprobs), unconditional=o.unconditional, truncated=o.truncated,
                        answer_context=o.answer_context)


def _cloze_sample(o: ClozeOutcome) -> ClozeAnswer:
    return ClozeAnswer(target=o.target, logprob=o.logprob, is_greedy=o.greedy, last_token_greedy=o.last_greedy,
                       n_tokens=o.n_tokens, truncated=o.truncated)


def _document_sample(o: DocumentOutcome) -> DocumentAnswer:
    return DocumentAnswer(logprob=o.logprob, n_tokens=o.n_tokens, words=o.words, bytes=o.bytes)


def _generation_sample(o: GenerationOutcome) -> GenerationAnswer:
    return GenerationAnswer(generation=o.generated, prediction=o.predicted, target=o.target,
                            references=o.references, truncated=o.truncated, logprob=o.logprob, n_tokens=o.n_tokens)


# ---------------------------------------------------------------- the gold answer in words (harness validate)


def _choice_gold(r: Rendered) -> str:
    return f"choice {r.gold} of {len(r.choices)}: {r.choices[r.gold]!r}"


def _generation_gold(r: Rendered) -> str:
    return f"target {r.target!r}" + (f" (references: {list(r.references)})" if len(r.references) > 1 else "")


# ---------------------------------------------------------------- lm-evaluation-harness's samples layout


def _choice_export(task: TaskSpec, p: Prompt, r: Rendered, a: ChoiceAnswer) -> Export:
    args = [(q.context, q.continuation) for q in _choice_scored(task, p, r)]
    greedy = a.greedy or (None,) * len(args)
    pairs = [[ll, g] for ll, g in zip(a.logprobs, greedy, strict=True)]
    return args, [[pair] for pair in pairs], pairs, str(a.gold)


def _cloze_export(task: TaskSpec, p: Prompt, r: Rendered, a: ClozeAnswer) -> Export:
    args = [(q.context, q.continuation) for q in _cloze_requests(task, p, r)]
    pair = [a.logprob, a.is_greedy]
    return args, [[pair]], [pair], a.target


def _document_export(task: TaskSpec, p: Prompt, r: Rendered, a: DocumentAnswer) -> Export:
    return [(q.text,) for q in _rolling_requests(task, p, r)], [[a.logprob]], [a.logprob], p.query


def _generation_export(task: TaskSpec, p: Prompt, r: Rendered, a: GenerationAnswer) -> Export:
    args = [(q.context, {"until": list(q.stop), "max_gen_toks": q.max_new_tokens, "do_sample": False,
                         "temperature": 0.0}) for q in _generate_requests(task, p, r)]
    refs = a.references
    return args, [[a.generation]], [a.prediction], str(list(refs)) if len(refs) > 1 else refs[0]


# ---------------------------------------------------------------- the table

_SHARED = frozenset({"query", "target_delimiter", "demo_separator"})
_CHOICE = _SHARED | {"choices", "answer", "answer_labels"}
_LOGLIKELIHOOD_BUDGET = lambda task, max_length: max_length + 1  # noqa: E731  the last continuation token is never an input

_CHOICE_ROW = dict(request_kind=RequestKind.LOGLIKELIHOOD, requests=_choice_requests, outcome=ChoiceOutcome,
                   build_outcome=_choice_outcome, answer=ChoiceAnswer, sample=_choice_sample,
                   describe_gold=_choice_gold, lmeval_output_type="multiple_choice", lmeval_export=_choice_export,
                   budget=_LOGLIKELIHOOD_BUDGET)

_ONE_CONTINUATION = "needs a continuation per choice; with partial scoring every choice shares one"

KINDS: dict[TaskKind, KindRules] = {
    TaskKind.MULTIPLE_CHOICE: KindRules(
        **_CHOICE_ROW, required=("query", "choices", "answer"), allowed=_CHOICE | {"answer_context", "choice_scores"},
        render=_render_choices,
        default_metrics=("acc", "acc_norm"),
        pairs=lambda r, d: [("", d + c) for c in r.choices], gold=lambda r, d: ("", d + r.choices[r.gold]),
        hints={"target": "applies to partial scoring, where each choice completes the context and this shared text "
                         "is scored (lm-evaluation-harness's winogrande): write kind = \"partial_scoring\""},
    ),
    TaskKind.PARTIAL_SCORING: KindRules(
        **_CHOICE_ROW, required=("query", "choices", "answer", "target"), allowed=_CHOICE | {"target"},
        render=_render_partial, default_metrics=("acc",),
        pairs=lambda r, d: [(c, d + r.target) for c in r.choices], gold=lambda r, d: (r.choices[r.gold], d + r.target),
        refused_metrics={name: _ONE_CONTINUATION for name in ("acc_calibrated", "acc_gpt3_calibrated")},
    ),
    TaskKind.CLOZE: KindRules(
        request_kind=RequestKind.LOGLIKELIHOOD, required=("query", "target"), allowed=_SHARED | {"target"},
        render=_render_target, requests=_cloze_requests, outcome=ClozeOutcome, build_outcome=_cloze_outcome,
        answer=ClozeAnswer, sample=_cloze_sample, describe_gold=lambda r: f"target {r.target!r}",
        lmeval_output_type="loglikelihood", lmeval_export=_cloze_export, default_metrics=("acc", "perplexity"),
        pairs=lambda r, d: [("", d + r.target)], gold=lambda r, d: ("", d + r.target), budget=_LOGLIKELIHOOD_BUDGET,
    ),
    TaskKind.PERPLEXITY: KindRules(
        request_kind=RequestKind.ROLLING, required=("text",),
        allowed=frozenset({"text", "units_text", "stride", "window"}),
        render=_render_document, requests=_rolling_requests, outcome=DocumentOutcome,
        build_outcome=_document_outcome, answer=DocumentAnswer, sample=_document_sample,
        describe_gold=lambda r: "none (perplexity over the document)", lmeval_output_type="loglikelihood_rolling",
        lmeval_export=_document_export, default_metrics=("word_perplexity", "byte_perplexity", "bits_per_byte"),
        why_no_gold="perplexity over documents", sample_prompt=lambda p: p.text[:200],
    ),
    TaskKind.GENERATE: KindRules(
        request_kind=RequestKind.GENERATE, required=("query", "target"),
        allowed=_SHARED | {"target", "references", "stop", "max_new_tokens", "filters", "regex"},
        render=_render_generation, requests=_generate_requests, outcome=GenerationOutcome,
        build_outcome=_generation_outcome, answer=GenerationAnswer, sample=_generation_sample,
        describe_gold=_generation_gold, lmeval_output_type="generate_until", lmeval_export=_generation_export,
        default_metrics=("exact_match",), gold=lambda r, d: ("", d + r.target),
        budget=lambda task, max_length: max_length - task.prompt.max_new_tokens,
    ),
}


# ---------------------------------------------------------------- what the stages call


def render(task: TaskSpec, example: Example) -> Rendered:
    """The example rendered by the task's templates (errors name the file, key and example)."""
    return KINDS[task.kind].render(task, example)


def requests_for(task: TaskSpec, prompt: Prompt, rendered: Rendered) -> list[Request]:
    """Every request of one prompt (the unconditional ones too, when a metric of the task needs them)."""
    return KINDS[task.kind].requests(task, prompt, rendered)


def outcome_of(task: TaskSpec, prompt: Prompt, rendered: Rendered, results: Results) -> Outcome:
    """The prompt's results joined into its kind's outcome type."""
    return KINDS[task.kind].build_outcome(task, prompt, rendered, results)


def sample_of(task: TaskSpec, prompt: Prompt, outcome: Outcome, metrics: Mapping) -> Sample:
    """The samples.jsonl record of one prompt: its variant, the text the model read, the typed answer."""
    rules = KINDS[task.kind]
    return Sample(task=task.name, setting=prompt.setting.label, k=prompt.k, k_used=prompt.k_used, seed=prompt.seed,
                  example_id=prompt.example_id, demo_ids=prompt.demo_ids, prompt=rules.sample_prompt(prompt),
                  answer=rules.sample(outcome), metrics=metrics)


def read_sample(line: Mapping, kind: TaskKind | None) -> Sample:
    """A samples.jsonl line of a task of `kind`. None: a run folder older than run.json's `tasks.<name>.kind`,
    whose lines are read as the first answer type whose keys they all hold."""
    if kind is not None:
        return Sample.from_json(line, KINDS[kind].answer)
    answer = next((a for a in ANSWERS if all(key in line for key in a.keys)), None)
    if answer is None:
        raise HarnessError(f"sample of {line.get('task')} {line.get('example_id')}: no answer fields "
                           f"(expected the keys of one of {', '.join(a.__name__ for a in ANSWERS)})")
    return Sample.from_json(line, answer)


def describe_gold(task: TaskSpec, rendered: Rendered) -> str:
    return KINDS[task.kind].describe_gold(rendered)


def lmeval_export(task: TaskSpec, prompt: Prompt, rendered: Rendered, answer: Answer) -> Export:
    """lm-eval's (arguments, resps, filtered_resps, target) of one prompt, from its recorded answer."""
    return KINDS[task.kind].lmeval_export(task, prompt, rendered, answer)


def lmeval_output_type(kind: TaskKind) -> str:
    return KINDS[kind].lmeval_output_type


def alternatives(task: TaskSpec, rendered: Rendered) -> list[Pair]:
    """(text appended to the prompt, scored continuation) of each loglikelihood request of a prompt."""
    return KINDS[task.kind].pairs(rendered, task.prompt.target_delimiter)


def demo_text(task: TaskSpec, rendered: Rendered) -> str:
    """A solved demonstration: query + the gold pair (e.g. query + delimiter + gold choice)."""
    extra, continuation = gold_pair(task, rendered)
    return rendered.query + extra + continuation


def gold_pair(task: TaskSpec, rendered: Rendered) -> Pair:
    """(text appended to the prompt, gold continuation), exactly as the scorer builds the gold request."""
    gold = KINDS[task.kind].gold
    assert gold is not None, f"{task.kind.value} tasks have no gold continuation"
    return gold(rendered, task.prompt.target_delimiter)


def without_demonstrations(kind: TaskKind) -> str:
    """Why a task of this kind has no demonstrations (1S, FS) and no FT, or '' when it has them."""
    rules = KINDS[kind]
    return "" if rules.gold is not None else rules.why_no_gold
