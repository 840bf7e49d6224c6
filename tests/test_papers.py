"""Issue 22, the GPT-2 Table 3 and GPT-3 Table H.1 tasks: the GPT-2 language-modelling rules against hand-computed
values (de-tokenizer round trips, strided rolling windows on a bigram LM), MultiRC's metrics and GPT-3's calibration
by hand, bad rows in the new formats as one file:line error, the first prompt of each new task as lm-evaluation-harness
0.4.13 renders it, and both paper suites end to end on a tiny GPT-2 with the Table 3 layout in the report."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.errors import HarnessError
from harness.metrics import METRICS
from harness.models import scoring
from harness.models.hf import HFModel
from harness.records import ChoiceOutcome, RollingRequest, Setting
from harness.reporting import gpt2
from harness.tasks.catalog import TASKS_DIR, load_suite, suite_files
from harness.tasks.data import load_task_data
from harness.tasks.detokenize import ptb_detokenize, ptb_tokenize, wikitext_detokenize, wikitext_tokenize
from harness.tasks.kinds import alternatives, count_dataset_tokens, render
from harness.tasks.preprocess_papers import MULTIRC_JUDGEMENTS, multirc, ptb_documents, wikitext_articles
from harness.tasks.prompts import build_prompt
from harness.tasks.taskfile import load_task
from tests.conftest import SHARED_DATA, write_jsonl
from tests.fakes import ALPHABET, BigramLM, CharTokenizer, hand_sequence_logprob
from tests.helpers import assert_clean_failure

PUBLISHED = SHARED_DATA.parent / "published"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
needs_published = pytest.mark.skipif(not (PUBLISHED / gpt2.CSV_NAME).is_file(), reason="../shared/published absent")
NEW_TASKS = ("anli_r1", "anli_r2", "anli_r3", "race_middle", "multirc", "storycloze_2016", "openbookqa", "wic", "wsc",
             "wsc273", "webqs", "wmt16-ro-en", "wmt16-en-ro", "ptb", "wikitext103", "lambada_gpt2", "wikitext2_gpt2")


def jsonl_texts(path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- 1. invertible de-tokenizers ------------------------------------------------------------------------------

WIKI = (" = Valkyria Chronicles III = \n"
        " \n"
        " = = Gameplay = = \n"
        " \n"
        " The game 's 1 @,@ 000 @-@ strong cast sold 8 @.@ 5 million copies ( in Japan ) , Sega said . \n"
        " It was called \" the best <unk> \" ; the players ' [ squad ] won : yes ! \n"
        " = = = Plot = = = \n")
WIKI_PLAIN = (" = Valkyria Chronicles III =\n\n== Gameplay ==\n\nThe game's 1,000-strong cast sold 8.5 million copies "
              "(in Japan), Sega said.\nIt was called \"the best <unk>\"; the players' [squad] won: yes!\n"
              "=== Plot ===\n")
PTB = {" no it was n't black monday ": "no it wasn't black monday",
       " the N stock specialist firms could n't handle <unk> 's selling pressure ":
           "the N stock specialist firms couldn't handle <unk>'s selling pressure",
       " they 're here and we 've seen it i 'm sure he 'd say it 'll be N ":
           "they're here and we've seen it i'm sure he'd say it'll be N",
       " <unk> ": "<unk>"}


def test_wikitext_detokenizer_round_trips_on_an_article():
    assert wikitext_detokenize(WIKI) == WIKI_PLAIN
    assert wikitext_tokenize(WIKI_PLAIN) == WIKI


@pytest.mark.parametrize("line", WIKI.splitlines(keepends=True))
def test_wikitext_detokenizer_round_trips_line_by_line(line):
    assert wikitext_tokenize(wikitext_detokenize(line)) == line


def test_wikitext_detokenizer_is_lossy_where_lm_eval_is():
    """lm-eval's rules map two tokenized texts to one (N -> 1, an abbreviation's dot): no inverse can recover them."""
    assert wikitext_detokenize(" the N stock \n") == wikitext_detokenize(" the 1 stock \n") == " the 1 stock\n"
    assert wikitext_detokenize(" No. 5 \n") == wikitext_detokenize(" No . 5 \n") == " No. 5\n"


@pytest.mark.parametrize(("line", "plain"), PTB.items())
def test_ptb_detokenizer_round_trips(line, plain):
    assert ptb_detokenize(line) == plain
    assert ptb_tokenize(plain) == line


def round_trip_fraction(lines, detokenize, tokenize) -> float:
    return sum(tokenize(detokenize(line)) == line for line in lines) / len(lines)


@needs_data
@pytest.mark.parametrize(("path", "floor"), [("wikitext2/raw_test.jsonl", 0.86), ("wikitext103/test.jsonl", 0.86)])
def test_wikitext_round_trip_fraction_on_the_test_split(path, floor):
    """Measured: 2,500 / 2,891 non-blank lines (0.865) of WikiText-2 raw test, 2,513 / 2,891 (0.869) of
    WikiText-103 test; the rest hold abbreviations ('No. 5', 'U.S.') or quote pairs lm-eval's rules make lossy."""
    lines = [line for line in jsonl_texts(SHARED_DATA / path) if line]
    fraction = round_trip_fraction(lines, wikitext_detokenize, wikitext_tokenize)
    print(f"{path}: {fraction:.4f} of {len(lines)} lines round-trip")
    assert len(lines) == 2891 and fraction >= floor


@needs_data
def test_ptb_round_trip_is_exact_on_the_test_split():
    lines = jsonl_texts(SHARED_DATA / "ptb" / "test.jsonl")
    assert len(lines) == 3761 and round_trip_fraction(lines, ptb_detokenize, ptb_tokenize) == 1.0


@needs_data
@pytest.mark.parametrize(("folder", "file", "preprocess", "documents"),
                         [("ptb", "test.jsonl", ptb_documents, 38),
                          ("wikitext103", "test.jsonl", wikitext_articles, 62),
                          ("wikitext2", "raw_test.jsonl", wikitext_articles, 62)])
def test_documents_keep_every_line_and_the_dataset_token_count(folder, file, preprocess, documents):
    """The GPT-2 normalisation counts the dataset's own tokens, one <eos> per line: PTB test 82,430, WikiText
    test 245,569 (the counts the SOTA row uses)."""
    rows = [{"text": t} for t in jsonl_texts(SHARED_DATA / folder / file)]
    docs = preprocess(rows)
    assert len(docs) == documents
    assert sum(count_dataset_tokens(d["tokens"]) for d in docs) == (82430 if folder == "ptb" else 245569)
    if folder == "ptb":
        assert "".join(d["tokens"] for d in docs) == "".join(r["text"] + "\n" for r in rows)
        assert docs[0]["text"].startswith("no it wasn't black monday\nbut while the new york stock exchange didn't")
    else:
        assert "".join(d["tokens"] for d in docs) == "".join(r["text"] or " \n" for r in rows)
        assert all(d["text"] == wikitext_detokenize(d["tokens"]) for d in docs)


# ---- 2. strided rolling windows, by hand -----------------------------------------------------------------------

EOT = 0
TOKENS = tuple(range(11, 21))  # 10 tokens


def test_rolling_windows_with_stride_by_hand():
    windows = scoring.rolling_windows(TOKENS, EOT, max_length=4, stride=2)
    assert [(w.context, w.continuation) for w in windows] == [
        ((0,), (11, 12, 13, 14)), ((12, 13, 14), (15, 16)), ((14, 15, 16), (17, 18)), ((16, 17, 18), (19, 20))]
    rows = [scoring.model_input(w, 4) for w in windows]
    assert [(r.ids, r.targets) for r in rows] == [((0, 11, 12, 13), (11, 12, 13, 14)), ((12, 13, 14, 15), (15, 16)),
                                                  ((14, 15, 16, 17), (17, 18)), ((16, 17, 18, 19), (19, 20))]
    assert [t for w in windows for t in w.continuation] == list(TOKENS)  # every token predicted exactly once
    assert all(len(r.ids) == 4 and r.truncated == 0 for r in rows)  # the input filled to max_length


def test_rolling_windows_other_strides_by_hand():
    three = scoring.rolling_windows(TOKENS, EOT, 4, stride=3)
    assert [(w.context, w.continuation) for w in three] == [
        ((0,), (11, 12, 13, 14)), ((13, 14), (15, 16, 17)), ((16, 17), (18, 19, 20))]
    disjoint = [(w.context, w.continuation) for w in scoring.rolling_windows(TOKENS, EOT, 4)]
    assert disjoint == [((0,), (11, 12, 13, 14)), ((14,), (15, 16, 17, 18)), ((16, 17, 18), (19, 20))]  # lm-eval's
    assert scoring.rolling_windows(TOKENS, EOT, 4, stride=9) == scoring.rolling_windows(TOKENS, EOT, 4)  # clamped


# A bigram table over tokens 0 (end-of-text), 11..20: P(token | previous) = w / sum of w, w = 1 + (p^2 + 3 t) mod 7.
def bigram(previous: int, token: int) -> Fraction:
    def weight(t):
        return 1 + (previous * previous + 3 * t) % 7

    return Fraction(weight(token), sum(weight(t) for t in TOKENS))


# P(11 | eot), P(12 | 11), ..., P(20 | 19), read off the table by hand (e.g. P(11 | 0) = 6 / (6+2+5+1+4+7+3+6+2+5))
BY_HAND = (Fraction(6, 41), Fraction(1, 10), Fraction(2, 39), Fraction(1, 22), Fraction(4, 41), Fraction(1, 44),
           Fraction(7, 39), Fraction(1, 40), Fraction(1, 10), Fraction(2, 39))


def test_windowed_bigram_perplexity_equals_the_plain_one():
    """A bigram LM sees only the previous token, which every window holds: the windowed perplexity is the plain
    one, exactly (rationals, no rounding), whatever the stride."""
    assert [bigram(p, t) for p, t in zip((EOT, *TOKENS[:-1]), TOKENS)] == list(BY_HAND)
    plain = math.prod(BY_HAND)
    assert plain == Fraction(7, 4021847973000)
    for stride in (0, 1, 2, 3):
        windowed = Fraction(1)
        for w in scoring.rolling_windows(TOKENS, EOT, 4, stride):
            row = scoring.model_input(w, 4)
            start = len(row.ids) - len(row.targets)
            for position, target in enumerate(row.targets, start):
                windowed *= bigram(row.ids[position], target)
        assert windowed == plain
    assert (1 / plain) ** Fraction(1, 10) == pytest.approx(14.994526670267291, rel=1e-12)  # the perplexity


def test_a_window_caps_the_rolling_context_below_the_models_length(tiny_gpt2_dir):
    """window 32, stride 8 on the 128-position tiny GPT-2: the sum of log-probabilities over
    rolling_windows(.., 32, 8), each window one hand forward pass; window 0 or larger than the model is its length."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf, tok = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval(), AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = HFModel(hf, tok, "tiny")
    text = " ".join(f"word{i % 17} and more" for i in range(60))  # about 240 tokens: several windows of either size
    tokens = model.encode(text)
    hand = 0.0
    for w in scoring.rolling_windows(tokens, model.prefix_token, 32, 8):
        ids = list(w.context + w.continuation)[-33:]
        with torch.no_grad():
            logp = torch.log_softmax(hf(torch.tensor([ids[:-1]])).logits[0].double(), -1)
        start = len(ids) - 1 - len(w.continuation)
        hand += sum(float(logp[start + j, t]) for j, t in enumerate(w.continuation))
    got = model.loglikelihood_rolling([RollingRequest("w", text, 8, 32), RollingRequest("m", text, 8, 0),
                                       RollingRequest("big", text, 8, 4096)])
    assert got["w"].n_tokens == len(tokens) and got["w"].logprob == pytest.approx(hand, abs=1e-3)
    assert got["m"] == got["big"] and got["m"].logprob != pytest.approx(hand, abs=1e-3)

class PositionalBigram(BigramLM):
    """logits[b, t] = table[input_ids[b, t]] + bias[t]: the position in the window matters, so the windows do."""

    def __init__(self, max_length: int, seed: int = 0):
        super().__init__(max_length, seed)
        generator = torch.Generator().manual_seed(seed + 1)
        self.bias = torch.nn.Parameter(torch.randn(64, len(ALPHABET), generator=generator))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids] + self.bias[: input_ids.shape[1]])  # (B, T, V)


def hand_rolling(module, tokens, max_length, stride) -> float:
    total = 0.0
    for window in scoring.rolling_windows(tokens, EOT, max_length, stride):
        row = scoring.model_input(window, max_length)
        start = len(row.ids) - len(row.targets)
        for position, target in enumerate(row.targets, start):
            logits = (module.table[row.ids[position]] + module.bias[position]).double()
            total += float(torch.log_softmax(logits, -1)[target])
    return total


def test_rolling_loglikelihood_with_a_stride_end_to_end():
    text = "the quick brown fox."
    tokens = CharTokenizer().encode(text)
    bigram_model = HFModel(BigramLM(4), CharTokenizer(), "bigram", 4096)
    table = bigram_model.module.table.detach()
    for stride in (0, 1, 2, 3):
        result = bigram_model.loglikelihood_rolling([RollingRequest("d", text, stride)])["d"]
        assert result.n_tokens == len(text)
        assert result.logprob == pytest.approx(hand_sequence_logprob(table, 0, tokens), abs=1e-4)
    positional = HFModel(PositionalBigram(4), CharTokenizer(), "positional", 4096)
    got = {s: positional.loglikelihood_rolling([RollingRequest("d", text, s)])["d"].logprob for s in (0, 2)}
    with torch.no_grad():
        for stride in (0, 2):
            assert got[stride] == pytest.approx(hand_rolling(positional.module, tokens, 4, stride), abs=1e-4)
    assert abs(got[0] - got[2]) > 0.1  # the stride reaches the model


@needs_data
@pytest.mark.parametrize("name", ["ptb", "wikitext103", "wikitext2_gpt2"])
def test_perplexity_tasks_state_their_stride_and_normalise_per_dataset_token(name):
    task = load_task(TASKS_DIR / f"{name}.toml")
    assert task.prompt.stride == 512 and task.metrics[0] == "token_perplexity" and "word_perplexity" in task.metrics


# ---- 3. MultiRC and GPT-3 calibration by hand -----------------------------------------------------------------


def question(labels, yes_no):
    """A MultiRC question: each option's gold label and its (log p yes, log p no)."""
    choices = tuple(f"option {i}{j}" for i in range(len(labels)) for j in MULTIRC_JUDGEMENTS)
    credit = tuple(c for label in labels for c in ((1.0, 0.0) if label else (0.0, 1.0)))
    logprobs = tuple(x for pair in yes_no for x in pair)
    return ChoiceOutcome(choices=choices, gold=0 if labels[0] else 1, logprobs=logprobs, greedy=(False,) * len(choices),
                         n_tokens=(1,) * len(choices), credit=credit)


MULTIRC = [
    question([1, 0, 1], [(-1.0, -2.0), (-1.0, -3.0), (-4.0, -2.0)]),  # says yes, yes, no: TP 1, FP 1, FN 1
    question([0, 1], [(-3.0, -1.0), (-2.0, -2.0)]),  # no, yes (a tie says yes): TP 1, all right
    question([0], [(-1.0, -5.0)]),  # yes: FP 1
]


def test_multirc_em_f1a_acc_per_option_by_hand():
    values, em, _ = METRICS["em"].score(MULTIRC)
    assert values[:, 0].tolist() == [0.0, 1.0, 0.0] and em == pytest.approx(1 / 3)
    values, f1a, stderr = METRICS["f1a"].score(MULTIRC)
    assert values.tolist() == [[1, 1, 1], [1, 0, 0], [0, 1, 0]]  # (TP, FP, FN) per question, summed by columns
    assert f1a == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))  # 4/7 over all options, not the mean per question (0.5)
    assert math.isfinite(stderr) and stderr > 0  # a bootstrap over questions
    assert METRICS["f1a"].score([MULTIRC[2]])[1] == 0.0  # no true positive: 2*0 / (0 + 1 + 0)
    assert METRICS["f1a"].aggregate(values.sum(axis=0) * 0, 3) == 0.0  # no option at all: 0, not a division by 0
    values, per_option, _ = METRICS["acc_per_option"].score(MULTIRC)
    assert values.tolist() == [[1, 3], [2, 2], [0, 1]] and per_option == pytest.approx(3 / 6)


def test_multirc_rows_become_judgement_pairs_with_credit():
    row = {"idx": 7, "passage": {"text": "P.", "questions": [
        {"idx": 3, "question": "Q?", "answers": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}]}}
    [example] = multirc([row])
    assert example["judgements"] == ["a\nIs the answer correct? yes", "a\nIs the answer correct? no",
                                     "b\nIs the answer correct? yes", "b\nIs the answer correct? no"]
    assert example["credit"] == [1, 0, 0, 1] and example["gold"] == 0 and example["labels"] == [1, 0]


def test_multirc_metrics_reject_choices_that_are_not_pairs():
    odd = ChoiceOutcome(choices=("a", "b", "c"), gold=0, logprobs=(-1.0, -2.0, -3.0), greedy=(False,) * 3,
                        n_tokens=(1,) * 3, credit=(1.0, 0.0, 0.0))
    with pytest.raises(HarnessError, match="read the choices as \\(yes, no\\) pairs"):
        METRICS["em"].per_example(odd)


def test_acc_gpt3_calibrated_by_hand():
    o = ChoiceOutcome(choices=("x", "y"), gold=1, logprobs=(-2.0, -3.0), greedy=(False, False), n_tokens=(1, 1),
                      unconditional=(-1.5, -2.0), answer_context=(-1.0, -4.0))
    assert METRICS["acc"].per_example(o) == (0.0,)
    assert METRICS["acc_calibrated"].per_example(o) == (0.0,)  # -0.5 > -1.0: choice 0
    assert METRICS["acc_gpt3_calibrated"].per_example(o) == (1.0,)  # -1.0 < +1.0: choice 1
    calibrated = METRICS["acc_gpt3_calibrated"]
    assert calibrated.needs_answer_context and not calibrated.needs_unconditional


def test_choice_exact_match_accepts_any_credited_answer():
    def webqs(greedy, credit=(1.0, 1.0)):
        return ChoiceOutcome(choices=("a", "b"), gold=0, logprobs=(-1.0, -1.0), greedy=greedy, n_tokens=(1, 1),
                             credit=credit)

    assert METRICS["exact_match"].per_example(webqs((False, True))) == (1.0,)
    assert METRICS["exact_match"].per_example(webqs((False, False))) == (0.0,)
    assert METRICS["exact_match"].per_example(webqs((False, True), credit=())) == (0.0,)  # gold 0 only


# ---- 4. bad rows in the new formats: one line naming file:line and the field ---------------------------------

RACE_OK = {"example_id": "m1.txt", "article": "A text.", "question": "Why?", "options": ["a", "b", "c", "d"],
           "answer": "B"}
WSC273_OK = {"text": "The cat chased the dog because it was hungry.", "pronoun": "it", "pronoun_loc": 31,
             "options": ["The cat", "the dog"], "label": 0}
MULTIRC_OK = {"idx": 0, "passage": {"text": "P.", "questions": [
    {"idx": 0, "question": "Q?", "answers": [{"text": "a", "idx": 0, "label": 1}]}]}}


GOOD = {"race_middle": RACE_OK, "wsc273": WSC273_OK, "multirc": MULTIRC_OK}


def bad_data(root, task, folder, file, bad):
    """<root>/data/<folder>/<file>: a good row, a blank line, a good row, the bad row (line 4)."""
    good = GOOD[task]
    path = write_jsonl(root / "data" / folder / file, [good, good, bad])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "\n" + "".join(lines[1:]))
    return root / "data"


BAD = [
    ("race_middle", "race", "test_middle.jsonl", RACE_OK | {"answer": "E"},
     "test_middle.jsonl:4: answer: 'E' is none of A, B, C, D: the option list has no gold"),
    ("multirc", "superglue_multirc", "validation.jsonl",
     {"idx": 2, "passage": {"text": "P.", "questions": [MULTIRC_OK["passage"]["questions"][0],
                                                       {"idx": 9, "question": "Q2?", "answers": []}]}},
     "validation.jsonl:4: passage.questions[1].answers: question 9 has no answer options"),
    ("wsc273", "wsc273", "wsc273.jsonl", WSC273_OK | {"pronoun_loc": 30},
     "wsc273.jsonl:4: pronoun_loc: the pronoun 'it' is not at character 30 of text"),
]


@pytest.mark.parametrize(("task", "folder", "file", "bad", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_rows_name_file_line_and_field(tmp_path, task, folder, file, bad, message):
    data = bad_data(tmp_path, task, folder, file, bad)
    spec = load_task(TASKS_DIR / f"{task}.toml")
    assert load_task_data(spec, bad_data(tmp_path / "good", task, folder, file, GOOD[task])).eval.examples
    with pytest.raises(HarnessError) as error:
        load_task_data(spec, data)
    text = str(error.value)
    assert message in text and "\n" not in text and str(data / folder / file) in text


@pytest.mark.parametrize(("task", "folder", "file", "bad", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_rows_stop_the_cli_before_any_model_work(tmp_path, tiny_gpt2_dir, capsys, monkeypatch, task, folder,
                                                     file, bad, message):
    import harness.pipeline

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(harness.pipeline, "load_model", no_model)
    data = bad_data(tmp_path, task, folder, file, bad)
    code = main(["run", "--model", str(tiny_gpt2_dir), "--tasks", task, "--settings", "zs", "--data-dir", str(data),
                 "--output-dir", str(tmp_path / "results"), "--run-name", "r"])
    assert_clean_failure(code, capsys, {"root": tmp_path}, message)


# ---- 5. every new task renders its first example from the real data, as lm-eval 0.4.13 does ------------------


def first(name):
    task = load_task(TASKS_DIR / f"{name}.toml")
    data = load_task_data(task, SHARED_DATA)
    example = data.eval.examples[0]
    rendered = render(task, example)
    prompt = build_prompt(task, example, Setting.ZS, 0, 0, data.demos.examples)
    return task, data, rendered, prompt, alternatives(task, rendered)


@needs_data
@pytest.mark.parametrize("name", NEW_TASKS)
def test_every_new_task_validates_and_renders_its_first_example(name):
    _, data, rendered, prompt, pairs = first(name)
    assert data.eval.examples and (prompt.text or pairs)
    if name in ("ptb", "wikitext103", "wikitext2_gpt2"):
        assert prompt.text == rendered.query and rendered.units and not pairs
    print(f"--- {name}\n{prompt.text[-400:]!r}\n{pairs[:4]!r}")


def raw_rows(path):
    return [json.loads(line) for line in (SHARED_DATA / path).read_text(encoding="utf-8").splitlines() if line.strip()]


@needs_data
def test_race_middle_first_prompt_is_lm_evals():
    """lm-eval's race doc_to_text: the article, its earlier questions with their answers, the last question."""
    _, data, rendered, prompt, pairs = first("race_middle")
    article = raw_rows("race/test_middle.jsonl")[0]["article"]
    assert prompt.text == ("Article: " + article + "\n\n"
                           "Question: In which country is the prom called a \"formal\"?\nAnswer: Canada.\n"
                           "Question: Why is the prom important in the students' lives?\n"
                           "Answer: It's the sign of becoming an adult.\n"
                           "What is the passage mainly about?")
    assert pairs == [("", " The history of the prom."), ("", " The traditions of the prom."),
                     ("", " The development of the prom."), ("", " The general information of the prom.")]
    assert rendered.gold == 3 and len(data.eval.examples) == 362 and len(data.demos.examples) == 368


@needs_data
def test_multirc_first_prompt_is_lm_evals():
    _, data, rendered, prompt, pairs = first("multirc")
    paragraph = raw_rows("superglue_multirc/validation.jsonl")[0]["passage"]["text"]
    assert prompt.text == (paragraph + "\nQuestion: Would the mass of a baseball affect how much force you have to "
                           "use to pick it up?\nAnswer:")
    options = ("No", "Yes", "Less the mass, less the force applied", "It depends on the shape of the baseball")
    assert pairs == [("", f" {o}\nIs the answer correct? {yn}") for o in options for yn in ("yes", "no")]
    assert rendered.credit == (0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0) and len(data.eval.examples) == 953


@needs_data
def test_wsc273_first_example_is_lm_evals_partial_scoring():
    """lm-eval's wsc273: each option (normalised: 'The' lowercased mid-sentence) replaces the pronoun; the text
    after it is scored after the target delimiter, so the continuation starts with two spaces."""
    _, data, rendered, prompt, pairs = first("wsc273")
    start = "The city councilmen refused the demonstrators a permit because "
    assert prompt.text == "" and pairs == [(start + "the city councilmen", "  feared violence."),
                                           (start + "the demonstrators", "  feared violence.")]
    assert rendered.gold == 0 and len(data.eval.examples) == 273


@needs_data
def test_webqs_first_example_is_lm_evals():
    _, data, rendered, prompt, pairs = first("webqs")
    assert prompt.text == "Question: what does jamaican people speak?\nAnswer:"
    assert pairs == [("", " Jamaican Creole English Language"), ("", " Jamaican English")]
    assert rendered.credit == (1.0, 1.0) and len(data.eval.examples) == 2032


@needs_data
def test_wsc_wic_anli_first_prompts_are_lm_evals():
    assert first("wsc")[3].text == (
        "Passage: Bernard, who had not told the government official that he was less than 21 when he filed for a "
        "homestead claim, did not consider that he had done anything dishonest. Still, anyone who knew that he was "
        "19 years old could take his claim away from *him*.\nQuestion: In the passage above, does the pronoun "
        "\"*him*\" refer to \"*anyone*\"?\nAnswer:")
    assert first("wic")[3].text == ("Sentence 1: Room and board .\nSentence 2: He nailed boards across the windows .\n"
                                    "Question: Is the word 'board' used in the same way in the two sentences above?\n"
                                    "Answer:")
    _, _, rendered, prompt, pairs = first("anli_r1")
    assert prompt.text.endswith("\nQuestion: The first Ernest Jones store was opened on the continent of Europe. "
                                "True, False, or Neither?\nAnswer:")
    assert prompt.text.startswith("Ernest Jones is a British jeweller and watchmaker.")
    assert pairs == [("", " True"), ("", " Neither"), ("", " False")] and rendered.gold == 0


# ---- 6. the paper suites end to end, and the Table 3 view ----------------------------------------------------

TABLE3_HEADER = ("| model | LAMBADA (PPL) | LAMBADA (ACC) | CBT-CN (ACC) | CBT-NE (ACC) | WikiText2 (PPL) | PTB (PPL) "
                 "| enwik8 (BPB) | text8 (BPC) | WikiText103 (PPL) | 1BW (PPL) |")
PUBLISHED_ROWS = [
    "| published: SOTA (2019) | 99.80 | 59.23 | 85.70 | 82.30 | 39.14 | 46.54 | 0.99 | 1.08 | 18.30 | 21.80 |",
    "| published: GPT-2 117M | 35.13 | 45.99 | 87.65 | 83.40 | 29.41 | 65.85 | 1.16 | 1.17 | 37.50 | 75.20 |",
    "| published: GPT-2 345M | 15.60 | 55.48 | 92.35 | 87.10 | 22.76 | 47.33 | 1.01 | 1.06 | 26.37 | 55.72 |",
    "| published: GPT-2 762M | 10.87 | 60.12 | 93.45 | 88.00 | 19.93 | 40.31 | 0.97 | 1.02 | 22.05 | 44.58 |",
    "| published: GPT-2 1542M | 8.63 | 63.24 | 93.30 | 89.05 | 18.34 | 35.76 | 0.93 | 0.98 | 17.48 | 42.16 |",
]
MISSING = "n/a (no data: not obtainable here, shared/data/README.md)"


@pytest.fixture(scope="module")
def newline_gpt2(tmp_path_factory, gpt2_tokenizer):
    """A random 2-layer GPT-2 with GPT-2's 1,024 positions (room for 256 new tokens, and the perplexity tasks'
    stride of 512 overlaps its windows) whose greedy next token is always '\\n' (id 198): every generation task
    stops after one token, so both suites run in seconds."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=1024, vocab_size=len(gpt2_tokenizer))
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        direction = torch.nn.functional.normalize(torch.randn(32), dim=0)
        model.transformer.wte.weight[198] = 3 * direction  # tied with the head: logit(198) = 9 + small
        model.transformer.ln_f.bias.copy_(3 * direction)
    folder = tmp_path_factory.mktemp("newline_gpt2")
    model.save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    return folder


def run_suite(root, model_dir, suite):
    code = main(["run", "--model", str(model_dir), "--tasks", suite, "--settings", "zs", "--limit", "3",
                 "--batch-tokens", "8192", "--data-dir", str(SHARED_DATA), "--output-dir", str(root),
                 "--run-name", "s"])
    assert code == 0
    scores = pd.read_csv(root / "s" / "scores.csv")
    assert set(scores.task) == set(load_suite(suite_files()[suite]).tasks)
    assert (scores.n == 3).all() and scores.value.notna().all() and (scores.setting == "ZS").all()
    return scores, (root / "s" / "report.md").read_text()


@needs_data
@needs_published
def test_gpt2_paper_suite_end_to_end_with_table3(tmp_path, newline_gpt2, capsys):
    scores, report = run_suite(tmp_path, newline_gpt2, "gpt2-paper")
    lines = report.splitlines()
    start = lines.index("## GPT-2 Table 3 (zero-shot language modelling)")
    table = lines[start:start + 12]
    assert TABLE3_HEADER in table
    ours = next(line for line in table if line.startswith("| ours: "))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[0] == f"ours: {newline_gpt2}" and [cells[i] for i in (3, 4, 7, 8, 10)] == [MISSING] * 5
    assert all(cells[i].endswith("(n=3)") for i in (1, 2, 5, 6, 9))
    ptb = scores[(scores.task == "ptb") & (scores.metric == "token_perplexity")].value.iloc[0]
    assert cells[6] == f"{ptb:.2f} (n=3)"
    assert all(row in table for row in PUBLISHED_ROWS)  # none marked "(= our model)": ours is no GPT-2 checkpoint


@needs_data
@needs_published
def test_gpt3_small_suite_end_to_end_with_table_h1(tmp_path, newline_gpt2):
    _, report = run_suite(tmp_path, newline_gpt2, "gpt3-small")
    lines = report.splitlines()
    start = lines.index("## GPT-3 plausibility bands (Table H.1)")
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in lines[start:]
            if line.startswith("| ")}
    expected = {("anli_r1", "acc"): "0.334 | 0.342", ("anli_r2", "acc"): "0.332 | 0.319",
                ("anli_r3", "acc"): "0.336 | 0.340", ("race_middle", "acc_gpt3_calibrated"): "0.421 | 0.472",
                ("multirc", "em"): "0.047 | 0.097", ("multirc", "f1a"): "0.570 | 0.597",
                ("storycloze_2016", "acc_norm"): "0.633 | 0.685",
                ("openbookqa", "acc_gpt3_calibrated"): "0.356 | 0.432",
                ("wic", "acc"): "0.000 | 0.000", ("wsc", "acc"): "0.596 | 0.567", ("wsc273", "acc"): "0.663 | 0.729",
                ("webqs", "exact_match"): "0.018 | 0.032", ("wmt16-ro-en", "bleu"): "2.390 | 3.080",
                ("wmt16-en-ro", "bleu"): "2.610 | 3.110"}
    for key, published in expected.items():  # ZS: ours | ZS: GPT-3 Small | ZS: GPT-3 Medium
        assert key in rows, key
        assert f" | {published} | " in rows[key], rows[key]


@needs_published
def test_released_gpt2_models_match_their_table3_rows():
    table = gpt2.load_table3(PUBLISHED)
    assert gpt2.published_row("gpt2", table) == "GPT-2 117M"
    assert gpt2.published_row("openai-community/gpt2", table) == "GPT-2 117M"
    assert gpt2.published_row("reference:gpt2", table) == "GPT-2 117M"
    assert gpt2.published_row("gpt2-medium", table) == "GPT-2 345M"
    assert gpt2.published_row("gpt2-large", table) == "GPT-2 762M"
    assert gpt2.published_row("openai-community/gpt2-xl", table) == "GPT-2 1542M"
    assert gpt2.published_row("smollm2-135m", table) is None
    assert gpt2.published_row("/models/gpt2", table) is None  # a folder is not the released checkpoint


@needs_published
def test_table3_grid_marks_the_row_of_a_gpt2_run():
    cells = pd.DataFrame([{"model": "gpt2", "task": task, "metric": metric, "setting": "ZS", "value": value, "n": 5,
                           "note": ""} for task, metric, value in [("lambada_openai", "perplexity", 40.5),
                                                                   ("lambada_gpt2", "exact_match", 0.4),
                                                                   ("ptb", "token_perplexity", 70.125)]])
    grid = gpt2.table3_grid(cells, gpt2.load_table3(PUBLISHED))
    assert grid.labels == tuple(c.strip() for c in TABLE3_HEADER.strip("|").split("|"))
    assert grid.rows[0] == ("ours: gpt2", "40.50 (n=5)", "40.00 (n=5)", MISSING, MISSING,
                            "n/a (not run: wikitext2_gpt2 token_perplexity ZS)", "70.12 (n=5)", MISSING, MISSING,
                            "n/a (not run: wikitext103 token_perplexity ZS)", MISSING)
    assert [row[0] for row in grid.rows[1:]] == ["published: SOTA (2019)", "published: GPT-2 117M (= our model)",
                                                  "published: GPT-2 345M", "published: GPT-2 762M",
                                                  "published: GPT-2 1542M"]
    assert gpt2.table3_grid(cells.assign(task="piqa"), ()) is None  # no Table 3 task: no view
