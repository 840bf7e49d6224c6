"""The `api` backend (harness/models/http_api.py), the worked example of a backend with options of its own,
driven through the CLI against a local OpenAI-style completions server whose model is the hand-computable
bigram fake of tests/fakes.py: the log-probabilities in samples.jsonl are the hand-computed ones."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.cli import main
from harness.models import scoring
from harness.records import GenerateRequest, RollingRequest
from tests.conftest import write_jsonl
from tests.fakes import ALPHABET, BigramLM, CharTokenizer, hand_logprob, hand_sequence_logprob

SEED = 3
EOT = "<|endoftext|>"  # the server reads it as token 0, the bigram's end-of-text
TABLE = BigramLM(seed=SEED).table.detach()
ROWS = [{"q": q, "a": a, "b": b, "label": label} for q, a, b, label in [
    ("is the sky blue?", "yes", "no", 0), ("can a fish fly?", "yes", "no", 1), ("is ice cold?", "yes it is", "no", 0)]]
TASK = """
kind = "multiple_choice"
metrics = ["acc", "acc_calibrated"]
[data]
local = "qa"
eval_split = "test"
[prompt]
query = "question: $q\\nanswer:"
choices = ["$a", "$b"]
answer = "$label"
"""


def tokens(text: str) -> list[tuple[str, int]]:
    """The server's tokens: EOT as one token, every other character as the CharTokenizer's."""
    out, i = [], 0
    while i < len(text):
        if text.startswith(EOT, i):
            out.append((EOT, 0))
            i += len(EOT)
        else:
            out.append((text[i], ALPHABET.index(text[i])))
            i += 1
    return out


def greedy(previous: int) -> int:
    return int(TABLE[previous].argmax())


def complete(index: int, prompt: str, body: dict) -> dict:
    """One choice of an OpenAI-style completions answer, from the bigram table in plain Python."""
    toks = tokens(prompt)
    if not body.get("echo"):  # greedy generation, cut at the stop strings as a server does
        ids, text = [t for _, t in toks], ""
        while len(text) < body["max_tokens"] and not any(s in text for s in body.get("stop", [])):
            ids.append(greedy(ids[-1]))
            text += ALPHABET[ids[-1]]
        return {"index": index, "text": text}
    offsets = [sum(len(t) for t, _ in toks[:i]) for i in range(len(toks))]
    logprobs, tops = [None], [None]
    for (_, previous), (_, token) in zip(toks, toks[1:]):
        logprobs.append(hand_logprob(TABLE, previous, token))
        tops.append({ALPHABET[greedy(previous)]: hand_logprob(TABLE, previous, greedy(previous))})
    return {"index": index, "text": prompt, "logprobs": {"tokens": [t for t, _ in toks], "token_logprobs": logprobs,
                                                          "top_logprobs": tops, "text_offset": offsets}}


class Completions(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if self.path != "/v1/completions" or body.get("model") != "bigram":
            self.send_error(404, "no such model")
            return
        answer = json.dumps({"choices": [complete(i, p, body) for i, p in enumerate(body["prompt"])]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    httpd.bodies = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/completions"


def run_cli(tmp_path, *options: str, cache: bool = False, name: str = "r") -> int:
    write_jsonl(tmp_path / "data" / "qa" / "test.jsonl", ROWS)
    (tmp_path / "qa.toml").write_text(TASK)
    return main(["run", "--model", "api:bigram", *options, "--tasks", str(tmp_path / "qa.toml"), "--data-dir",
                 str(tmp_path / "data"), "--settings", "zs", *([] if cache else ["--no-cache"]), "--output-dir",
                 str(tmp_path / "results"), "--run-name", name])


def by_hand(context: str, continuation: str) -> float:
    """log p(continuation | context) from the bigram table, split as the transformers backend splits it."""
    pair = scoring.encode_pair(CharTokenizer().encode, context, continuation, 0)
    return hand_sequence_logprob(TABLE, pair.context[-1], list(pair.continuation))


def test_the_api_backend_scores_through_the_cli_with_the_hand_computed_logprobs(server, tmp_path):
    code = run_cli(tmp_path, "--model-option", f"url={url(server)}", "--model-option", "timeout=5")
    assert code == 0
    samples = [json.loads(line) for line in (tmp_path / "results" / "r" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == len(ROWS)
    for sample, row in zip(samples, ROWS, strict=True):
        assert sample["prompt"] == f"question: {row['q']}\nanswer:"
        assert sample["logprobs"] == [by_hand(sample["prompt"], " " + row[c]) for c in "ab"]
        assert sample["unconditional_logprobs"] == [by_hand("", " " + row[c]) for c in "ab"]  # after EOT
    assert all(body["echo"] and body["max_tokens"] == 0 and body["logprobs"] == 1 for body in server.bodies)
    assert len(server.bodies) == 1  # every request in one POST: the backend's preferred chunk
    run_json = json.loads((tmp_path / "results" / "r" / "run.json").read_text())
    assert run_json["model"]["backend"] == "api" and run_json["config"]["model_options"][1] == "timeout=5"


def test_a_cached_rerun_asks_the_server_nothing(server, tmp_path):
    options = ("--model-option", f"url={url(server)}")
    assert run_cli(tmp_path, *options, cache=True, name="one") == 0
    asked = len(server.bodies)
    assert run_cli(tmp_path, *options, cache=True, name="two") == 0
    assert asked == 1 and len(server.bodies) == asked  # every result from the cache: no POST
    one, two = ((tmp_path / "results" / n / "samples.jsonl").read_text() for n in ("one", "two"))
    assert one == two


@pytest.mark.parametrize(("options", "message"), [
    (["--model-option", "nope=1"],
     "error: --model-option nope=1: the api backend has no option 'nope'; it accepts url="),
    (["--model-option", "url=http://127.0.0.1:9/v1/completions", "--model-option", "timeout=soon"],
     "error: --model-option timeout=soon: timeout takes a number, got 'soon'"),
    ([], "error: --model-option url=...: the api backend needs it; it accepts url="),
    (["--model-option", "url"], "error: --model-option url: expected KEY=VALUE"),
])
def test_a_bad_model_option_is_one_line_and_exit_code_2(tmp_path, capsys, options, message):
    assert run_cli(tmp_path, *options) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "results").exists()


def test_an_unreachable_or_refusing_server_is_one_line(server, tmp_path, capsys):
    from harness.models.registry import load_model

    model = load_model("api:other", model_options=(f"url={url(server)}",))  # the server knows only "bigram"
    with pytest.raises(Exception, match="refused the call: 404") as e:
        model.count_tokens("abc")
    assert "\n" not in str(e.value)
    server.shutdown()
    server.server_close()
    model = load_model("api:bigram", model_options=(f"url={url(server)}", "timeout=1"))
    with pytest.raises(Exception, match=r"no answer from http://127\.0\.0\.1:\d+/v1/completions within 1 s"):
        model.count_tokens("abc")


def test_rolling_generation_and_token_counts_by_hand(server):
    from harness.models.registry import load_model

    model = load_model("api:bigram", model_options=(f"url={url(server)}",))
    assert model.count_tokens("a cat.") == 6
    text = "the cat sat on the mat."
    rolled = model.loglikelihood_rolling([RollingRequest("d", text)])["d"]
    document = hand_sequence_logprob(TABLE, 0, CharTokenizer().encode(text))  # after EOT
    assert (rolled.logprob, rolled.n_tokens) == (document, len(text))
    previous, expected = ALPHABET.index("e"), ""
    for _ in range(5):
        previous = greedy(previous)
        expected += ALPHABET[previous]
    got = model.generate([GenerateRequest("g", "the", ("zzz",), 5)])["g"]
    assert got.text == expected
