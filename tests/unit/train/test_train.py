"""Trainer + methods on synthetic paired latents: learning is real (recall far above chance), closed-form
baselines fit, checkpoints resume, and the saved JointModel reloads to the same embeddings."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from latentfuse.losses import MixPlan, latent_mixup, positive_weights, symmetric_infonce
from latentfuse.methods import build_method, make_config
from latentfuse.errors import ConfigError
from latentfuse.model import JointModel, SideSpec
from latentfuse.config import TrainConfig
from latentfuse.eval.retrieval import validate
from latentfuse.train import Trainer
from helpers.pairs import SMALL, synthetic_pairs  # noqa: F401




# tiny heads: one torch thread is faster than two for them, and far faster on a busy machine


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(1500, seed=1), synthetic_pairs(200, seed=2)


def test_fusemix_learns_far_above_chance(data, tmp_path):
    train, val = data
    method = build_method("fusemix", train.dims(), SMALL)
    before = validate(method, val)
    result = Trainer(method, TrainConfig(epochs=12, batch_size=128, lr=2e-3, threads=1), tmp_path, validate).fit(train, val, progress=False)
    after = validate(method, val)
    chance_r5 = 100 * 5 / 200
    assert after["b2a"]["R@5"] > 10 * chance_r5, after
    assert after["rsum"] > before["rsum"] + 100
    assert result.best_score == pytest.approx(after["rsum"])
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 13)) and "val/b2a/R@5" in log[0]
    assert 0.01 <= log[-1]["temperature"] <= 1.0


@pytest.mark.parametrize("name", ["procrustes", "cca", "asif"])
def test_closed_form_baselines_beat_chance(data, name, tmp_path):
    train, val = data
    method = build_method(name, train.dims(), {"dim": 12} if name != "asif" else {"top_k": 100, "power": 2.0})
    Trainer(method, TrainConfig(), tmp_path, validate).fit(train, val, progress=False)
    assert validate(method, val)["b2a"]["R@5"] > 5 * (100 * 5 / 200)


def test_resume_continues_to_the_same_result(data, tmp_path):
    train, val = data
    cfg = TrainConfig(epochs=4, batch_size=256, seed=3, threads=1)
    full = build_method("fusemix", train.dims(), SMALL)
    Trainer(full, cfg, tmp_path / "full", validate).fit(train, val, progress=False)

    half = build_method("fusemix", train.dims(), SMALL)
    Trainer(half, TrainConfig(epochs=2, batch_size=256, seed=3, threads=1), tmp_path / "part", validate).fit(train, val, progress=False)
    # same run directory, now asked for 4 epochs with --resume: continues at epoch 3
    resumed = build_method("fusemix", train.dims(), SMALL)
    ckpt = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 2
    Trainer(resumed, cfg, tmp_path / "part", validate).fit(train, val, resume=True, progress=False)
    epochs = [json.loads(l)["epoch"] for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    assert validate(resumed, val)["rsum"] > validate(build_method("fusemix", train.dims(), SMALL), val)["rsum"]


def test_joint_model_round_trip(data, tmp_path):
    train, val = data
    for name, options in (("fusemix", SMALL), ("asif", {}), ("cca", {"dim": 8})):
        method = build_method(name, train.dims(), options)
        Trainer(method, TrainConfig(epochs=1, batch_size=256, threads=1), tmp_path / name).fit(train, None, progress=False)
        sides = [SideSpec("image", "image", "fake-img", "fp1"), SideSpec("text", "text", "fake-text", "fp2")]
        JointModel(method, sides).save(tmp_path / name / "model")
        loaded = JointModel.load(tmp_path / name / "model")
        for side in ("image", "text"):
            np.testing.assert_allclose(loaded.encode_features(side, val.x[side][:20]),
                                       JointModel(method, sides).encode_features(side, val.x[side][:20]), atol=1e-6)


def test_mixup_shares_lambda_and_permutation():
    xa, xb = torch.arange(8.0)[:, None], 10 * torch.arange(8.0)[:, None]
    ma, mb, lam = latent_mixup(xa, xb, alpha=1.0, generator=torch.Generator().manual_seed(0))
    assert 0 < lam < 1
    torch.testing.assert_close(mb, 10 * ma)  # same λ and same partner on both sides
    same = latent_mixup(xa, xb, alpha=0.0)
    assert same[2] == 1.0 and same[0] is xa


def test_infonce_matches_reference():
    za = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    zb = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    logits = 10 * za @ zb.T
    ref = 0.5 * (-(logits.diag() - logits.logsumexp(1)).mean() - (logits.diag() - logits.logsumexp(0)).mean())
    torch.testing.assert_close(symmetric_infonce(za, zb, torch.tensor(10.0)), ref)


def test_unknown_method_option_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['blocks'\].*n_blocks"):
        make_config("fusemix", {"blocks": 3})


def test_same_seed_same_heads_whatever_ran_before(data, tmp_path):
    """The seed decides the heads' initialisation too, not only batches and mixup: two runs in one process
    (the global RNG already advanced by the first) train to identical weights."""
    from latentfuse.eval.retrieval import validate
    from latentfuse.pipeline import train_method

    train, val = data
    runs = [train_method("fusemix", SMALL, train, val, TrainConfig(epochs=1, batch_size=256, seed=5, threads=1),
                         tmp_path / f"run{k}", progress=False)[0] for k in range(2)]
    torch.rand(3)  # unrelated randomness in between must not matter either
    for (name, a), (_, b) in zip(runs[0].state_dict().items(), runs[1].state_dict().items()):
        assert torch.equal(a, b), name
    assert validate(runs[0], val) == validate(runs[1], val)


def test_multi_positive_targets_match_a_hand_computed_case():
    """Pairs 0 and 1 show the same image (item 0) with different captions: each is a correct answer for the
    other, so the targets of rows 0 and 1 split 1/2–1/2 between them; row 2 keeps its diagonal target."""
    items = {"image": torch.tensor([0, 0, 1]), "text": torch.tensor([0, 1, 2])}
    weights = positive_weights(items, MixPlan.identity(3))
    assert weights.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    za = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    zb = torch.tensor([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    scale = 2.0
    logits = [[scale * sum(a * b for a, b in zip(ra, rb)) for rb in zb.tolist()] for ra in za.tolist()]

    def cross_entropy(row: list[float], target: list[float]) -> float:
        log_z = math.log(sum(math.exp(v) for v in row))
        return -sum(t * (v - log_z) for t, v in zip(target, row))

    targets = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    columns = [list(col) for col in zip(*logits)]
    expected = 0.5 * (sum(cross_entropy(r, t) for r, t in zip(logits, targets)) / 3
                      + sum(cross_entropy(c, t) for c, t in zip(columns, targets)) / 3)
    got = symmetric_infonce(za, zb, torch.tensor(scale), weights)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(got) != pytest.approx(float(symmetric_infonce(za, zb, torch.tensor(scale))), rel=1e-3)
    unique = positive_weights({"image": torch.arange(3), "text": torch.arange(3)}, MixPlan.identity(3))
    torch.testing.assert_close(symmetric_infonce(za, zb, torch.tensor(scale), unique),
                               symmetric_infonce(za, zb, torch.tensor(scale)))


def test_mixed_pairs_match_as_much_as_their_parts_do():
    """λ = 0.25, pair i mixed with pair second[i]: weight = 0.25·[same item in first] + 0.75·[in second]."""
    items = {"image": torch.tensor([0, 0, 1])}
    plan = MixPlan(0.25, torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]))
    assert positive_weights(items, plan).tolist() == [[1.0, 0.25, 0.0], [0.25, 1.0, 0.75], [0.0, 0.75, 1.0]]


def test_fusemix_multi_positive_learns_from_the_batch_items(data, tmp_path):
    train, val = data
    batch = train.batch(torch.arange(8))
    assert batch["items"]["image"].tolist() == train.pairs[:8, 0].tolist()  # two captions per image: repeats
    method = build_method("fusemix", train.dims(), {**SMALL, "multi_positive": True}).eval()

    def loss(multi_positive: bool) -> float:  # the same λ, partners and (no) dropout: only the targets differ
        method.config.multi_positive, method.generator = multi_positive, torch.Generator().manual_seed(0)
        return float(method.loss(batch)[0].detach())

    assert loss(True) != pytest.approx(loss(False), rel=1e-4)
    method.config.multi_positive = True
    Trainer(method, TrainConfig(epochs=12, batch_size=128, lr=2e-3, threads=1), tmp_path, validate).fit(
        train, val, progress=False)
    assert validate(method, val)["b2a"]["R@5"] > 10 * 100 * 5 / 200  # chance: 5 of 200 images


def test_a_temperature_pushed_past_its_bound_comes_back():
    """The clamp used to sit in the forward pass only: past a bound the gradient is 0, AdamW's momentum carried
    the parameter further, and 20 steps the other way left it still past the bound (issue 27)."""
    from latentfuse.losses import LearnableTemperature

    for clamped in (False, True):
        temperature = LearnableTemperature(0.07, 0.01, 1.0)
        optimizer = torch.optim.AdamW(temperature.parameters(), lr=0.5, weight_decay=0.0)
        for direction in [-1.0] * 40 + [1.0] * 20:  # sharpen hard, then ask for a softer scale
            optimizer.zero_grad()
            (direction * temperature()).backward()
            optimizer.step()
            if clamped:
                temperature.clamp_()
        if clamped:
            assert temperature.log_scale.item() < temperature.hi - 1.0  # moved back inside, well off the bound
        else:
            assert temperature.log_scale.item() > temperature.hi  # the old behaviour: still frozen past it


def test_the_trainer_keeps_learnable_temperatures_within_their_bounds(data, tmp_path):
    method = build_method("fusemix", data[0].dims(), {**SMALL, "temperature_init": 0.01, "temperature_min": 0.01})
    Trainer(method, TrainConfig(epochs=2, batch_size=64), tmp_path).fit(data[0], None, progress=False)
    assert method.logit_scale.log_scale.item() <= method.logit_scale.hi + 1e-6
