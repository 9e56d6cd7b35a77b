"""Every bad input gets one line naming what is wrong — never a traceback, never a hang — and valid input
that used to fail (extracting a one-sided collection) works."""
from __future__ import annotations

import errno
import io
import json
import os
import socket
import threading

import numpy as np
import pytest
from PIL import Image, ImageFile
from click.testing import CliRunner

from helpers import fakes  # noqa: F401
from helpers.fakes import recorded_bad
from latentfuse.cli import app
from latentfuse.config import StoreConfig
from latentfuse.encoders.base import BadItemError
from latentfuse.encoders.images import load_image
from latentfuse.errors import DataError, LatentfuseError
from latentfuse.serve import check_listen
from latentfuse.store.feature_store import StoreError
from latentfuse.utils.hashing import file_digest

from helpers.cli import run_cli

runner = CliRunner()


def _fails_fast(call, *args, timeout: float = 20.0):
    """Run ``call`` in a thread; a hang (a FIFO read) fails the test instead of the suite."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call.__name__} hung on {args}"
    return outcome


def test_a_fifo_is_never_read(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    error = _fails_fast(load_image, str(fifo))["error"]
    assert isinstance(error, BadItemError) and "is a FIFO (named pipe)" in str(error)
    error = _fails_fast(file_digest, fifo)["error"]
    assert isinstance(error, DataError) and "is a FIFO (named pipe), expected a regular file" in str(error)


def test_special_files_among_images_are_reported_not_hung_on(tmp_path, shapes):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "red.png")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "dir.jpg").mkdir()
    (folder / "dir.jpg" / "inner.png").write_bytes((folder / "red.png").read_bytes())
    os.symlink("/dev/zero", folder / "zero.png")
    table = tmp_path / "pairs.csv"
    table.write_text("image,text\nphotos/red.png,red\nphotos/pipe.jpg,pipe\nphotos/zero.png,zeros\n"
                     "photos/dir.jpg,a folder\n")
    args = ["extract", "--data", f"pairs:{table}", "-e", "image=efficientnet-lite0", "-e", "text=fake-text:8",
            "--store", str(tmp_path / "store")]
    strict = _fails_fast(runner.invoke, app, args)["value"]
    assert strict.exit_code != 0 and "--skip-bad" in str(strict.exception)
    assert any(word in str(strict.exception) for word in ("FIFO", "device", "directory", "missing"))
    skipping = _fails_fast(runner.invoke, app, args + ["--skip-bad"])["value"]
    assert skipping.exit_code == 0, skipping.output
    reasons = " | ".join(recorded_bad(tmp_path / "store"))
    assert "FIFO" in reasons and "device" in reasons and "directory" in reasons


def test_lone_surrogates_are_named(tmp_path):
    from latentfuse.encoders import build_encoder

    with pytest.raises(BadItemError, match=r"lone surrogate '\\ud800' at character 2"):
        build_encoder("minilm-l6").encode(["ok", "a \ud800 b"])
    table = tmp_path / "pairs.tsv"
    table.write_bytes(b"text_a\ttext_b\nhello\tworld\nbad \xff bytes\there\n")
    done = run_cli("extract", "--data", f"pairs:{table}", "-e", "text_a=minilm-l6", "-e", "text_b=minilm-l6",
                   "--store", str(tmp_path / "store"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "pairs.tsv" in done.stderr


def test_a_query_with_undecodable_bytes_gets_a_message(shapes, tmp_path):
    folder = tmp_path / "ix"
    assert runner.invoke(app, ["index", "--model", str(shapes["model"]), "--data", f"images:{shapes['images']}",
                               "--out", str(folder), "--store", str(shapes["store"])]).exit_code == 0
    import subprocess
    import sys

    code = "import sys, helpers.fakes; from latentfuse.cli import main; main()"
    from helpers.cli import TESTS

    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-c", code, "search", b"red \xff circle", "--index", str(folder)],
                          capture_output=True, env=env, timeout=120)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "Traceback" not in stderr, stderr
    assert "lone surrogate" in stderr


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF"])
def test_short_pixel_data_is_refused_even_when_pillow_would_pad(fmt, monkeypatch):
    from fastapi import HTTPException

    from latentfuse.serve.inputs import decode_image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, fmt)
    short = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as another library might have
    with pytest.raises(BadItemError, match="cannot decode image"):
        load_image(short)
    with pytest.raises(BadItemError):
        load_image(Image.open(io.BytesIO(short)))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(HTTPException) as refused:
        decode_image(short)
    assert refused.value.status_code == 422 and "truncated or corrupt" in refused.value.detail


def test_a_cache_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    from helpers.fakes import FakeTextEncoder
    from latentfuse.data import build_source
    from latentfuse.store import get_features

    table = tmp_path / "pairs.tsv"
    table.write_text("text_a\ttext_b\nred fox\tfox red\nblue sky\tsky blue\n")
    source = build_source(f"pairs:{table}")
    data = source.load(source.splits()[0])
    (tmp_path / "not-a-dir").write_text("a file where the cache should be")
    with pytest.raises(StoreError, match=r"cannot write to the feature cache at .*not-a-dir.*--store"):
        get_features(source, data, "text_a", FakeTextEncoder("8"), StoreConfig(root=str(tmp_path / "not-a-dir")),
                     progress=False)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(StoreError, match="the disk \\(or quota\\) holding it is full"):
        get_features(source, data, "text_a", FakeTextEncoder("8"), StoreConfig(root=str(tmp_path / "store")),
                     progress=False)

    def read_only(*args, **kwargs):  # what a read-only mount answers (root ignores chmod, so simulated)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(np, "save", read_only)
    with pytest.raises(StoreError, match="it is read-only or not writable by this user"):
        get_features(source, data, "text_a", FakeTextEncoder("8"), StoreConfig(root=str(tmp_path / "store")),
                     progress=False)


def test_extracting_a_one_sided_collection_needs_no_pairs(shapes, tmp_path):
    result = runner.invoke(app, ["extract", "--data", f"images:{shapes['images']}", "-e", "image=efficientnet-lite0",
                                 "-e", "text=minilm-l6", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, (result.output, result.exception)
    count = len([p for p in shapes["images"].rglob("*") if p.is_file()])
    assert f"all: image={count} features" in result.output


def test_index_with_skip_bad_records_what_it_skipped(shapes, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "red.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = ["index", "--model", str(shapes["model"]), "--data", f"images:{folder}", "--out", str(tmp_path / "ix"),
            "--store", str(tmp_path / "store")]
    strict = runner.invoke(app, args)
    assert strict.exit_code != 0 and "broken.png" in str(strict.exception)
    result = runner.invoke(app, args + ["--skip-bad"])
    assert result.exit_code == 0 and "(1 added, 1 skipped: see index.json)" in result.output, result.output
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert [(s["id"], "cannot decode image" in s["reason"]) for s in meta["skipped"]] == [("broken.png", True)]
    again = runner.invoke(app, args)  # a strict grow over the same folder still reports the bad file
    assert again.exit_code != 0 and "broken.png" in str(again.exception)


def test_ports_that_cannot_be_listened_on_are_refused(shapes, tmp_path):
    done = run_cli("serve", "--index", str(tmp_path), "--port", "70000")
    assert done.returncode == 2 and "port: expected a number >= 0 and <= 65535, got 70000" in done.stderr
    for size in ("nan", "inf", "-1"):
        done = run_cli("serve", "--index", str(tmp_path), "--max-upload-mb", size)
        assert done.returncode == 2 and "--max-upload-mb: expected a" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LatentfuseError, match=f"cannot listen on 127.0.0.1:{port}: .*pick another --port"):
            check_listen("127.0.0.1", port)
    with pytest.raises(LatentfuseError, match="--host 'no such host!': not a usable address"):
        check_listen("no such host!", 8000)


def test_short_pixel_data_is_refused_through_the_python_api(shapes, monkeypatch):
    import latentfuse

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    model = latentfuse.load(shapes["model"])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(BadItemError, match="cannot decode image \\(truncated\\)"):
        model.encode_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_file_system_errors_are_one_line_naming_the_file(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("text_a\ttext_b\nx\ty\n")
    done = run_cli("train", "--data", f"pairs:{table}", "--out", "/dev/null/model")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "error: --out /dev/null/model: /dev/null is a file, not a folder" in done.stderr
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{broken")
    done = run_cli("info", "--model", str(tmp_path / "model"))
    assert done.returncode == 2 and "config.json: not valid JSON" in done.stderr and "Traceback" not in done.stderr

