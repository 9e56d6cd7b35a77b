"""Scale-out on this machine, side by side in one run: extraction items/s for the local engine vs Ray Data
with 1 and 2 encoder actors, and FuseMix training steps/s and samples/s for 1 vs 2 torchrun processes at
the same global batch (the features come from the shared cache; only the heads train).

    python -m bench.scale            # table → runs/bench/scale.md, then issue 28's targets as measured
    python -m bench.scale --targets  # only the targets, read from the cost curves' result files
                                     # (python -m bench.scale_curves, python -m bench.index_scale)

On a 2-core box neither engine can beat one process by much: the point of the numbers is what the engines
cost here (Ray's actor and transfer overhead, gloo's all-reduce per step) next to what they buy on a cluster.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from latentfuse.config import StoreConfig, default_store
from latentfuse.data import build_source
from latentfuse.encoders import build_encoder
from latentfuse.store import get_features
from latentfuse.utils import atomic

from .common import PUBLISHED, RESULTS, flickr8k_dir, markdown

IMAGES = 512  # Flickr8k train images per extraction run (decode + encode, efficientnet-lite0)
EPOCHS, BATCH = 2, 512


def extraction(data: Path) -> list[list[str]]:
    """Items/s of one fresh extraction per engine; Ray's start-up is timed apart from its throughput."""
    source = build_source(f"flickr8k:{data}")
    split = source.load("train").head(IMAGES)
    encoder = build_encoder("efficientnet-lite0")
    encoder.encode([split.items["image"][0].payload])  # weights loaded before any clock starts
    rows, base = [], None
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        for label, engine, workers in (("local", "local", 1), ("ray, 1 actor", "ray", 1), ("ray, 2 actors", "ray", 2)):
            started = time.perf_counter()
            if engine == "ray":
                from latentfuse.store.ray_engine import start

                start(StoreConfig())
            ready = time.perf_counter()
            store = StoreConfig(root=str(Path(tmp) / label.replace(" ", "_").replace(",", "")), engine=engine,
                                workers=workers, batch_size=32, shard_size=128)
            get_features(source, split, "image", encoder, store, progress=False)
            seconds = time.perf_counter() - ready
            rate = IMAGES / seconds
            base = base or rate
            rows.append([label, f"{IMAGES}", f"{seconds:.1f}", f"{rate:.1f}", f"{rate / base:.2f}",
                         f"{ready - started:.1f}" if engine == "ray" and workers == 1 else "—"])
            print(rows[-1], flush=True)
    return rows


def training(data: Path) -> list[list[str]]:
    """`latentfuse train` with --nproc 1 and 2 on cached Flickr8k features: train-loop seconds only."""
    rows, base = [], None
    steps = len(build_source(f"flickr8k:{data}").load("train").pairs) // BATCH  # per epoch, as the trainer runs
    with tempfile.TemporaryDirectory(prefix="scale-train-") as tmp:
        for nproc in (1, 2):
            config = Path(tmp) / f"run{nproc}.yaml"
            out = Path(tmp) / f"model{nproc}"
            config.write_text(yaml.safe_dump({
                "data": {"source": f"flickr8k:{data}", "val_split": ""},
                "store": {"root": default_store()},
                "method": {"name": "fusemix"},
                "train": {"epochs": EPOCHS, "batch_size": BATCH, "threads": 0 if nproc == 1 else 1},
                "runtime": {"device": "cpu"}, "baselines": [], "out": str(out)}))
            env = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count() // nproc))
            done = subprocess.run([sys.executable, "-m", "latentfuse", "-q", "train", "--config", str(config),
                                   "--nproc", str(nproc)], capture_output=True, text=True, env=env)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            seconds = records[-1]["seconds"]
            report = json.loads((out / "report.json").read_text())[0]
            samples = steps * BATCH * EPOCHS / seconds
            base = base or samples
            rows.append([f"{nproc} process{'es' if nproc > 1 else ''}", f"{BATCH}", f"{seconds:.1f}",
                         f"{steps * EPOCHS / seconds:.2f}", f"{samples:.0f}", f"{samples / base:.2f}",
                         f"{report['metrics']['t2i']['R@5']:.1f}"])
            print(rows[-1], flush=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


def targets() -> str:
    """Issue 28's targets, read off the rows of the cost curves' published result files (by the functions that
    wrote their notes, so a target added later is judged without measuring again)."""
    from . import index_scale, scale_curves

    lines = []
    quick_looks = sorted(path.stem for path in PUBLISHED.glob("index-scale-*.json"))  # published with --publish
    for name in ("scale-curves", "index-scale", *quick_looks):
        path = PUBLISHED / f"{name}.json"
        if not path.is_file():
            lines.append(f"{name}: not measured yet (python -m bench.{name.replace('-', '_')})")
            continue
        result = json.loads(path.read_text())
        rows = result["rows"]
        note = scale_curves.target(rows, result.get("webdataset")) if name == "scale-curves" else \
            index_scale.notes(rows, result.get("skipped", []))
        lines.append(f"{result['command']}: {note}")
    return "\n".join(lines)

def main() -> None:
    if "--targets" in sys.argv:  # what the cost curves measured, without running anything
        print(targets())
        return
    data = flickr8k_dir()
    if data is None:
        return
    extract_rows = extraction(data)
    train_rows = training(data)
    text = "\n\n".join([
        "Extraction (efficientnet-lite0, decode included, fresh store each):",
        markdown(["engine", "images", "seconds", "images/s", "× local", "Ray start s (once)"], extract_rows),
        f"Training (FuseMix on cached features, {EPOCHS} epochs, same global batch):",
        markdown(["torchrun", "global batch", "train s", "steps/s", "samples/s", "× 1 process", "t2i R@5"],
                 train_rows)])
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic.write_text(RESULTS / "scale.md", text + "\n")
    print(targets())


if __name__ == "__main__":
    main()
