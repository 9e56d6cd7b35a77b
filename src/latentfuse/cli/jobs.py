"""Commands that compute features or train: extract | train | run | demo | distill."""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..config import DistillConfig, FeatureConfig, RunConfig, overlay_yaml
from ..config.commands import ExtractConfig, JobOptions
from ..config.recipes import DEFAULT_RECIPE, load_recipe
from ..errors import LatentfuseError
from . import app
from .schema import schema_command

log = logging.getLogger("latentfuse.cli")


def _default_features(values: dict[str, Any]) -> ExtractConfig:
    """The `default` recipe's data, encoders, taps, cache and runtime: extract caches what train would read."""
    recipe = load_recipe(DEFAULT_RECIPE, RunConfig)
    return ExtractConfig(**{f.name: getattr(recipe, f.name) for f in dataclasses.fields(FeatureConfig)})


@schema_command(app, "extract", [ExtractConfig], start=_default_features)
def extract(cfg: ExtractConfig) -> None:
    """Run the frozen encoders over a dataset into the feature cache (resumable; cached on re-run)."""
    from ..data import build_source
    from ..pipeline import check_taps, extract_split, extract_taps, side_encoders, taps_by_side
    from ..utils.extras import check_extras
    from ..utils.runtime import runtime

    check_extras(cfg)  # a missing extra (Ray) and a missing GPU fail first
    rt = runtime(cfg.runtime.device, cfg.runtime.precision, cfg.runtime.backend)
    source = build_source(cfg.data.spec(), skip_bad=cfg.data.skip_bad)
    encoders = side_encoders(source, cfg.encoders, rt)
    taps = {**cfg.taps, **taps_by_side(cfg.layers, encoders)}
    check_taps(source, encoders, taps)  # typos fail before any work
    for name in source.expand_splits(cfg.split):
        counts = extract_split(source, name, encoders, cfg.store, skip_bad=cfg.data.skip_bad)
        log.info("%s: %s features  → %s", name, ", ".join(f"{s}={n}" for s, n in counts.items()), cfg.store.root)
        for side, tap, features in extract_taps(source, name, encoders, taps, cfg.store, skip_bad=cfg.data.skip_bad):
            lengths = features.lengths()
            shape = f"{int(lengths[0]) if len(set(lengths.tolist())) == 1 else f'{lengths.mean():.1f} (mean)'}"
            click.echo(f"{name}/{side} tap {tap}: {len(features)} items × {shape} tokens × {features.channels} "
                       f"channels, {features.bytes_per_item() / 1024:.1f} KiB per item")


def _recipe(name: str, schema: type) -> Callable[[dict[str, Any]], Any]:
    """A command's starting config: the named recipe."""
    return lambda values: load_recipe(name, schema)


@schema_command(app, "train", [RunConfig, JobOptions], recipes=True, start=_recipe(DEFAULT_RECIPE, RunConfig))
def train(cfg: RunConfig, job: JobOptions) -> None:
    """Train (or fit) a method on cached features and save the JointModel; baselines are not run.

    Starts from the `default` recipe (or --recipe NAME, or --config FILE). OUT must be new, empty, or hold
    this same run; anything else needs --overwrite (or --resume)."""
    cfg.baselines = []
    _fit(cfg, job)


def _recipe_or_file(values: dict[str, Any]) -> RunConfig:
    target = values.pop("target")
    if Path(target).suffix in (".yaml", ".yml") or Path(target).is_file():  # a file: laid over the default
        return overlay_yaml(load_recipe(DEFAULT_RECIPE, RunConfig), target)
    return load_recipe(target, RunConfig)


@schema_command(app, "run", [RunConfig, JobOptions], start=_recipe_or_file,
                extra=[click.Argument(["target"], metavar="RECIPE|FILE")])
def run(cfg: RunConfig, job: JobOptions) -> None:
    """extract → train (method and baselines) → evaluate → save, from a recipe name (`latentfuse recipes`)
    or a YAML file (unknown keys are errors)."""
    _fit(cfg, job)


@schema_command(app, "demo", [RunConfig, JobOptions], start=_recipe("demo", RunConfig))
def demo(cfg: RunConfig, job: JobOptions) -> None:
    """The embedded default job (the `demo` recipe): FuseMix vs baselines on the bundled encoders, offline,
    in minutes. Without --data it finds its data itself (see `latentfuse.demo`)."""
    from ..demo import demo_source

    if cfg.data.source == load_recipe("demo", RunConfig).data.source:  # no --data: the demo finds its own
        found = demo_source()
        cfg.data.source, cfg.data.limit = found.source, cfg.data.limit or found.limit
    log.info("demo: %s with %s; method %s; baselines %s", cfg.data.source, cfg.encoders, cfg.method.name,
             cfg.baselines)
    _fit(cfg, job)


def _fit(cfg: RunConfig, job: JobOptions) -> None:
    from ..pipeline import run as run_job

    if job.nproc > 1:
        _torchrun(job.nproc, cfg)
    _show(run_job(cfg, resume=job.resume, overwrite=job.overwrite), cfg.out)


@schema_command(app, "distill", [DistillConfig, JobOptions], recipes=True, start=_recipe("distill", DistillConfig))
def distill(cfg: DistillConfig, job: JobOptions) -> None:
    """Distil a trained model into small, fast student towers from UNPAIRED image and sentence pools (DIME-FM).

    Starts from the `distill` recipe. OUT must be new, empty, or hold this same run; anything else needs
    --overwrite (or --resume)."""
    from ..distill import distill as run_distill
    from ..utils.distributed import is_main

    if job.nproc > 1:
        _torchrun(job.nproc, cfg)
    reports = run_distill(cfg, resume=job.resume, overwrite=job.overwrite)
    if reports:
        _show(reports, cfg.out)
    if is_main():  # a torchrun rank other than 0 has nothing to say: rank 0 saved and reports
        click.echo(f"student saved to {cfg.out}; `latentfuse info -m {cfg.out} --cost` compares its cost")


def _torchrun(nproc: int, cfg: Any) -> None:
    """Re-run this command under ``torch.distributed.run`` with ``nproc`` local processes, then exit with
    its status (the same as ``torchrun --standalone --nproc-per-node N -m latentfuse …``). The settings every
    process would refuse (device, precision, a batch that does not split) are checked here first, so they
    are one line, not one per process under torchrun's own report."""
    from ..utils.distributed import check_batch
    from ..utils.runtime import runtime

    runtime(cfg.runtime.device, cfg.runtime.precision, cfg.runtime.backend)
    check_batch(cfg.train.batch_size, nproc)
    args, skip = [], False
    for arg in sys.argv[1:]:  # this command line without --nproc
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "latentfuse", *args]
    log.info("launching %d processes: %s", nproc, " ".join(command[2:]))
    sys.exit(_supervise(command))


def _supervise(command: list[str]) -> int:
    """Run torchrun, passing its output through live, and turn a worker's error into the one line a single
    process prints (exit 2) instead of torchrun's ChildFailedError report: the workers leave their message in
    a folder (``WORKER_ERRORS``), and the report that follows is held back."""
    import tempfile

    from . import WORKER_ERRORS

    with tempfile.TemporaryDirectory(prefix="latentfuse-workers-") as errors:
        process = subprocess.Popen(command, env={**os.environ, WORKER_ERRORS: errors}, stderr=subprocess.PIPE,
                                   text=True, errors="replace")
        held: list[str] = []
        assert process.stderr is not None
        for line in process.stderr:
            if held or line.startswith("Traceback (most recent call last)"):
                held.append(line)  # torchrun's own failure report
            else:
                sys.stderr.write(line)
        code = process.wait()
        messages = [path.read_text() for path in sorted(Path(errors).glob("rank*.txt"))]
    if code != 0 and messages:
        raise LatentfuseError(messages[0])
    sys.stderr.write("".join(held))
    return code


def _show(reports: list[dict], out: str) -> None:
    from ..eval.tables import print_reports

    if not reports:  # a torchrun rank other than 0: rank 0 evaluated, saved and reports
        return
    print_reports(reports)
    log.info("model saved to %s  (report: %s)", out, Path(out) / "report.json")
