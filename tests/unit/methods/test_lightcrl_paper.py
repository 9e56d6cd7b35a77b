"""LightCRL's `paper` preset is the official model: b-faye/lightweightCRL's ``text_image/baseline.py``
(``ProjectionHead``), ``text_image/<op>/fusion.py`` (``ContextEncoder``, the op, ``Fusion``) and ``<op>/model.py``
(``Model.forward``: the loss with logits × exp(clamp(t, 0.01, 20))), transcribed below, give the same loss on the
same weights for each of the six ops. The official biases that cancel in a softmax get random values here, so
the test also shows they cancel."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentfuse.methods import build_method, make_config
from latentfuse.methods.lightcrl import FUSIONS

DIMS = {"image": {"head": 12}, "text": {"layer6": 10}}


# ---------------------------------------------------------------- the official code, transcribed

def projection_head(head, x):
    """ProjectionHead.forward: linear → GELU → linear → dropout → LayerNorm."""
    linear1, _, linear2, _, norm = head.net
    return norm(linear2(F.gelu(linear1(x))))


def context(encoder, side, batch):
    """ContextEncoder.forward: the modality's κ (1, 3) through the encoder's MLP, repeated over the batch."""
    return encoder.mlp(encoder.kappa[side][None]).repeat(batch, 1)


def biased(linear, seed):
    """An official nn.Linear with our layer's weight and a bias of its own (ours has none where it cancels)."""
    official = nn.Linear(linear.in_features, linear.out_features)
    with torch.no_grad():
        official.weight.copy_(linear.weight)
        official.bias.copy_(torch.randn(linear.out_features, generator=torch.Generator().manual_seed(seed)))
    return official


def official_fusion(op, fusion, norm, layer, x, contexts):
    """Fusion.forward of text_image/<op>/fusion.py → average_outputs."""
    encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)  # deep-copies our layer
    if op in ("add", "mul"):
        base = x + contexts.unsqueeze(1) if op == "add" else x * contexts.unsqueeze(1)
        return torch.mean(base + encoder(norm(base)), dim=1)
    if op == "concat":
        concat = fusion.proj(torch.cat((x, contexts.unsqueeze(1).expand(-1, x.size()[1], -1)), dim=-1))
        residual = x + concat
    elif op == "additive-attention":  # BahdanauAttention: no tanh
        scores = biased(fusion.v, 1)(biased(fusion.w_q, 2)(contexts.unsqueeze(1)) + fusion.w_k(x))
        attention = (F.softmax(scores, dim=1) * x).sum(dim=1)
        residual = x + attention.unsqueeze(1).expand(-1, x.size()[1], -1)
    elif op == "general-attention":  # LuongAttention
        scores = torch.bmm(contexts.unsqueeze(1), biased(fusion.w, 3)(x).transpose(1, 2))
        attention = torch.bmm(F.softmax(scores, dim=-1), x).squeeze(1)
        residual = x + attention.unsqueeze(1).expand(-1, x.size()[1], -1)
    else:  # ScaledDotProduct
        keys, values, query = fusion.w_k(x), fusion.w_v(x), fusion.w_q(contexts.unsqueeze(1))
        scores = torch.bmm(query, keys.transpose(1, 2)) / x.shape[-1] ** 0.5
        residual = x + torch.bmm(F.softmax(scores, dim=-1), values)
    return torch.mean(residual + encoder(norm(residual)), dim=1)


def official_loss(method, images, texts):
    """Model.forward: fused averages, L2-normalised, logits × exp(clamp(t, 0.01, 20)), symmetric CE."""
    dfe, op = method.dfe, method.config.fusion
    t = torch.clamp(method.logit_scale.log_scale, min=0.01, max=20)
    out = {}
    for side, x in (("image", images), ("text", texts)):
        h = projection_head(dfe.heads[side], x)
        out[side] = F.normalize(official_fusion(op, dfe.fusion, dfe.norm, dfe.layer, h, context(dfe.context, side,
                                                                                                len(x))), dim=-1)
    logits = (out["image"] @ out["text"].T) * torch.exp(t)
    labels = torch.arange(logits.size(0))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2.0


# ---------------------------------------------------------------- the checks

@pytest.mark.parametrize("op", FUSIONS)
def test_the_paper_preset_is_the_official_model_on_the_same_weights(op):
    torch.manual_seed(0)
    method = build_method("lightcrl", DIMS, {"preset": "paper", "fusion": op}).eval()
    gen = torch.Generator().manual_seed(1)
    images, texts = torch.randn(6, 7, 12, generator=gen), torch.randn(6, 7, 10, generator=gen)
    full = torch.ones(6, 7, dtype=torch.bool)
    with torch.no_grad():
        method.logit_scale.log_scale.fill_(4.0)  # a trained scale: the logits' differences count in the loss
        ours, _ = method.loss({"image": {"head": (images, full)}, "text": {"layer6": (texts, full)}})
        theirs = official_loss(method, images, texts)
    assert abs(float(ours) - math.log(6)) > 0.05  # not the chance loss every model starts at
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_the_paper_preset_has_the_official_sizes_and_logit_scale():
    method = build_method("lightcrl", DIMS, {"preset": "paper", "fusion": "concat"})
    layer = method.dfe.layer
    assert (layer.linear1.in_features, layer.linear1.out_features, layer.self_attn.num_heads) == (256, 2048, 4)
    assert layer.dropout.p == 0.1 and method.dfe.heads["image"].net[3].p == 0.1
    assert isinstance(method.dfe.out, nn.Identity)  # the embedding is the 256-d mean itself
    assert method.dfe.context.kappa["image"].shape == (3,) and method.dfe.context.mlp[-1].normalized_shape == (10,)
    assert float(method.logit_scale()) == pytest.approx(math.exp(0.07))  # official: exp(t), t₀ = 0.07
    with torch.no_grad():  # clamped to [e^0.01, e^20]
        method.logit_scale.log_scale.fill_(30.0)
        method.logit_scale.clamp_()
    assert float(method.logit_scale.log_scale) == pytest.approx(20.0)
    assert make_config("lightcrl", {"preset": "paper", "width": 128}).width == 128  # options beside it win


def test_without_tanh_the_additive_scores_ignore_the_context_as_officially():
    method = build_method("lightcrl", DIMS, {"preset": "paper", "fusion": "additive-attention"}).eval()
    x = (torch.randn(3, 5, 12), torch.ones(3, 5, dtype=torch.bool))
    with torch.no_grad():
        before = method.attention("image", {"head": x})
        method.dfe.context.kappa["image"].add_(5.0)
        assert torch.allclose(method.attention("image", {"head": x}), before, atol=1e-6)
        ours = build_method("lightcrl", DIMS, {"inputs": "tokens", "fusion": "additive-attention", "width": 32,
                                               "dim": 32}).eval()
        before = ours.attention("image", {"head": x})
        ours.dfe.context.kappa["image"].add_(5.0)
        assert not torch.allclose(ours.attention("image", {"head": x}), before, atol=1e-3)  # with tanh it matters


def test_the_residual_mlp_concat_is_the_token_forms():
    from latentfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="concat_form: residual-mlp is the token form's"):
        make_config("lightcrl", {"fusion": "concat", "concat_form": "residual-mlp"})
