"""LightCRL (six fusion ops) vs FuseMix vs frozen encoders, on every evaluation task, side by side.

    python -m bench.lightcrl     # ~2 h on 2 cores the first time; finished runs and evaluations are reused

Part 1, image–text: each method is trained on Flickr8k train (`efficientnet-lite0` + `minilm-l6`, the
same cached features), checkpoint chosen on val, and the *same saved model* is then evaluated on Flickr8k
test retrieval, Fashion-MNIST test zero-shot and linear probe, STS-B test (text side) and MRPC test.
The frozen row is the two encoders alone (no joint space, so no retrieval or zero-shot).

Part 2, text–text alignment: LightCRL aligns two different frozen text encoders — `minilm-l6` (words)
and `glove-6b-50d` (glosses) — on WordNet word ↔ gloss pairs (first 40,000 train words; val for
checkpoints), then STS-B / MRPC are measured through each aligned side and across sides (sentence 1 via
MiniLM, sentence 2 via GloVe), next to each frozen encoder alone (`e5-small` included for reference).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, MethodSpec, StoreConfig
from latentfuse.eval.frozen import frozen_model
from latentfuse.eval.suite import Job, run_jobs
from latentfuse.methods.lightcrl import FUSIONS
from latentfuse.model import JointModel
from latentfuse.config import TrainConfig
from latentfuse.utils import atomic

from .common import bench_config, RESULTS, SHARED_DATA, flickr8k_dir, fmt, markdown
from .common import recalls as recalls_of
from .flickr8k import cached_run

IMAGE_TEXT_JOBS = [Job("zeroshot", "fashion-mnist"), Job("linear-probe", "fashion-mnist"),
                   Job("sts", "sts-b"), Job("pair-classification", "mrpc")]
TEXT_JOBS = [Job("sts", "sts-b"), Job("pair-classification", "mrpc")]
TEXT_SIDES = {"text_a": "text_a", "text_b": "text_b", "cross": "cross"}
WORDNET_LIMIT = 40000


def methods() -> list[tuple[str, MethodSpec]]:
    return [("fusemix", MethodSpec("fusemix"))] + [
        (f"lightcrl {op}", MethodSpec("lightcrl", {"fusion": op})) for op in FUSIONS]


def cached_eval(model: JointModel, jobs: list[Job], path: Path, options: dict[str, Any] | None = None,
                ) -> list[dict[str, Any]]:
    """Run ``jobs`` on ``model`` once; later calls read ``path`` (written atomically when all are done)."""
    if path.exists():
        return json.loads(path.read_text())
    reports = run_jobs(model, jobs, None, StoreConfig(), options or {}, progress=False)
    atomic.write_json(path, reports)
    return reports


def metric(reports: list[dict[str, Any]], task: str, *keys: str) -> float | None:
    for report in reports:
        if report["task"] == task:
            value: Any = report["metrics"]
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            return value
    return None


def image_text_rows(data: Path) -> list[list[str]]:
    rows = []
    frozen = frozen_model(["efficientnet-lite0", "minilm-l6"])
    reports = cached_eval(frozen, IMAGE_TEXT_JOBS[1:], RESULTS / "lightcrl" / "frozen-eval.json")
    rows.append(image_text_row("frozen efficientnet-lite0 / minilm-l6", None, reports))
    for label, spec in methods():
        out = RESULTS / "lightcrl" / label.replace(" ", "-")
        config = bench_config(data=DataConfig(source=f"flickr8k:{data}"), method=spec, baselines=[],
                           train=TrainConfig(threads=1), out=str(out))
        retrieval = cached_run(config)[0]
        reports = cached_eval(JointModel.load(out), IMAGE_TEXT_JOBS, out / "eval.json")
        rows.append(image_text_row(label, retrieval, reports))
        print_rows(IMAGE_TEXT_HEADER, rows)
    return rows


IMAGE_TEXT_HEADER = ["model", "F8k t2i R@1/5/10", "F8k i2t R@1/5/10", "FMNIST 0-shot top1/top5",
                     "FMNIST probe acc", "STS-B ρ", "MRPC acc", "MRPC F1 c0/c1"]


def image_text_row(label: str, retrieval: dict[str, Any] | None, reports: list[dict[str, Any]]) -> list[str]:
    def recalls(direction: str) -> str:
        if retrieval is None:
            return "—"
        return recalls_of(retrieval["metrics"][direction])

    zs = [metric(reports, "zeroshot", k) for k in ("top1", "top5")]
    return [label, recalls("t2i"), recalls("i2t"),
            "—" if zs[0] is None else " / ".join(fmt(v) for v in zs),
            fmt(metric(reports, "linear-probe", "accuracy")), fmt(metric(reports, "sts", "spearman")),
            *pair_cells(reports)]


def pair_cells(reports: list[dict[str, Any]]) -> list[str]:
    f1 = [metric(reports, "pair-classification", "classes", c, "f1") for c in ("0", "1")]
    return [fmt(metric(reports, "pair-classification", "accuracy")), " / ".join(fmt(v) for v in f1)]


TEXT_HEADER = ["model (side)", "STS-B ρ", "MRPC acc", "MRPC F1 c0/c1"]


def text_text_rows() -> list[list[str]]:
    rows = []
    for spec in ("minilm-l6", "glove-6b-50d", "e5-small"):
        reports = cached_eval(frozen_model(spec), TEXT_JOBS, RESULTS / "lightcrl" / f"frozen-{spec}-eval.json")
        rows.append(text_row(f"frozen {spec}", reports))
        print_rows(TEXT_HEADER, rows)
    for label, spec in methods()[1:]:
        out = RESULTS / "lightcrl-text" / label.replace(" ", "-")
        config = bench_config(data=DataConfig(source="wordnet", test_split="val", limit=WORDNET_LIMIT),
                           encoders={"text_a": "minilm-l6", "text_b": "glove-6b-50d"}, method=spec,
                           baselines=[], train=TrainConfig(threads=1), out=str(out))
        cached_run(config)
        model = JointModel.load(out)
        for side in TEXT_SIDES:
            options = {job.task: {"side": side} for job in TEXT_JOBS}
            reports = cached_eval(model, TEXT_JOBS, out / f"eval-{side}.json", options)
            rows.append(text_row(f"{label} ({side_label(side)})", reports))
        print_rows(TEXT_HEADER, rows)
    return rows


def side_label(side: str) -> str:
    return {"text_a": "MiniLM side", "text_b": "GloVe side", "cross": "MiniLM ↔ GloVe"}[side]


def text_row(label: str, reports: list[dict[str, Any]]) -> list[str]:
    return [label, fmt(metric(reports, "sts", "spearman")), *pair_cells(reports)]


def print_rows(header: list[str], rows: list[list[str]]) -> None:
    print(markdown(header, rows), "\n", flush=True)


def main() -> None:
    data = flickr8k_dir()
    if data is None or not (SHARED_DATA / "sts-b").exists() or not (SHARED_DATA / "mrpc").exists():
        print("skip: needs ../shared/data/{flickr8k,sts-b,mrpc}")
        return
    text = markdown(TEXT_HEADER, text_text_rows())
    image = markdown(IMAGE_TEXT_HEADER, image_text_rows(data))
    atomic.write_text(RESULTS / "lightcrl.md", f"{image}\n\n{text}\n")
    print(f"{image}\n\n{text}\n\nwritten {RESULTS / 'lightcrl.md'}")


if __name__ == "__main__":
    main()
