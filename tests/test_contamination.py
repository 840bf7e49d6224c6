"""`harness overlap` (harness/contamination/): planted piqa examples found at N = 13 and nothing else, case and
punctuation ignored, a 12-word near miss clean; a BIG-bench task's own file marks it dirty and other tasks only
where a plain-Python reference finds a shared 13-gram; the same bytes for any worker count, shard or chunk size;
N-grams across chunk and shard boundaries found, none across two .jsonl documents; the numpy word splitter equal
to normalize.words; Table C.1's N per task; one-line errors for bad corpora."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.contamination.corpus import resolve_corpus
from harness.contamination.examples import load_table_c1, model_text
from harness.contamination.index import build_index
from harness.contamination.normalize import words
from harness.contamination.scan import ScanSettings, scan
from harness.contamination.tokens import lowered, spans
from tests.conftest import SHARED_DATA

CORPORA = SHARED_DATA / "text_corpus"
PIQA = SHARED_DATA / "piqa" / "validation.jsonl"
BIGBENCH = SHARED_DATA / "bigbench" / "tasks"
needs_data = pytest.mark.skipif(not (CORPORA / "tinyshakespeare.txt").is_file() or not PIQA.is_file(),
                                reason="no shared data (text_corpus, piqa)")
_WORD = re.compile(r"\w+")


# ---- a plain-Python reference: sets of word tuples, no hashing --------------------------------------------


def ref_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ref_dirty(corpus_text: str, texts: dict[str, str], n: int) -> set[str]:
    """Ids whose text shares an n-gram with the corpus (a text shorter than n: occurs whole)."""
    corpus = ref_words(corpus_text)
    grams = {tuple(corpus[i : i + n]) for i in range(len(corpus) - n + 1)}
    joined = f" {' '.join(corpus)} "
    dirty = set()
    for key, text in texts.items():
        w = ref_words(text)
        if len(w) >= n and any(tuple(w[i : i + n]) in grams for i in range(len(w) - n + 1)):
            dirty.add(key)
        elif 0 < len(w) < n and f" {' '.join(w)} " in joined:
            dirty.add(key)
    return dirty


def read_csv(out: Path) -> list[dict]:
    with open(out / "overlap.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def overlap(corpus, out: Path, *extra: str, tasks: str = "piqa") -> list[dict]:
    code = main(["overlap", "--corpus", *map(str, corpus if isinstance(corpus, list) else [corpus]), "--tasks",
                 tasks, "--out", str(out), "--data-dir", str(SHARED_DATA), *extra])
    assert code == 0
    return read_csv(out)


# ---- piqa planted into tinyshakespeare ---------------------------------------------------------------------


def piqa_texts() -> dict[str, str]:
    """validation-<i> -> the text the model reads, built here from the raw rows (not by the harness)."""
    rows = [json.loads(line) for line in PIQA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {f"validation-{i}": f"Question: {r['goal']}\nAnswer: {r['sol1' if int(r['label']) == 0 else 'sol2']}"
            for i, r in enumerate(rows)}


def pick_plants(texts: dict[str, str], count: int) -> list[str]:
    """`count` examples whose gold answer has 13+ words and whose 13-grams no other example has, spread out."""
    owners: dict[tuple, set[str]] = {}
    for key, text in texts.items():
        w = ref_words(text)
        for i in range(len(w) - 12):
            owners.setdefault(tuple(w[i : i + 13]), set()).add(key)
    picked = []
    for key, text in list(texts.items())[::7]:
        gold = text.split("\nAnswer: ", 1)[1]
        w = ref_words(text)
        if len(ref_words(gold)) >= 13 and all(owners[tuple(w[i : i + 13])] == {key} for i in range(len(w) - 12)):
            picked.append(key)
    assert len(picked) >= count
    return picked[: count]


def plant(base: str, plants: list[str], path: Path) -> dict[int, int]:
    """`base` with each planted text on its own lines at evenly spread line starts; planted index -> byte offset."""
    lines = base.splitlines(keepends=True)
    every = len(lines) // (len(plants) + 1)
    out, where, size = [], {}, 0
    for i, line in enumerate(lines):
        if i and i % every == 0 and i // every <= len(plants):
            where[i // every - 1] = size
            text = plants[i // every - 1] + "\n"
            out.append(text)
            size += len(text.encode("utf-8"))
        out.append(line)
        size += len(line.encode("utf-8"))
    path.write_text("".join(out), encoding="utf-8")
    return where


def repunctuate(text: str, seed: int) -> str:
    rnd = random.Random(seed)
    return re.sub(r"\W+", lambda m: rnd.choice([" ", ", ", "! ", " (", "\n", " -- ", "... "]), text.lower())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    texts = piqa_texts()
    keys = pick_plants(texts, 11)
    plants, near = keys[:10], keys[10]
    base = (CORPORA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    folder = tmp_path_factory.mktemp("planted")
    where = plant(base, [texts[k] for k in plants], folder / "exact.txt")
    plant(base, [repunctuate(texts[k], i) for i, k in enumerate(plants)], folder / "repunctuated.txt")
    w = ref_words(texts[near])  # the near miss: runs of 12 of its words, each followed by a word it lacks
    plant(base, [" ".join(w[i : i + 12]) + " zyxwvut" for i in range(0, len(w), 12)], folder / "near.txt")
    return {"texts": texts, "plants": plants, "near": near, "where": where, "folder": folder, "base": base}


@needs_data
def test_harness_reads_the_text_the_reference_builds(planted):
    from harness.tasks.catalog import resolve_task
    from harness.tasks.data import load_split

    task = resolve_task("piqa", data_dir=SHARED_DATA)
    examples = {ex.id: ex for ex in load_split(task, "validation", SHARED_DATA).examples}
    for key in [*planted["plants"], planted["near"]]:
        assert model_text(task, examples[key]) == planted["texts"][key]


@needs_data
def test_planted_piqa_examples_are_dirty_and_no_other(planted, tmp_path):
    corpus = planted["folder"] / "exact.txt"
    got = overlap(corpus, tmp_path / "out", "--ngram", "13")
    assert len(got) == len(planted["texts"])  # the whole validation split
    dirty = {r["example_id"]: r for r in got if r["dirty"] == "1"}
    assert set(dirty) == set(planted["plants"])
    assert ref_dirty(corpus.read_text(encoding="utf-8"), planted["texts"], 13) == set(planted["plants"])
    data = corpus.read_bytes()
    for i, key in enumerate(planted["plants"]):
        row = dirty[key]
        assert row["ngram"] == "13" and row["source"] == str(corpus)
        assert int(row["offset"]) == planted["where"][i]  # the byte offset of its first word, "Question"
        assert row["gram"].split() == ref_words(planted["texts"][key])[:13]
        assert data[int(row["offset"]) :].lower().startswith(b"question")
    assert all(r["gram"] == r["source"] == r["offset"] == "" for r in got if r["dirty"] == "0")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| piqa | 13 | --ngram | 1838 | 10 | 1828 |" in summary and "300B tokens" in summary


@needs_data
def test_case_and_punctuation_do_not_hide_a_planted_example(planted, tmp_path):
    got = overlap(planted["folder"] / "repunctuated.txt", tmp_path / "out", "--ngram", "13")
    assert {r["example_id"] for r in got if r["dirty"] == "1"} == set(planted["plants"])


@needs_data
def test_a_12_word_near_miss_is_clean(planted, tmp_path):
    got = overlap(planted["folder"] / "near.txt", tmp_path / "out", "--ngram", "13")
    assert not [r["example_id"] for r in got if r["dirty"] == "1"]
    got = overlap(planted["folder"] / "near.txt", tmp_path / "out12", "--ngram", "12")  # the control: at N = 12
    assert planted["near"] in {r["example_id"] for r in got if r["dirty"] == "1"}


# ---- a BIG-bench task's own file as the corpus -------------------------------------------------------------

BB_MAIN = "logical_deduction__three_objects"
BB_OTHERS = ("logical_deduction__five_objects", "tracking_shuffled_objects__three_objects", "causal_judgment")


@pytest.mark.skipif(not (BIGBENCH / f"{BB_MAIN}.jsonl").is_file(), reason="no shared BIG-bench data")
def test_a_bigbench_task_file_marks_that_task_and_true_overlaps_only(tmp_path):
    from harness.contamination.examples import TableC1, task_texts

    corpus = tmp_path / "corpus.txt"
    shutil.copy(BIGBENCH / f"{BB_MAIN}.jsonl", corpus)  # the JSON lines, read as plain text
    names = ["bigbench_" + n for n in (BB_MAIN, *BB_OTHERS)]
    got = overlap(corpus, tmp_path / "out", tasks=",".join(names))
    texts = {t.task: dict(zip(t.ids, t.texts, strict=True))
             for t in task_texts(names, None, None, TableC1({}, None), SHARED_DATA)}
    dirty = {name: {r["example_id"] for r in got if r["task"] == name and r["dirty"] == "1"} for name in names}
    assert dirty[names[0]] == set(texts[names[0]])  # every example of the task
    expected = {name: ref_dirty(corpus.read_text(encoding="utf-8"), texts[name], 13) for name in names[1:]}
    assert {name: dirty[name] for name in names[1:]} == expected
    assert 0 < len(expected[names[1]]) < len(texts[names[1]])  # five objects: some share a 13-gram, not all
    assert not expected[names[2]] and not expected[names[3]]


# ---- the same bytes for any worker count; chunk, shard and document boundaries ------------------------------


@needs_data
def test_worker_count_does_not_change_a_byte(planted, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(planted["folder"] / "exact.txt", folder / "a.txt")
    rows = [{"text": planted["texts"][k].upper()} for k in planted["plants"][:3]]
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [{"text": "x " * 50}, *rows]))
    one = overlap(folder, tmp_path / "w1", "--workers", "1", "--ngram", "13")
    two = overlap(folder, tmp_path / "w2", "--workers", "2", "--ngram", "13")
    assert (tmp_path / "w1" / "overlap.csv").read_bytes() == (tmp_path / "w2" / "overlap.csv").read_bytes()
    assert one == two and {r["example_id"] for r in one if r["dirty"] == "1"} == set(planted["plants"])
    assert {r["source"] for r in one if r["dirty"] == "1"} == {str(folder / "a.txt")}  # the earlier file wins


def _hits(index, files, **settings):
    result = scan(index, files, ScanSettings(**settings))
    return result.hits, result.words


@needs_data
def test_tiny_chunks_and_shards_find_the_same_hits(planted, tmp_path):
    texts = list(planted["texts"].values())
    index = build_index([words(t) for t in texts], [13] * len(texts))
    plant(planted["base"][:100_000], [repunctuate(planted["texts"][k], 7) for k in planted["plants"]],
          tmp_path / "small.txt")
    files = resolve_corpus([tmp_path / "small.txt"])
    default = _hits(index, files)
    assert len(default[0]) == 10
    assert _hits(index, files, chunk_bytes=64, shard_bytes=50_000) == default  # every 13-gram crosses a chunk
    assert _hits(index, files, shard_bytes=4096) == default


def test_ngrams_across_chunks_count_and_across_documents_do_not(tmp_path):
    gram = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu"  # 13 words
    index = build_index([words(gram)], [13])
    first, second = gram.split()[:6], gram.split()[6:]
    (tmp_path / "one.txt").write_text("filler " * 40 + gram + " filler" * 40)
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": " ".join(first)}) + "\n"
                                         + json.dumps({"text": " ".join(second)}) + "\n")
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": "filler " * 40 + gram}) + "\n")
    for name, found in (("one.txt", True), ("docs.jsonl", False), ("long.jsonl", True)):
        files = resolve_corpus([tmp_path / name])
        for chunk_bytes in (7, 16, 1 << 20):
            hits, _ = _hits(index, files, chunk_bytes=chunk_bytes)
            assert bool(hits) is found, (name, chunk_bytes)
            if found and name == "one.txt":
                assert hits[0].offset == len("filler " * 40) and hits[0].gram == gram
            if found and name == "long.jsonl":
                assert hits[0].offset == 0  # a .jsonl hit is where its line starts


def test_shard_boundaries_inside_an_ngram(tmp_path):
    gram = "one two three four five six seven eight nine ten eleven twelve thirteen"
    lines = [f"line {i} filler words here" for i in range(400)]
    lines[200] = " ".join(gram.split()[:5])  # the N-gram runs over three lines
    lines[201] = " ".join(gram.split()[5:9])
    lines[202] = " ".join(gram.split()[9:])
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    index = build_index([words(gram), words("line 7 filler words here line 8")], [13, 13])
    files = resolve_corpus([tmp_path / "c.txt"])
    expected = _hits(index, files)
    assert set(expected[0]) == {0, 1}
    for shard_bytes in (13, 64, 100, 333, 1000):
        assert _hits(index, files, shard_bytes=shard_bytes, chunk_bytes=32) == expected, shard_bytes


# ---- words: the numpy splitter, the FT check ---------------------------------------------------------------


def test_numpy_words_equal_normalize_words():
    rnd = random.Random(0)
    alphabet = "aZ_09 .,'-\n\tΣσςΑΒİıßẞéÉ\u0301\u0307—中文😀ǅǄKΩ\u00a0\u2028x\U0001d400\u0660’"
    samples = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))) for _ in range(3000)]
    samples += ["Don't STOP!", "ΟΔΟΣ.Β", "İstanbul", "naïve café—bar", ""]
    if (CORPORA / "war_and_peace.txt").is_file():
        samples.append((CORPORA / "war_and_peace.txt").read_text(encoding="utf-8")[:200_000])
    for text in samples:
        low = lowered(text)
        starts, ends = spans(low)
        assert [low[a:b].decode() for a, b in zip(starts, ends, strict=True)] == list(words(text)), repr(text[:80])


def test_the_ft_overlap_check_uses_the_same_words():
    from harness.train import overlap as ft

    assert ft.words is words and ft.N == 13 and ft.ngrams is not None
    assert words("Don't—STOP, 2 cats!") == ("don", "t", "stop", "2", "cats")


# ---- N per task, short examples, perplexity documents ---------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA.parent / "published" / "gpt3_table_c1.csv").is_file(),
                    reason="no shared/published")
def test_table_c1_gives_n_per_task():
    table = load_table_c1(SHARED_DATA.parent / "published")
    assert table.n["piqa"] == (8, "PIQA") and table.n["wsc273"] == (9, "Winograd")
    assert table.n["copa"] == (9, "COPA") and table.n["nq_open"] == (11, "NQs")
    assert table.n["triviaqa"] == (10, "TriviaQA") and table.n["reversed_words"] == (2, "Reversed Words")
    assert "bigbench_causal_judgment" not in table.n


def test_short_examples_match_whole_and_documents_are_read(task_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_PUBLISHED_DIR", str(tmp_path))  # a folder without gpt3_table_c1.csv
    corpus = tmp_path / "c.txt"
    corpus.write_text("Some text. QUESTION: goal number 3? Answer -- second answer 3!\n"
                      "question goal number 4 answer second\n" + "word " * 13 + "\nanother document\n")
    code = main(["overlap", "--corpus", str(corpus), "--tasks", "toy_mc,toy_docs", "--out", str(tmp_path / "o"),
                 "--data-dir", str(task_env["data"]), "--tasks-dir", str(task_env["tasks"])])
    assert code == 0
    rows = {(r["task"], r["example_id"]): r for r in read_csv(tmp_path / "o")}
    assert {k for k, r in rows.items() if r["dirty"] == "1"} == {("toy_mc", "validation-3"), ("toy_docs", "test-0")}
    assert rows[("toy_mc", "validation-3")]["ngram"] == "8"  # shorter than 13 words: compared whole
    assert rows[("toy_docs", "test-0")]["gram"] == " ".join(["word"] * 13)
    summary = (tmp_path / "o" / "summary.md").read_text()
    assert "no gpt3_table_c1.csv" in summary and "| toy_mc | 13 | default (no Table C.1) | 12 | 1 | 11 |" in summary


# ---- bad corpora: one line naming the file -------------------------------------------------------------------


@pytest.mark.parametrize("name, content, message", [
    ("missing.txt", None, "missing.txt: no such file or folder"),
    ("empty.txt", b"", "empty.txt: empty file"),
    ("blank.jsonl", b"\n\n", "blank.jsonl: empty file"),
    ("latin1.txt", "caf\u00e9 ok".encode("latin-1") + b" more", "latin1.txt: not UTF-8 at byte 3"),
    ("late.txt", b"x" * 5000 + b" \xe2\x82", "late.txt: not UTF-8 at byte 5001"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "bad.jsonl:2: not JSON"),
    ("notext.jsonl", b'{"text": "a"}\n\n{"body": "b"}\n', 'notext.jsonl:3: no "text" field'),
    ("table.csv", b"a,b\n", "table.csv: not a .txt or .jsonl file"),
    ("folder", "folder", "folder: folder holds no .txt or .jsonl file"),
])
def test_bad_corpus_is_one_line_naming_the_file(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
        (path / "notes.md").write_text("hello")
    elif content is not None:
        path.write_bytes(content)
    code = main(["overlap", "--corpus", str(path), "--tasks", "piqa", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert str(tmp_path) in lines[0] and not (tmp_path / "out").exists()
