"""Encoder ensembles (``A+B``): the joined feature, the store caching each member on its own, clear errors,
and an ensemble side that round-trips through save/load and ``encode_image``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import fakes
from helpers.fakes import SyntheticSource, encoder_calls
from latentfuse import load
from latentfuse.config import StoreConfig
from latentfuse.encoders import Ensemble, build_encoder
from latentfuse.errors import ConfigError
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec
from latentfuse.store import get_features
from latentfuse.utils.runtime import runtime


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_joined_feature_is_each_member_normalised_then_concatenated():
    ensemble = build_encoder("fake-text:8+fake-text:4")
    assert isinstance(ensemble, Ensemble) and ensemble.dim == 12 and ensemble.modality == "text"
    assert ensemble.name == "fake-text:8+fake-text:4"
    texts = ["a red circle", "two dogs"]
    expected = np.concatenate([unit_rows(np.stack([fakes.fake_embed(t, 8) for t in texts])),
                               unit_rows(np.stack([fakes.fake_embed(t, 4) for t in texts]))], axis=1)
    np.testing.assert_allclose(ensemble.encode(texts), expected, rtol=1e-5)
    other = build_encoder("fake-text:4+fake-text:8")
    assert len({ensemble.fingerprint, other.fingerprint, build_encoder("fake-text:8").fingerprint}) == 3


def test_bad_ensembles_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"all members must embed one modality, got fake-text:8 \(text\), "
                                          r"efficientnet-lite0 \(image\)"):
        build_encoder("fake-text:8+efficientnet-lite0")
    with pytest.raises(ConfigError, match="empty member"):
        build_encoder("fake-text:8+")


def test_the_store_caches_each_member_once_and_joins_them(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    source, store = SyntheticSource(40), StoreConfig(str(tmp_path / "store"))
    data = source.load("train")
    alone = get_features(source, data, "text_a", build_encoder("fake-text:8"), store, progress=False)
    calls = len(encoder_calls(log))
    joined = get_features(source, data, "text_a", build_encoder("fake-text:8+fake-text:4"), store, progress=False)
    assert sum(encoder_calls(log)[calls:]) == 40  # only the new member ran; fake-text:8 came from the cache
    assert joined.ids == alone.ids and joined.array.shape == (40, 12)
    member = get_features(source, data, "text_a", build_encoder("fake-text:4"), store, progress=False)
    expected = np.concatenate([unit_rows(alone.array.astype(np.float32)), unit_rows(member.array.astype(np.float32))],
                              axis=1)
    np.testing.assert_allclose(joined.array.astype(np.float32), expected, atol=2e-3)
    again = len(encoder_calls(log))
    get_features(source, data, "text_a", build_encoder("fake-text:8+fake-text:4"), store, progress=False)
    assert len(encoder_calls(log)) == again  # all cached now


IMAGE_ENSEMBLE = "efficientnet-lite0+efficientnet-lite0:size=128"  # two packaged members, no extra download


def test_an_ensemble_side_round_trips_through_save_load_and_encode_image(tmp_path):
    torch_cpu = runtime("cpu", "fp32", "torch")
    ensemble = build_encoder(IMAGE_ENSEMBLE, torch_cpu)
    text = build_encoder("fake-text:8", torch_cpu)
    torch.manual_seed(0)
    method = build_method("fusemix", {"image": ensemble.dim, "text": text.dim}, {"dim": 16, "hidden": 32})
    sides = [SideSpec("image", "image", ensemble.name, ensemble.fingerprint),
             SideSpec("text", "text", text.name, text.fingerprint)]
    JointModel(method, sides).save_pretrained(tmp_path / "model")
    model = load(tmp_path / "model", device="cpu", backend="torch")
    assert model.sides["image"].encoder == IMAGE_ENSEMBLE and model.method.dims["image"] == 2560
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(150, 200, 3), dtype=np.uint8) for _ in range(3)]
    got = model.encode_image(images)
    members = [build_encoder(spec, torch_cpu) for spec in IMAGE_ENSEMBLE.split("+")]
    joined = np.concatenate([unit_rows(m.encode(images)) for m in members], axis=1)
    expected = model.encode_features("image", joined)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    from PIL import Image

    path = tmp_path / "one.png"
    Image.fromarray(images[1]).save(path)
    np.testing.assert_allclose(model.encode_image(str(path)), got[1], atol=1e-5)  # decoded once, same answer


def test_an_ensembles_token_taps_are_its_first_members_and_share_its_cache(tmp_path, monkeypatch):
    from latentfuse.store import get_tokens

    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    source, store = SyntheticSource(20), StoreConfig(str(tmp_path / "store"))
    data = source.load("train")
    ensemble = build_encoder("fake-text:8+fake-text:4")
    assert set(ensemble.taps()) == {"words"} and ensemble.taps()["words"].channels == 8
    alone = get_tokens(source, data, "text_a", build_encoder("fake-text:8"), ["words"], store, progress=False)
    calls = len(encoder_calls(log))
    joined = get_tokens(source, data, "text_a", ensemble, ["words"], store, progress=False)
    assert len(encoder_calls(log)) == calls  # read from the member's cache
    assert joined["words"].ids == alone["words"].ids
    got = ensemble.encode_taps(["a red circle"], ["words"])["words"][0]
    np.testing.assert_allclose(got, np.stack([fakes.vector(w, 8) for w in "a red circle".split()]), rtol=1e-6)
