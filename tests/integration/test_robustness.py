"""Corruptions are deterministic per seed and item, cached apart from clean features, and the robustness task
scores a real model under them (clean = the retrieval task's score; stronger corruption, bigger drop)."""
from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np
import pytest
from PIL import Image

from latentfuse.config import StoreConfig
from helpers.fakes import FakeTextEncoder
from latentfuse.encoders.corrupt import CorruptedEncoder, corrupt_image, corrupt_text, feature_noise, item_rng
from latentfuse.errors import ConfigError
from latentfuse.eval.tasks import task
from latentfuse.model import JointModel

TEXT = "a black dog is running after a white dog in the snow"


@pytest.mark.parametrize("kind", ["word-dropout", "typos"])
def test_text_corruptions_are_deterministic_per_seed_and_grow_with_severity(kind):
    once = [corrupt_text(TEXT, kind, s, item_rng(0, TEXT)) for s in (1, 2, 3)]
    assert once == [corrupt_text(TEXT, kind, s, item_rng(0, TEXT)) for s in (1, 2, 3)]
    assert corrupt_text(TEXT, kind, 3, item_rng(1, TEXT)) != once[2]  # another seed, another draw
    similarity = [np.mean([SequenceMatcher(None, TEXT, corrupt_text(TEXT, kind, s, item_rng(seed, TEXT))).ratio()
                           for seed in range(20)]) for s in (1, 2, 3)]
    assert 1.0 > similarity[0] > similarity[1] > similarity[2]  # on average over seeds: stronger, further
    assert corrupt_text("dog", "word-dropout", 3, item_rng(5, "dog")) == "dog"  # never empty


@pytest.mark.parametrize("kind", ["gaussian-noise", "blur", "jpeg", "low-resolution"])
def test_image_corruptions_are_deterministic_and_grow_with_severity(kind):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    out = [corrupt_image(image, kind, s, item_rng(0, pixels)) for s in (1, 2, 3)]
    assert all(o.shape == pixels.shape and o.dtype == np.uint8 for o in out)
    assert np.array_equal(out[0], corrupt_image(image, kind, 1, item_rng(0, pixels)))
    errors = [np.abs(o.astype(float) - pixels).mean() for o in out]
    assert 0 < errors[0] < errors[2]


def test_corrupted_features_are_cached_apart_and_features_noise_is_seeded():
    base = FakeTextEncoder("8")
    a, b = CorruptedEncoder(base, "typos", 2, 0), CorruptedEncoder(base, "typos", 2, 1)
    # the store keys folders by a 12-character prefix: corrupted features must not land in the clean folder
    prints = [base.fingerprint, a.fingerprint, b.fingerprint, CorruptedEncoder(base, "typos", 3, 0).fingerprint]
    assert len({fp[:12] for fp in prints}) == 4
    assert np.array_equal(a.encode([TEXT, "x"]), a.encode([TEXT, "x"]))
    assert not np.array_equal(a.encode([TEXT]), base.encode([TEXT]))
    with pytest.raises(ConfigError, match="is for image inputs"):
        CorruptedEncoder(base, "blur", 1, 0)
    with pytest.raises(ConfigError, match="unknown corruption"):
        CorruptedEncoder(base, "rain", 1, 0)
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32) * [1, 10, 100, 1000]
    noisy = feature_noise(x, 2, 0)
    assert np.array_equal(noisy, feature_noise(x, 2, 0))
    assert np.allclose((noisy - x).std(0) / x.std(0), 0.25, rtol=0.3)  # σ relative to each dimension


def test_the_robustness_task_on_a_trained_model(shapes):
    model = JointModel.load(shapes["model"])
    store = StoreConfig(root=str(shapes["store"]))
    data = f"pairs:{shapes['pairs']}"
    options = {"corruptions": ["gaussian-noise", "word-dropout", "feature-noise", "gaussian-noise+word-dropout"],
               "severities": [1, 3], "seeds": [0, 1]}
    report = task("robustness").run(model, data, None, store, options, progress=False)
    metrics = report["metrics"]
    clean = task("retrieval").run(model, data, None, store, progress=False)["metrics"]
    assert metrics["clean"]["t2i R@5"] == pytest.approx(clean["t2i"]["R@5"])
    def drop(corruption: str, severity: str) -> float:  # summed over the four recalls
        return sum(v["drop_pct"] for v in metrics[corruption][severity].values())

    for corruption in options["corruptions"]:
        mild = metrics[corruption]["s1"]
        assert set(mild) == set(metrics["clean"]) and set(mild["t2i R@1"]) == {"mean", "std", "drop_pct"}
        assert drop(corruption, "s3") > drop(corruption, "s1") >= 0, corruption
    # the image noise hurts finding texts for an image most, dropped words finding images for a text
    assert metrics["gaussian-noise"]["s3"]["i2t R@5"]["drop_pct"] > 15
    assert metrics["word-dropout"]["s3"]["t2i R@5"]["drop_pct"] > 30
    assert drop("gaussian-noise+word-dropout", "s3") > max(drop("gaussian-noise", "s3"), drop("word-dropout", "s3"))
    again = task("robustness").run(model, data, None, store, options, progress=False)["metrics"]
    assert again == metrics  # same seeds, same corruptions, same numbers (from the cache)
    with pytest.raises(ConfigError, match=r"severities\[0\]: expected a number >= 1 and <= 3, got 4"):
        task("robustness").run(model, data, None, store, {"severities": [4]}, progress=False)
