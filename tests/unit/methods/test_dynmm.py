"""DynMM: DiffSoftmax, the resource loss by hand, the temperature schedule and phases, the accuracy/compute
trade-off on a world with a known answer, and inference that really skips the costly encoder."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentfuse.config import TrainConfig
from latentfuse.encoders.base import Encoder, Tap
from latentfuse.errors import ConfigError, ModelError
from latentfuse.methods.dynmm import DynMM
from latentfuse.metrics import f1_scores

validate = DynMM.validate  # the method's own validation hook
from latentfuse.methods import build_method
from latentfuse.methods.dynmm import diff_softmax, resource_loss
from latentfuse.model import JointModel, SideSpec
from latentfuse.store.paired import PairedFeatures
from latentfuse.train import Trainer

LABELS = list("abcd")


def test_diff_softmax_is_one_hot_forward_and_soft_backward():
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]], requires_grad=True)
    hard = diff_softmax(logits, tau=0.5, hard=True)
    assert hard.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    probe = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, 2.0]])
    (hard * probe).sum().backward()
    got = logits.grad.clone()
    logits.grad = None
    (torch.softmax(logits / 0.5, -1) * probe).sum().backward()
    assert torch.allclose(got, logits.grad)  # the straight-through gradient is the soft one
    assert torch.allclose(diff_softmax(logits, 2.0), torch.softmax(logits / 2.0, -1))


def test_resource_loss_by_hand():
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    costs = torch.tensor([0.1, 0.6, 1.0])
    # E[cost] = mean(0.1, 0.02 + 0.18 + 0.5) = mean(0.1, 0.7) = 0.4
    penalty, expected = resource_loss(weights, costs, budget=0.0)
    assert expected.item() == pytest.approx(0.4) and penalty.item() == pytest.approx(0.4)
    assert resource_loss(weights, costs, budget=0.25)[0].item() == pytest.approx(0.15)
    assert resource_loss(weights, costs, budget=0.5)[0].item() == 0.0


# the three-expert shape these tests were written for (the defaults are two experts since bench.dynmm_defaults)
THREE = {"experts": ["text", "image", "fusion"], "fusion_head": "late", "resource_units": "full-model",
         "resource_weight": 0.1, "freeze": False, "expert_epochs": 5}


def method(**options):
    dims = {"image": 32, "text": 16}
    return build_method("dynmm", dims, {"labels": LABELS, "encoder_flops": {"text": 1e6, "image": 9e6},
                                        **THREE, **options})


def test_phases_and_the_official_exponential_temperature():
    m = method(expert_epochs=2, tau_start=1.0, tau_end=0.001, freeze=True)
    m.begin_epoch(1, 7)
    assert m.phase == "experts" and not m.selectable
    m.begin_epoch(3, 7)  # the first gate epoch: τ = start
    assert m.selectable and m.tau == pytest.approx(1.0)
    assert all(not p.requires_grad for p in m.experts.parameters())  # freeze: only the gate trains
    assert all(p.requires_grad for p in m.gate.parameters())
    m.begin_epoch(7, 7)  # the last: τ = end; in between, ExpDecayTemp's start · b^epoch
    assert m.tau == pytest.approx(0.001)
    m.begin_epoch(5, 7)
    assert m.tau == pytest.approx(1.0 * math.exp(0.5 * math.log(0.001)))
    unfrozen = method(expert_epochs=1, freeze=False)
    unfrozen.begin_epoch(2, 3)
    assert all(p.requires_grad for p in unfrozen.parameters())  # the official default
    # costs: the cheap encoder and gate for everyone, the image encoder only for experts that read it
    assert m.flops[0] < 2e6 < 9e6 < m.flops[1] < m.flops[2]


def test_a_fusemix_head_as_the_fusion_expert():
    m = method(fusion_head="fusemix")
    batch = {"image": torch.randn(5, 32), "text": torch.randn(5, 16), "labels": torch.ones(5, 4)}
    m.begin_epoch(1, 3)
    loss, _ = m.loss(batch)
    loss.backward()
    assert m.experts[2].joint and not m.experts[0].joint and m.flops[2] > m.flops[1]
    assert all(p.grad is not None for p in m.experts[2].parameters() if p.requires_grad)


def test_bad_configs_are_named():
    with pytest.raises(ConfigError, match="needs labelled pairs"):
        build_method("dynmm", {"image": 4, "text": 4}, {})
    with pytest.raises(ConfigError, match="not one of text, image, fusion"):
        method(experts=["text", "audio"])
    with pytest.raises(ConfigError, match="mix the pooled"):
        build_method("dynmm", {"image": {"s1": 4}, "text": 4},
                     {"labels": LABELS, "experts": ["text", "fusion", "fusion@s1"]})


def world(n: int, seed: int) -> PairedFeatures:
    """Four labels seen in the image always; the text states them (and says so) for half the samples only:
    there the text expert is enough, elsewhere only the image knows."""
    g = np.random.default_rng(seed)
    labels = (g.random((n, 4)) < 0.4).astype(np.float32)
    told = (g.random(n) < 0.5).astype(np.float32)[:, None]
    mixing = np.random.default_rng(99).normal(size=(4, 32)).astype(np.float32)
    text = np.concatenate([labels * told * 3, told * 3, g.normal(size=(n, 11))], 1).astype(np.float32)
    image = (labels @ mixing + 0.3 * g.normal(size=(n, 32))).astype(np.float32)
    ids = [str(i) for i in range(n)]
    return PairedFeatures(("image", "text"), {"image": torch.from_numpy(image), "text": torch.from_numpy(text)},
                          {"image": ids, "text": ids}, np.stack([np.arange(n)] * 2, 1),
                          labels=torch.from_numpy(labels), label_names=tuple(LABELS))


def test_the_resource_weight_trades_f1_for_compute(tmp_path):
    train, val = world(800, 0), world(500, 1)
    results = {}
    for lam in (0.0, 0.3):
        torch.manual_seed(0)
        m = method(resource_weight=lam, expert_epochs=6, hidden=32)
        Trainer(m, TrainConfig(epochs=12, batch_size=64, lr=1e-2), tmp_path / str(lam), validate).fit(
            train, val, progress=False)
        results[lam] = validate(m, val)
    free, costly = results[0.0], results[0.3]
    chance = f1_scores(np.random.default_rng(0).random((500, 4)) < 0.4, val.labels.numpy())["micro"]
    assert free["f1"]["micro"] > 95 > chance + 40  # the image experts know every label
    assert free["costly_encoder_fraction"] > 0.95
    # paying for compute: the gate sends the samples whose text tells all to the text expert, so the image
    # encoder runs on about the other half only, and F1 stays high (measured: 99.2 at 46 % of the images)
    assert costly["costly_encoder_fraction"] < 0.7
    assert costly["mflops_per_sample"] < free["mflops_per_sample"] - 3
    assert costly["f1"]["micro"] > 96


class CountingImages(Encoder):
    """A fake image encoder that records every item it encodes, per tap ("" = pooled)."""

    modality, name, fingerprint, dim = "image", "counting-images", "counting", 32

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def encode(self, batch):
        self.seen += [("", int(x[0, 0, 0])) for x in batch]
        return np.stack([np.full(32, float(x[0, 0, 0])) for x in batch]).astype(np.float32)

    def taps(self):
        return {"s1": Tap("s1", 8, 4), "s2": Tap("s2", 32, 1)}

    def encode_taps(self, batch, taps):
        self.seen += [(tap, int(x[0, 0, 0])) for tap in taps for x in batch]
        channels = {"s1": 8, "s2": 32}
        return {tap: [np.full((4 if tap == "s1" else 1, channels[tap]), float(x[0, 0, 0]), np.float32)
                      for x in batch] for tap in taps}


class Texts(Encoder):
    modality, name, fingerprint, dim = "text", "texts", "texts", 16

    def encode(self, batch):
        return np.stack([np.full(16, 1.0 if t.startswith("easy") else -1.0) for t in batch]).astype(np.float32)


def model_with(experts: list[str], dims: dict, routes: dict[str, int]) -> tuple[JointModel, CountingImages]:
    """A JointModel whose gate sends "easy…" texts to expert ``routes["easy"]``, the rest to ``routes["hard"]``."""
    m = build_method("dynmm", dims, {"labels": LABELS, "experts": experts,
                                      "encoder_flops": {"text": 1e6, "image": 9e6, "image@s1": 2e6, "image@s2": 9e6}})
    m.route = lambda cheap: torch.where(cheap[:, 0] > 0, routes["easy"], routes["hard"])
    model = JointModel(m, [SideSpec("image", "image", "counting-images", "counting"),
                           SideSpec("text", "text", "texts", "texts")])
    images = CountingImages()
    model._encoders = {"image": images, "text": Texts()}
    return model, images


def images_numbered(n: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(n)]


def test_predict_never_encodes_the_images_of_samples_routed_to_text():
    model, images = model_with(["text", "image", "fusion"], {"image": 32, "text": 16}, {"easy": 0, "hard": 2})
    texts = ["easy one", "hard two", "easy three", "hard four", "hard five"]
    out = model.predict(images_numbered(5), texts, batch_size=2)
    assert images.seen == [("", 1), ("", 3), ("", 4)]  # only the pairs routed to fusion
    assert out["experts"] == ["text", "fusion", "text", "fusion", "fusion"]
    assert out["scores"].shape == (5, 4) and len(out["labels"]) == 5
    flops = model.method.flops
    assert out["mflops_per_sample"] == pytest.approx((2 * flops[0] + 3 * flops[2]) / 5 / 1e6)
    # the cached path gives the same scores for the same features
    with torch.no_grad():
        cached = model.method.classify({"text": torch.as_tensor(Texts().encode(texts)),
                                        "image": torch.as_tensor(CountingImages().encode(images_numbered(5)))})[0]
    assert np.allclose(torch.sigmoid(cached).numpy(), out["scores"], atol=1e-6)


def test_predict_refuses_a_missing_or_nan_image_even_when_its_pair_is_routed_to_text():
    """Accepted silently before: a pair's image is part of its input whichever expert the gate then picks."""
    from latentfuse.errors import ConfigError

    model, images = model_with(["text", "image", "fusion"], {"image": 32, "text": 16}, {"easy": 0, "hard": 2})
    pictures = images_numbered(2)
    with pytest.raises(ConfigError, match="pair 0 has no image input"):
        model.predict([None, pictures[1]], ["easy one", "hard two"])
    broken = np.full((4, 4, 3), np.nan, np.float32)
    with pytest.raises(ConfigError, match="pair 0's image input holds NaN or inf values"):
        model.predict([broken, pictures[1]], ["easy one", "hard two"])
    assert images.seen == []  # refused before any encoding


def test_predict_runs_the_image_encoder_only_up_to_the_routed_tap():
    model, images = model_with(["text", "fusion@s1", "fusion@s2"], {"image": {"s1": 8, "s2": 32}, "text": 16},
                               {"easy": 1, "hard": 2})
    model.predict(images_numbered(4), ["easy a", "hard b", "easy c", "hard d"])
    assert sorted(images.seen) == [("s1", 0), ("s1", 2), ("s2", 1), ("s2", 3)]
    with pytest.raises(ModelError, match="has no embedding space"):
        model.encode_text(["a"])
    with pytest.raises(ModelError, match="one text per image"):
        model.predict(images_numbered(2), ["a"])


def test_train_a_dynmm_model_end_to_end_and_predict_with_it(tmp_path, monkeypatch):
    """The pipeline glue: flickr8k-tags → cached features → dynmm (labels and encoder FLOPs filled in from the
    data) → a test report with F1 and routing → a saved model that predicts from raw inputs."""
    from helpers import fakes  # noqa: F401  (registers fake-text)
    from PIL import Image

    from latentfuse.config import DataConfig, MethodSpec, RunConfig, StoreConfig
    from latentfuse.data import flickr8k_tags
    from latentfuse.pipeline import run
    from helpers.tables import write_flickr8k

    monkeypatch.setattr(flickr8k_tags, "MIN_IMAGES", 2)
    colours = {"dog": (200, 30, 30), "car": (30, 30, 200)}
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "val": {}, "test": {}}
    for i in range(48):
        split = "train" if i < 32 else "val" if i < 40 else "test"
        tag = "dog" if i % 2 else "car"
        splits[split][f"{i}.jpg"] = [f"a {tag} number {i}", f"the {tag} here", f"one {tag}", "something", "a thing"]
    root = write_flickr8k(tmp_path / "f8k", splits)
    for i in range(48):
        Image.new("RGB", (16, 16), colours["dog" if i % 2 else "car"]).save(root / "images" / f"{i}.jpg")
    config = RunConfig(data=DataConfig(source=f"flickr8k-tags:{root}"), baselines=[],
                       encoders={"image": "pixels:16", "text": "fake-text:16"},
                       method=MethodSpec("dynmm", {"expert_epochs": 8, "hidden": 32, "resource_weight": 0.0}),
                       store=StoreConfig(root=str(tmp_path / "store")), out=str(tmp_path / "run"))
    config.train.epochs, config.train.batch_size, config.train.lr = 16, 16, 1e-2
    report = run(config, progress=False)[0]
    assert report["task"] == "classification" and report["labels"] == ["car", "dog"]
    assert report["metrics"]["f1"]["micro"] > 95  # the pixels tell the tag even when the caption does not
    assert 0 < report["metrics"]["mflops_per_sample"] and set(report["metrics"]["share"]) == {"text", "fusion"}
    model = JointModel.load(tmp_path / "run")
    assert model.method.config.encoder_flops["text"] >= 0 and "image" in model.method.config.encoder_flops
    out = model.predict([np.full((16, 16, 3), colours["dog"], np.uint8)], ["something else"])
    assert out["labels"] == [["dog"]]
    # the eval task scores the saved model the same way, and refuses data without labels
    from latentfuse.eval.tasks import task

    store = StoreConfig(root=str(tmp_path / "store"))
    again = task("classification").run(model, f"flickr8k-tags:{root}", "test", store, progress=False)
    assert again["metrics"] == report["metrics"]  # same cached features, same model: the same numbers
    with pytest.raises(ConfigError, match="needs labelled pairs"):
        task("classification").run(model, f"flickr8k:{root}", "test", store, progress=False)
    with pytest.raises(ConfigError, match="scored on labelled pairs; this data has none"):
        task("robustness").run(model, f"flickr8k:{root}", "test", store, {"corruptions": ["feature-noise"]},
                               progress=False)


def test_the_defaults_are_the_candidate_chosen_on_val():
    """methods/dynmm.py's defaults are the options of the candidate ``bench.dynmm_defaults`` chose on val (its
    result file, rendered in docs/results.md): code and measurement cannot drift apart."""
    import dataclasses
    import json
    from pathlib import Path

    from latentfuse.methods import make_config

    published = json.loads((Path(__file__).resolve().parents[3] / "docs/benchmarks/dynmm-defaults.json").read_text())
    chosen = next(row for row in published["rows"] if row["label"] == published["chosen"])
    defaults = dataclasses.asdict(make_config("dynmm"))
    assert {key: defaults[key] for key in chosen["options"]} == chosen["options"]
    assert len(chosen["options"]["experts"]) > 1  # a dynamic default: the gate has a choice to make
