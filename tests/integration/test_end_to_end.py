"""The real thing, small: packaged encoders on real Flickr8k photos and captions → fitted heads →
saved JointModel → ``latentfuse.load`` embeds raw files and strings end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

import latentfuse
from latentfuse.errors import ModelError
from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.pipeline import side_encoders, split_features
from helpers.fixtures import N_TEST, N_TRAIN






@pytest.mark.slow
def test_real_encoders_fit_save_load_and_embed_raw_inputs(small_pairs):
    tmp, table, root = small_pairs
    source = build_source(f"pairs:{table}")
    encoders = side_encoders(source, {"image": "efficientnet-lite0", "text": "minilm-l6"})
    store = StoreConfig(root=str(tmp / "store"))
    model = latentfuse.fit(f"pairs:{table}", out=tmp / "model", encoders={"image": "efficientnet-lite0",
                                                                       "text": "minilm-l6"}, method="cca",
                           config={"store": {"root": store.root}, "method": {"options": {"dim": 32}},
                                   "data": {"val_split": ""}}, progress=False)
    (report,) = json.loads((tmp / "model" / "report.json").read_text())
    chance = 100 * 5 / N_TEST
    assert report["t2i"]["R@5"] > 2 * chance, report  # 160 training images already align somewhat
    train = split_features(source, "train", encoders, store, progress=False)  # cached by the fit: no encoding
    test = split_features(source, "test", encoders, store, progress=False)
    assert train.x["image"].shape == (N_TRAIN, 1280) and train.x["text"].shape == (2 * N_TRAIN, 384)

    loaded = latentfuse.load(tmp / "model")
    images = [root / "images" / name for name in json.loads((root / "splits.json").read_text())["test"][:3]]
    from_files = loaded.encode_image(images)
    assert from_files.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(from_files, axis=1), 1, atol=1e-5)
    # the raw-input path equals the cached-feature path (float16 cache → small differences)
    cached = model.encode_features("image", test.x["image"][:3].numpy())
    np.testing.assert_allclose(from_files, cached, atol=2e-2)
    sims = loaded.similarity(images=images[:1], texts=["a dog", "a red car"])
    assert sims.shape == (1, 2) and np.all(np.abs(sims) <= 1 + 1e-5)
    assert loaded.encode_text("one caption").shape == (32,)  # a single string gives a 1-D vector


def test_load_rejects_a_folder_without_a_model(tmp_path):
    with pytest.raises(ModelError, match="model.safetensors is missing|config.json is missing"):
        latentfuse.load(tmp_path)


def test_changed_encoder_fingerprint_is_refused(small_pairs, tmp_path):
    from latentfuse.methods import build_method
    from latentfuse.model import JointModel, SideSpec

    method = build_method("fusemix", {"image": 1280, "text": 384}, {"dim": 8, "hidden": 16, "n_blocks": 1})
    sides = [SideSpec("image", "image", "efficientnet-lite0", "0000stale0000"),
             SideSpec("text", "text", "minilm-l6", "0000stale0000")]
    JointModel(method, sides).save(tmp_path)
    with pytest.raises(ModelError, match="fingerprint"):
        latentfuse.load(tmp_path).encode_text(["hello"])
