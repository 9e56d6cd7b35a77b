"""Flickr8k retrieval: FuseMix (default config, mixup on and off) vs baselines, side by side.

    python -m bench.flickr8k            # ~10 min on 2 cores the first time (feature extraction), then ~5

Trains on `train`, selects checkpoints on `val`, reports the 1,000-image / 5,000-caption `test` split.
"""
from __future__ import annotations

import json
import time

from latentfuse.config import DataConfig, MethodSpec, RunConfig
from latentfuse.eval.report import markdown_table, print_table
from latentfuse.pipeline import run
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    base = RunConfig(data=DataConfig(source=f"flickr8k:{data}"), baselines=["asif", "procrustes", "cca"],
                     out=str(RESULTS / "flickr8k" / "fusemix"))
    reports = run(base, progress=False)
    no_mix = RunConfig(data=base.data, method=MethodSpec("fusemix", {"mixup_alpha": 0.0}), baselines=[],
                       out=str(RESULTS / "flickr8k" / "fusemix-no-mixup"))
    started = time.perf_counter()
    unmixed = run(no_mix, progress=False)[0]
    unmixed["method"] = "fusemix (mixup off)"
    reports.insert(1, unmixed)
    print_table(reports, title="Flickr8k test (1,000 images, 5,000 captions)")
    print(markdown_table(reports))
    atomic.write_json(RESULTS / "flickr8k.json", reports)
    print(f"\nwritten {RESULTS / 'flickr8k.json'} ({time.perf_counter() - started:.0f}s for the no-mixup run)")


if __name__ == "__main__":
    main()
