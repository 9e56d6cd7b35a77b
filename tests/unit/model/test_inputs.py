"""Inputs as people pass them to a saved model: torch tensors (channels first, floats in [0, 1]), channels-first
arrays (a batch detected, a lone one refused as ambiguous), embeddings given to ``similarity``, and
sentence-transformers' ``normalize_embeddings``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from latentfuse.errors import ModelError
from latentfuse.model import JointModel, image_batch


@pytest.fixture(scope="module")
def model(shapes):
    return JointModel.load(shapes["model"], backend="torch")


@pytest.fixture(scope="module")
def pictures(shapes):
    paths = sorted(shapes["images"].rglob("*.png"))[:3]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def test_a_torch_tensor_is_one_channels_first_image_and_a_float_one_is_scaled(model, pictures):
    hwc = model.encode_image(pictures[0])
    as_uint8 = torch.from_numpy(pictures[0]).permute(2, 0, 1)
    np.testing.assert_allclose(model.encode_image(as_uint8), hwc, atol=1e-5)
    np.testing.assert_allclose(model.encode_image(as_uint8.float() / 255.0), hwc, atol=1e-5)  # ToTensor's range
    batch = torch.stack([torch.from_numpy(p).permute(2, 0, 1) for p in pictures])  # (N, C, H, W)
    np.testing.assert_allclose(model.encode_image(batch), model.encode_image(pictures), atol=1e-5)
    with pytest.raises(ModelError, match=r"a float image tensor must hold values in \[0, 1\]"):
        model.encode_image(as_uint8.float())


def test_channels_first_arrays_are_detected_in_a_batch_and_refused_alone(model, pictures):
    nchw = np.stack([p.transpose(2, 0, 1) for p in pictures])
    assert nchw.shape[1] == 3 and model.encode_image(nchw).shape == (3, model.dim)
    np.testing.assert_allclose(model.encode_image(nchw), model.encode_image(pictures), atol=1e-5)
    with pytest.raises(ModelError, match=r"shape \(3, 128, 128\) is ambiguous: one channels-first image or 3 "
                                         r"greyscale ones\? Pass image.transpose\(1, 2, 0\)"):
        model.encode_image(pictures[0].transpose(2, 0, 1))
    grey = np.stack([p[:, :, 0] for p in pictures] * 2)  # (6, H, W): six greyscale images, as before
    assert len(image_batch(grey)[0]) == 6


def test_similarity_takes_embeddings_as_sentence_transformers_users_pass_them(model, pictures):
    images = model.encode_image(pictures)
    texts = model.encode_text(["a red circle", "a blue square"])
    np.testing.assert_allclose(model.similarity(images, texts), images @ texts.T, atol=1e-6)
    np.testing.assert_allclose(model.similarity(torch.from_numpy(images), torch.from_numpy(texts)), images @ texts.T,
                               atol=1e-6)
    np.testing.assert_allclose(model.similarity(images=pictures, texts=["a red circle", "a blue square"]),
                               images @ texts.T, atol=1e-5)  # raw inputs still go through the encoders


def test_normalize_embeddings_is_an_alias_of_normalize(model):
    raw = model.encode_text(["a red circle"], normalize_embeddings=False)
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    np.testing.assert_allclose(raw, model.encode_text(["a red circle"], normalize=False))
    assert np.isclose(np.linalg.norm(model.encode_text("a red circle", normalize_embeddings=True)), 1.0, atol=1e-5)
