"""Token features on Flickr8k: MMFuser (2, 3 and all taps; standard and deformable attention; the official
key/value set and its `paper` preset), the last tap alone, LightCRL pooled and on tokens (six ops, ours and the
official form: its `paper` preset), FuseMix default and its `paper` preset — same cached
features, same split and protocol as bench.flickr8k, the same training budget for every row.

    python -m bench.tokens              # every row not finished yet, each in its own process
    python -m bench.tokens --row NAME   # one row (what the loop runs), e.g. --row "mmfuser all taps"
    python -m bench.tokens --report     # table + plot of the rows finished so far
    BENCH_TOKENS_EPOCHS=5 (default)     # the budget: epochs for every row

Each row: Flickr8k test t2i / i2t R@1/5/10 (checkpoint chosen on val), Fashion-MNIST test zero-shot top-1
and linear-probe accuracy through the same saved model, the extra storage per item its token taps need
(pooled features are the baseline every row has), training seconds, and the peak RAM of training (the
row's process, measured before the Fashion-MNIST evaluation). Finished rows are reused; results go to
runs/bench/tokens.{json,md} and a trade-off plot runs/bench/tokens.png.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, MethodSpec, StoreConfig, TrainConfig
from latentfuse.data import build_source
from latentfuse.eval.suite import Job
from latentfuse.methods.lightcrl import FUSIONS
from latentfuse.model import JointModel
from latentfuse.store import TapInputs, get_tokens
from latentfuse.utils import atomic

from .common import bench_config, RESULTS, flickr8k_dir, fmt, gate_plot, markdown, peak_rss_gb, recalls, scatter_plot
from .flickr8k import cached_run
from .lightcrl import cached_eval, metric

EPOCHS = int(os.environ.get("BENCH_TOKENS_EPOCHS", "5"))
ALL_TAPS = ["stride8", "stride16", "stride32", "head"]
MMFUSER = {"width": 256, "heads": 8}
ROWS: dict[str, MethodSpec] = {  # in the order they run: the comparisons the issue asks for first
    "fusemix (default)": MethodSpec("fusemix"),
    "last tap only (head) + attention pooling": MethodSpec("mmfuser", {**MMFUSER, "taps": ["head"]}),
    "mmfuser all taps": MethodSpec("mmfuser", {**MMFUSER, "taps": ALL_TAPS}),
    "mmfuser 2 taps (stride32, head)": MethodSpec("mmfuser", {**MMFUSER, "taps": ALL_TAPS[2:]}),
    "mmfuser 3 taps (stride16 … head)": MethodSpec("mmfuser", {**MMFUSER, "taps": ALL_TAPS[1:]}),
    "lightcrl pooled (add)": MethodSpec("lightcrl", {"fusion": "add"}),
    **{f"lightcrl tokens ({op})": MethodSpec("lightcrl", {"inputs": "tokens", "fusion": op, "width": 256})
       for op in FUSIONS},
    "mmfuser all taps, deformable": MethodSpec("mmfuser", {**MMFUSER, "taps": ALL_TAPS, "attention": "deformable"}),
    "mmfuser all taps, shallow-only keys/values (official set)": MethodSpec(
        "mmfuser", {**MMFUSER, "taps": ALL_TAPS, "kv_levels": "shallow"}),
    "mmfuser paper preset (official block)": MethodSpec("mmfuser", {"width": 256, "taps": ALL_TAPS, "preset": "paper"}),
    "mmfuser all taps, no level / position embeddings (official TODO)": MethodSpec(
        "mmfuser", {**MMFUSER, "taps": ALL_TAPS, "level_embed": False, "pos_embed": False}),
    "fusemix `paper` preset": MethodSpec("fusemix", {"preset": "paper"}),
    **{f"lightcrl paper preset ({op})": MethodSpec("lightcrl", {"preset": "paper", "fusion": op}) for op in FUSIONS},
}
EVAL_JOBS = [Job("zeroshot", "fashion-mnist"), Job("linear-probe", "fashion-mnist")]
HEADER = ["method", "t2i R@1/5/10", "i2t R@1/5/10", "FMNIST 0-shot top-1", "FMNIST probe acc",
          "extra KiB / item", "train s", "peak RAM GiB"]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-").replace("--", "-")


def row_dir(label: str) -> Path:
    return RESULTS / "tokens" / slug(label)


def run_row(label: str, data: Path) -> dict[str, Any]:
    """Train + evaluate one row in this process; writes row.json (what the table reads)."""
    out = row_dir(label)
    config = bench_config(data=DataConfig(source=f"flickr8k:{data}"), method=ROWS[label], baselines=[],
                       train=TrainConfig(epochs=EPOCHS), out=str(out))
    started = time.perf_counter()
    trained_here = not (out / "report.json").exists()
    retrieval = cached_run(config)[0]
    peak_file = out / "train_peak.json"  # a reused run keeps the peak measured when it was trained
    if trained_here:
        atomic.write_json(peak_file, {"bytes": int(peak_rss_gb() * 2**30)})
    peak_train = json.loads(peak_file.read_text())["bytes"] if peak_file.exists() else None
    model = JointModel.load(out)
    reports = cached_eval(model, EVAL_JOBS, out / "eval.json")
    result = {"label": label, "method": config.method.name, "options": config.method.options, "epochs": EPOCHS,
              "t2i": retrieval["metrics"]["t2i"], "i2t": retrieval["metrics"]["i2t"],
              "train_seconds": retrieval.get("train_seconds"), "peak_train_bytes": peak_train,
              "zeroshot_top1": metric(reports, "zeroshot", "top1"),
              "probe_accuracy": metric(reports, "linear-probe", "accuracy"),
              "extra_bytes_per_item": extra_storage(model, data), "wall_seconds": time.perf_counter() - started,
              **evidence(model, data)}
    atomic.write_json(out / "row.json", result)
    return result


def extra_storage(model: JointModel, data: Path) -> float:
    """Bytes per item of the token taps the model reads, beyond the pooled features (train split's cache)."""
    source = build_source(f"flickr8k:{data}")
    split = source.load("train")
    total = 0.0
    for side in model.sides:
        taps = model.method.side_taps(side)
        if taps:
            features = get_tokens(source, split, side, model.encoder(side), taps, StoreConfig(), progress=False)
            total += sum(f.bytes_per_item() for f in features.values())
    return total


def evidence(model: JointModel, data: Path, n: int = 256) -> dict[str, Any]:
    """For MMFuser rows: what the fusion block reads after training — γ magnitudes and each tap's share of
    the cross-attention over ``n`` val images (standard attention)."""
    if model.method.name != "mmfuser":
        return {}
    image = model.method.heads["image"]
    out: dict[str, Any] = {"gammas": image.gammas()}
    if image.cfg.attention == "standard":
        source = build_source(f"flickr8k:{data}")
        split = source.load("val")
        taps = get_tokens(source, split, "image", model.encoder("image"), model.method.side_taps("image"),
                          StoreConfig(), progress=False)
        batch = {tap: features for tap, features in TapInputs(taps).take(range(n)).items()}
        out["level_attention"] = image.level_attention(batch)
    return out


def table(results: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["label"], recalls(r["t2i"]), recalls(r["i2t"]), fmt(r["zeroshot_top1"]), fmt(r["probe_accuracy"]),
             fmt(r["extra_bytes_per_item"] / 1024), fmt(r["train_seconds"]),
             "—" if r["peak_train_bytes"] is None else f"{r['peak_train_bytes'] / 2**30:.2f}"]
            for r in results]


def plot(results: list[dict[str, Any]], path: Path) -> None:
    points = [(r["extra_bytes_per_item"] / 1024, r["t2i"]["R@5"], r["label"], "o") for r in results]
    scatter_plot(points, path, "extra storage per item (KiB, token taps)", "Flickr8k test t2i R@5",
                 f"Token features vs pooled, {EPOCHS} epochs each")


def plot_gates(path: Path) -> None:
    """MMFuser's γ gates epoch by epoch, from each finished MMFuser row's metrics.jsonl: how far the block opens
    onto the shallow taps over training."""
    curves = []
    for label, spec in ROWS.items():
        log = row_dir(label) / "metrics.jsonl"
        if spec.name == "mmfuser" and log.exists():
            records = [r for r in map(json.loads, log.read_text().splitlines()) if "gamma1" in r]
            if records:
                curves.append((label, records))
    gate_plot(curves, path, "MMFuser: how far the block opens onto the other taps")


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    if "--row" in sys.argv:
        print(json.dumps(run_row(sys.argv[sys.argv.index("--row") + 1], data)))
        return
    report_only = "--report" in sys.argv  # table + plot of the rows finished so far; trains nothing
    results = []
    for label in ROWS:
        done = row_dir(label) / "row.json"
        finished = done.exists() and json.loads(done.read_text()).get("epochs") == EPOCHS
        if not finished and report_only:
            continue
        if not finished:
            print(f"── {label}", flush=True)
            subprocess.run([sys.executable, "-m", "bench.tokens", "--row", label], check=True)
        results.append(json.loads(done.read_text()))
        print(markdown(HEADER, table(results)), flush=True)
    atomic.write_json(RESULTS / "tokens.json", results)
    atomic.write_text(RESULTS / "tokens.md", markdown(HEADER, table(results)) + "\n")
    plot(results, RESULTS / "tokens.png")
    plot_gates(RESULTS / "mmfuser-gates.png")


if __name__ == "__main__":
    main()
