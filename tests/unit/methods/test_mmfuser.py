"""MMFuser: masks (a padded token never changes an output), the block really reads the shallow taps (a
gradient reaches them, perturbing one changes the output, with γ = 0 the output is the deep-only path), the
deformable sampler against a slow reference loop, and learning from a signal only a shallow tap carries."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.config import TrainConfig
from latentfuse.errors import ConfigError
from latentfuse.eval.retrieval import validate
from latentfuse.methods import build_method
from latentfuse.methods.deformable import MultiScaleDeformableAttention, reference_points, sample_levels
from latentfuse.train import Trainer
from helpers.pairs import MMFUSER_SMALL as SMALL, shallow_signal_pairs  # noqa: F401

DIMS = {"image": {"shallow": 12, "mid": 20, "deep": 16}, "text": 10}


def tokens(batch: int, seed: int = 0, n: int = 49) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {tap: (torch.randn(batch, n, c, generator=gen), torch.ones(batch, n, dtype=torch.bool))
            for tap, c in DIMS["image"].items()}


def fuser(**options):
    method = build_method("mmfuser", DIMS, {**SMALL, **options})
    return method.eval()


@pytest.mark.parametrize("pool", ["attention", "mean"])
def test_padded_tokens_never_change_an_output(pool):
    method = fuser(pos_embed=False, pool=pool, gamma_init=0.5)
    x = tokens(3, n=9)
    padded = {}
    for tap, (t, m) in x.items():
        garbage = 100 * torch.randn(3, 7, t.shape[2])
        padded[tap] = (torch.cat([t, garbage], 1), torch.cat([m, torch.zeros(3, 7, dtype=torch.bool)], 1))
    with torch.no_grad():
        torch.testing.assert_close(method.encode("image", padded), method.encode("image", x), atol=1e-5, rtol=1e-5)


def test_the_block_reads_the_shallow_taps():
    method = fuser(gamma_init=0.1)
    x = tokens(4)
    shallow = x["shallow"][0].clone().requires_grad_(True)
    out = method.encode("image", {**x, "shallow": (shallow, x["shallow"][1])})
    out.sum().backward()
    assert shallow.grad is not None and float(shallow.grad.abs().sum()) > 0  # a gradient reaches it
    with torch.no_grad():
        noise = torch.randn(x["shallow"][0].shape, generator=torch.Generator().manual_seed(5))  # not a constant
        moved = {**x, "shallow": (x["shallow"][0] + noise, x["shallow"][1])}  # shift: LayerNorm removes those
        assert not torch.allclose(method.encode("image", moved), method.encode("image", x))


def test_with_gamma_zero_the_output_is_the_deep_only_path():
    method = fuser(gamma_init=0.0)
    x = tokens(4)
    with torch.no_grad():
        image = method.heads["image"]
        deep, mask = x["deep"]
        h = image.project["deep"](deep) + image.level[2]  # what the block returns when γ1 = γ2 = 0
        fused, _ = image.fused_tokens(x)
        torch.testing.assert_close(fused, h)
        changed = {**x, "shallow": (torch.randn_like(x["shallow"][0]), x["shallow"][1]),
                   "mid": (torch.randn_like(x["mid"][0]), x["mid"][1])}
        torch.testing.assert_close(method.encode("image", changed), method.encode("image", x))


def slow_deformable_read(value, sides, locations, weights):
    """The deformable read as plain loops and hand-written bilinear interpolation (zero padding,
    align_corners=False): the reference for ``sample_levels``."""
    batch, _, heads, d = value.shape
    _, queries, _, levels, points, _ = locations.shape
    out = torch.zeros(batch, queries, heads, d, dtype=torch.float64)
    starts = np.cumsum([0] + [s * s for s in sides])
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                for lv, side in enumerate(sides):
                    grid = value[b, starts[lv]:starts[lv + 1], h].double().view(side, side, d)
                    for p in range(points):
                        x = float(locations[b, q, h, lv, p, 0]) * side - 0.5
                        y = float(locations[b, q, h, lv, p, 1]) * side - 0.5
                        x0, y0 = int(np.floor(x)), int(np.floor(y))
                        sample = torch.zeros(d, dtype=torch.float64)
                        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                                if 0 <= xx < side and 0 <= yy < side:
                                    sample += wy * wx * grid[yy, xx]
                        out[b, q, h] += float(weights[b, q, h, lv, p]) * sample
    return out.reshape(batch, queries, heads * d)


def test_the_deformable_sampler_matches_a_slow_reference_loop():
    gen = torch.Generator().manual_seed(3)
    sides, heads, d, points, queries = [4, 2, 3], 2, 3, 3, 5
    value = torch.randn(2, sum(s * s for s in sides), heads, d, generator=gen)
    locations = torch.rand(2, queries, heads, len(sides), points, 2, generator=gen) * 1.4 - 0.2  # some outside
    weights = torch.rand(2, queries, heads, len(sides), points, generator=gen)
    fast = sample_levels(value, sides, locations, weights)
    torch.testing.assert_close(fast.double(), slow_deformable_read(value, sides, locations, weights), atol=1e-5,
                               rtol=1e-5)


def test_deformable_attention_starts_at_the_reference_points():
    attention = MultiScaleDeformableAttention(8, levels=2, heads=2, points=1)
    assert reference_points(4).tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    out = attention(torch.randn(2, 4, 8), torch.randn(2, 16 + 4, 8), [16, 4])
    assert out.shape == (2, 4, 8) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="square token grids"):
        attention(torch.randn(2, 4, 8), torch.randn(2, 15 + 4, 8), [15, 4])


def test_options_are_checked():
    with pytest.raises(ConfigError, match="heads=5 must divide width=32"):
        build_method("mmfuser", DIMS, {**SMALL, "heads": 5})
    with pytest.raises(ConfigError, match=r"taps \['nope'\] are not among the side's inputs"):
        build_method("mmfuser", DIMS, {**SMALL, "taps": ["nope"]})
    with pytest.raises(ConfigError, match="mmfuser fuses the taps of an image side"):
        from latentfuse.methods.mmfuser import MMFuser, MMFuserConfig

        MMFuser.wanted_taps(MMFuserConfig(), {"text_a": "text", "text_b": "text"})




def test_mmfuser_learns_from_a_signal_only_a_shallow_tap_carries(tmp_path):
    train, val = shallow_signal_pairs(600, 1), shallow_signal_pairs(100, 2)
    method = build_method("mmfuser", train.dims(), {**SMALL, "pos_embed": False})
    Trainer(method, TrainConfig(epochs=15, batch_size=100, lr=3e-3, threads=1), tmp_path, validate).fit(
        train, val, progress=False)
    after = validate(method, val)
    assert after["b2a"]["R@5"] > 5 * 100 * 5 / 100, after  # chance is 5 %
    assert float(method.heads["image"].block.gamma1.detach().abs().mean()) > 0.01  # the fusion branch opened
    deep_only = build_method("mmfuser", train.dims(), {**SMALL, "pos_embed": False, "taps": ["deep"]})
    Trainer(deep_only, TrainConfig(epochs=15, batch_size=100, lr=3e-3, threads=1), tmp_path / "deep",
            validate).fit(train, val, progress=False)
    assert validate(deep_only, val)["b2a"]["R@5"] < 2 * 100 * 5 / 100  # without the shallow tap: chance


def test_mmfuser_end_to_end_on_real_taps_train_save_load_index(shapes, tmp_path):
    """train (CLI) on the shapes' real EfficientNet taps → save → load → raw images embed exactly like their
    cached taps → an index built on the model finds red circles for "a red circle"."""
    from click.testing import CliRunner

    import latentfuse
    from latentfuse.cli import app
    from latentfuse.data import build_source
    from latentfuse.index import open_index
    from latentfuse.store import TapInputs, get_tokens
    from latentfuse.config import StoreConfig
    from helpers.shapes import is_match

    store = str(shapes["store"])
    args = ["train", "--data", f"pairs:{shapes['pairs']}", "--method", "mmfuser", "--out", str(tmp_path / "model"),
            "--epochs", "40", "--set", "data.val_split=", "--set", "data.test_split=all", "--set", "data.test_on_train=true", "--set",
            "data.train_split=all", "--set", f"store.root={store}", "--set", "train.batch_size=32",
            "--set", "train.lr=3e-3", "--set", "train.threads=1", "--set",
            "method.options={taps: [stride16, head], width: 64, heads: 4, dim: 64, hidden: 128}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    model = latentfuse.load(tmp_path / "model")
    assert model.method.side_taps("image") == ["stride16", "head"]

    source = build_source(f"pairs:{shapes['pairs']}")
    data = source.load("all")
    cached = TapInputs(get_tokens(source, data, "image", model.encoder("image"), ["stride16", "head"],
                                  StoreConfig(root=store), progress=False))
    paths = [item.payload for item in data.items["image"][:4]]
    np.testing.assert_allclose(model.encode_image(paths), model.encode_features("image", cached)[:4], atol=2e-3)

    index = tmp_path / "ix"
    built = CliRunner().invoke(app, ["index", "--model", str(tmp_path / "model"), "--data",
                                     f"images:{shapes['images']}", "--out", str(index), "--store", store])
    assert built.exit_code == 0, (built.output, built.exception)
    hits = open_index(index).search(text="a red circle", k=3)
    assert sum(is_match(h.id, "red", "circle") for h in hits) >= 2, [h.id for h in hits]


def test_level_attention_shares_sum_to_one_and_gammas_start_at_their_init():
    method = fuser(gamma_init=0.25)
    image = method.heads["image"]
    shares = image.level_attention(tokens(3))
    assert list(shares) == ["shallow", "mid", "deep"] and sum(shares.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0 < v < 1 for v in shares.values())
    assert image.gammas() == {"gamma1": pytest.approx(0.25), "gamma2": pytest.approx(0.25)}


def test_the_gates_opening_is_logged_every_epoch(tmp_path):
    """The γ gates start closed (0) and their opening over training is what the paper's claim is read from."""
    import json

    train, val = shallow_signal_pairs(300, 1), shallow_signal_pairs(60, 2)
    method = build_method("mmfuser", train.dims(), SMALL)
    Trainer(method, TrainConfig(epochs=2, batch_size=64, lr=3e-3, threads=1), tmp_path, validate).fit(
        train, val, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    gammas = [r["gamma1"] for r in records if "gamma1" in r]
    assert len(gammas) == 2 and 0 < gammas[0] and all(r["gamma2"] > 0 for r in records)  # opened from 0
