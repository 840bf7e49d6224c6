"""Python cleanup that task files name with `preprocess = "<name>"`. Each function maps the rows of
one split to new rows (it may add fields, or regroup rows as wikitext_documents does).

All of them mirror the corresponding lm-evaluation-harness task code, so prompts match.

PREPROCESSORS holds every TaskSpec.preprocess, each as (task, one split's rows) -> new rows: the CLEANUPS
here (which task files may name; the rows alone decide) and BIG-bench's two, which read the meta file
their TaskSpec was built from (bigbench.py, bigbench_generative.py set them; a task file cannot).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.errors import HarnessError
from harness.tasks import bigbench, bigbench_generative
from harness.tasks.detokenize import is_title, wikitext_detokenize
from harness.tasks.preprocess_papers import (
    RowProblem,
    multirc,
    ptb_documents,
    race,
    webqs,
    wic,
    wikitext_articles,
    wsc,
    wsc273,
)
from harness.tasks.spec import TaskSpec

Rows = list[dict]
Preprocess = Callable[[TaskSpec, Rows], Rows]  # (the task, one split's rows) -> new rows


def lambada(rows: Rows) -> Rows:
    """context = text up to the last space; target = ' ' + last word (lambada_openai.yaml)."""
    out = []
    for row in rows:
        context, _, word = row["text"].rpartition(" ")
        out.append(row | {"context": context, "target": " " + word})
    return out


def _hellaswag_clean(text: str) -> str:
    text = text.strip()
    text = text.replace(" [title]", ". ")  # WikiHow artifacts
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(rows: Rows) -> Rows:
    """query = activity label + ': ' + context; cleaned endings (hellaswag/utils.py).

    lm-evaluation-harness capitalizes ctx_b; rows that carry only the joined `ctx` keep it as is.
    """
    out = []
    for row in rows:
        ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize() if "ctx_a" in row else row["ctx"]
        out.append(row | {
            "query": _hellaswag_clean(row["activity_label"] + ": " + ctx),
            "choices": [_hellaswag_clean(e) for e in row["endings"]],
            "gold": int(row["label"]),
        })
    return out


def arc(rows: Rows) -> Rows:
    """choices = choices.text; gold = index of answerKey among choices.label (arc_easy.yaml)."""
    out = []
    for index, row in enumerate(rows):
        labels = list(row["choices"]["label"])
        if row["answerKey"] not in labels:  # RowProblem: named file:line by data.py (OpenBookQA shares this layout)
            raise RowProblem(index, "answerKey", f"{row['answerKey']!r} (row {row.get('id')}) is not among the "
                             f"choice labels {labels}: the option list has no gold")
        out.append(row | {"choice_texts": list(row["choices"]["text"]), "gold": labels.index(row["answerKey"])})
    return out


def copa(rows: Rows) -> Rows:
    """query = premise without its period + ' because' / ' therefore'; choices ' ' + lower-cased first
    letter (super_glue/copa/utils.py; with the default delimiter the scored text starts with two spaces)."""
    connector = {"cause": "because", "effect": "therefore"}
    out = []
    for row in rows:
        lower = [" " + c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
        out.append(row | {"query": row["premise"].strip()[:-1] + f" {connector[row['question']]}",
                          "choice_list": lower})
    return out


def winogrande(rows: Rows) -> Rows:
    """Partial scoring: each option fills the blank of the sentence up to it; the rest is scored
    (winogrande/preprocess_winogrande.py)."""
    out = []
    for row in rows:
        blank = row["sentence"].index("_")
        filled = [row["sentence"][:blank] + option for option in (row["option1"], row["option2"])]
        rest = row["sentence"][blank + 1 :].strip()
        out.append(row | {"filled": filled, "rest": rest, "gold": {"1": 0, "2": 1}[str(row["answer"])]})
    return out


def wikitext_documents(rows: Rows) -> Rows:
    """Group wikitext's line rows into articles (the layout of EleutherAI/wikitext_document_level).

    Rows follow the HF wikitext-*-raw layout ('line\\n', '' for a blank line); the raw file holds a
    blank line as ' \\n'. A new article starts at each level-1 title ' = Title = '. `page` is the
    article text, `text` its detokenized form (wikitext_detokenizer), the one that is scored.
    """
    if rows and "page" in rows[0]:  # already one article per row (the hub's document-level copy)
        return [row | {"text": wikitext_detokenize(row["page"])} for row in rows]
    raw = "".join(row["text"] if row["text"] else " \n" for row in rows)
    pages, lines = [], []
    for line in raw.split("\n"):
        if is_title(line):
            page = "\n".join(lines)
            if page.strip():
                pages.append(page)
            lines = []
        lines.append(line)
    pages.append("\n".join(lines))
    return [{"page": page, "text": wikitext_detokenize(page)} for page in pages]


def arithmetic(rows: Rows) -> Rows:
    """GPT-3 arithmetic: context stripped, blank lines joined, Q:/A: spelled out (arithmetic/utils.py)."""
    out = []
    for row in rows:
        context = row["context"].strip().replace("\n\n", "\n").replace("Q:", "Question:").replace("A:", "Answer:")
        out.append(row | {"context": context})
    return out


def squadv2(rows: Rows) -> Rows:
    """target = ' ' + the first answer, or ' unanswerable' (what demonstrations show, squadv2/task.py);
    references = every answer, or [''] for an unanswerable question (the official no-answer rule)."""
    out = []
    for row in rows:
        answers = list(row["answers"]["text"] if isinstance(row["answers"], dict) else row["answers"])
        out.append(row | {"target": " " + (answers[0] if answers else "unanswerable"), "references": answers or [""]})
    return out


# lm-eval tasks imported with `harness import-lmeval` read the hub's fields; these give the data dir's rows those
# fields (rows that already have them, from the hub, pass unchanged). The table is lmeval_import.LOCAL_LAYOUTS.


def _label_indices(rows: Rows, names: tuple[str, ...], task: str) -> Rows:
    """Label names (the local files) as the hub's class indices; indices pass unchanged."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for row in rows:
        label = row["label"]
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
            out.append(row)
        elif isinstance(label, (str, bool)) and str(label).lower() in index:  # FewGLUE's JSON true / false too
            out.append(row | {"label": index[str(label).lower()]})
        else:
            raise HarnessError(f"{task} row {row.get('idx')}: label {label!r} is none of {list(names)} or their index")
    return out


def lmeval_boolq(rows: Rows) -> Rows:
    """BoolQ's labels 'false' / 'true' (false / true in FewGLUE's train file) as the hub's 0 / 1."""
    return _label_indices(rows, ("false", "true"), "BoolQ")


def lmeval_rte(rows: Rows) -> Rows:
    """RTE's labels 'entailment' / 'not_entailment' as the hub's 0 / 1."""
    return _label_indices(rows, ("entailment", "not_entailment"), "RTE")


def lmeval_triviaqa(rows: Rows) -> Rows:
    """The subsample's context 'Question: <q>\nAnswer:' and aliases as the hub's question and answer.aliases.
    lm-eval's template adds '?' after the question, so one trailing '?' is taken off; 377 of the 3,000 contexts
    have none (or end in '?"'), and lm-eval's template renders those with a '?' the local context lacks."""
    out = []
    for row in rows:
        if "question" in row:
            out.append(row)
            continue
        context = row["context"]
        if not (context.startswith("Question: ") and context.endswith("\nAnswer:")):
            raise HarnessError(f"TriviaQA row: context {context[:60]!r} is not 'Question: <question>\\nAnswer:'")
        question = context[len("Question: "):-len("\nAnswer:")]
        question = question[:-1] if question.endswith("?") else question
        out.append(row | {"question": question, "answer": {"value": row["answer"], "aliases": list(row["aliases"])}})
    return out


def lmeval_translation(rows: Rows) -> Rows:
    """One sentence pair per row ({"fr": ..., "en": ...}) as the hub's {"translation": {...}}."""
    return [row if "translation" in row else
            row | {"translation": {k: v for k, v in row.items() if k != "id" and isinstance(v, str)}} for row in rows]


def lambada_word(rows: Rows) -> Rows:
    """lambada plus `word`, the last word without its leading space: the GPT-2 paper's accuracy compares the whole
    greedily generated word with it."""
    return [row | {"word": row["target"][1:]} for row in lambada(rows)]


CLEANUPS: dict[str, Callable[[Rows], Rows]] = {  # the names a task file may give
    "lambada": lambada,
    "hellaswag": hellaswag,
    "arc": arc,
    "copa": copa,
    "winogrande": winogrande,
    "wikitext_documents": wikitext_documents,
    "arithmetic": arithmetic,
    "squadv2": squadv2,
    "lmeval_boolq": lmeval_boolq,
    "lmeval_rte": lmeval_rte,
    "lmeval_triviaqa": lmeval_triviaqa,
    "lmeval_translation": lmeval_translation,
    "race": race,
    "multirc": multirc,
    "wsc": wsc,
    "wic": wic,
    "webqs": webqs,
    "ptb_documents": ptb_documents,
    "wikitext_articles": wikitext_articles,
    "lambada_word": lambada_word,
    "wsc273": wsc273,
}


def _rows_only(cleanup: Callable[[Rows], Rows]) -> Preprocess:
    def run(task: TaskSpec, rows: Rows) -> Rows:
        return cleanup(rows)

    return run


PREPROCESSORS: dict[str, Preprocess] = {
    **{name: _rows_only(cleanup) for name, cleanup in CLEANUPS.items()},
    bigbench.PREPROCESS: bigbench.bigbench_preprocess,
    bigbench_generative.PREPROCESS: bigbench_generative.generative_preprocess,
}
