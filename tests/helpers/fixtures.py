"""Fixtures several test modules share (registered by tests/conftest.py)."""
from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

N_TRAIN, N_TEST = 160, 40


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory, request):
    """A pairs: table of the first Flickr8k test/train images with their first caption each."""
    from conftest import SHARED

    root = SHARED / "flickr8k"
    if not (root / "captions.tsv").exists():
        pytest.skip(f"shared Flickr8k not found at {root}")
    splits = json.loads((root / "splits.json").read_text())
    captions: dict[str, list[str]] = {}
    with open(root / "captions.tsv", newline="") as handle:
        for image, _, caption in list(csv.reader(handle, delimiter="\t"))[1:]:
            captions.setdefault(image, []).append(caption)
    tmp = tmp_path_factory.mktemp("e2e")
    table = tmp / "pairs.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "text", "split"])
        for split, names in (("train", splits["train"][:N_TRAIN]), ("test", splits["test"][:N_TEST])):
            for name in names:
                for caption in captions[name][:2]:
                    writer.writerow([str(root / "images" / name), caption, split])
    return tmp, table, root


CHROMIUM = os.environ.get("LATENTFUSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; `make test` does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def shown(page) -> list[str]:
    """Ids of the result cards, after every thumbnail has actually loaded."""
    page.wait_for_function("""() => document.body.dataset.state === 'done' &&
        [...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth > 0)""",
                           timeout=30_000)
    return page.eval_on_selector_all(".hit", "cards => cards.map(c => c.dataset.id)")
