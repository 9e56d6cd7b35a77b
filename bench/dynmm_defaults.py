"""What `latentfuse train --data flickr8k-tags:DIR --method dynmm` gives with nothing else set — the shipped
recipe's encoders (three EfficientNet-Lites + MiniLM) and training budget — for candidate DynMM defaults,
chosen on val, test reported once beside it.

    python -m bench.dynmm_defaults      # one run per candidate (4–5 min each alone on 2 cores, features cached)

Candidates: the defaults before this benchmark, the static experts they are measured against, and the
two-expert shape of ``bench.dynmm`` (text + FuseMix-head fusion, the official resource term) at its λ.
The default (``methods/dynmm.py``; a test checks they agree) is the dynamic candidate that runs the image encoder
on the fewest val samples among those within 1 micro-F1 point of the best static expert on val (``choose``).
Every candidate is written as a change from the former defaults (``BEFORE``), pinned. Results:
``docs/benchmarks/dynmm-defaults.json``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from latentfuse.config import RunConfig
from latentfuse.config.recipes import load_recipe
from latentfuse.methods.dynmm_scoring import classification_metrics

from .common import RESULTS, candidates_on_val, flickr8k_dir, fmt, publish, saved_run_on

# the defaults before this benchmark, pinned: every candidate states what it changes from them
BEFORE = {"experts": ["text", "image", "fusion"], "fusion_head": "late", "resource_weight": 0.1,
          "resource_units": "full-model", "freeze": False, "expert_epochs": 5}
TWO = {**BEFORE, "experts": ["text", "fusion"], "fusion_head": "fusemix", "resource_units": "above-cheapest"}
FROZEN = {**TWO, "expert_epochs": 2, "freeze": True}
CANDIDATES: dict[str, dict[str, Any]] = {
    "defaults before (text, image, late fusion; λ = 0.1)": BEFORE,
    "static text": {**BEFORE, "experts": ["text"]},
    "static fusion (late)": {**BEFORE, "experts": ["fusion"]},
    "static fusion (fusemix head)": {**BEFORE, "experts": ["fusion"], "fusion_head": "fusemix"},
    "two experts, fusemix head, official term λ = 0.003": {**TWO, "resource_weight": 0.003},
    "two experts, fusemix head, official term λ = 0.005": {**TWO, "resource_weight": 0.005},
    # the fusion experts overfit the 3,968-d ensemble within the 5 expert epochs: fewer, then the gate
    "static fusion (fusemix head), 2 expert epochs": {**BEFORE, "experts": ["fusion"], "fusion_head": "fusemix",
                                                      "expert_epochs": 2},
    "two experts, official term λ = 0.005, 2 expert epochs": {**TWO, "resource_weight": 0.005, "expert_epochs": 2},
    "two experts, official term λ = 0.01, 2 expert epochs": {**TWO, "resource_weight": 0.01, "expert_epochs": 2},
    # the gate phase fine-tunes the experts too (freeze: false) and they overfit again: train the gate alone
    "two experts, official term λ = 0.005, 2 expert epochs, frozen experts": {**FROZEN, "resource_weight": 0.005},
    "two experts, official term λ = 0.01, 2 expert epochs, frozen experts": {**FROZEN, "resource_weight": 0.01},
    "two experts, official term λ = 0.015, 2 expert epochs, frozen experts": {**FROZEN, "resource_weight": 0.015},
    "two experts, official term λ = 0.02, 2 expert epochs, frozen experts": {**FROZEN, "resource_weight": 0.02},
}
TOLERANCE = 1.0  # micro-F1 points a dynamic default may give up against the best static expert on val


def config(data: Path, label: str, options: dict[str, Any]) -> RunConfig:
    shipped = load_recipe("default", RunConfig)
    shipped.data.source = f"flickr8k-tags:{data}"
    shipped.method = dataclasses.replace(shipped.method, name="dynmm", options=options)
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")[:60]
    return dataclasses.replace(shipped, baselines=[], out=str(RESULTS / "dynmm-defaults" / slug))


def val_metrics(cfg: RunConfig) -> dict[str, Any]:
    model, features, _ = saved_run_on(cfg, cfg.data.val_split)
    return classification_metrics(model.method, features)


def choose(rows: list[dict[str, Any]]) -> str:
    """The default: among the dynamic candidates (two or more experts) whose val micro-F1 is within ``TOLERANCE``
    of the best static expert's, the one that runs the image encoder on the fewest val samples; if none is,
    the dynamic candidate with the best val micro-F1."""
    static = max(r["val"]["f1"]["micro"] for r in rows if len(r["options"]["experts"]) == 1)
    dynamic = [r for r in rows if len(r["options"]["experts"]) > 1]
    close = [r for r in dynamic if r["val"]["f1"]["micro"] >= static - TOLERANCE]
    if close:
        return min(close, key=lambda r: (r["val"]["costly_encoder_fraction"], -r["val"]["f1"]["micro"]))["label"]
    return max(dynamic, key=lambda r: r["val"]["f1"]["micro"])["label"]


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    rows = candidates_on_val(CANDIDATES, lambda label, options: config(data, label, options), val_metrics,
                             lambda report: report["metrics"])
    chosen = choose(rows)
    header = ["candidate", "val micro-F1", "val image runs", "test micro-F1", "test macro-F1", "test image runs",
              "train s"]
    cells = [[r["label"] + (" ← chosen on val" if r["label"] == chosen else ""), fmt(r["val"]["f1"]["micro"]),
              f"{100 * r['val']['costly_encoder_fraction']:.0f} %", fmt(r["test"]["f1"]["micro"]),
              fmt(r["test"]["f1"]["macro"]), f"{100 * r['test']['costly_encoder_fraction']:.0f} %",
              fmt(r["train_seconds"])] for r in rows]
    publish("dynmm-defaults", "python -m bench.dynmm_defaults", header, cells, rows=rows, chosen=chosen)
    print(chosen)


if __name__ == "__main__":
    main()
