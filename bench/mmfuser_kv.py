"""MMFuser's claim — shallow layers add information — on Flickr8k: the official key/value set (the deeper taps
query only the shallower ones), ours (every tap, the query's own included) and the last tap alone, at equal
epochs and at equal training time, with the γ gates' opening over training plotted.

    python -m bench.mmfuser_kv     # 3 configurations × 2 budgets, a few minutes a run on 2 cores (runs reused)
    BENCH_MMFUSER_EPOCHS=5 (default)

Same cached features (``bench-classic``: efficientnet-lite0 taps stride8 … head + minilm-l6), seed and recipe for
every row; each run picks its checkpoint on val and reports test once. Equal time: the budget is EPOCHS epochs
of the slowest configuration; every other configuration gets as many epochs as that budget buys at its own
cost per epoch (the whole cosine schedule, not a cut-off one). An epoch's cost is the run's fastest epoch in
metrics.jsonl (training + validation): other work on the machine only ever lengthens an epoch. Results:
``docs/benchmarks/mmfuser-kv.json`` and ``docs/benchmarks/mmfuser-gates.png`` (rendered in docs/results.md).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, MethodSpec, RunConfig, TrainConfig
from latentfuse.eval.report import split_report

from .common import PUBLISHED, RESULTS, bench_config, flickr8k_dir, gate_plot, publish, recalls, saved_run_on
from .flickr8k import cached_run

EPOCHS = int(os.environ.get("BENCH_MMFUSER_EPOCHS", "5"))
TAPS = ["stride8", "stride16", "stride32", "head"]
BLOCK = {"width": 256, "heads": 8}
CONFIGS: dict[str, dict[str, Any]] = {
    "official key/value set (shallow taps only)": {**BLOCK, "taps": TAPS, "kv_levels": "shallow"},
    "ours (every tap as keys/values)": {**BLOCK, "taps": TAPS, "kv_levels": "all"},
    "last tap only (head)": {**BLOCK, "taps": ["head"]},
}


def config(data: Path, label: str, epochs: int) -> RunConfig:
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")[:50]
    return bench_config(data=DataConfig(source=f"flickr8k:{data}"), method=MethodSpec("mmfuser", CONFIGS[label]),
                        baselines=[], train=TrainConfig(epochs=epochs),
                        out=str(RESULTS / "mmfuser-kv" / f"{slug}-{epochs}ep"))


def measured(cfg: RunConfig, label: str, budget: str) -> dict[str, Any]:
    """Train (or reuse) ``cfg``; its val report (under its own QB-Norm, as the run reports test), its test report."""
    report = cached_run(cfg)[0]
    model, features, source = saved_run_on(cfg, "val")
    val = split_report(model, features, source.spec, "val")
    row = {"label": label, "budget": budget, "epochs": cfg.train.epochs, "out": Path(cfg.out).name,
           "val": {d: val[d] for d in ("t2i", "i2t")}, "test": {d: report[d] for d in ("t2i", "i2t")},
           "train_seconds": report["train_seconds"]}
    print(f"{label}, {budget} ({cfg.train.epochs} epochs): val t2i R@5 {val['t2i']['R@5']:.2f}", flush=True)
    return row


def epoch_seconds(row: dict[str, Any]) -> float:
    """The run's fastest epoch (training + validation), from metrics.jsonl: the cost of an epoch on this machine
    with nothing else running — other work on the machine only ever adds to an epoch's time."""
    log = RESULTS / "mmfuser-kv" / row["out"] / "metrics.jsonl"
    stamps = [json.loads(line)["seconds"] for line in log.read_text().splitlines()]
    return min(b - a for a, b in zip([0.0, *stamps], stamps))


def gates(row: dict[str, Any]) -> list[dict[str, float]]:
    """Epoch, mean |γ1| (cross-attention) and |γ2| (self-attention) from the run's metrics.jsonl."""
    log = RESULTS / "mmfuser-kv" / row["out"] / "metrics.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [{k: r[k] for k in ("epoch", "gamma1", "gamma2")} for r in records if "gamma1" in r]


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    rows = [measured(config(data, label, EPOCHS), label, "equal epochs") for label in CONFIGS]
    for row in rows:
        row["epoch_seconds"] = epoch_seconds(row)
    budget = EPOCHS * max(r["epoch_seconds"] for r in rows)
    for row in list(rows):
        epochs = max(1, round(budget / row["epoch_seconds"]))
        if epochs != EPOCHS:
            rows.append(measured(config(data, row["label"], epochs), row["label"], f"equal time (~{budget:.0f} s)"))
    for row in rows:
        row["gates"] = gates(row)
    header = ["key/value set", "budget", "epochs", "val t2i R@1 / 5 / 10", "val i2t R@1 / 5 / 10",
              "test t2i R@1 / 5 / 10", "test i2t R@1 / 5 / 10", "s / epoch (fastest)", "final |γ1| / |γ2|"]
    cells = [[r["label"], r["budget"], str(r["epochs"]), recalls(r["val"]["t2i"]), recalls(r["val"]["i2t"]),
              recalls(r["test"]["t2i"]), recalls(r["test"]["i2t"]), f"{epoch_seconds(r):.0f}",
              f"{r['gates'][-1]['gamma1']:.3f} / {r['gates'][-1]['gamma2']:.3f}" if r["gates"] else "—"]
             for r in rows]
    gate_plot([(f"{r['label']}, {r['epochs']} ep", r["gates"]) for r in rows if r["gates"]],
              PUBLISHED / "mmfuser-gates.png", "MMFuser: how far the block opens onto the other taps (Flickr8k)")
    publish("mmfuser-kv", "python -m bench.mmfuser_kv", header, cells,
            rows=[{k: v for k, v in r.items() if k != "out"} for r in rows])
    print("\n".join(" | ".join(c) for c in cells))


if __name__ == "__main__":
    main()
