"""De-tokenizers of the language-modelling datasets (the GPT-2 paper's "invertible de-tokenizers") and their
inverses, which the round-trip tests check: WikiText's (lm-evaluation-harness's rules), PTB's, and lm-eval's
general one (SuperGLUE WSC)."""

from __future__ import annotations

import re


def is_title(line: str) -> bool:
    line = line.replace("= = =", "===").replace("= =", "==").strip()
    return line.startswith("= ") and line.endswith(" =")


def wikitext_detokenize(text: str) -> str:
    """Undo wikitext's tokenization: ' @-@ ' -> '-', ' , ' -> ', ', bracket spacing, and so on."""
    text = text.replace("s '", "s'")
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    for before, after in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")):  # number separators
        text = text.replace(before, after)
    for mark in ":;.!?,":  # punctuation
        text = text.replace(f" {mark} ", f"{mark} ")
    text = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", text)
    text = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", text)
    text = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", text)
    text = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', text)
    text = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", text)
    for before, after in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \u00b0 ", "\u00b0"),
                          (" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")):
        text = text.replace(before, after)
    return text


def general_detokenize(text: str) -> str:
    """lm_eval.utils.general_detokenize."""
    text = text.replace(" n't", "n't").replace(" )", ")").replace("( ", "(").replace('" ', '"').replace(' "', '"')
    return re.sub(r" (['.,])", r"\1", text)


# PTB (Mikolov's): lowercased, numbers as N, rare words as <unk>, contractions split off (" n't", " 's"), no other
# punctuation. The de-tokenizer only rejoins the contractions and drops each line's outer spaces: <unk> and N stay
# as written (no word or digit stands for them without inventing text, and PTB's own 67 digit-bearing lines would
# make N -> 1 not invertible) and the text stays lowercased (case cannot be recovered). ptb_tokenize inverts it.
_PTB_SUFFIXES = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")


def ptb_detokenize(text: str) -> str:
    """One PTB line (' no it was n't black monday ') as plain text ('no it wasn't black monday')."""
    text = text.strip()
    for suffix in _PTB_SUFFIXES:
        text = text.replace(" " + suffix + " ", suffix + " ")
        text = text[: -len(suffix) - 1] + suffix if text.endswith(" " + suffix) else text
    return text


def ptb_tokenize(text: str) -> str:
    """PTB's tokenization of one de-tokenized line: the inverse of ptb_detokenize."""
    for suffix in _PTB_SUFFIXES:
        text = re.sub(rf"(?<=\S){re.escape(suffix)}(?=\s|$)", " " + suffix, text)
    return f" {text} "


def wikitext_tokenize(text: str) -> str:
    """WikiText's tokenization of text wikitext_detokenize wrote (one line, or an article of lines each ending in a
    newline), for the constructs it rejoins: ' @-@ ' (WikiText writes no other hyphen between two non-spaces),
    ' @,@ ' / ' @.@ ' between digits, punctuation before a space or a line end (not the last dot of '...'),
    brackets, quotes, headings, possessives; every line ' <line> \n', a blank one ' \n'. The inverse the
    round-trip tests check; lossy where wikitext_detokenize is (abbreviations such as 'No. 5', N -> 1, quote pairs
    across words other than possessives)."""
    text = re.sub(r"(?<=\S)-(?=\S)", " @-@ ", text)
    text = re.sub(r"(?<=\d)([,.])(?=\d)", lambda m: f" @{m.group(1)}@ ", text)
    for before, after in (("====", "= = = ="), ("===", "= = ="), ("==", "= ="), ("'s", " 's"), ("s' ", "s ' ")):
        text = text.replace(before, after)
    text = re.sub(r"([(\[{]) *", r"\1 ", text)
    text = re.sub(r" *([)\]}])", r" \1", text)
    text = re.sub(r'"([^"\n]*?)"', r'" \1 "', text)
    text = re.sub(r"(?<=\S)(?<!\.\.)([:;.!?,])(?=[ \n]|$)", r" \1", text)
    *lines, last = text.split("\n")  # the article's first line keeps its leading space (detokenize leaves it)
    return "".join(" " + line.removeprefix(" ") + " \n" if line else " \n" for line in lines) + last
