"""Dataset fingerprints by content: a copy or a touch keeps them (so the feature cache survives), an edit
changes them, and unchanged files are not read twice."""
from __future__ import annotations

import os
import shutil

import pytest

from latentfuse.data import build_source
from latentfuse.utils import digests


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    for name, text in (("x.jpg", "one"), ("y.jpg", "two"), ("z.jpg", "three")):
        (folder / name).write_text(text)
    return sorted(folder.iterdir())


def test_touch_and_copy_keep_the_digest_an_edit_changes_it(files, tmp_path):
    before = digests.content_digest(files)
    for path in files:
        os.utime(path, (1_000_000, 1_000_000))
    assert digests.content_digest(files) == before
    copy = tmp_path / "copy"
    shutil.copytree(files[0].parent, copy)  # new paths, new mtimes, same bytes
    assert digests.content_digest(sorted(copy.iterdir())) == before
    files[1].write_text("TWO")  # same size, new content
    assert digests.content_digest(files) != before


def test_unchanged_files_are_not_read_again(files, monkeypatch):
    reads: list[str] = []
    original = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda path: reads.append(path.name) or original(path))
    digests.content_digest(files)
    assert sorted(reads) == ["x.jpg", "y.jpg", "z.jpg"]
    reads.clear()
    digests.content_digest(files)
    assert reads == []
    digests._SEEN.clear()  # as in a new process: the SQLite table still knows them
    digests.content_digest(files)
    assert reads == []
    os.utime(files[2], (2_000_000, 2_000_000))
    digests.content_digest(files)
    assert reads == ["z.jpg"]


def test_without_a_writable_table_files_are_hashed_every_time(files, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("LATENTFUSE_DIGESTS", str(blocker / "d.sqlite3"))
    assert digests.content_digest(files) == digests.content_digest(files)


def test_images_source_fingerprint_survives_a_touch(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    before = build_source(f"images:{tmp_path}").fingerprint
    os.utime(tmp_path / "1.png", (3_000_000, 3_000_000))
    assert build_source(f"images:{tmp_path}").fingerprint == before
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "1.png")
    assert build_source(f"images:{tmp_path}").fingerprint != before
