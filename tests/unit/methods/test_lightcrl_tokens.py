"""LightCRL on token sequences (the published form): every fusion op ignores padding, attention weights live on
the real tokens only and follow their formulas, the sides share one Transformer layer, and it learns."""
from __future__ import annotations

import math

import pytest
import torch

from latentfuse.config import TrainConfig
from latentfuse.eval.retrieval import validate
from latentfuse.methods import build_method
from latentfuse.methods.lightcrl import FUSIONS, LightCRL, LightCRLConfig
from latentfuse.train import Trainer
from helpers.pairs import TOKEN_OPTIONS as OPTIONS, token_pairs  # noqa: F401

DIMS = {"image": {"head": 24}, "text": {"layer6": 16}}


def ragged(batch: int = 3, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = [7, 4, 2][:batch]
    mask = torch.tensor([[i < n for i in range(7)] for n in lengths])
    return {"layer6": (torch.randn(batch, 7, 16, generator=gen), mask)}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_padding_never_changes_an_output(fusion):
    method = build_method("lightcrl", DIMS, {**OPTIONS, "fusion": fusion}).eval()
    x = ragged()
    tokens, mask = x["layer6"]
    padded = {"layer6": (torch.cat([tokens, torch.randn(3, 5, 16) * 50], 1),  # five more padded positions
                         torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], 1))}
    garbage = {"layer6": (torch.where(mask[..., None], tokens, torch.randn_like(tokens) * 50), mask)}
    with torch.no_grad():
        reference = method.encode("text", x)
        torch.testing.assert_close(method.encode("text", padded), reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(method.encode("text", garbage), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fusion", ["additive-attention", "general-attention", "scaled-dot-attention"])
def test_attention_weights_are_the_formulas_over_real_tokens(fusion):
    method = build_method("lightcrl", DIMS, {**OPTIONS, "fusion": fusion}).eval()
    x = ragged()
    tokens, mask = x["layer6"]
    with torch.no_grad():
        weights = method.attention("text", x)
        dfe = method.dfe
        t, c, op = dfe.heads["text"](tokens), dfe.context("text"), dfe.fusion
        if fusion == "additive-attention":
            scores = torch.stack([torch.stack([op.v(torch.tanh(op.w_q(c) + op.w_k(t[b, i])))[0] for i in range(7)])
                                  for b in range(3)])
        elif fusion == "general-attention":
            scores = torch.einsum("d,de,bte->bt", c, op.w.weight, t)
        else:
            scores = torch.einsum("d,btd->bt", op.w_q(c), op.w_k(t)) / math.sqrt(32)
        expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(weights, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(weights[~mask] == 0) and torch.allclose(weights.sum(1), torch.ones(3))


def test_the_sides_share_one_transformer_layer_and_the_context_mlp():
    method = build_method("lightcrl", DIMS, {**OPTIONS, "fusion": "add"})
    names = [n for n, _ in method.named_parameters()]
    assert sum(n.startswith("dfe.layer.") for n in names) > 0
    assert not any("image" in n and "layer." in n for n in names)  # no per-side copy of the layer
    assert {n.split(".")[3] for n in names if n.startswith("dfe.context.kappa.")} == {"image", "text"}
    assert LightCRL.wanted_taps(LightCRLConfig(inputs="tokens"), {"image": "image", "text": "text"}) == {
        "image": ["head"], "text": ["layer6"]}
    assert LightCRL.wanted_taps(LightCRLConfig(), {"image": "image", "text": "text"}) == {}




@pytest.mark.parametrize("fusion", ["add", "scaled-dot-attention"])
def test_token_lightcrl_learns_far_above_chance(tmp_path, fusion):
    train, val = token_pairs(600, 1), token_pairs(100, 2)
    method = build_method("lightcrl", train.dims(), {**OPTIONS, "fusion": fusion})
    Trainer(method, TrainConfig(epochs=10, batch_size=100, lr=2e-3, threads=1), tmp_path, validate).fit(
        train, val, progress=False)
    assert validate(method, val)["b2a"]["R@5"] > 6 * 100 * 5 / 100
