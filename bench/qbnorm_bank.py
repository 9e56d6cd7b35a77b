"""How many bank queries QB-Norm needs before it helps: the shipped default model on Flickr8k, its query bank cut
to N training queries per side (seeded samples), retrieval R@5 with QB-Norm (dis, the model's β) against none.

    python -m bench.qbnorm_bank     # trains the shipped default once (~5 min on 2 cores), then ~2 min

The threshold ``hubness.min_bank`` is chosen on ``val`` (the smallest N from which the mean gain of t2i + i2t R@5
over three seeds is never negative); ``test`` is reported once, for the chosen N and the sizes below it.
Writes docs/benchmarks/qbnorm-bank.json (and .png): the docs render the table from it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentfuse.config import DataConfig, HubnessConfig, RunConfig
from latentfuse.config.recipes import load_recipe
from latentfuse.data import build_source
from latentfuse.eval.report import split_report
from latentfuse.model import JointModel
from latentfuse.pipeline import side_encoders, split_features
from latentfuse.utils import atomic
from latentfuse.utils.runtime import CPU

from .common import RESULTS, flickr8k_dir
from .flickr8k import cached_run

SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 8192)
SEEDS = (0, 1, 2)
OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "qbnorm-bank.json"


def r5(report: dict[str, Any]) -> tuple[float, float]:
    metrics = report["metrics"]
    return metrics["t2i"]["R@5"], metrics["i2t"]["R@5"]


def measure(model: JointModel, feats: dict[str, Any], banks: dict[str, np.ndarray], split: str) -> list[dict[str, Any]]:
    """Per size and seed: t2i and i2t R@5 on ``split`` with a bank of that many training queries per side."""
    beta = model.hubness.beta
    model.hubness, model.query_bank = HubnessConfig("none", beta, 0), {}
    base = r5(split_report(model, feats[split], "flickr8k", split))
    rows = [{"split": split, "bank": 0, "seed": None, "t2i_R@5": base[0], "i2t_R@5": base[1]}]
    for size in SIZES:
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            model.query_bank = {side: torch.from_numpy(bank[rng.permutation(len(bank))[:size]]).float()
                                for side, bank in banks.items()}
            model.hubness = HubnessConfig("dis", beta, size)
            t2i, i2t = r5(split_report(model, feats[split], "flickr8k", split))
            rows.append({"split": split, "bank": size, "seed": seed, "t2i_R@5": t2i, "i2t_R@5": i2t})
    return rows


def gains(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Mean over seeds of the summed t2i + i2t R@5 gain against no normalisation, per bank size."""
    base = next(r for r in rows if r["bank"] == 0)
    out: dict[int, list[float]] = {}
    for row in rows:
        if row["bank"]:
            out.setdefault(row["bank"], []).append(row["t2i_R@5"] + row["i2t_R@5"] - base["t2i_R@5"] - base["i2t_R@5"])
    return {size: round(float(np.mean(values)), 2) for size, values in out.items()}


def threshold(val_gains: dict[int, float]) -> int:
    """The smallest size from which no larger size loses on val."""
    sizes = sorted(val_gains)
    return next(size for i, size in enumerate(sizes) if all(val_gains[s] >= 0 for s in sizes[i:]))


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    config = dataclasses.replace(load_recipe("default", RunConfig), data=DataConfig(source=f"flickr8k:{data}"),
                                 out=str(RESULTS / "qbnorm-bank" / "model"))
    cached_run(config)
    model = JointModel.load(config.out, device="cpu", backend="torch")
    source = build_source(config.data.spec())
    encoders = side_encoders(source, config.encoders, CPU)
    feats = {split: split_features(source, split, encoders, config.store, progress=False) for split in ("train", "val", "test")}
    banks = {side: model.encode_features(side, feats["train"].x[side]) for side in ("image", "text")}
    val = measure(model, feats, banks, "val")
    val_gains = gains(val)
    chosen = threshold(val_gains)
    test = measure(model, feats, banks, "test")
    result = with_table({"command": "python -m bench.qbnorm_bank", "beta": model.hubness.beta, "norm": "dis",
                         "machine": "2-core CPU", "val_gain": val_gains, "test_gain": gains(test), "min_bank": chosen,
                         "rows": val + test})
    atomic.write_json(OUT, result)
    plot(result, OUT.with_suffix(".png"))
    print(f"QB-Norm bank threshold (chosen on val): {chosen}")
    for size in sorted(val_gains):
        print(f"  bank {size:>5}: val {val_gains[size]:+.2f}  test {result['test_gain'][size]:+.2f}  (t2i+i2t R@5)")


def with_table(result: dict[str, Any]) -> dict[str, Any]:
    """The rendered columns and rows the docs show (``docs/hooks.py``)."""
    base = {split: next(r for r in result["rows"] if r["split"] == split and r["bank"] == 0) for split in ("val", "test")}
    result["columns"] = ["bank queries per side", "val gain (t2i + i2t R@5)", "test gain (t2i + i2t R@5)"]
    result["table"] = [["none (cosine)", f"{base['val']['t2i_R@5']:.1f} + {base['val']['i2t_R@5']:.1f}",
                        f"{base['test']['t2i_R@5']:.1f} + {base['test']['i2t_R@5']:.1f}"]]
    for size in sorted(int(s) for s in result["val_gain"]):
        mark = " (min_bank)" if size == result["min_bank"] else ""
        result["table"].append([f"{size}{mark}", f"{result['val_gain'][size]:+.2f}", f"{result['test_gain'][size]:+.2f}"])
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split in ("val", "test"):
        gain = result[f"{split}_gain"]
        sizes = sorted(int(s) for s in gain)
        ax.plot(sizes, [gain[s] for s in sizes], marker="o", label=split)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(result["min_bank"], color="red", lw=0.8, ls="--", label=f"min_bank {result['min_bank']}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("query-bank size (training queries per side)")
    ax.set_ylabel("QB-Norm gain, t2i + i2t R@5")
    ax.set_title("Flickr8k, shipped default: when QB-Norm helps")
    ax.legend()
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
