"""``hf:`` on a dual-tower (CLIP-style) checkpoint: each tower with its projection is a frozen encoder, and the
two together make a JointModel whose similarity equals the checkpoint's own — on a tiny CLIP built locally."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentfuse.encoders import build_encoder
from latentfuse.encoders.images import iter_pixel_chunks
from latentfuse.errors import ConfigError

from helpers import tiny_models
from latentfuse.eval import frozen_model

WORDS = ["a", "cat", "dog", "sat", "on", "the", "mat", "red", "car", "photo", "of"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return tiny_models.clip(tmp_path_factory.mktemp("tiny-clip"), WORDS)


def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(3)]


def reference(folder: Path, images: list[Image.Image], texts: list[str], image_preprocess):
    """The checkpoint's own projected features: CLIPModel.get_*_features on the same inputs."""
    from transformers import BertTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(str(folder)).eval()
    tokens = BertTokenizer.from_pretrained(str(folder))(texts, padding=True, return_tensors="pt")
    pixels = torch.from_numpy(np.concatenate(list(iter_pixel_chunks(images, image_preprocess, 16))))
    with torch.inference_mode():
        image = model.get_image_features(pixel_values=pixels)
        text = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    as_tensor = lambda out: out if torch.is_tensor(out) else out.pooler_output  # noqa: E731
    return as_tensor(image).numpy(), as_tensor(text).numpy()


def test_each_tower_is_a_frozen_encoder_with_its_projection(tiny_clip):
    image_encoder = build_encoder(f"hf:{tiny_clip}#image")
    text_encoder = build_encoder(f"hf:{tiny_clip}#text")
    assert (image_encoder.modality, image_encoder.dim) == ("image", 16)  # projected, not the 24-wide tower
    assert (text_encoder.modality, text_encoder.dim) == ("text", 16)
    assert image_encoder.fingerprint != text_encoder.fingerprint
    texts = ["a photo of a cat", "the dog sat on the mat", "red car"]
    want_image, want_text = reference(tiny_clip, pictures(), texts, image_encoder.preprocess)
    np.testing.assert_allclose(image_encoder.encode(pictures()), want_image, atol=1e-5)
    np.testing.assert_allclose(text_encoder.encode(texts), want_text, atol=1e-5)  # length-sorted chunks too


def test_both_towers_make_one_joint_model(tiny_clip):
    model = frozen_model([f"hf:{tiny_clip}#image", f"hf:{tiny_clip}#text"])
    assert {s.name: s.modality for s in model.sides.values()} == {"image": "image", "text": "text"}
    texts = ["a cat", "a red car"]
    want_image, want_text = reference(tiny_clip, pictures(), texts, model.encoder("image").preprocess)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(model.similarity(images=pictures(), texts=texts),
                               unit(want_image) @ unit(want_text).T, atol=1e-5)


def test_a_dual_tower_spec_must_pick_a_tower(tiny_clip):
    with pytest.raises(ConfigError, match=r"dual-tower \(CLIP-style\) model; pick a tower: .*#image or .*#text"):
        build_encoder(f"hf:{tiny_clip}")
    with pytest.raises(ConfigError, match="only #max_length"):
        build_encoder(f"hf:{tiny_clip}#image#cls")


def test_the_text_tower_exposes_its_layers_as_taps(tiny_clip):
    """MMFuser / token students on a CLIP text tower: each layer's hidden states at the text model's width
    (32, not the 16-d projection), one token per word piece, equal to the checkpoint's own hidden states."""
    from transformers import BertTokenizer, CLIPModel

    encoder = build_encoder(f"hf:{tiny_clip}#text")
    assert encoder.pooling == "projection"  # part of the fingerprint: taps must not change how it pools
    assert list(encoder.taps()) == ["layer0", "layer1", "layer2"]
    assert encoder.taps()["layer2"].channels == 32 and encoder.dim == 16
    texts = ["a cat sat on the mat", "a red car"]
    got = encoder.encode_taps(texts, ["layer1", "layer2"])
    tokens = BertTokenizer.from_pretrained(str(tiny_clip))(texts)
    model = CLIPModel.from_pretrained(str(tiny_clip)).eval()
    for i, ids in enumerate(tokens["input_ids"]):
        with torch.inference_mode():
            hidden = model.text_model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        for tap, layer in (("layer1", 1), ("layer2", 2)):
            assert got[tap][i].shape == (len(ids), 32)
            np.testing.assert_allclose(got[tap][i], hidden[layer][0].numpy(), atol=1e-5)
