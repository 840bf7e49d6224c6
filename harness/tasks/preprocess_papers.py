"""Cleanups of the tasks that complete the GPT-3 paper's Table H.1 and the GPT-2 paper's Table 3 (RACE, MultiRC,
SuperGLUE WSC, WiC, WebQuestions, Winograd; PTB and WikiText as the GPT-2 paper scores them), each as lm-evaluation-
harness's task code reads its data. A row a cleanup cannot use raises RowProblem, which data.load_split reports
as file:line and field."""

from __future__ import annotations

from harness.errors import HarnessError
from harness.tasks.detokenize import general_detokenize, is_title, ptb_detokenize, wikitext_detokenize

Rows = list[dict]

class RowProblem(HarnessError):
    """A row a cleanup cannot use: load_split (data.py) names it as file:line and field."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(f"row {index}: {field}: {message}")
        self.index, self.field, self.message = index, field, message


_LETTERS = ("A", "B", "C", "D")


def _race_problem(index: int, row: dict) -> dict:
    question, options, answer = row.get("question"), row.get("options"), row.get("answer")
    if not isinstance(question, str):
        raise RowProblem(index, "question", f"must be a string, got {question!r}")
    if not (isinstance(options, list) and len(options) == 4 and all(isinstance(o, str) and o for o in options)):
        raise RowProblem(index, "options", f"must list 4 non-empty option texts, got {options!r}")
    if answer not in _LETTERS:
        raise RowProblem(index, "answer", f"{answer!r} is none of A, B, C, D: the option list has no gold")
    return {"question": question, "answer": answer, "options": options}


def race(rows: Rows) -> Rows:
    """RACE as lm-evaluation-harness's `race` reads EleutherAI/race: one example per article (rows grouped by their
    article, in order of first appearance), scoring its last question; each earlier question is folded into the
    context with its answer, a cloze ('  _  .') filled in, others as 'Question: ...\nAnswer: ...'
    (preprocess_race.py)."""
    articles: dict[str, list[dict]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row.get("article"), str):
            raise RowProblem(index, "article", f"must be a string, got {row.get('article')!r}")
        articles.setdefault(row["article"], []).append(_race_problem(index, row))
    out = []
    for article, problems in articles.items():
        text = "Article: " + article + "\n\n"
        for problem in problems[:-1]:
            answer = problem["options"][_LETTERS.index(problem["answer"])]
            if problem["question"][-6:] == "  _  .":
                text += problem["question"][:-5] + answer + "\n"
            else:
                text += "Question: " + problem["question"] + "\n" + "Answer: " + answer + "\n"
        last = problems[-1]
        out.append({"article": article, "problems": problems, "query": text + last["question"],
                    "choice_list": list(last["options"]), "gold": _LETTERS.index(last["answer"])})
    return out


MULTIRC_JUDGEMENTS = ("\nIs the answer correct? yes", "\nIs the answer correct? no")


def multirc(rows: Rows) -> Rows:
    """SuperGLUE MultiRC's passages as one example per question: every answer option is a yes/no judgement, the
    choices (option + lm-evaluation-harness's 'Is the answer correct? yes' / '... no') in pairs, `credit` 1 for the
    right judgement of each option, `gold` the right judgement of the first option (what demonstrations show)."""
    out = []
    for index, row in enumerate(rows):
        passage = row.get("passage")
        if not isinstance(passage, dict) or not isinstance(passage.get("text"), str):
            raise RowProblem(index, "passage.text", "missing: each row is a passage with text and questions")
        questions = passage.get("questions")
        if not isinstance(questions, list) or not questions:
            raise RowProblem(index, "passage.questions", "missing or empty: a passage needs questions")
        for q, question in enumerate(questions):
            where = f"passage.questions[{q}]"
            answers = question.get("answers") if isinstance(question, dict) else None
            if not isinstance(answers, list) or not answers:
                name = question.get("idx", q) if isinstance(question, dict) else q
                raise RowProblem(index, f"{where}.answers", f"question {name!r} has no answer options")
            if not isinstance(question.get("question"), str):
                raise RowProblem(index, f"{where}.question", "must be a string")
            labels = []
            for a, answer in enumerate(answers):
                label = answer.get("label") if isinstance(answer, dict) else None
                if label not in (0, 1) or isinstance(label, float):
                    raise RowProblem(index, f"{where}.answers[{a}].label", f"{label!r} is not 0 or 1: the option has "
                                     "no gold judgement (SuperGLUE's unlabelled test split cannot be scored)")
                if not isinstance(answer.get("text"), str):  # empty texts occur (train) and stay, as on the hub
                    raise RowProblem(index, f"{where}.answers[{a}].text", "must be a string")
                labels.append(int(label))
            texts = [answer["text"] for answer in answers]
            out.append({"paragraph": passage["text"], "question": question["question"], "answers": texts,
                        "labels": labels, "idx": {"paragraph": row.get("idx"), "question": question.get("idx")},
                        "judgements": [text + j for text in texts for j in MULTIRC_JUDGEMENTS],
                        "credit": [c for label in labels for c in ((1, 0) if label else (0, 1))],
                        "gold": 0 if labels[0] else 1})
    return out


def wsc(rows: Rows) -> Rows:
    """SuperGLUE WSC as lm-evaluation-harness's wsc (preprocess_wsc.default_doc_to_text): the passage with the
    pronoun starred at its word index, and the question whether it refers to the noun; gold 1 = yes."""
    out = []
    for index, row in enumerate(rows):
        target = row.get("target")
        if not isinstance(target, dict):
            raise RowProblem(index, "target", "missing: the spans (span1_text, span2_index, span2_text)")
        for key, kind in (("span1_text", str), ("span2_text", str), ("span2_index", int)):
            if not isinstance(target.get(key), kind) or isinstance(target.get(key), bool):
                raise RowProblem(index, f"target.{key}", f"must be a {kind.__name__}, got {target.get(key)!r}")
        label = str(row.get("label")).lower()
        if label not in ("true", "false"):
            raise RowProblem(index, "label", f"{row.get('label')!r} is neither true nor false: no gold")
        raw, pronoun = row["text"], target["span2_text"]
        pre = " ".join(raw.split()[: target["span2_index"]])
        post = raw[len(pre) + len(pronoun) + 1:]
        passage = general_detokenize(pre + f" *{pronoun}*" + post)
        query = (f"Passage: {passage}\n" + f'Question: In the passage above, does the pronoun "*{pronoun}*" refer to '
                 f'"*{target["span1_text"]}*"?\n' + "Answer:")
        out.append(row | {"query": query, "gold": int(label == "true")})
    return out


def wic(rows: Rows) -> Rows:
    """WiC's original release (token indices into space-tokenized sentences) with the word of sentence 1 at its
    index: what SuperGLUE's sentence1[start1:end1] is in lm-evaluation-harness's wic prompt."""
    out = []
    for index, row in enumerate(rows):
        words, position = str(row.get("example_1", "")).split(" "), row.get("index1")
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < len(words):
            raise RowProblem(index, "index1", f"{position!r} is not a token position in example_1 "
                             f"({len(words)} tokens)")
        out.append(row | {"word1": words[position]})
    return out


def webqs(rows: Rows) -> Rows:
    """WebQuestions as lm-evaluation-harness's webqs (utils.py): the accepted answers, sorted, less any with a strict
    prefix among them, are the choices, every one gold (credit 1); `gold` 0 is what demonstrations show."""
    out = []
    for index, row in enumerate(rows):
        answers = row.get("answers")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a for a in answers):
            raise RowProblem(index, "answers", f"must list non-empty answer strings, got {answers!r}: no gold")
        kept: list[str] = []
        for alias in sorted(answers):
            if not kept or not alias.startswith(kept[-1]):
                kept.append(alias)
        out.append(row | {"choice_list": kept, "accepted": [1] * len(kept), "gold": 0})
    return out


PTB_LINES_PER_DOCUMENT = 100  # PTB has no article boundaries: consecutive lines are grouped into documents


def ptb_documents(rows: Rows) -> Rows:
    """PTB's line rows ({"text": line}) as documents of PTB_LINES_PER_DOCUMENT lines: `tokens` the original lines,
    each with its newline (= PTB's <eos>), `text` the de-tokenized lines that are scored."""
    out = []
    for start in range(0, len(rows), PTB_LINES_PER_DOCUMENT):
        lines = [row["text"] for row in rows[start : start + PTB_LINES_PER_DOCUMENT]]
        out.append({"tokens": "".join(line + "\n" for line in lines),
                    "text": "".join(ptb_detokenize(line) + "\n" for line in lines)})
    return out


def wikitext_articles(rows: Rows) -> Rows:
    """WikiText's line rows (the HF layout, '' for a blank line) as articles that keep every line's newline (one
    <eos> each, as the dataset's token counts have them): `tokens` the tokenized article, `text` its de-tokenized
    form (wikitext_detokenize, lm-evaluation-harness's rules). <unk> (WikiText-103's tokenized v1) stays as written."""
    lines = [row["text"] if row["text"] else " \n" for row in rows]
    articles: list[list[str]] = []
    for line in lines:
        if not articles or (is_title(line.rstrip("\n")) and "".join(articles[-1]).strip()):
            articles.append([])
        articles[-1].append(line)
    return [{"tokens": "".join(a), "text": wikitext_detokenize("".join(a))} for a in articles]


_WSC_UPPER = ("A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their")


def _wsc273_option(row: dict, text: str, option: str) -> str:
    """lm-evaluation-harness wsc273/utils.py __normalize_option."""
    if row["pronoun"].lower() in ("my", "his", "her", "our", "their"):
        option += "'s"
    first = option.split()[0]
    if text[row["pronoun_loc"] - 2] != "." and first in _WSC_UPPER:
        return option.replace(first, first.lower())
    return option


def wsc273(rows: Rows) -> Rows:
    """Winograd (WSC273) with partial scoring, as the GPT-2 paper describes it and lm-evaluation-harness's wsc273
    scores it: each option replaces the pronoun (`filled` = text up to the pronoun + option), and the text after
    the pronoun (`rest`, its leading space kept, as lm-eval's doc_to_target) is scored."""
    out = []
    for index, row in enumerate(rows):
        for key, kind in (("text", str), ("pronoun", str), ("pronoun_loc", int), ("options", list)):
            if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                raise RowProblem(index, key, f"must be a {kind.__name__}, got {row.get(key)!r}")
        text, loc, pronoun = row["text"].replace("  ", " "), row["pronoun_loc"], row["pronoun"]
        if not pronoun or text[loc : loc + len(pronoun)] != pronoun:
            raise RowProblem(index, "pronoun_loc", f"the pronoun {pronoun!r} is not at character {loc} of text "
                             f"({text[loc : loc + len(pronoun) + 8]!r} is)")
        if len(row["options"]) != 2 or not all(isinstance(o, str) and o.strip() for o in row["options"]):
            raise RowProblem(index, "options", f"must be two non-empty option texts, got {row['options']!r}")
        if row.get("label") not in (0, 1) or isinstance(row.get("label"), bool):
            raise RowProblem(index, "label", f"{row.get('label')!r} is not 0 or 1: no gold")
        filled = [text[:loc] + _wsc273_option(row, text, option) for option in row["options"]]
        out.append(row | {"filled": filled, "rest": text[loc + len(pronoun):], "gold": row["label"]})
    return out
