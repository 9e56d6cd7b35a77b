"""FuseMix's `paper` preset is the official adapter and objective (lavis mlp_contrastive_fusion.py + the paper's
run config), checked against a plain re-statement of that architecture, and it trains."""
from __future__ import annotations

import pytest
import torch

from latentfuse.config import TrainConfig
from latentfuse.errors import ConfigError
from latentfuse.eval.retrieval import validate
from latentfuse.losses import latent_mixup
from latentfuse.methods import build_method, make_config
from latentfuse.train import Trainer

from helpers.pairs import synthetic_pairs


def official_parameter_count(d_in: int, proj: int = 512, blocks: int = 4, expansion: int = 4) -> int:
    """Block(dim) = LayerNorm(dim) + Linear(dim, e·dim) + Linear(e·dim, dim); then LayerNorm + Linear(dim, proj)."""
    block = 2 * d_in + (d_in * expansion * d_in + expansion * d_in) + (expansion * d_in * d_in + d_in)
    return blocks * block + 2 * d_in + d_in * proj + proj


def test_paper_preset_is_the_official_adapter():
    method = build_method("fusemix", {"image": 96, "text": 64}, {"preset": "paper"})
    for side, width in (("image", 96), ("text", 64)):
        adapter = method.adapters[side]
        assert sum(p.numel() for p in adapter.parameters()) == official_parameter_count(width)
        linears = [m for m in adapter.modules() if isinstance(m, torch.nn.Linear)]
        assert linears[0].in_features == width and linears[-1].out_features == 512  # blocks at input width
        dropouts = [m.p for m in adapter.modules() if isinstance(m, torch.nn.Dropout)]
        assert dropouts == [0.0] + [0.6] * 4  # no input dropout; 0.6 after each block's GELU only
    config = method.config
    assert (config.temperature_init, config.temperature_min, config.temperature_max) == (0.07, 0.001, 0.5)
    assert config.mixup_alpha == 1.0 and config.mixup_pairs == "halves" and not config.input_norm


def test_options_beside_a_preset_override_it_and_unknown_presets_are_named():
    assert make_config("fusemix", {"preset": "paper", "dropout": 0.1}).dropout == 0.1
    assert make_config("fusemix", {"preset": "paper"}).n_blocks == 4
    with pytest.raises(ConfigError, match="method 'fusemix': unknown preset 'huge'; presets: paper"):
        make_config("fusemix", {"preset": "huge"})
    with pytest.raises(ConfigError, match="unknown preset 'paper'; presets: none"):
        make_config("procrustes", {"preset": "paper"})


def test_half_batch_mixup_mixes_the_first_half_with_the_second():
    xa, xb = torch.randn(9, 4), torch.randn(9, 3)
    ma, mb, lam = latent_mixup(xa, xb, 1.0, torch.Generator().manual_seed(0), pairs="halves")
    assert ma.shape == (4, 4) and mb.shape == (4, 3) and 0 < lam < 1
    torch.testing.assert_close(ma, lam * xa[:4] + (1 - lam) * xa[4:8])
    torch.testing.assert_close(mb, lam * xb[:4] + (1 - lam) * xb[4:8])


def test_the_paper_preset_trains_far_above_chance(tmp_path):
    train, val = synthetic_pairs(1000, seed=1), synthetic_pairs(200, seed=2)
    method = build_method("fusemix", train.dims(), {"preset": "paper", "n_blocks": 1})
    Trainer(method, TrainConfig(epochs=6, batch_size=128, lr=1e-3, threads=1), tmp_path, validate).fit(
        train, val, progress=False)
    assert validate(method, val)["b2a"]["R@5"] > 10 * 100 * 5 / 200


def official_forward(method, vis_embed, text_embed, lam):
    """MLPContrastiveFusion.forward (lavis/models/fusion_models/mlp_contrastive_fusion.py) with mixup_alpha > 0 and
    the λ np.random.beta drew, on our adapters' weights: Block = x + fn(ln(x)), then LayerNorm + Linear."""
    import torch.nn.functional as F

    def proj(adapter, x):
        layers = list(adapter.net)[3:]  # past the preset's no-op input norm, dropout and projection
        *blocks, norm, linear = layers
        for block in blocks:
            ln, fc1, gelu, drop, fc2, _ = block.mlp
            x = x + fc2(drop(gelu(fc1(ln(x)))))
        return linear(norm(x))

    vis_embed1, vis_embed2 = vis_embed.chunk(2)
    text_embed1, text_embed2 = text_embed.chunk(2)
    vis_embed = lam * vis_embed1 + (1 - lam) * vis_embed2
    text_embed = lam * text_embed1 + (1 - lam) * text_embed2
    temp = torch.tensor(1.0 / float(method.logit_scale())).clamp(0.001, 0.5)
    v = F.normalize(proj(method.adapters["image"], vis_embed), dim=-1)
    t = F.normalize(proj(method.adapters["text"], text_embed), dim=-1)
    label = torch.arange(len(v))
    return (F.cross_entropy(v @ t.T / temp, label) + F.cross_entropy(t @ v.T / temp, label)) / 2


def test_the_paper_preset_loss_is_the_official_forward_on_the_same_weights():
    method = build_method("fusemix", {"image": 24, "text": 16}, {"preset": "paper", "n_blocks": 2}).eval()
    method.generator = torch.Generator().manual_seed(3)
    gen = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(10, 24, generator=gen), "text": torch.randn(10, 16, generator=gen)}
    with torch.no_grad():
        for parameter in method.parameters():  # off the init, so every weight counts
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=gen))
        ours, extras = method.loss(batch)
        theirs = official_forward(method, batch["image"], batch["text"], extras["lambda"])
    assert 0 < extras["lambda"] < 1
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
