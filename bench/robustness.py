"""Robustness on Flickr8k: DynMM (λ chosen on val in bench.dynmm) against static late fusion on Flickr8k-Tags
(micro-F1), and FuseMix, LightCRL and the best DIME-FM student on Flickr8k retrieval (t2i / i2t R@5), under
image noise, text noise and both — severities 1–3, mean ± std over three seeds.

    python -m bench.dynmm && python -m bench.robustness      # needs bench.dynmm's rows (and bench.tokens /
                                                              # bench.distill's models for the retrieval rows)

Corruptions hit the raw inputs before the frozen encoders (``latentfuse eval --task robustness``): Gaussian
pixel noise (σ = 10 / 25 / 50 of 255) and word dropout (p = 0.1 / 0.25 / 0.5). Corrupted features are
cached, so a re-run only re-scores. Results: runs/bench/robustness.{json,md}.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentfuse.config import StoreConfig
from latentfuse.eval.tasks import task
from latentfuse.model import JointModel
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir, markdown
from .dynmm import chosen_lambdas, slug

CORRUPTIONS = ["gaussian-noise", "word-dropout", "gaussian-noise+word-dropout"]
NAMES = {"gaussian-noise": "image noise", "word-dropout": "text noise", "gaussian-noise+word-dropout": "both"}
OPTIONS = {"corruptions": CORRUPTIONS, "severities": [1, 2, 3], "seeds": [0, 1, 2]}
RETRIEVAL_MODELS = {  # label → model folder (written by the other benches)
    "FuseMix (default)": RESULTS / "tokens" / "fusemix-default",
    "LightCRL pooled (add)": RESULTS / "tokens" / "lightcrl-pooled-add",
    "DIME-FM student (truncated stride16 @160 px + GloVe-Transformer)":
        RESULTS / "distill" / "truncated-stride16-160px--GloVe-Transformer-distilled-at-the",
}


def classifier_models() -> dict[str, Path]:
    results = json.loads((RESULTS / "dynmm.json").read_text())
    chosen = sorted(chosen_lambdas(results))
    return {"static fusion": RESULTS / "dynmm" / slug("static fusion"),
            **{label: RESULTS / "dynmm" / slug(label) for label in chosen}}


def evaluate(label: str, folder: Path, data: str, metrics: tuple[str, ...]) -> dict[str, Any]:
    cache = folder / "robustness.json"
    if cache.exists() and json.loads(cache.read_text()).get("options") == OPTIONS:
        report = json.loads(cache.read_text())["report"]
    else:
        print(f"── {label}", flush=True)
        report = task("robustness").run(JointModel.load(folder), data, "test", StoreConfig(), OPTIONS, progress=False)
        atomic.write_json(cache, {"options": OPTIONS, "report": report})
    return {"label": label, "metrics": metrics, "report": report["metrics"]}


def rows(result: dict[str, Any]) -> list[list[str]]:
    out = []
    for metric in result["metrics"]:
        clean = result["report"]["clean"][metric]
        cells = [f"{result['label']} · {metric}", f"{clean:.1f}"]
        for corruption in CORRUPTIONS:
            for severity in ("s1", "s2", "s3"):
                value = result["report"][corruption][severity][metric]
                cells.append(f"{value['mean']:.1f} ± {value['std']:.1f}")
        out.append(cells)
    return out


HEADER = ["model · metric", "clean"] + [f"{NAMES[c]} s{s}" for c in CORRUPTIONS for s in (1, 2, 3)]


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    results = []
    if (RESULTS / "dynmm.json").exists():
        for label, folder in classifier_models().items():
            results.append(evaluate(label, folder, f"flickr8k-tags:{data}", ("micro-F1", "macro-F1")))
    else:
        print("skip the DynMM rows: run python -m bench.dynmm first")
    for label, folder in RETRIEVAL_MODELS.items():
        if (folder / "model.safetensors").exists():
            results.append(evaluate(label, folder, f"flickr8k:{data}", ("t2i R@5", "i2t R@5")))
        else:
            print(f"skip {label}: no model at {folder}")
    text = markdown(HEADER, [row for result in results for row in rows(result)])
    print(text)
    atomic.write_json(RESULTS / "robustness.json", results)
    atomic.write_text(RESULTS / "robustness.md", text + "\n")


if __name__ == "__main__":
    main()
