"""LightCRL on synthetic paired latents: every fusion op learns through the shared Trainer, the DFE is one
module shared by both sides, attention ops really attend, bad configs say what is valid, and a saved
JointModel reloads to the same embeddings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.errors import ConfigError
from latentfuse.methods import build_method, make_config
from latentfuse.methods.lightcrl import ATTENTION_FUSIONS, FUSIONS
from latentfuse.model import JointModel, SideSpec
from latentfuse.config import TrainConfig
from latentfuse.eval.retrieval import validate
from latentfuse.train import Trainer
from helpers.pairs import synthetic_pairs

SMALL = {"dim": 32, "width": 64, "n_blocks": 1, "dropout": 0.1, "input_dropout": 0.1, "n_tokens": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: one thread is fastest, and it keeps a busy 2-core machine from thrashing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(1000, seed=1), synthetic_pairs(200, seed=2)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_learns_far_above_chance(data, fusion, tmp_path):
    train, val = data
    torch.manual_seed(0)
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": fusion})
    before = validate(method, val)
    Trainer(method, TrainConfig(epochs=8, batch_size=128, lr=3e-3), tmp_path, validate).fit(train, val, progress=False)
    after = validate(method, val)
    chance_r5 = 100 * 5 / 200
    assert after["b2a"]["R@5"] > 8 * chance_r5, (fusion, after)
    assert after["a2b"]["R@5"] > 8 * chance_r5, (fusion, after)
    assert after["rsum"] > before["rsum"] + 100, (fusion, before["rsum"], after["rsum"])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shapes_and_unit_norm(data, fusion):
    train, _ = data
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": fusion}).eval()
    for side in ("image", "text"):
        z = method.encode(side, train.x[side][:7])
        assert z.shape == (7, 32) and method.out_dim == 32
        torch.testing.assert_close(z.norm(dim=1), torch.ones(7))


def test_one_dfe_shared_by_both_sides(data):
    train, _ = data
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": "scaled-dot-attention"})
    method.eval()

    def touched(side: str) -> dict[str, torch.nn.Parameter]:
        method.zero_grad(set_to_none=True)
        method.encode(side, train.x[side][:16]).sum().backward()
        return {n: p for n, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}

    image, text = touched("image"), touched("text")
    shared_image = {n: p for n, p in image.items() if n.startswith("dfe.") and ".contexts." not in n}
    shared_text = {n: p for n, p in text.items() if n.startswith("dfe.") and ".contexts." not in n}
    # the same DFE parameters (same tensors, not copies) carry gradient from either side
    assert shared_image.keys() == shared_text.keys() and len(shared_image) >= 8
    assert all(shared_image[n] is shared_text[n] for n in shared_image)
    assert {n for n, _ in method.dfe.named_parameters()} >= {n[4:] for n in shared_image}
    # each side has its own context (inside the one DFE) and its own projection, and touches only those
    assert "dfe.contexts.image" in image and "dfe.contexts.image" not in text
    assert "dfe.contexts.text" in text and "dfe.contexts.text" not in image
    assert method.dfe.contexts["image"] is not method.dfe.contexts["text"]
    assert not any(n.startswith("projections.text") for n in image)
    assert not any(n.startswith("projections.image") for n in text)
    # the body's weights exist once: no per-side copies anywhere in the state dict
    assert sum(".body." in k for k in method.state_dict()) == sum(1 for _ in method.dfe.body.state_dict())


@pytest.mark.parametrize("fusion", ATTENTION_FUSIONS)
def test_attention_ops_attend_over_tokens(data, fusion, tmp_path):
    train, val = data
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": fusion})
    Trainer(method, TrainConfig(epochs=2, batch_size=128, lr=3e-3), tmp_path).fit(train, None, progress=False)
    method.eval()
    with torch.no_grad():
        weights = method.attention("image", val.x["image"][:50])
    assert weights.shape == (50, 8)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(50))
    assert weights.std(0).max() > 1e-4  # depends on the input, not a constant
    # the attention output really enters the embedding: zeroing it changes the result
    with torch.no_grad():
        before = method.encode("image", val.x["image"][:50])
        method.dfe.fusion.forward = lambda h, c: (h, None)  # attention switched off, residual kept
        after = method.encode("image", val.x["image"][:50])
    assert (before - after).abs().max() > 1e-3


def test_attention_weights_follow_the_formulas():
    """Each op's scores against a direct transcription of its formula."""
    torch.manual_seed(0)
    dims = {"image": 12, "text": 10}
    h, c = torch.randn(5, 16), torch.randn(16)
    for fusion in ATTENTION_FUSIONS:
        method = build_method("lightcrl", dims, {"fusion": fusion, "width": 16, "dim": 8, "n_tokens": 4})
        op = method.dfe.fusion
        t = op.lift(h.view(5, 4, 4)) + op.position
        if fusion == "additive-attention":
            scores = torch.einsum("a,bna->bn", op.v.weight[0], torch.tanh(op.w_q.weight @ c + op.w_k(t)))
            values = t
        elif fusion == "general-attention":
            scores = torch.einsum("d,de,bne->bn", c, op.w.weight, t)
            values = t
        else:
            scores = torch.einsum("d,bnd->bn", op.w_q.weight @ c, op.w_k(t)) / 4.0
            values = op.w_v(t)
        fused, weights = op(h, c)
        torch.testing.assert_close(weights, torch.softmax(scores, 1))
        torch.testing.assert_close(fused, h + torch.einsum("bn,bnd->bd", torch.softmax(scores, 1), values))


def test_unknown_fusion_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown fusion 'sum'.*add, mul, concat, additive-attention, "
                                          r"general-attention, scaled-dot-attention"):
        make_config("lightcrl", {"fusion": "sum"})
    with pytest.raises(ConfigError, match=r"n_tokens=7 must divide width=512"):
        make_config("lightcrl", {"fusion": "general-attention", "n_tokens": 7})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['tokens'\].*n_tokens"):
        make_config("lightcrl", {"tokens": 4})


@pytest.mark.parametrize("fusion", ["mul", "concat", "additive-attention"])
def test_joint_model_round_trip(data, fusion, tmp_path):
    train, val = data
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": fusion})
    Trainer(method, TrainConfig(epochs=1, batch_size=256), tmp_path).fit(train, None, progress=False)
    sides = [SideSpec("image", "image", "fake-img", "fp1"), SideSpec("text", "text", "fake-text", "fp2")]
    JointModel(method, sides).save(tmp_path / "model")
    loaded = JointModel.load(tmp_path / "model")
    assert loaded.method.config.fusion == fusion and loaded.method.name == "lightcrl"
    for side in ("image", "text"):
        np.testing.assert_allclose(loaded.encode_features(side, val.x[side][:20]),
                                   JointModel(method, sides).encode_features(side, val.x[side][:20]), atol=1e-6)


def test_text_text_sides(tmp_path):
    """Two text encoders of different widths (e.g. minilm-l6 384-d + glove 50-d) as text_a / text_b."""
    base = synthetic_pairs(600, seed=3, per=1)
    train = type(base)(("text_a", "text_b"), {"text_a": base.x["image"], "text_b": base.x["text"]},
                       {"text_a": base.ids["image"], "text_b": base.ids["text"]}, base.pairs)
    method = build_method("lightcrl", train.dims(), {**SMALL, "fusion": "general-attention"})
    Trainer(method, TrainConfig(epochs=4, batch_size=128, lr=3e-3), tmp_path).fit(train, None, progress=False)
    assert validate(method, train)["a2b"]["R@5"] > 5 * (100 * 5 / 600)


def test_mixup_option_reaches_the_loss(data):
    train, _ = data
    batch = {"image": train.x["image"][:64], "text": train.x["text"][:64]}
    plain = build_method("lightcrl", train.dims(), SMALL)
    assert plain.config.mixup_alpha == 0.0 and plain.loss(batch)[1]["lambda"] == 1.0
    mixed = build_method("lightcrl", train.dims(), {**SMALL, "mixup_alpha": 1.0})
    mixed.generator = torch.Generator().manual_seed(0)
    loss, extras = mixed.loss(batch)
    assert 0.0 < extras["lambda"] < 1.0 and torch.isfinite(loss) and 0.01 <= extras["temperature"] <= 1.0
