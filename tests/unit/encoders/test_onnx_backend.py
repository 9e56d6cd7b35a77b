"""The ONNX Runtime encoder backend: same features as torch (to float16 storage resolution, which is why the
two share the feature cache), one export per graph, a damaged graph rebuilt, a failing one refused, and
``auto`` falling back to torch with a message when onnxruntime is missing."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from latentfuse.encoders import ENCODERS, build_encoder, onnx_backend
from latentfuse.errors import ConfigError
from latentfuse.utils import runtime as runtime_module
from latentfuse.utils.runtime import resolve_backend, runtime

from helpers import tiny_models

pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime (the [onnx] extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")

WORDS = ["a", "cat", "dog", "sat", "on", "the", "mat", "red", "car", "photo", "of", "two", "children", "play"]
TEXTS = ["a cat sat on the mat", "two children play", "a red car", "a photo of a dog on the mat", "cat"]
TORCH, ONNX, INT8 = (runtime("cpu", "fp32", b) for b in ("torch", "onnx", "onnx-int8"))


def fresh(spec: str, rt):
    """A new encoder instance (``build_encoder`` keeps one per spec and runtime; these tests need new ones)."""
    return ENCODERS.build(spec).use(rt)


def photos() -> list[np.ndarray]:
    return [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.astronaut()]


def assert_float16_equal(onnx: np.ndarray, torch_out: np.ndarray) -> None:
    """Equal once stored as float16: within half a float16 step at the features' scale."""
    step = float(np.spacing(np.float16(np.abs(torch_out).max())))
    assert onnx.shape == torch_out.shape and onnx.dtype == np.float32
    assert float(np.abs(onnx - torch_out).max()) <= step / 2


def falls_back_to_torch(spec: str, caplog) -> str:
    """Encode on a fresh onnx instance, check that the torch path ran, and return what was logged."""
    onnx_backend._warn_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        features = fresh(spec, ONNX).encode(TEXTS)
    np.testing.assert_array_equal(features, fresh(spec, TORCH).encode(TEXTS))
    return caplog.text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"bert": tiny_models.bert(root / "bert", WORDS), "vit": tiny_models.vit(root / "vit"),
            "clip": tiny_models.clip(root / "clip", WORDS)}


@pytest.fixture(scope="module")
def lite1_weights(tmp_path_factory) -> Path:
    """EfficientNet-Lite1 (240 px) with random weights, as a state-dict file (its weights package is not
    a dependency): the export path is the same for every variant."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lite1") / "lite1.pth"
    torch.save(EfficientNet.from_name("efficientnet-lite1").state_dict(), path)
    return path


def test_packaged_encoders_give_torch_features_and_share_its_cache():
    for spec, items in (("efficientnet-lite0", photos()), ("minilm-l6", TEXTS)):
        on_torch, on_onnx = build_encoder(spec, TORCH), build_encoder(spec, ONNX)
        assert on_onnx.cache_key == on_torch.cache_key  # the float16-equal features below are why
        assert_float16_equal(on_onnx.encode(items), on_torch.encode(items))
        assert on_onnx._sessions._made, f"{spec} did not run on ONNX Runtime"
        assert all(session is not None for session in on_onnx._sessions._made.values())


def test_taps_agree_too():
    image_taps = ["stride8", "stride16", "head"]
    on_torch = build_encoder("efficientnet-lite0", TORCH).encode_taps(photos()[:2], image_taps)
    on_onnx = build_encoder("efficientnet-lite0", ONNX).encode_taps(photos()[:2], image_taps)
    text_on_torch = build_encoder("minilm-l6", TORCH).encode_taps(TEXTS, ["layer2", "layer6"])
    text_on_onnx = build_encoder("minilm-l6", ONNX).encode_taps(TEXTS, ["layer2", "layer6"])
    for torch_out, onnx_out in ((on_torch, on_onnx), (text_on_torch, text_on_onnx)):
        for tap, tokens in torch_out.items():
            for a, b in zip(onnx_out[tap], tokens):
                assert_float16_equal(a, b)
    assert [t.shape for t in text_on_onnx["layer2"]] == [t.shape for t in text_on_torch["layer2"]]  # true lengths


def test_tiny_hugging_face_models_and_another_variant(tiny, lite1_weights):
    pictures = [np.random.default_rng(i).integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8) for i in range(3)]
    cases = [(f"hf:{tiny['bert']}#mean", TEXTS), (f"hf:{tiny['bert']}#cls#normalize", TEXTS),
             (f"hf:{tiny['vit']}", pictures), (f"hf:{tiny['clip']}#image", pictures),
             (f"hf:{tiny['clip']}#text", TEXTS), (f"efficientnet-lite1:{lite1_weights}", photos()[:2])]
    for spec, items in cases:
        on_torch, on_onnx = fresh(spec, TORCH), fresh(spec, ONNX)
        assert_float16_equal(on_onnx.encode(items), on_torch.encode(items))
        assert None not in on_onnx._sessions._made.values(), spec
    vit_taps = fresh(f"hf:{tiny['vit']}", ONNX).encode_taps(pictures, ["layer1"])["layer1"]
    for a, b in zip(vit_taps, fresh(f"hf:{tiny['vit']}", TORCH).encode_taps(pictures, ["layer1"])["layer1"]):
        assert_float16_equal(a, b)


def test_a_graph_is_exported_once_then_reused(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(tmp_path))
    exports = []
    real_export = onnx_backend._export
    monkeypatch.setattr(onnx_backend, "_export", lambda *a: exports.append(a[2].encoder) or real_export(*a))
    spec = f"hf:{tiny['bert']}"
    first = fresh(spec, ONNX).encode(TEXTS)
    graphs = list(tmp_path.glob("*.onnx"))
    assert len(exports) == 1 and len(graphs) == 1
    stamp = graphs[0].stat().st_mtime_ns
    second = fresh(spec, ONNX)  # a new instance, as in a new process
    np.testing.assert_array_equal(second.encode(TEXTS), first)
    assert len(exports) == 1 and graphs[0].stat().st_mtime_ns == stamp
    record = json.loads(graphs[0].with_suffix(".json").read_text())
    assert record["ok"] and record["max_abs_diff"] < 1e-4 and record["exporter"] == "torchscript"


def test_a_damaged_cached_graph_is_detected_and_rebuilt(tiny, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(tmp_path))
    spec = f"hf:{tiny['bert']}"
    expected = fresh(spec, ONNX).encode(TEXTS)
    graph = next(tmp_path.glob("*.onnx"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\0" * 64  # a flipped region: still a file, wrong weights
    graph.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        again = fresh(spec, ONNX).encode(TEXTS)
    assert "the cached ONNX graph is missing or damaged (its SHA-256 differs); rebuilding it" in caplog.text
    np.testing.assert_allclose(again, expected, atol=1e-6)
    assert bytes(data) != graph.read_bytes()


def test_a_graph_edited_in_place_with_its_mtime_restored_is_rebuilt(tiny, tmp_path, monkeypatch, caplog):
    """Same size, same mtime, other weights: the stat-keyed digest table would pass it, and its features
    (cosine 0.03 to torch) would land in the feature cache torch runs share."""
    import os

    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(tmp_path))
    spec = f"hf:{tiny['bert']}"
    expected = fresh(spec, TORCH).encode(TEXTS)
    fresh(spec, ONNX).encode(TEXTS)
    graph = next(tmp_path.glob("*.onnx"))
    stat = graph.stat()
    data = bytearray(graph.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    with open(graph, "r+b") as handle:  # in place: same inode, same size
        handle.write(bytes(data))
    os.utime(graph, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        again = fresh(spec, ONNX).encode(TEXTS)
    assert "its SHA-256 differs" in caplog.text
    assert_float16_equal(again, expected)


def test_a_graph_of_another_origin_copied_over_the_name_is_rebuilt(tiny, tmp_path, monkeypatch, caplog):
    """The int8 graph and its sidecar copied over the fp32 graph's names: refused by the sidecar's origin, and
    by the origin stamped inside the graph when only the sidecar was made to match."""
    import shutil

    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(tmp_path))
    spec = f"hf:{tiny['bert']}"
    expected = fresh(spec, TORCH).encode(TEXTS)
    fresh(spec, ONNX).encode(TEXTS)
    fresh(spec, INT8).encode(TEXTS)
    fp32 = next(p for p in tmp_path.glob("*.onnx") if "-int8-" not in p.name)
    int8 = next(p for p in tmp_path.glob("*.onnx") if "-int8-" in p.name)
    shutil.copy(int8, fp32)
    shutil.copy(int8.with_suffix(".json"), fp32.with_suffix(".json"))
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        assert_float16_equal(fresh(spec, ONNX).encode(TEXTS), expected)
    assert "the sidecar describes another graph" in caplog.text
    caplog.clear()
    shutil.copy(int8, fp32)  # the graph alone, its sidecar edited to claim it: the stamp inside says otherwise
    record = json.loads(fp32.with_suffix(".json").read_text())
    record["digest"] = onnx_backend.verified_digest(fp32)
    fp32.with_suffix(".json").write_text(json.dumps(record))
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        assert_float16_equal(fresh(spec, ONNX).encode(TEXTS), expected)
    assert "is a graph of another origin" in caplog.text


def test_a_graph_that_disagrees_with_torch_is_refused_once(tiny, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(tmp_path))
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", 0.0)  # any float difference now counts as wrong
    spec = f"hf:{tiny['bert']}"
    logged = falls_back_to_torch(spec, caplog)
    assert f"{spec}: its onnx graph was refused (max |onnx - torch|" in logged
    assert "running it on torch" in logged
    assert not list(tmp_path.glob("*.onnx"))  # nothing published
    sidecar = next(tmp_path.glob("*.json"))
    assert json.loads(sidecar.read_text())["ok"] is False
    exports = []
    monkeypatch.setattr(onnx_backend, "_export", lambda *a: exports.append(1))
    fresh(spec, ONNX).encode(TEXTS)
    assert not exports  # the refusal is remembered, not re-tried on every run


def test_an_unwritable_graph_cache_falls_back_to_torch_with_a_message(tiny, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LATENTFUSE_ONNX_CACHE", str(blocker / "onnx"))
    spec = f"hf:{tiny['bert']}"
    logged = falls_back_to_torch(spec, caplog)
    assert f"{spec}: cannot write its ONNX graph under {blocker / 'onnx'}" in logged
    assert "running it on torch (set LATENTFUSE_ONNX_CACHE to a writable folder)" in logged


def test_int8_has_its_own_cache_key_and_stays_close(tiny):
    spec = f"hf:{tiny['bert']}#mean"
    on_torch, on_int8 = fresh(spec, TORCH), fresh(spec, INT8)
    assert on_int8.cache_key != on_torch.cache_key
    a, b = on_int8.encode(TEXTS), on_torch.encode(TEXTS)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.95 and not np.allclose(a, b, atol=1e-6)  # quantised: close, not equal
    graph = next(p for p in onnx_backend.graph_dir().glob("*int8*.onnx") if p.name.startswith("hf_"))
    import onnx

    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops


def test_auto_falls_back_to_torch_with_one_message_without_onnxruntime(monkeypatch, caplog):
    real_find_spec = runtime_module.importlib.util.find_spec
    monkeypatch.setattr(runtime_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    runtime_module._say_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        assert resolve_backend("auto", "cpu", "fp32") == "torch"
        assert resolve_backend("auto", "cpu", "fp32") == "torch"
    assert caplog.text.count("onnxruntime is not installed: frozen encoders run on torch "
                             "(pip install 'latentfuse[onnx]' for faster CPU encoding)") == 1
    with pytest.raises(ConfigError, match=r"backend onnx: onnxruntime is not installed; use --backend torch"):
        runtime("cpu", "fp32", "onnx")


def test_backend_choice_errors_and_what_auto_picks():
    assert runtime("cpu").backend == "onnx"  # onnxruntime is installed here
    assert runtime("cpu", "bf16").backend == "torch"  # graphs are float32: autocast precisions stay on torch
    with pytest.raises(ConfigError, match=r"backend onnx: ONNX graphs run in float32 \(or int8\), not bf16"):
        runtime("cpu", "bf16", "onnx")
    with pytest.raises(ConfigError, match=r"backend 'tensorrt': expected one of auto, torch, onnx, onnx-int8"):
        runtime("cpu", "fp32", "tensorrt")


def test_load_and_the_server_config_take_the_backend(shapes):
    import latentfuse
    from latentfuse.config import RuntimeConfig
    from latentfuse.serve import ServeConfig

    paths = sorted(shapes["images"].rglob("*.png"))[:6]
    on_onnx = latentfuse.load(shapes["model"], backend="onnx")
    on_torch = latentfuse.load(shapes["model"], backend="torch")
    assert on_onnx.runtime.backend == "onnx" and on_torch.runtime.backend == "torch"
    np.testing.assert_allclose(on_onnx.encode_image(paths), on_torch.encode_image(paths), atol=1e-4)
    with pytest.raises(ConfigError, match="backend"):
        ServeConfig(runtime=RuntimeConfig(backend="tensorrt"))


def test_cli_takes_the_backend(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "latentfuse", "extract", "--data", f"lines:{tmp_path}/none.txt",
                           "--backend", "onnx", "--precision", "bf16"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: backend onnx: ONNX graphs run in float32 (or int8), not bf16; use --backend torch" in proc.stderr
