"""Retrieval quality on Flickr8k: the default before issue 15, each lever alone, the best combination and
the shipped default, side by side.

    python -m bench.quality               # the table on the 1,000-image test split (reported once)
    python -m bench.quality --split val   # the same on val: where every setting below was chosen

Every row trains on `train` and selects its checkpoint on `val`. The levers: query-bank normalisation
(QB-Norm, dynamic inverted softmax; its row re-scores the first row's model, no training), multi-positive
contrastive targets, image ensembles (lite0+lite2, lite0+lite1+lite2), a text ensemble (MiniLM+e5-small) and,
in the best combination only, 40 epochs. The shipped default keeps `train.epochs` at 20 so its training stays
under 5 minutes (on val, the three-image ensemble under QB-Norm gave t2i / i2t R@5 59.8 / 65.6 at 20 epochs,
61.0 / 66.9 at 30, whose training took 292 s).
`train s` is the run's training wall time on this machine (features cached); `ms/image` and `ms/caption` are
`JointModel.encode` wall time per item at batch 64 on in-memory inputs (decoded images: decoding excluded),
on the default backend, all measured in this one run. Finished runs with an identical config are reused
(``bench.flickr8k.cached_run``); their train seconds are those of the run that trained them.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentfuse.config import DataConfig, HubnessConfig, MethodSpec, RunConfig, TrainConfig
from latentfuse.config.recipes import load_recipe
from latentfuse.cost import latency_ms
from latentfuse.data import build_source
from latentfuse.model import JointModel
from latentfuse.eval.report import split_report
from latentfuse.pipeline import side_encoders, split_features
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir, markdown, publish, recalls
from .flickr8k import cached_run

LITE = "efficientnet-lite0"
MINILM = "minilm-l6"
TWO_IMAGES = "efficientnet-lite0+efficientnet-lite2"
THREE_IMAGES = "efficientnet-lite0+efficientnet-lite1+efficientnet-lite2"
TWO_TEXTS = "minilm-l6+e5-small"
BEFORE = {"mixup_alpha": 1.0}  # FuseMix's options before issue 15 (its defaults then)
OFF = HubnessConfig(norm="none")
QB_NORM = HubnessConfig(norm="dis", beta=14.0)


@dataclass
class Variant:
    label: str
    image: str = LITE
    text: str = MINILM
    options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    hubness: HubnessConfig = field(default_factory=lambda: OFF)
    shipped: bool = False  # the `default` recipe, as `latentfuse train` builds it with nothing set
    rescore_of: str = ""  # the label of a row whose trained model this row re-scores under ``hubness``

    def config(self, data: Path, split: str, out: Path) -> RunConfig:
        source = DataConfig(source=f"flickr8k:{data}", test_split=split)
        if self.shipped:
            return dataclasses.replace(load_recipe("default", RunConfig), data=source, baselines=[], out=str(out))
        return RunConfig(data=source, encoders={"image": self.image, "text": self.text},
                         method=MethodSpec("fusemix", self.options), train=TrainConfig(epochs=self.epochs),
                         hubness=self.hubness, baselines=[], out=str(out))


def variants() -> list[Variant]:
    before = "default before #15 (lite0 + MiniLM, 20 ep)"
    return [
        Variant(before, options=BEFORE),
        Variant("+ QB-Norm (dis, β = 14), same model", options=BEFORE, hubness=QB_NORM, rescore_of=before),
        Variant("+ multi-positive targets", options={**BEFORE, "multi_positive": True}),
        Variant("+ images lite0+lite2", image=TWO_IMAGES, options=BEFORE),
        Variant("+ images lite0+lite1+lite2", image=THREE_IMAGES, options=BEFORE),
        Variant("+ texts MiniLM+e5-small", text=TWO_TEXTS, options=BEFORE),
        Variant("best: lite0+lite1+lite2, MiniLM+e5-small, QB-Norm, 40 ep", image=THREE_IMAGES, text=TWO_TEXTS,
                options=BEFORE, epochs=40, hubness=QB_NORM),
        Variant("shipped default (`latentfuse train`, no options)", shipped=True),
    ]


def selection() -> list[Variant]:
    """Rows measured only with ``--split val``: how β, IS vs DIS and the epochs of the default were chosen."""
    three = "+ images lite0+lite1+lite2"
    return [
        *[Variant(f"{three}, QB-Norm dis β = {beta:g}", hubness=HubnessConfig(norm="dis", beta=beta),
                  rescore_of=three) for beta in (10.0, 14.0, 20.0)],
        Variant(f"{three}, QB-Norm is β = 14", hubness=HubnessConfig(norm="is", beta=14.0), rescore_of=three),
        Variant(f"{three}, QB-Norm, 30 ep", image=THREE_IMAGES, options=BEFORE, epochs=30, hubness=QB_NORM),
        Variant("lite2 + e5-small alone (bigger encoders, no ensemble)", image="efficientnet-lite2", text="e5-small",
                options=BEFORE),
        Variant("lite0+lite1+lite2, MiniLM+e5-small, QB-Norm, 20 ep", image=THREE_IMAGES, text=TWO_TEXTS,
                options=BEFORE, hubness=QB_NORM),
    ]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")[:60]


def measure(variant: Variant, data: Path, split: str, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Train (or reuse) the variant's run and score it on ``split`` (or re-score an earlier row's model under
    the variant's hubness setting); encode latency per item of its model."""
    if variant.rescore_of:
        return {**rescored(done[variant.rescore_of], variant.hubness.norm, variant.hubness.beta),
                "label": variant.label, "train_seconds": done[variant.rescore_of]["train_seconds"]}
    config = variant.config(data, split, RESULTS / "quality" / split / slug(variant.label))
    report = cached_run(config)[0]
    model = JointModel.load(config.out)
    return {"label": variant.label, "out": config.out, "encoders": config.encoders, "split": split,
            "t2i": report["t2i"], "i2t": report["i2t"], "hubness": report.get("hubness", {"norm": "none"}),
            "train_seconds": report["train_seconds"],
            "ms_per_image": latency_ms(model, "image", 64, 3), "ms_per_caption": latency_ms(model, "text", 64, 3)}


def rescored(row: dict[str, Any], norm: str, beta: float) -> dict[str, Any]:
    """An earlier row's trained model scored again on the same split under another hubness setting."""
    model = JointModel.load(row["out"])
    model.hubness = dataclasses.replace(model.hubness, norm=norm, beta=beta)
    source = build_source(f"flickr8k:{flickr8k_dir()}")
    encoders = side_encoders(source, row["encoders"])
    data = split_features(source, row["split"], encoders, RunConfig().store, progress=False)
    report = split_report(model, data, source.spec, row["split"])
    return {**row, "t2i": report["t2i"], "i2t": report["i2t"], "hubness": report["hubness"]}


def table_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["configuration", "t2i R@1 / 5 / 10", "i2t R@1 / 5 / 10", "train s", "ms/image", "ms/caption"]
    return header, [[r["label"], recalls(r["t2i"]), recalls(r["i2t"]), f"{r['train_seconds']:.0f}",
                     f"{r['ms_per_image']:.2f}", f"{r['ms_per_caption']:.2f}"] for r in rows]


def table(rows: list[dict[str, Any]]) -> str:
    return markdown(*table_cells(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=("test", "val"))
    args = parser.parse_args(argv)
    data = flickr8k_dir()
    if data is None:
        return
    done: dict[str, dict[str, Any]] = {}
    for variant in variants() + (selection() if args.split == "val" else []):
        done[variant.label] = measure(variant, data, args.split, done)
        print(f"{variant.label}: t2i R@5 {done[variant.label]['t2i']['R@5']:.1f}, "
              f"i2t R@5 {done[variant.label]['i2t']['R@5']:.1f}", flush=True)
    rows = list(done.values())
    out = RESULTS / f"quality-{args.split}"
    atomic.write_json(out.with_suffix(".json"), rows)
    header, cells = table_cells(rows)
    publish(f"quality-{args.split}", f"python -m bench.quality --split {args.split}", header, cells, rows=rows)
    text = f"Flickr8k {args.split} (1,000 images, 5,000 captions)\n\n{table(rows)}\n"
    atomic.write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
