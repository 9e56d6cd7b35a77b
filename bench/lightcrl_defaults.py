"""LightCRL's defaults against the official values, one at a time, on Flickr8k (pooled form, `add` unless the row
says otherwise): each deviation the module docstring lists, measured on val, test reported once beside it.

    python -m bench.lightcrl_defaults     # a few minutes a row on 2 cores (lite0 + MiniLM features cached)

Rows: our defaults; dropout 0.1 (official) instead of 0.6; the official logit scale (exp(t), t₀ = 0.07,
clamped to [0.01, 20]) instead of CLIP's (1/0.07, clamped to [1, 100]); width 256 (official projection_dim)
instead of 512; additive attention without tanh (official) and with it (ours). Same features, seed and budget
(``bench-classic``: efficientnet-lite0 + minilm-l6, 20 epochs). Results: ``docs/benchmarks/lightcrl-defaults.json``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, MethodSpec, RunConfig
from latentfuse.eval.report import split_report

from .common import RESULTS, bench_config, candidates_on_val, flickr8k_dir, publish, recalls, saved_run_on

OFFICIAL_SCALE = {"temperature_init": math.exp(-0.07), "temperature_min": math.exp(-20.0),
                  "temperature_max": math.exp(-0.01)}
ROWS: dict[str, dict[str, Any]] = {
    "ours (add)": {},
    "dropout 0.1 (official)": {"dropout": 0.1},
    "official logit scale exp(t), t0 = 0.07": OFFICIAL_SCALE,
    "width 256 (official)": {"width": 256},
    "additive attention with tanh (ours)": {"fusion": "additive-attention"},
    "additive attention without tanh (official)": {"fusion": "additive-attention", "additive_tanh": False},
}


def config(data: Path, label: str, options: dict[str, Any]) -> RunConfig:
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")[:60]
    return bench_config(data=DataConfig(source=f"flickr8k:{data}"), method=MethodSpec("lightcrl", options),
                        baselines=[], out=str(RESULTS / "lightcrl-defaults" / slug))


def on_val(cfg: RunConfig) -> dict[str, Any]:
    model, features, source = saved_run_on(cfg, "val")
    report = split_report(model, features, source.spec, "val")
    return {"t2i": report["t2i"], "i2t": report["i2t"]}


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    rows = candidates_on_val(ROWS, lambda label, options: config(data, label, options), on_val,
                             lambda report: {"t2i": report["t2i"], "i2t": report["i2t"]})
    header = ["lightcrl (pooled)", "val t2i R@1 / 5 / 10", "val i2t R@1 / 5 / 10", "test t2i R@1 / 5 / 10",
              "test i2t R@1 / 5 / 10", "train s"]
    cells = [[r["label"], recalls(r["val"]["t2i"]), recalls(r["val"]["i2t"]), recalls(r["test"]["t2i"]),
              recalls(r["test"]["i2t"]), f"{r['train_seconds']:.0f}"] for r in rows]
    publish("lightcrl-defaults", "python -m bench.lightcrl_defaults", header, cells, rows=rows)


if __name__ == "__main__":
    main()
