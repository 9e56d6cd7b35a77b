"""Device and precision: chosen once (Runtime), applied by the trainer, the encoders and JointModel.

On this CPU-only machine: bf16 autocast trains and encodes, precision keys the feature cache while the
device does not, and asking for a GPU that is not there is a one-line error. tests/test_cuda.py runs the
same paths on a GPU when there is one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers import fakes
from latentfuse.cli import app
from latentfuse.config import TrainConfig
from latentfuse.encoders import build_encoder
from latentfuse.errors import ConfigError
from latentfuse.eval.retrieval import validate
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec, load
from latentfuse.train import Trainer, seed_everything
from latentfuse.utils.runtime import Runtime, move, runtime
from helpers.pairs import SMALL, synthetic_pairs


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(1000, seed=1), synthetic_pairs(200, seed=2)


def trained(data, rt: Runtime, tmp_path) -> float:
    train, val = data
    seed_everything(0)
    method = build_method("fusemix", train.dims(), SMALL)
    Trainer(method, TrainConfig(epochs=6, batch_size=200, seed=0, threads=1), tmp_path, validate, rt).fit(
        train, val, progress=False)
    return validate(method, val)["b2a"]["R@5"]


def test_bf16_autocast_trains_on_a_cpu_about_as_well_as_fp32(data, tmp_path):
    fp32 = trained(data, Runtime("cpu", "fp32"), tmp_path / "fp32")
    bf16 = trained(data, Runtime("cpu", "bf16"), tmp_path / "bf16")
    chance = 100 * 5 / 200
    assert bf16 > 5 * chance and fp32 > 5 * chance
    assert abs(bf16 - fp32) < 5.0  # points of R@5: bf16 rounds activations, it does not break learning


def test_precision_keys_the_feature_cache_and_the_device_does_not():
    text = build_encoder("minilm-l6")
    fp32_key = text.cache_key
    assert fp32_key == text.fingerprint
    assert build_encoder("minilm-l6", Runtime("cpu", "bf16")).cache_key != fp32_key  # bf16 cached apart
    assert build_encoder("minilm-l6", Runtime("cuda:1", "fp32")).cache_key == fp32_key  # device: nothing
    assert build_encoder("minilm-l6", Runtime("cpu", "bf16")) is not text  # one instance per runtime
    fake = fakes.FakeTextEncoder("16").use(Runtime("cpu", "bf16"))
    assert fake.cache_key == fake.fingerprint  # an encoder that runs no torch ignores the precision


def test_bf16_encoding_agrees_with_fp32():
    texts = ["a dog runs on the beach", "two children play football", "a red car in the snow"]
    fp32 = build_encoder("minilm-l6").encode(texts)
    bf16 = build_encoder("minilm-l6", Runtime("cpu", "bf16")).encode(texts)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99 and np.abs(fp32 - bf16).max() > 0  # close, and really computed in bf16


def test_joint_model_moves_its_heads_and_refuses_a_missing_gpu(data, tmp_path):
    train, _ = data
    method = build_method("fusemix", train.dims(), SMALL)
    sides = [SideSpec("image", "image", "fake-img", "fp1"), SideSpec("text", "text", "fake-text", "fp2")]
    JointModel(method, sides).save(tmp_path / "model")
    model = load(tmp_path / "model", device="cpu", precision="bf16")
    assert model.runtime == Runtime("cpu", "bf16") and model.method.device == torch.device("cpu")
    out = model.encode_features("image", train.x["image"][:5])
    assert out.dtype == np.float32 and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-2)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            load(tmp_path / "model", device="cuda")


def test_move_places_nested_batches():
    batch = {"image": torch.zeros(2, 3), "text": {"layer1": (torch.zeros(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))}}
    moved = move(batch, "cpu")
    assert moved["image"] is batch["image"]  # already there: no copy
    assert moved["text"]["layer1"][1].dtype == torch.bool


def test_cli_names_a_missing_gpu_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(app, ["extract", "--data", "pairs:nowhere.tsv", "--device", "cuda"])
    assert result.exit_code != 0
    assert "sees no CUDA GPU on this machine" in (result.output + str(result.exception))


def test_runtime_resolves_auto_to_what_is_there():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime("auto").device == expected
    assert runtime("cpu", "bf16") == Runtime("cpu", "bf16")
