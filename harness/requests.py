"""The requests one prompt needs, by task kind. Ids extend the prompt's key, so results join back by id."""

from __future__ import annotations

from harness.tasks.prompts import choices_of, target_of
from harness.records import Example, GenerateRequest, LoglikelihoodRequest, Prompt, Request, RollingRequest
from harness.tasks.spec import TaskKind, TaskSpec


def choice_id(prompt: Prompt, i: int) -> str:
    return f"{prompt.key}#choice{i}"


def unconditional_id(prompt: Prompt, i: int) -> str:
    return f"{prompt.key}#uncond{i}"


def target_id(prompt: Prompt) -> str:
    return f"{prompt.key}#target"


def alternatives(task: TaskSpec, example: Example) -> list[tuple[str, str]]:
    """(text appended to the prompt, scored continuation) per choice, or the one cloze target.

    Multiple choice: ("", delimiter + choice). Partial scoring: (choice, delimiter + target), so each
    choice completes the context and the same target is scored after it (lm-evaluation-harness's
    multiple-input tasks, e.g. winogrande)."""
    delimiter = task.prompt.target_delimiter
    match task.kind:
        case TaskKind.MULTIPLE_CHOICE if task.is_partial:
            target = delimiter + target_of(task, example)
            return [(c, target) for c in choices_of(task, example)]
        case TaskKind.MULTIPLE_CHOICE:
            return [("", delimiter + c) for c in choices_of(task, example)]
        case TaskKind.CLOZE:
            return [("", delimiter + target_of(task, example))]
    return []


def requests_for(task: TaskSpec, prompt: Prompt, example: Example, unconditional: bool) -> list[Request]:
    match task.kind:
        case TaskKind.MULTIPLE_CHOICE:
            pairs = alternatives(task, example)
            out: list[Request] = [
                LoglikelihoodRequest(choice_id(prompt, i), prompt.text + extra, cont) for i, (extra, cont) in enumerate(pairs)
            ]
            if unconditional:  # lm-evaluation-harness's acc_mutual_info: the choice after the prefix token alone
                out += [LoglikelihoodRequest(unconditional_id(prompt, i), "", cont) for i, (_, cont) in enumerate(pairs)]
            return out
        case TaskKind.CLOZE:
            (_, cont), = alternatives(task, example)
            return [LoglikelihoodRequest(target_id(prompt), prompt.text, cont)]
        case TaskKind.PERPLEXITY:
            return [RollingRequest(target_id(prompt), prompt.query)]
        case TaskKind.GENERATE:
            return [GenerateRequest(target_id(prompt), prompt.text, task.prompt.stop, task.prompt.max_new_tokens)]
