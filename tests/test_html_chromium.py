"""The HTML report in a real browser: headless Chromium (Debian's chromium package, installed by
`make setup`) renders it, its tables and figures are in the DOM, the console stays silent, and a
screenshot of it is a real picture. Skipped, with the reason, where no Chromium is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.reporting.pages import write_report
from tests.helpers import as_samples, band_frame, change_samples, hand_csv, synthetic_frame, synthetic_samples

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make setup installs Debian's chromium)")
FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars"]
SIZE = (1280, 900)


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    """Chromium logs each console message (errors, uncaught exceptions) as a CONSOLE line on stderr."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("html_report")
    write_report(folder, synthetic_frame(), synthetic_samples(), "Synthetic report", published_dir=folder)  # no CSV
    for png in (folder / "plots").iterdir():  # the page must not need them: figures are inlined
        png.unlink()
    return folder / "report.html"


def test_dom_has_tables_figures_and_no_console_errors(page):
    done = chromium("--dump-dom", page.as_uri(), cwd=page.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count("<table") == 5 and "<h2>Shot sweep</h2>" in dom and "Published reference numbers" in dom
    images = re.findall(r'<img [^>]*src="([^"]*)"', dom)
    # summary, piqa, k-sweep
    assert len(images) == 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert 'class="sig"' in dom  # the significant FT difference is highlighted
    assert console_messages(done.stderr) == []


def test_console_errors_would_be_caught(tmp_path):
    """The check above can fail: a page that logs an error is seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom"); missing();</script></body></html>')
    done = chromium("--dump-dom", bad.as_uri(), cwd=tmp_path)
    assert any("boom" in m for m in console_messages(done.stderr))


def test_no_external_requests(page):
    text = page.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<script" not in text and "<link" not in text


def test_screenshot_is_a_real_picture(page, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", f"--window-size={SIZE[0]},{SIZE[1]}", page.as_uri(), cwd=tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = mpimg.imread(shot)  # (H, W, channels), floats in [0, 1]
    assert pixels.shape[:2] == (SIZE[1], SIZE[0])
    assert pixels[..., :3].var() > 1e-3  # not blank: text, table borders and highlighted cells
    assert (pixels[..., :3] < 0.5).mean() > 0.005  # enough dark pixels to be text


@pytest.fixture(scope="module")
def generative_page(tmp_path_factory) -> Path:
    """GPT-3 bands from a hand-made Table H.1, and changed examples from samples that carry their records."""
    import pandas as pd

    from harness.reporting.runs import samples_frame
    from tests.helpers import row

    folder = tmp_path_factory.mktemp("html_generative")
    hand_csv(folder)
    frame = pd.concat([band_frame(), pd.DataFrame([row("gpt2", "piqa", s, k, seed, "acc", 0.5) for s, k, seed in
                                                   (("ZS", 0, 0), ("FS", 4, 0), ("FS", 4, 1))])], ignore_index=True)
    models = {"gpt2": {"parameters": 124e6}, "gpt2-medium": {"parameters": 355e6}}
    write_report(folder, frame, samples_frame(as_samples(change_samples()), "gpt2"), "Generative report", models=models,
                 published_dir=folder)
    return folder / "report.html"


def test_bands_and_changed_examples_render_without_scripts(generative_page):
    done = chromium("--dump-dom", generative_page.as_uri(), cwd=generative_page.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<h2>GPT-3 plausibility bands (Table H.1)</h2>" in dom and "<h2>Examples behind a difference</h2>" in dom
    assert dom.count('<details class="comparison">') == 2 and dom.count('<details class="example">') == 22  # 20 + 2
    assert "<details open" not in dom and "<script" not in dom  # collapsed, opened by the reader, no scripts
    assert "scale_triviaqa" in dom and console_messages(done.stderr) == []


@pytest.fixture(scope="module")
def analysis_page(tmp_path_factory) -> Path:
    """Three demonstration seeds, every scoring rule's inputs, answer log-probabilities (tests/analysis_data.py)."""
    from tests.analysis_data import analysis_inputs

    folder = tmp_path_factory.mktemp("html_analysis")
    frame, samples, _ = analysis_inputs()
    write_report(folder, frame, samples, "Analysis report", published_dir=folder)
    for png in (folder / "plots").iterdir():
        png.unlink()
    return folder / "report.html"


def test_analysis_sections_render_with_their_figures(analysis_page):
    done = chromium("--dump-dom", analysis_page.as_uri(), cwd=analysis_page.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    headings = re.findall(r"<h2>([^<]*)</h2>", dom)
    start = headings.index("Is the difference real?")
    assert headings[start + 1: start + 4] == ["Where the uncertainty comes from", "Scoring rules", "Calibration"]
    assert dom.count("How to read it:") == 3 and "<h3>Multiple choice</h3>" in dom and "<h3>Generation</h3>" in dom
    # before the figures: scores, paired tests, uncertainty, rules, the three cells' flips, reliability, selective
    assert dom.split("<h2>Figures")[0].count("<table") == 9 and dom.count('<details class="flips">') == 3
    assert "validation-" in dom.split("Scoring rules")[1].split("<h2>Calibration")[0]  # the flipped examples' ids
    images = re.findall(r'<img [^>]*alt="([^"]*)" src="data:image/png;base64,', dom)
    assert images == ["summary", "sweep_lambada_openai", "sweep_nq_open", "sweep_piqa", "reliability_piqa",
                      "selective_nq_open"]
    assert "not detectable (MDD" in dom and "<td>worse</td>" not in dom and 'class="sig">worse</td>' in dom
    assert console_messages(done.stderr) == []
