"""No silent wrong result: a diverged run stops with a message and saves nothing, NaN never ranks as a hit,
epochs=0 publishes nothing, out-of-range settings are refused naming the field."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.config import RunConfig, TrainConfig, apply_overrides
from latentfuse.errors import ConfigError, ModelError, TrainingError
from latentfuse.eval.retrieval import retrieval_metrics, validate
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec
from latentfuse.train import Trainer

from helpers.pairs import SMALL, synthetic_pairs

SIDES = [SideSpec("image", "image", "fake-image", "f1"), SideSpec("text", "text", "fake-text:8", "f2")]


def test_nan_embeddings_rank_last_not_first():
    """All-NaN embeddings used to give R@1 = 100 both ways (NaN never ranks above anything)."""
    n = 20
    nan = torch.full((n, 4), float("nan"))
    pairs = np.stack([np.arange(n), np.arange(n)], 1)
    metrics = retrieval_metrics(nan, nan, pairs)
    assert metrics["a2b"]["R@1"] == 0.0 and metrics["b2a"]["R@10"] == 0.0
    assert metrics["a2b"]["medr"] == n + 1
    good = torch.nn.functional.normalize(torch.randn(n, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    half = good.clone()
    half[:5] = float("nan")  # the broken queries miss; the rest still find themselves
    assert retrieval_metrics(half, good, pairs)["a2b"]["R@1"] == pytest.approx(100 * 15 / n)
    assert retrieval_metrics(good, half, pairs)["b2a"]["R@1"] <= 100 * 15 / n


def test_a_diverging_run_stops_at_the_first_nonfinite_loss_and_saves_nothing(tmp_path):
    train, val = synthetic_pairs(300, seed=1), synthetic_pairs(60, seed=2)
    train.x["image"][7, 3] = float("inf")  # one broken feature row: the loss of its batch is NaN
    method = build_method("fusemix", train.dims(), SMALL)
    trainer = Trainer(method, TrainConfig(epochs=3, batch_size=64, threads=1), tmp_path, validate)
    with pytest.raises(TrainingError, match=r"training diverged at epoch 1, step \d+/9: the loss is nan"):
        trainer.fit(train, val, progress=False)
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


def test_weights_that_go_nonfinite_are_never_checkpointed(tmp_path, monkeypatch):
    train, val = synthetic_pairs(300, seed=1), synthetic_pairs(60, seed=2)
    method = build_method("fusemix", train.dims(), SMALL)
    real_step = torch.optim.AdamW.step

    def poisoned(self, *args, **kwargs):  # the loss stays finite, the weights do not (a huge step)
        out = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    trainer = Trainer(method, TrainConfig(epochs=2, batch_size=600, threads=1), tmp_path, validate)
    with pytest.raises(TrainingError, match="epoch 1: 1 weight tensor"):
        trainer.fit(train, val, progress=False)
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


def test_nan_weights_are_neither_saved_nor_loaded(tmp_path):
    method = build_method("fusemix", {"image": 6, "text": 5}, SMALL)
    model = JointModel(method, SIDES)
    model.save_pretrained(tmp_path / "good")
    with torch.no_grad():
        next(method.parameters()).fill_(float("nan"))
    with pytest.raises(ModelError, match="refusing to save weights holding NaN/inf"):
        model.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "good" / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(tmp_path / "good" / "model.safetensors"), metadata={"format": "latentfuse-joint/1"})
    with pytest.raises(ModelError, match="hold NaN/inf .*diverged run"):
        JointModel.load(tmp_path / "good")


def test_nonfinite_features_are_refused_at_encoding():
    model = JointModel(build_method("fusemix", {"image": 6, "text": 5}, SMALL), SIDES)
    x = np.ones((4, 6), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ModelError, match=r"side 'image': 1 of 4 embeddings are NaN/inf \(first row 2\); "
                                         "the input features hold non-finite values"):
        model.encode_features("image", x)


def test_a_run_with_no_epoch_to_train_publishes_no_stale_checkpoint(tmp_path):
    """What epochs=0 used to do: load an earlier run's best.pt and publish it under the new config."""
    train = synthetic_pairs(200, seed=1)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": {}, "epoch": 9, "score": 1.0}, tmp_path / "checkpoints" / "best.pt")  # stale
    cfg = TrainConfig(epochs=1, batch_size=100, threads=1)
    cfg.epochs = 0  # past the declared range, as a config object built in code can be
    with pytest.raises(TrainingError, match="no epoch was trained"):
        Trainer(build_method("fusemix", train.dims(), SMALL), cfg, tmp_path).fit(train, None, progress=False)
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs: expected a number >= 1, got 0"),
    ("data.limit=-5", "data.limit: expected a number >= 0, got -5"),
    ("train.batch_size=-1", "train.batch_size: expected a number >= 2, got -1"),
    ("train.lr=1e6", "train.lr: expected a number > 0 and <= 10, got 1000000.0"),
    ("train.lr=.nan", "train.lr: expected a finite number, got nan"),
    ("train.warmup=1.5", "train.warmup: expected a number >= 0 and <= 1, got 1.5"),
    ("train.epochs=2.5", "train.epochs: expected an integer, got 2.5"),
    ("train.epochs=true", "train.epochs: expected an integer, got True"),
    ("store.shard_size=0", "store.shard_size: expected a number >= 1, got 0"),
    ("train.seed=-1", "train.seed: expected a number >= 0"),
])
def test_out_of_range_settings_name_the_field(override, message):
    with pytest.raises(ConfigError, match="--set: " + message.replace("(", r"\(").replace(".", r"\.")):
        apply_overrides(RunConfig(), [override])


def test_method_options_are_range_checked():
    with pytest.raises(ConfigError, match=r"method 'fusemix' options: dropout: expected a number >= 0 and < 1, "
                                          "got 1.0"):
        build_method("fusemix", {"a": 4, "b": 4}, {"dropout": 1.0})
    with pytest.raises(ConfigError, match="method 'asif' options: top_k: expected a number >= 1, got 0"):
        build_method("asif", {"a": 4, "b": 4}, {"top_k": 0})


def config_classes() -> list[type]:
    """Every configuration dataclass users can set: the run config tree, each method's and each task's
    options, the server's and the index backend's settings."""
    import dataclasses

    from latentfuse.eval.tasks import TASKS
    from latentfuse.index.backends import BackendConfig
    from latentfuse.methods import METHODS, method_class
    from latentfuse.serve.config import ServeConfig

    from latentfuse.config import DistillConfig

    found, todo = [], [RunConfig, DistillConfig, ServeConfig, BackendConfig]
    todo += [method_class(name).config_cls for name in METHODS.names()]
    todo += [TASKS.get(name).options_cls for name in TASKS.names()]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.append(cls)
        todo += [f.default_factory for f in dataclasses.fields(cls)
                 if callable(f.default_factory) and dataclasses.is_dataclass(f.default_factory)]
    return found


def test_every_numeric_setting_declares_its_range():
    """The rule that keeps `data.limit=-5` from meaning "no limit": a new numeric field without a declared
    range fails here, naming it."""
    import dataclasses
    import typing

    from latentfuse.config import field_checks

    undeclared = []
    for cls in config_classes():
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            base, checks = field_checks(hints[f.name])
            if typing.get_origin(base) is list:
                base, checks = field_checks(typing.get_args(base)[0])
            if base in (int, float) and not checks:
                undeclared.append(f"{cls.__name__}.{f.name}")
    assert not undeclared, f"numeric settings without a declared Range: {undeclared}"
    assert len(config_classes()) >= 10
