"""Flickr8k retrieval: FuseMix (default config, and one knob changed at a time) vs baselines, side by side.

    python -m bench.flickr8k     # ~5 min feature extraction the first time, then ~12 min on 2 cores;
                                 # finished runs with an identical config are reused

Trains on `train`, selects checkpoints on `val`, reports the 1,000-image / 5,000-caption `test` split.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any
from pathlib import Path

import yaml

from latentfuse.config import DataConfig, MethodSpec, RunConfig, saved_yaml
from latentfuse.config import TrainConfig
from latentfuse.eval.tables import groups, markdown, print_reports, table
from latentfuse.methods import make_config
from latentfuse.pipeline import run
from latentfuse.utils import atomic
from latentfuse.utils.outdir import OutputExistsError

from .common import bench_config, RESULTS, flickr8k_dir, publish

# FuseMix paper's adapter shape (4 residual blocks, expansion 4); ~5x the default's compute per epoch,
# so it gets 5 epochs, about the default's wall-clock.
PAPER_SIZE = {"n_blocks": 4, "expansion": 4}


def cached_run(config: RunConfig) -> list[dict]:
    """Reuse a finished run with the identical config, and resume an interrupted one from its last epoch (so an
    interrupted `make bench` loses no finished epoch); a run of another config in the bench's own folder is
    replaced (``overwrite``: the bench owns ``runs/bench``)."""
    out = Path(config.out)
    if (out / "report.json").exists() and (out / "run.yaml").exists():
        if (out / "run.yaml").read_text() == saved_yaml(config) or same_resolved_run(out, config):
            return json.loads((out / "report.json").read_text())
    if (out / "checkpoints" / "last.pt").exists() and not (out / "report.json").exists():
        try:
            return run(config, progress=False, resume=True)
        except OutputExistsError:  # another config's unfinished run: replaced below
            pass
    return run(config, progress=False, overwrite=True)


def newer_settings_at_default(saved: Any, wanted: Any, default: Any) -> Any:
    """``saved`` with every setting it lacks that ``wanted`` has at its default value filled in from ``wanted``: a
    setting added to latentfuse after a run was saved, left at its default, changes nothing about that run."""
    if not (isinstance(saved, dict) and isinstance(wanted, dict) and isinstance(default, dict)):
        return saved
    filled = dict(saved)
    for key, value in wanted.items():
        if key not in saved and key in default and value == default[key]:
            filled[key] = value
        elif key in saved:
            filled[key] = newer_settings_at_default(saved[key], value, default.get(key))
    return filled


def same_resolved_run(out: Path, config: RunConfig) -> bool:
    """Whether the run in ``out`` trained exactly ``config`` although its run.yaml reads otherwise: every setting is
    the same (settings added since it was saved count at their defaults) and every option of the method resolves
    to the value the saved model records (config.json's ``method_config``). A benchmark that pins a method's former
    defaults explicitly, after the defaults changed, reuses the runs they produced instead of training them again."""
    wanted = yaml.safe_load(saved_yaml(config))
    saved = newer_settings_at_default(yaml.safe_load((out / "run.yaml").read_text()), wanted,
                                      yaml.safe_load(saved_yaml(type(config)())))
    if saved["method"]["name"] != wanted["method"]["name"] or not (out / "config.json").exists():
        return False
    saved["method"]["options"] = wanted["method"]["options"] = None
    if saved != wanted:
        return False
    recorded = json.loads((out / "config.json").read_text()).get("method_config", {})
    resolved = dataclasses.asdict(make_config(config.method.name, config.method.options))
    return all(recorded.get(key, value) == value for key, value in resolved.items()
               if key not in DATA_FILLED)


DATA_FILLED = ("labels", "encoder_flops")  # options a method fills in from the training data, not from the user


def base_config(data: Path) -> RunConfig:
    """The default FuseMix run (plus baselines) every Flickr8k benchmark shares."""
    return bench_config(data=DataConfig(source=f"flickr8k:{data}"), baselines=["asif", "procrustes", "cca"],
                     out=str(RESULTS / "flickr8k" / "fusemix"))


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    base = base_config(data)
    reports = cached_run(base)
    variants = [  # (label, options, epochs): one knob changed at a time
        ("fusemix (mixup off)", {"mixup_alpha": 0.0}, base.train.epochs),
        ("fusemix (no input dropout)", {"input_dropout": 0.0}, base.train.epochs),
        ("fusemix (paper-size adapters: 4 blocks ×4, 5 ep)", PAPER_SIZE, 5),
        ("fusemix `paper` preset (official adapter + objective, 5 ep)", {"preset": "paper"}, 5),
    ]
    started = time.perf_counter()
    for position, (label, options, epochs) in enumerate(variants, start=1):
        config = bench_config(data=base.data, method=MethodSpec("fusemix", options), baselines=[],
                           train=TrainConfig(epochs=epochs), out=str(RESULTS / "flickr8k" / f"variant{position}"))
        report = cached_run(config)[0]
        report["method"] = label
        reports.insert(position, report)
    print_reports(reports, heading="Flickr8k test (1,000 images, 5,000 captions)")
    print(markdown(reports))
    atomic.write_json(RESULTS / "flickr8k.json", reports)
    (header, rows), = [table(group) for group in groups(reports)]
    path = publish("flickr8k", "python -m bench.flickr8k", header, rows, reports=reports)
    print(f"\nwritten {path} ({time.perf_counter() - started:.0f}s for the variants)")


if __name__ == "__main__":
    main()
