"""The shared vocabulary of the pipeline: frozen records passed from stage to stage.

examples -> prompts -> requests -> results; results are joined back to prompts by request id.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class Setting(enum.Enum):
    """The four settings of the GPT papers."""

    ZS = "zs"  # zero-shot: description + query
    ONE_SHOT = "1s"  # one-shot: one solved demonstration
    FS = "fs"  # few-shot: k solved demonstrations
    FT = "ft"  # fine-tuned weights, zero-shot prompt

    @property
    def label(self) -> str:
        return self.name if self is not Setting.ONE_SHOT else "1S"


class TaskKind(enum.Enum):
    """How a task is scored; each kind is one record in harness/tasks/kinds.py."""

    MULTIPLE_CHOICE = "multiple_choice"  # one loglikelihood request per choice
    PARTIAL_SCORING = "partial_scoring"  # each choice completes the context; the shared target is scored
    CLOZE = "cloze"  # one loglikelihood request for the target
    PERPLEXITY = "perplexity"  # rolling loglikelihood of whole documents
    GENERATE = "generate"  # greedy generation, compared with the target


@dataclass(frozen=True)
class Example:
    """One row of a split, after the task's preprocessing. `id` is stable: '<split>-<row index>'."""

    id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One example rendered once by its task's templates: what prompts, requests, FT and outcomes all read."""

    id: str
    query: str  # the question (perplexity: the document)
    choices: tuple[str, ...] = ()  # multiple choice: answer texts; partial scoring: what completes the context
    gold: int = -1  # index of the gold choice
    target: str = ""  # the gold continuation (multiple choice: the gold choice; partial scoring: the shared text)
    units: str = ""  # perplexity: the text whose words and bytes normalise
    references: tuple[str, ...] = ()  # generate: every accepted answer (target is the one demonstrations show)
    credit: tuple[float, ...] = ()  # multiple choice: the score of each choice (BIG-bench target_scores), when given


@dataclass(frozen=True)
class Prompt:
    """Description + demonstrations + query for one example in one setting (k requested, seed)."""

    task: str
    example_id: str
    setting: Setting
    k: int
    seed: int
    description: str
    demos: tuple[str, ...]  # rendered "query + delimiter + answer" of each demonstration
    demo_ids: tuple[str, ...]
    query: str
    demo_separator: str

    @property
    def k_used(self) -> int:
        return len(self.demos)

    @property
    def text(self) -> str:
        """The context the model sees (lm-evaluation-harness order: description, demos, query)."""
        return self.description + "".join(d + self.demo_separator for d in self.demos) + self.query

    @property
    def key(self) -> str:
        """Identifies the prompt among all prompts of a run."""
        return f"{self.task}/{self.setting.value}/k{self.k}/s{self.seed}/{self.example_id}"


class RequestKind(enum.Enum):
    LOGLIKELIHOOD = "loglikelihood"  # log p(continuation | context)
    ROLLING = "rolling"  # log p(text), in disjoint windows of the model's length
    GENERATE = "generate"  # greedy continuation until a stop string


@dataclass(frozen=True)
class LoglikelihoodRequest:
    id: str
    context: str
    continuation: str
    kind: RequestKind = field(default=RequestKind.LOGLIKELIHOOD, init=False)


@dataclass(frozen=True)
class RollingRequest:
    id: str
    text: str
    stride: int = 0  # tokens predicted per window after the first (scoring.rolling_windows); 0: disjoint windows
    window: int = 0  # tokens per window, at most the model's length; 0: the model's length
    kind: RequestKind = field(default=RequestKind.ROLLING, init=False)


@dataclass(frozen=True)
class GenerateRequest:
    id: str
    context: str
    stop: tuple[str, ...]
    max_new_tokens: int
    kind: RequestKind = field(default=RequestKind.GENERATE, init=False)


Request = LoglikelihoodRequest | RollingRequest | GenerateRequest


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float  # sum of log-softmax at the continuation tokens
    is_greedy: bool  # every continuation token is the argmax
    n_tokens: int  # continuation tokens scored
    truncated: int = 0  # context tokens cut from the left to fit the model
    last_greedy: bool = False  # the final continuation token is the argmax (GPT-2 paper's LAMBADA rule)


@dataclass(frozen=True)
class RollingResult:
    logprob: float
    n_tokens: int


@dataclass(frozen=True)
class GenerateResult:
    text: str
    truncated: int = 0  # context tokens cut from the left to leave room for max_new_tokens in the model's window
    # log P(text | context) as a loglikelihood request of the text scores it (the batch-invariant scorer), and
    # its tokens; None / 0 for an empty text or a backend that cannot score
    logprob: float | None = None
    n_tokens: int = 0


Result = LoglikelihoodResult | RollingResult | GenerateResult

# ---------------------------------------------------------------- outcomes: one type per task kind


@dataclass(frozen=True)
class ChoiceOutcome:
    """Multiple choice and partial scoring: a log-likelihood per choice."""

    choices: tuple[str, ...]  # the choice texts (no delimiter)
    gold: int
    logprobs: tuple[float, ...]
    greedy: tuple[bool, ...]
    n_tokens: tuple[int, ...]
    unconditional: tuple[float, ...] = ()  # per choice, after the prefix token alone (when a metric needs it)
    truncated: int = 0  # context tokens cut to fit, the most over the choices
    credit: tuple[float, ...] = ()  # the score of each choice (BIG-bench target_scores); () = 1 for gold, else 0
    answer_context: tuple[float, ...] = ()  # per choice, after prompt.answer_context (GPT-3's calibration)


@dataclass(frozen=True)
class ClozeOutcome:
    """Cloze: the log-likelihood of the one target."""

    target: str
    logprob: float
    greedy: bool  # every target token is the argmax
    last_greedy: bool  # the final target token is the argmax (GPT-2 paper's LAMBADA rule)
    n_tokens: int
    truncated: int = 0


@dataclass(frozen=True)
class DocumentOutcome:
    """Perplexity: the rolling log-likelihood of one document."""

    logprob: float
    n_tokens: int
    words: int  # whitespace-separated words of the units text
    bytes: int  # UTF-8 bytes of the units text
    dataset_tokens: int = 0  # whitespace tokens of the units text + one <eos> per line (kinds.count_dataset_tokens)


@dataclass(frozen=True)
class MatchOptions:
    """lm-evaluation-harness's exact_match options, as a task file gives them ([metric_options.exact_match])."""

    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationOutcome:
    """Generation: the greedy continuation (cut at the first stop string), the prediction the task's filters
    make of it, and every accepted reference (the task's exact_match options are its metric's: metrics.py)."""

    generated: str
    references: tuple[str, ...]
    prediction: str | None = None  # after the task's filters; None: the generated text as is
    truncated: int = 0  # context tokens cut from the left to fit
    logprob: float | None = None  # log P(generated | prompt), the answer's confidence (GenerateResult.logprob)
    n_tokens: int = 0

    @property
    def predicted(self) -> str:
        return self.generated if self.prediction is None else self.prediction

    @property
    def target(self) -> str:
        """The first reference: the one demonstrations and FT show."""
        return self.references[0]


Outcome = ChoiceOutcome | ClozeOutcome | DocumentOutcome | GenerationOutcome



@dataclass(frozen=True)
class Variant:
    """One prompt variant of a task: the setting, the demonstrations asked for (k) and their draw (seed)."""

    setting: Setting
    k: int
    seed: int = 0


@dataclass(frozen=True)
class ScoreRow:
    """One row of the long table, per (model, task, setting, k, seed, metric); scores.csv adds `run` first.
    `note`: why a cell has no value (value NaN, n 0, shown as n/a), else empty."""

    model: str
    task: str
    setting: str  # the setting's label: ZS, 1S, FS, FT
    k: int
    k_used_mean: float
    seed: int
    metric: str
    value: float
    stderr: float
    n: int
    n_truncated: int
    higher_is_better: bool
    note: str = ""


# The long table's columns, in order: scores.csv's header.
SCORE_COLUMNS = ["run", *(f.name for f in fields(ScoreRow))]
