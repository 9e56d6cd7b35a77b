"""FuseMix's latent-mixup partners on Flickr8k: a shuffled partner per pair (ours, the batch keeps its size) vs the
official half-batch scheme (first half mixed with the second, the batch halved), on the shipped default.

    python -m bench.mixup_pairs      # 2 partner schemes × 2 seeds, ~5 min a run on 2 cores (finished runs reused)

Why it is a question: with a shuffled partner π, row i mixes x_i with x_π(i) and row π⁻¹(i) mixes x_π⁻¹(i) with
x_i, so every mixed row shares a component with another row of the same batch — a negative that is partly the
positive. The official scheme mixes disjoint halves and has no such pair, but trains on half the rows per
step. Each run trains on train and picks its checkpoint on val (the shipped default: three EfficientNet-Lites +
MiniLM, FuseMix, QB-Norm dis); the decision is read on val, test is reported once beside it. Results:
``docs/benchmarks/mixup-pairs.json`` (rendered in docs/results.md) and ``runs/bench/mixup-pairs.md``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from latentfuse.config import RunConfig
from latentfuse.config.recipes import load_recipe
from latentfuse.eval.report import split_report
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir, markdown, publish, recalls, saved_run_on
from .flickr8k import cached_run

SCHEMES = ("shuffle", "halves")
SEEDS = (0, 1)


def config(data: Path, scheme: str, seed: int) -> RunConfig:
    shipped = load_recipe("default", RunConfig)
    shipped.data.source = f"flickr8k:{data}"
    shipped.method.options = {**shipped.method.options, "mixup_pairs": scheme}
    return dataclasses.replace(shipped, train=dataclasses.replace(shipped.train, seed=seed), baselines=[],
                               out=str(RESULTS / "mixup-pairs" / f"{scheme}-seed{seed}"))


def scored(cfg: RunConfig, split: str) -> dict[str, Any]:
    """The saved model's report on ``split`` under its own QB-Norm (what the run reports for test)."""
    model, features, source = saved_run_on(cfg, split)
    return split_report(model, features, source.spec, split)


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    rows = []
    for scheme in SCHEMES:
        for seed in SEEDS:
            cfg = config(data, scheme, seed)
            report = cached_run(cfg)[0]
            val = scored(cfg, "val")
            rows.append({"scheme": scheme, "seed": seed, "val": {"t2i": val["t2i"], "i2t": val["i2t"]},
                         "test": {"t2i": report["t2i"], "i2t": report["i2t"]},
                         "train_seconds": report["train_seconds"]})
            print(f"{scheme} seed {seed}: val t2i R@5 {val['t2i']['R@5']:.2f}, test t2i R@5 "
                  f"{report['t2i']['R@5']:.2f}", flush=True)
    for row in rows:
        row["mean_r5"] = {split: round((row[split]["t2i"]["R@5"] + row[split]["i2t"]["R@5"]) / 2, 2)
                          for split in ("val", "test")}
    means = {scheme: {split: round(sum(r["mean_r5"][split] for r in rows if r["scheme"] == scheme) / len(SEEDS), 2)
                      for split in ("val", "test")} for scheme in SCHEMES}
    header = ["mixup partners", "seed", "val t2i R@1 / 5 / 10", "val i2t R@1 / 5 / 10", "val mean R@5",
              "test t2i R@1 / 5 / 10", "test i2t R@1 / 5 / 10", "test mean R@5", "train s"]
    cells = [[r["scheme"], str(r["seed"]), recalls(r["val"]["t2i"]), recalls(r["val"]["i2t"]),
              f"{r['mean_r5']['val']:.2f}", recalls(r["test"]["t2i"]), recalls(r["test"]["i2t"]),
              f"{r['mean_r5']['test']:.2f}", f"{r['train_seconds']:.0f}"] for r in rows]
    cells += [[f"**{scheme}**", "mean", "", "", f"**{m['val']:.2f}**", "", "", f"**{m['test']:.2f}**", ""]
              for scheme, m in means.items()]
    publish("mixup-pairs", "python -m bench.mixup_pairs", header, cells, rows=rows, mean_r5=means)
    text = markdown(header, cells) + "\n"
    atomic.write_text(RESULTS / "mixup-pairs.md", text)
    print(text)


if __name__ == "__main__":
    main()
