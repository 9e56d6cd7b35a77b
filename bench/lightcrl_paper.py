"""LightCRL's six fusion ops, the official form (``preset: paper``: tokens, one Transformer layer, the official op
formulas and logit scale) against ours (the defaults: pooled features, residual-MLP DFE), on Flickr8k retrieval,
Fashion-MNIST zero-shot and STS-B — the paper's table, on our data.

    python -m bench.lightcrl_paper           # 12 runs, each in its own process; finished runs are reused
    python -m bench.lightcrl_paper --report  # table of the rows finished so far; trains nothing
    BENCH_LIGHTCRL_PAPER_EPOCHS=5 (default)  # the budget: epochs for every row

Same cached features (``bench-classic``: efficientnet-lite0 + minilm-l6; the official form reads their token taps),
seed, split and budget for every row; each run picks its checkpoint on val and reports Flickr8k test once; the
same saved model is then scored on Fashion-MNIST test zero-shot (top-1) and STS-B test (Spearman ρ of the text
side). Results: ``docs/benchmarks/lightcrl-paper.json`` (rendered in docs/results.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, MethodSpec, RunConfig, TrainConfig
from latentfuse.eval.suite import Job
from latentfuse.methods.lightcrl import FUSIONS
from latentfuse.model import JointModel
from latentfuse.utils import atomic

from .common import RESULTS, SHARED_DATA, bench_config, flickr8k_dir, fmt, publish, recalls
from .flickr8k import cached_run
from .lightcrl import cached_eval, metric

EPOCHS = int(os.environ.get("BENCH_LIGHTCRL_PAPER_EPOCHS", "5"))
FORMS = {"ours": {}, "official": {"preset": "paper"}}
JOBS = [Job("zeroshot", "fashion-mnist"), Job("sts", "sts-b")]
COLUMNS = ["op", "form", "t2i R@1/5/10", "i2t R@1/5/10", "FMNIST 0-shot top-1", "STS-B ρ", "train s"]
COMMAND = "python -m bench.lightcrl_paper"


def row_config(data: Path, op: str, form: str) -> RunConfig:
    return bench_config(data=DataConfig(source=f"flickr8k:{data}"),
                        method=MethodSpec("lightcrl", {**FORMS[form], "fusion": op}), baselines=[],
                        train=TrainConfig(epochs=EPOCHS), out=str(RESULTS / "lightcrl-paper" / f"{form}-{op}-{EPOCHS}ep"))


def run_row(data: Path, op: str, form: str) -> dict[str, Any]:
    """Train (or reuse) one row and score its saved model; writes row.json (what the table reads)."""
    config = row_config(data, op, form)
    report = cached_run(config)[0]
    reports = cached_eval(JointModel.load(config.out), JOBS, Path(config.out) / "eval.json")
    row = {"op": op, "form": form, "epochs": EPOCHS, "t2i": report["metrics"]["t2i"], "i2t": report["metrics"]["i2t"],
           "zeroshot_top1": metric(reports, "zeroshot", "top1"), "sts_spearman": metric(reports, "sts", "spearman"),
           "train_seconds": report.get("train_seconds")}
    atomic.write_json(Path(config.out) / "row.json", row)
    return row


def table(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["op"], r["form"], recalls(r["t2i"]), recalls(r["i2t"]), fmt(r["zeroshot_top1"]),
             fmt(r["sts_spearman"]), fmt(r["train_seconds"])] for r in rows]


def main() -> None:
    data = flickr8k_dir()
    if data is None or not (SHARED_DATA / "sts-b").exists():
        print("skip: needs ../shared/data/{flickr8k,sts-b}")
        return
    if "--row" in sys.argv:
        op, form = sys.argv[sys.argv.index("--row") + 1:][:2]
        print(json.dumps(run_row(data, op, form)))
        return
    rows = []
    for form in FORMS:  # ours first: a minute a row; the official token form takes ~20 min a row on 2 cores
        for op in FUSIONS:
            done = Path(row_config(data, op, form).out) / "row.json"
            if not done.exists() and "--report" not in sys.argv:
                print(f"── {op} ({form})", flush=True)
                subprocess.run([sys.executable, "-m", "bench.lightcrl_paper", "--row", op, form], check=True)
            if done.exists():
                rows.append(json.loads(done.read_text()))
    rows.sort(key=lambda r: (FUSIONS.index(r["op"]), list(FORMS).index(r["form"])))
    missing = [f"{op} ({form})" for form in FORMS for op in FUSIONS
               if not any(r["op"] == op and r["form"] == form for r in rows)]
    note = f"{EPOCHS} epochs a row" + (f"; not measured yet: {', '.join(missing)}" if missing else "")
    path = publish("lightcrl-paper", COMMAND, COLUMNS, table(rows), epochs=EPOCHS, rows=rows, note=note)
    print(f"{path}\n" + "\n".join(" | ".join(r) for r in table(rows)))


if __name__ == "__main__":
    main()
