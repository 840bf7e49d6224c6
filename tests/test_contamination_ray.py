"""`harness overlap --executor ray` on a real one-machine cluster (2 CPUs): the corpus shards run as Ray tasks and
overlap.csv and study.json are the same bytes as a local run's with 1 and with 2 processes (the planted piqa
examples found, plus whatever tinyshakespeare shares with piqa at Table C.1's N = 8); --ray-address without
--executor ray is one line."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.cli import main
from tests.conftest import SHARED_DATA
from tests.test_contamination import CORPORA, PIQA, pick_plants, piqa_texts, plant, read_csv


@pytest.fixture(scope="module")
def cluster():
    """A one-machine cluster with 2 CPUs (or the one this process already joined: tests/test_ray.py's)."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'harness[ray]' (CI installs it)")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


@pytest.mark.skipif(not (CORPORA / "tinyshakespeare.txt").is_file() or not PIQA.is_file(),
                    reason="no shared data (text_corpus, piqa)")
def test_ray_shards_give_the_local_bytes(cluster, tmp_path, capsys):
    texts = piqa_texts()
    plants = pick_plants(texts, 6)
    folder = tmp_path / "corpus"
    folder.mkdir()
    plant((CORPORA / "tinyshakespeare.txt").read_text(encoding="utf-8"), [texts[k] for k in plants[:4]],
          folder / "a.txt")
    (folder / "b.jsonl").write_text("".join(json.dumps({"text": texts[k].upper()}) + "\n" for k in plants[4:]))
    shutil.copy(CORPORA / "tinyshakespeare.txt", folder / "c.txt")  # a second copy: earlier files win

    def overlap(out: str, *extra: str) -> bytes:
        assert main(["overlap", "--corpus", str(folder), "--tasks", "piqa", "--out", str(tmp_path / out),
                     "--data-dir", str(SHARED_DATA), *extra]) == 0
        return (tmp_path / out / "overlap.csv").read_bytes() + (tmp_path / out / "study.json").read_bytes()

    one, two = overlap("w1", "--workers", "1"), overlap("w2", "--workers", "2")
    capsys.readouterr()
    ray = overlap("ray", "--executor", "ray", "--workers", "2")
    assert "2 workers on Ray" in capsys.readouterr().err
    assert ray == one == two
    dirty = {r["example_id"] for r in read_csv(tmp_path / "ray") if r["dirty"] == "1"}
    assert set(plants) <= dirty
    summary = (tmp_path / "ray" / "summary.md").read_text().split("## Corpus", 1)[1]
    row = [c.strip() for c in summary.strip().splitlines()[2].strip("|").split("|")]
    assert row[0] == "3" and row[6] == "2" and int(row[7]) > 3  # 3 files, 2 workers, the files cut into shards


def test_ray_address_needs_the_ray_executor(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("some words\n")
    code = main(["overlap", "--corpus", str(corpus), "--tasks", "piqa", "--out", str(tmp_path / "o"),
                 "--ray-address", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: --ray-address: only with --executor ray"
