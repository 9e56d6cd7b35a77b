"""The pieces distillation adds: the lines: sentence pool, the pixels: encoder, GloVe's words tap, EfficientNet
at another input size, the --student grammar, and FLOP counting by torch's counter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.cost import count_flops, cost_table, model_cost
from latentfuse.data import build_source
from latentfuse.encoders import build_encoder
from latentfuse.errors import ConfigError, DataError


def test_lines_source_reads_one_sentence_per_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("  a dog runs  \n\n\t\nthe sky is blue\n")
    source = build_source(f"lines:{path}")
    data = source.load("all")
    assert [(i.id, i.payload, i.origin) for i in data.items["text"]] == [
        ("line/1", "a dog runs", "s.txt:1"), ("line/4", "the sky is blue", "s.txt:4")]
    assert data.items["image"] == [] and data.pairs == []
    before = source.fingerprint
    path.write_text("another\n")
    assert build_source(f"lines:{path}").fingerprint != before


def test_lines_source_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad.txt:3: not UTF-8"):
        build_source(f"lines:{bad}").load("all")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    with pytest.raises(DataError, match="no sentences"):
        build_source(f"lines:{blank}").load("all")
    with pytest.raises(DataError, match="not found"):
        build_source(f"lines:{tmp_path / 'missing.txt'}")


def test_pixels_encoder_is_the_images_own_low_resolution_pixels():
    encoder = build_encoder("pixels:32")
    white, black = np.full((40, 60, 3), 255, np.uint8), np.zeros((50, 50, 3), np.uint8)
    x = encoder.encode([white, black])
    assert x.shape == (2, 3 * 32 * 32) and x.dtype == np.float32
    assert np.allclose(x[0], 1.0) and np.allclose(x[1], -1.0)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    channels = encoder.encode([red]).reshape(3, 32, 32)  # channel-major, as the conv student reads it
    assert np.allclose(channels[0], 1.0) and np.allclose(channels[1:], -1.0)
    assert build_encoder("pixels:64").fingerprint != encoder.fingerprint
    with pytest.raises(ConfigError, match="whole number"):
        build_encoder("pixels:big")


def test_glove_words_tap_holds_the_vectors_the_pooled_feature_averages():
    glove = build_encoder("glove-6b-50d")
    texts = ["A dog runs on the beach.", "zzzqqq !!", "well-known don't"]
    words = glove.encode_taps(texts, ["words"])["words"]
    assert [w.shape for w in words] == [(6, 50), (1, 50), (3, 50)]  # unknown-only text: one zero token
    assert not words[1].any()
    pooled = glove.encode(texts)
    assert np.allclose(words[0].mean(0), pooled[0], atol=1e-6) and np.allclose(words[2].mean(0), pooled[2], atol=1e-6)


def test_efficientnet_at_another_size_keeps_the_default_fingerprint_and_runs_fewer_flops():
    default, small = build_encoder("efficientnet-lite0"), build_encoder("efficientnet-lite0:size=160")
    assert default.name == "efficientnet-lite0" and small.name == "efficientnet-lite0:size=160"
    assert small.fingerprint != default.fingerprint and small.preprocess.size == (160, 160)
    image = [np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)]
    full, cut = count_flops(lambda: default.encode(image)), count_flops(lambda: small.encode_taps(image, ["stride16"]))
    assert 0.25 < cut / full < 0.4  # (160/224)² ≈ 0.51 of the pixels, ≈ 0.63 of the network's FLOPs
    assert small.encode_taps(image, ["stride16"])["stride16"][0].shape == (49, 112)
    with pytest.raises(ConfigError, match="size"):
        build_encoder("efficientnet-lite0:size=abc")


def test_flops_are_counted_by_torch_and_split_into_encoder_and_head(shapes):
    linear = torch.nn.Linear(10, 20)
    assert count_flops(lambda: linear(torch.randn(3, 10))) == 2 * 3 * 10 * 20
    import latentfuse

    teacher = latentfuse.load(shapes["model"])
    costs = {c.side: c for c in model_cost(teacher, repeats=2, batches=(1, 4))}
    encoder = build_encoder("efficientnet-lite0")
    sample = [np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)]
    assert costs["image"].encoder_flops == count_flops(lambda: encoder.encode(sample))
    assert costs["image"].head_flops > 0 and costs["text"].encoder_flops > 0
    assert set(costs["image"].ms_per_item) == {1, 4} and min(costs["image"].ms_per_item.values()) > 0
    assert "efficientnet-lite0" in cost_table(list(costs.values()))


def test_student_grammar_errors_say_what_is_expected(shapes):
    import latentfuse
    from latentfuse.distill import parse_student

    teacher = latentfuse.load(shapes["model"])
    student = parse_student("image=truncated:stride8:128,text=glove-bag", teacher)
    assert student.encoders == {"image": "efficientnet-lite0:size=128", "text": "glove-6b-50d"}
    assert student.options["image_tap"] == "stride8" and student.options["text_student"] == "mlp"
    assert student.options["dim"] == teacher.dim
    for spec, message in (("image=resnet", "expected truncated"), ("image=truncated:stride99", "no tap 'stride99'"),
                          ("text=glove-transformer:zero", "whole number"), ("audio=x", "unknown tower 'audio'"),
                          ("image", "expected TOWER=KIND")):
        with pytest.raises(ConfigError, match=message):
            parse_student(spec, teacher)
    kept = parse_student("image=pixels:64,text=teacher", teacher)
    assert kept.encoders["text"] == "minilm-l6" and kept.options["teacher"]["method"] == "fusemix"


def test_towers_the_student_spec_leaves_out_follow_the_dime_options_so_the_paper_preset_is_one_flag(shapes):
    """`distill --set method.options.preset=paper` distilled a GloVe text tower too (the --student default named
    it): the released configuration distils the image tower alone."""
    import latentfuse
    from latentfuse.config import DistillConfig
    from latentfuse.config.recipes import load_recipe
    from latentfuse.distill import parse_student

    teacher = latentfuse.load(shapes["model"])
    default = parse_student("", teacher)
    assert default.encoders == {"image": "efficientnet-lite0", "text": "glove-6b-50d"}
    assert (default.options["image_student"], default.options["text_student"]) == ("attention", "transformer")
    paper = parse_student("", teacher, {"preset": "paper"})
    assert paper.encoders["text"] == "minilm-l6" and paper.options["text_student"] == "teacher"
    assert paper.options["image_student"] == "attention"
    assert parse_student("text=glove-bag", teacher, {"preset": "paper"}).options["text_student"] == "mlp"  # named
    assert parse_student("", teacher, {"image_student": "conv"}).encoders["image"] == "pixels:96"
    recipe = load_recipe("dime-paper", DistillConfig)
    assert recipe.method.options == {"preset": "paper"} and recipe.student == "" and recipe.augment == 2


def test_a_truncated_student_of_an_ensemble_teacher_runs_its_first_member_alone(shapes):
    import dataclasses

    import latentfuse
    from latentfuse.distill import parse_student

    teacher = latentfuse.load(shapes["model"])
    teacher.sides["image"] = dataclasses.replace(teacher.sides["image"],
                                                 encoder="efficientnet-lite0+efficientnet-lite2")
    assert parse_student("image=truncated:stride16,text=glove-bag", teacher).encoders["image"] == "efficientnet-lite0"
    small = parse_student("image=truncated:stride16:160,text=glove-bag", teacher)
    assert small.encoders["image"] == "efficientnet-lite0:size=160"
    assert parse_student("image=teacher,text=glove-bag", teacher).encoders["image"] == \
        "efficientnet-lite0+efficientnet-lite2"


def test_augmented_views_are_the_released_transform_drawn_once_per_view():
    """DIME-FM's student sees RandomResizedCrop(224, scale 0.08–1, ratio 3/4–4/3) + flip of the resized image;
    view k of an item is the same pixels in every run, another view is another draw."""
    from PIL import Image

    from latentfuse.encoders.augment import SIZE, augmented_view, crop_box
    from latentfuse.encoders.corrupt import item_rng

    rng = np.random.default_rng(0)
    for width, height in ((300, 200), (40, 900), (256, 256), (1, 1)):
        for _ in range(50):
            left, top, w, h = crop_box(width, height, rng)
            assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= width and top + h <= height
            if (width, height) == (256, 256):
                assert 0.08 * 256 * 256 - 256 <= w * h <= 256 * 256 and 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    pixels = np.random.default_rng(1).integers(0, 256, (120, 180, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    once = augmented_view(image, item_rng(1, pixels))
    assert once.shape == (SIZE, SIZE, 3) and once.dtype == np.uint8
    assert np.array_equal(once, augmented_view(image, item_rng(1, pixels)))
    assert not np.array_equal(once, augmented_view(image, item_rng(2, pixels)))
    gradient = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1))[..., None].repeat(3, 2))
    flipped = [augmented_view(gradient, np.random.default_rng(seed)) for seed in range(40)]
    falling = sum(int(v[0, 0, 0]) > int(v[0, -1, 0]) for v in flipped)  # a flipped left-to-right ramp falls
    assert 8 <= falling <= 32


def test_distill_with_augmented_views_distils_each_view_toward_the_whole_images_target(tmp_path, shapes):
    import dataclasses

    import latentfuse
    from latentfuse.config import DistillConfig, StoreConfig, StudentMethod, TrainConfig
    from latentfuse.distill import distill

    captions = tmp_path / "captions.txt"
    captions.write_text("a red circle\na blue square\na green triangle\n")
    n_images = len(list(shapes["images"].rglob("*.png")))
    config = DistillConfig(teacher=str(shapes["model"]), images=[f"images:{shapes['images']}"],
                           texts=[f"lines:{captions}"], student="image=pixels:32,text=teacher", augment=2,
                           out=str(tmp_path / "student"), store=StoreConfig(root=str(tmp_path / "store")),
                           train=TrainConfig(epochs=1, batch_size=32, threads=1), method=StudentMethod({}))
    distill(config, progress=False)
    student = latentfuse.load(tmp_path / "student")
    assert list(student.meta["pools"]["image"].values()) == [3 * n_images]  # each image and its 2 views
    views = list((tmp_path / "store").glob("v2/*"))
    assert len([p for p in views if p.name.startswith("pixels")]) == 3  # the clean images and 2 views, apart
    from latentfuse.distill import read_pools
    from latentfuse.encoders import build_encoder

    pool = read_pools(config.images, "image", "image", latentfuse.load(shapes["model"]), build_encoder("pixels:32"),
                      None, config, False)
    n = n_images
    assert pool.ids[n].endswith("#view1") and pool.ids[n].split("#")[0] == pool.ids[0]
    np.testing.assert_array_equal(pool.targets[n:2 * n], pool.targets[:n])  # a view's target: the whole image's
    assert not np.allclose(pool.inputs[n:2 * n], pool.inputs[:n])  # its input: the view's pixels
    with pytest.raises(ConfigError, match="augment=2 gives a distilled image tower augmented views"):
        distill(dataclasses.replace(config, student="image=teacher,text=glove-bag", out=str(tmp_path / "s2")),
                progress=False)
