"""The GPU paths: training (fp32, bf16, fp16 with a gradient scaler) with features placed on the device and
random draws from CPU generators, encoders on the device agreeing with the CPU, and a saved model loaded
onto the GPU. Skipped, with the reason, where torch sees no CUDA device (the CPU paths are in
tests/test_runtime.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.config import TrainConfig
from latentfuse.encoders import build_encoder
from latentfuse.eval.retrieval import validate
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec, load
from latentfuse.train import Trainer, seed_everything
from latentfuse.utils.runtime import Runtime
from helpers.pairs import SMALL, synthetic_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(1000, seed=1), synthetic_pairs(200, seed=2)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("method", ["fusemix", "lightcrl"])
def test_training_on_the_gpu_learns(method, precision, data, tmp_path):
    train, val = data
    seed_everything(0)
    options = SMALL if method == "fusemix" else {"dim": 32, "width": 64, "mixup_alpha": 1.0}
    heads = build_method(method, train.dims(), options)
    Trainer(heads, TrainConfig(epochs=6, batch_size=200, seed=0), tmp_path, validate,
            Runtime("cuda", precision)).fit(train, val, progress=False)
    assert heads.device.type == "cuda"
    assert validate(heads, val)["b2a"]["R@5"] > 5 * 100 * 5 / 200


def test_encoders_on_the_gpu_agree_with_the_cpu():
    texts = ["a dog runs on the beach", "two children play football"]
    cpu = build_encoder("minilm-l6").encode(texts)
    gpu = build_encoder("minilm-l6", Runtime("cuda")).encode(texts)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)


def test_a_saved_model_loads_onto_the_gpu(data, tmp_path):
    train, _ = data
    method = build_method("fusemix", train.dims(), SMALL)
    sides = [SideSpec("image", "image", "fake-img", "fp1"), SideSpec("text", "text", "fake-text", "fp2")]
    JointModel(method, sides).save(tmp_path)
    cpu = JointModel.load(tmp_path).encode_features("text", train.x["text"][:8])
    gpu = load(tmp_path, device="cuda").encode_features("text", train.x["text"][:8])
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
