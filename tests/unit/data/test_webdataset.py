"""webdataset:PATTERN — img2dataset-style tar shards against a pairs: table of the same photos: the same items,
bit-identical features, one shared cache row per photo, and one-line errors for broken shards."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.encoders import build_encoder
from latentfuse.errors import DataError
from latentfuse.store import get_features
from latentfuse.store.keys import content_keys


def photos(folder: Path, n: int) -> list[Path]:
    """``n`` distinct JPEG photos (noise, so every feature differs)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(path, format="JPEG")
        paths.append(path)
    return paths


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def shards(folder: Path, samples: list[dict[str, bytes]], per_shard: int) -> list[Path]:
    """img2dataset's layout: shards 00000.tar, 00001.tar … of ``key.ext`` members."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(samples), per_shard):
        path = folder / f"{start // per_shard:05d}.tar"
        with tarfile.open(path, "w") as archive:
            for sample in samples[start:start + per_shard]:
                for ext, data in sample.items():
                    if ext != "__key__":
                        add(archive, f"{sample['__key__'].decode()}.{ext}", data)
        paths.append(path)
    return paths


@pytest.fixture
def same_photos(tmp_path: Path) -> tuple[Path, Path]:
    """(a pairs.csv of 7 photos, a folder of 3 shards holding the same photos and captions); sample 3's
    caption is only in its .json, as img2dataset can write it."""
    files = photos(tmp_path / "photos", 7)
    captions = [f"caption number {i}" for i in range(7)]
    rows = "\n".join(f"photos/{p.name},{c}" for p, c in zip(files, captions))
    (tmp_path / "pairs.csv").write_text("image,text\n" + rows + "\n")
    samples = []
    for path, text in zip(files, captions):
        sample = {"__key__": path.stem.encode(), "jpg": path.read_bytes(),
                  "json": json.dumps({"caption": text, "url": "http://x"}).encode()}
        if path.stem != "000003":
            sample["txt"] = text.encode()
        samples.append(sample)
    shards(tmp_path / "shards", samples, per_shard=3)
    return tmp_path / "pairs.csv", tmp_path / "shards"


def test_shards_give_the_items_of_the_same_table(same_photos):
    table, folder = same_photos
    source = build_source("webdataset:" + str(folder / "{00000..00002}.tar"))
    assert source.splits() == ["all"]
    data = source.load("all")
    assert [i.id for i in data.items["image"]] == [f"{i:06d}" for i in range(7)]
    assert [i.payload for i in data.items["text"]] == [f"caption number {i}" for i in range(7)]
    assert data.pairs == [(f"{i:06d}", f"{i:06d}") for i in range(7)]
    first = data.items["image"][0].payload
    assert first.read_bytes() == (table.parent / "photos" / "000000.jpg").read_bytes()
    # a folder, a glob and '::'-joined patterns name the same shards
    for spec in (str(folder), str(folder / "*.tar"), f"{folder}/00000.tar::{folder}/{{00001..00002}}.tar"):
        assert [i.id for i in build_source("webdataset:" + spec).load("all").items["image"]] == \
               [i.id for i in data.items["image"]]
    assert build_source("webdataset:" + str(folder)).fingerprint == source.fingerprint


def test_features_are_bit_identical_to_the_table_and_share_its_cache_rows(same_photos, tmp_path):
    table, folder = same_photos
    encoder = build_encoder("pixels:16")
    tar_source, csv_source = build_source(f"webdataset:{folder}"), build_source(f"pairs:{table}")
    tar_data, csv_data = tar_source.load("all"), csv_source.load("all")
    from_tars = get_features(tar_source, tar_data, "image", encoder, StoreConfig(root=str(tmp_path / "a")),
                             progress=False)
    from_files = get_features(csv_source, csv_data, "image", encoder, StoreConfig(root=str(tmp_path / "b")),
                              progress=False)
    assert from_tars.array.shape == (7, encoder.dim)
    assert np.array_equal(from_tars.array, from_files.array)  # the same bytes decode to the same pixels
    assert content_keys([i.payload for i in tar_data.items["image"]], "image") == \
           content_keys([i.payload for i in csv_data.items["image"]], "image")  # one cache row per photo


def test_a_sample_without_a_caption_or_image_names_its_shard_and_key(tmp_path):
    folder = tmp_path / "bad"
    good = photos(tmp_path / "p", 2)
    shards(folder, [{"__key__": b"a", "jpg": good[0].read_bytes(), "txt": b"fine"},
                    {"__key__": b"b", "jpg": good[1].read_bytes()},
                    {"__key__": b"c", "txt": b"no image"}], per_shard=3)
    with pytest.raises(DataError, match=r"00000\.tar sample 'b': no caption"):
        build_source(f"webdataset:{folder}").load("all")
    data = build_source(f"webdataset:{folder}", skip_bad=True).load("all")
    assert [i.id for i in data.items["image"]] == ["a"]
    assert [item_id for item_id, _ in data.skipped] == ["b", "c"] and "no image" in data.skipped[1][1]


def test_duplicate_keys_compressed_shards_and_missing_patterns_are_one_line_errors(tmp_path):
    good = photos(tmp_path / "p", 1)[0].read_bytes()
    folder = tmp_path / "dup"
    shards(folder, [{"__key__": b"k", "jpg": good, "txt": b"x"}] * 2, per_shard=1)
    with pytest.raises(DataError, match=r"00001\.tar sample 'k': key already used in .*00000\.tar"):
        build_source(f"webdataset:{folder}").load("all")
    (tmp_path / "z.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="expected an uncompressed .tar shard"):
        build_source(f"webdataset:{tmp_path / 'z.tar.gz'}")
    with pytest.raises(DataError, match=r"nothing/\{0\.\.1\}.tar|nothing/0.tar: no such shard"):
        build_source(f"webdataset:{tmp_path}/nothing/{{0..1}}.tar")
    with pytest.raises(DataError, match="webdataset needs shards"):
        build_source("webdataset:")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(DataError, match="junk.tar: not a readable tar shard"):
        build_source(f"webdataset:{tmp_path / 'junk.tar'}").load("all")


def test_a_truncated_shard_is_a_bad_item_at_encode_time(same_photos):
    _, folder = same_photos
    source = build_source(f"webdataset:{folder}/00000.tar")
    data = source.load("all")
    with open(folder / "00000.tar", "r+b") as handle:  # cut the shard inside its last photo
        handle.truncate(data.items["image"][-1].payload.offset + 10)
    with pytest.raises(DataError, match=r"00000\.tar:000002\.jpg"):
        build_encoder("pixels:16").encode([item.payload for item in data.items["image"]])


def test_a_rerun_over_unchanged_shards_reads_no_image_for_its_keys(same_photos, monkeypatch):
    """Content keys of shard members are remembered under the shard's (size, mtime), as a file's are: a second
    listing of the same shards costs a stat per shard, not a read per image; a rewritten shard is read again."""
    from latentfuse.utils import blobs

    _, folder = same_photos
    payloads = [item.payload for item in build_source(f"webdataset:{folder}").load("all").items["image"]]
    first = content_keys(payloads, "image")
    monkeypatch.setattr(blobs.TarMember, "read_bytes", lambda self: (_ for _ in ()).throw(AssertionError("read")))
    assert content_keys(payloads, "image") == first
    shard = folder / "00000.tar"
    shard.write_bytes(shard.read_bytes())  # same bytes, new mtime: read again (and here, refused)
    os.utime(shard, ns=(1, 1))
    with pytest.raises(AssertionError, match="read"):
        content_keys(payloads, "image")


def test_a_relative_pattern_is_named_absolutely(same_photos, monkeypatch):
    """The spec rebuilds the source from any folder (an index reopens its sources by spec)."""
    _, folder = same_photos
    monkeypatch.chdir(folder.parent)
    source = build_source("webdataset:shards/{00000..00002}.tar")
    assert source.spec == f"webdataset:{folder}/{{00000..00002}}.tar"
    monkeypatch.chdir("/")
    assert len(build_source(source.spec).load("all").items["image"]) == 7
