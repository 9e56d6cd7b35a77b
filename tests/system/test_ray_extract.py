"""`extract --engine ray` on a local 2-CPU Ray instance writes what local extraction writes (same ids, the
same float16 values, the same shards), is a cache hit afterwards, and a job killed mid-way resumes to the
same store with nothing lost or duplicated. The encoder is the packaged GloVe table: Ray's worker
processes build encoders from the registry, where the tests' fake encoders do not exist."""
from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.encoders import build_encoder
from latentfuse.store import get_features

from helpers.fakes import committed_shards

ray = pytest.importorskip("ray", reason="Ray Data is the [dist] extra (installed by `make test`)")

WORDS = ("dog cat bird horse water beach snow grass ball child woman man street city park river mountain "
         "car bike boat red blue green white black running jumping sitting playing walking swimming").split()


def table(path, n: int):
    rng = random.Random(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text_a", "text_b", "split"])
        for _ in range(n):
            writer.writerow([" ".join(rng.sample(WORDS, 5)), " ".join(rng.sample(WORDS, 3)), "train"])
    return path


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the small machine the engine must not starve
    yield
    ray.shutdown()


def test_ray_extraction_equals_local_extraction(tmp_path, local_ray):
    source = build_source(f"pairs:{table(tmp_path / 'pairs.tsv', 300)}")
    data, encoder = source.load("train"), build_encoder("glove-6b-50d")
    local = get_features(source, data, "text_a", encoder, StoreConfig(root=str(tmp_path / "local"), shard_size=64),
                         progress=False)
    engine = StoreConfig(root=str(tmp_path / "ray"), shard_size=64, engine="ray", workers=2)
    on_ray = get_features(source, data, "text_a", encoder, engine, progress=False)
    assert on_ray.ids == local.ids and len(set(on_ray.ids)) == 300
    assert on_ray.array.dtype == local.array.dtype == np.float16
    assert np.array_equal(np.asarray(on_ray.array), np.asarray(local.array))
    shards = sorted(p.name for p in committed_shards(tmp_path / "ray"))
    assert shards == sorted(p.name for p in committed_shards(tmp_path / "local")) and len(shards) == 5
    stamps = {p: p.stat().st_mtime_ns for p in committed_shards(tmp_path / "ray")}
    again = get_features(source, data, "text_a", encoder, engine, progress=False)  # a cache hit: no Ray work
    assert {p: p.stat().st_mtime_ns for p in committed_shards(tmp_path / "ray")} == stamps
    assert np.array_equal(np.asarray(again.array), np.asarray(local.array))


def test_a_killed_ray_job_resumes_with_nothing_lost_or_duplicated(tmp_path):
    pairs = table(tmp_path / "pairs.tsv", 400)
    command = [sys.executable, "-m", "latentfuse", "-q", "extract", "-d", f"pairs:{pairs}", "-e", "text_a=glove-6b-50d",
               "-e", "text_b=glove-6b-50d", "--store", str(tmp_path / "ray"), "--engine", "ray",
               "--set", "store.shard_size=50", "--set", "store.batch_size=25"]
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, committed = time.monotonic() + 240, 0
    while time.monotonic() < deadline and job.poll() is None:
        committed = len(committed_shards(tmp_path / "ray"))
        if committed:
            break
        time.sleep(0.05)
    assert job.poll() is None and committed, "the job finished before it could be killed"
    os.killpg(job.pid, signal.SIGKILL)  # the driver and the local Ray instance it started
    job.wait()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    source = build_source(f"pairs:{pairs}")
    data, encoder = source.load("train"), build_encoder("glove-6b-50d")
    for side in ("text_a", "text_b"):
        local = get_features(source, data, side, encoder, StoreConfig(root=str(tmp_path / "local"), shard_size=50),
                             progress=False)
        resumed = get_features(source, data, side, encoder, StoreConfig(root=str(tmp_path / "ray"), shard_size=50),
                               progress=False)
        assert resumed.ids == local.ids and len(set(resumed.ids)) == len(local.ids)
        assert np.array_equal(np.asarray(resumed.array), np.asarray(local.array))


def test_images_decode_in_ray_tasks_and_a_bad_file_is_skipped_or_named(tmp_path, local_ray):
    """Image payloads are decoded in Ray tasks (``Encoder.prepare``) and encoded by the actors: the same
    features as local extraction; a broken file is skipped and recorded like locally, or named in the error."""
    from PIL import Image

    from latentfuse.errors import DataError

    folder = tmp_path / "images" / "things"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    source = build_source(f"images:{tmp_path / 'images'}", skip_bad=True)
    data, encoder = source.load(source.splits()[0]), build_encoder("efficientnet-lite0")
    side = data.sides[0].name
    local = get_features(source, data, side, encoder, StoreConfig(root=str(tmp_path / "local"), shard_size=4),
                         skip_bad=True, progress=False)
    engine = StoreConfig(root=str(tmp_path / "ray"), shard_size=4, engine="ray", workers=2, batch_size=2)
    on_ray = get_features(source, data, side, encoder, engine, skip_bad=True, progress=False)
    assert on_ray.ids == local.ids and len(on_ray.ids) == 5
    # equal up to one float16 step: a one-image micro-batch (after the bad file left its batch) takes another
    # oneDNN convolution path than a larger one, as it would locally (measured: ≤ 7e-7 before rounding)
    np.testing.assert_allclose(np.asarray(on_ray.array, np.float32), np.asarray(local.array, np.float32),
                               rtol=1e-3, atol=1e-3)
    assert [s["id"] for s in on_ray.manifest["skipped"]] == [s["id"] for s in local.manifest["skipped"]] != []
    strict = StoreConfig(root=str(tmp_path / "strict"), shard_size=4, engine="ray", workers=1, batch_size=2)
    with pytest.raises(DataError, match=r"broken\.png.*pass --skip-bad"):
        get_features(build_source(f"images:{tmp_path / 'images'}"), data, side, encoder, strict, progress=False)


def test_in_memory_images_travel_through_ray_as_arrays(tmp_path, local_ray):
    """A source whose payloads are arrays (Fashion-MNIST, from a small idx folder) ships them to the Ray
    tasks as arrays, not as their text, and gets local extraction's features."""
    from helpers.tables import make_fashion

    source = build_source(f"fashion-mnist:{make_fashion(tmp_path / 'fmnist', n_train=6, n_test=10)}")
    data, encoder = source.load("test"), build_encoder("efficientnet-lite0")
    side = next(s.name for s in data.sides if s.modality == "image")
    assert isinstance(data.items[side][0].payload, np.ndarray)
    local = get_features(source, data, side, encoder, StoreConfig(root=str(tmp_path / "local"), shard_size=4),
                         progress=False)
    on_ray = get_features(source, data, side, encoder, StoreConfig(root=str(tmp_path / "ray"), shard_size=4,
                                                                  engine="ray", workers=1), progress=False)
    assert on_ray.ids == local.ids and len(on_ray.ids) == 10
    np.testing.assert_allclose(np.asarray(on_ray.array, np.float32), np.asarray(local.array, np.float32),
                               rtol=1e-3, atol=1e-3)


def test_an_unreachable_cluster_and_gpus_that_do_not_exist_are_errors_not_hangs(tmp_path, local_ray):
    """An unreachable --ray-address used to retry forever, and --gpus-per-worker 1 on a cluster without GPUs to
    wait forever for them."""
    from latentfuse.errors import ConfigError
    from latentfuse.store.ray_engine import check_reachable

    with pytest.raises(ConfigError, match="--ray-address ray://127.0.0.1:1: cannot reach the Ray cluster"):
        check_reachable("ray://127.0.0.1:1", timeout=2)
    source = build_source(f"pairs:{table(tmp_path / 'pairs.tsv', 20)}")
    engine = StoreConfig(root=str(tmp_path / "ray"), engine="ray", workers=1, gpus_per_worker=1)
    with pytest.raises(ConfigError, match="--gpus-per-worker 1: the Ray cluster has 0 GPUs"):
        get_features(source, source.load("train"), "text_a", build_encoder("glove-6b-50d"), engine, progress=False)


def test_tar_shard_members_are_read_in_the_ray_tasks(tmp_path, local_ray):
    """webdataset: items are references to shard members: Ray's decode tasks read their bytes (nothing but the
    reference travels) and get local extraction's features."""
    import io
    import tarfile

    from PIL import Image

    rng = np.random.default_rng(0)
    with tarfile.open(tmp_path / "00000.tar", "w") as archive:
        for number in range(6):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(buffer, format="PNG")
            for name, data in ((f"{number:05d}.png", buffer.getvalue()), (f"{number:05d}.txt", b"a photo")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    source = build_source(f"webdataset:{tmp_path / '00000.tar'}")
    data, encoder = source.load("all"), build_encoder("efficientnet-lite0")
    local = get_features(source, data, "image", encoder, StoreConfig(root=str(tmp_path / "local"), shard_size=4),
                         progress=False)
    on_ray = get_features(source, data, "image", encoder, StoreConfig(root=str(tmp_path / "ray"), shard_size=4,
                                                                     engine="ray", workers=1), progress=False)
    assert on_ray.ids == local.ids and len(on_ray.ids) == 6
    np.testing.assert_allclose(np.asarray(on_ray.array, np.float32), np.asarray(local.array, np.float32),
                               rtol=1e-3, atol=1e-3)
