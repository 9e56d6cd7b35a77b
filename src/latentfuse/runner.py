"""The one job runner: training (``pipeline``), distillation (``distill``), the demo, ``latentfuse.fit`` and the
benchmarks are variations of one job.

    inputs (pairs, or unpaired pools) → method → trainer → query bank → test report → card → saved model

A job says what differs — its inputs and how it builds and trains its models (``Job.train``) — and the
runner does the rest once for all: the runtime (and joining torchrun), the checks that must fail before
any work (``Job.prepare``), the output-folder rule and its identity, the query bank of every trained model,
the test reports under each model's QB-Norm, and packaging the first model with its card, its settings
and ``report.json``. Under torchrun every rank trains; rank 0 alone banks, reports and saves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from .config import HubnessConfig, TrainConfig, check_fields, run_identity
from .encoders import Encoder
from .eval.report import package, split_report
from .model import JointModel
from .store import PairedFeatures
from .utils import distributed
from .utils.extras import check_extras
from .utils.outdir import shared_output_dir
from .utils.runtime import Runtime, runtime


@dataclass
class Trained:
    """One model a job trained, and what the runner needs to finish it."""

    model: JointModel
    bank: dict[str, Any]
    """Side → the training inputs its query bank samples (the queries it was trained on)."""
    hubness: HubnessConfig
    test: PairedFeatures | None = None
    """The split the model is reported on (None: no report)."""
    dataset: str = ""
    split: str = ""


class Job(Protocol):
    config: Any  # RunConfig | DistillConfig: out, runtime, train.seed, and its identity
    kind: str  # the output folder's kind: model-run | distill-run
    config_file: str  # the settings saved beside the model: run.yaml | distill.yaml

    def prepare(self, rt: Runtime) -> None:
        """Checks that fail before the output folder is touched (typos in options, a missing teacher)."""

    def train(self, out: Path, resume: bool, progress: bool, rt: Runtime) -> Iterable[Trained]:
        """Build and train the job's models, the main one first; under torchrun only rank 0 yields."""

    def saved_identity(self, folder: Path) -> dict[str, Any] | None:
        """The identity of a run saved before output markers existed (None: unknown)."""

    def data_identity(self) -> dict[str, Any]:
        """What the job's data *is* (a content fingerprint), part of the run's identity; called after
        ``prepare``. Where the data lies is not: a moved dataset resumes."""


def run_job(job: Job, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Run ``job`` into ``job.config.out`` (the output-directory rule, ``utils.outdir``: a folder holding anything
    but this same run is refused unless ``overwrite``, which swaps the finished run in, or ``resume``); → the
    test reports, main model first (``[]`` on torchrun ranks other than 0)."""
    config = job.config
    check_fields(config, type(config).__name__)  # a config built in Python skipped from_dict's range checks
    check_extras(config)  # before the runtime, the output folder and any extraction
    rt = distributed.init_from_env(runtime(config.runtime.device, config.runtime.precision, config.runtime.backend))
    job.prepare(rt)
    identity = {**run_identity(config), **job.data_identity()}
    with shared_output_dir(config.out, job.kind, identity, overwrite=overwrite, resume=resume,
                           known_files=(job.config_file, "model.safetensors"),
                           legacy_identity=job.saved_identity) as out:
        main, reports = None, []
        for trained in job.train(out, resume, progress and distributed.is_main(), rt):
            trained.model.set_query_bank(trained.bank, trained.hubness, config.train.seed)
            if trained.test is not None:
                reports.append(split_report(trained.model, trained.test, trained.dataset, trained.split))
            main = main or trained.model
        if not distributed.is_main() or main is None:
            return []
        package(main, out, config=config, config_file=job.config_file, reports=reports)
        return reports


def training_meta(train: TrainConfig, encoders: dict[str, Encoder]) -> dict[str, Any]:
    """What a saved model says of how it was made (config.json, the card): the training hyper-parameters and
    each side's frozen weights (Hub id, license)."""
    keep = ("epochs", "batch_size", "lr", "weight_decay", "warmup", "seed", "select")
    return {"hyperparameters": {key: getattr(train, key) for key in keep},
            "base_weights": {side: [list(entry) for entry in encoder.provenance()] for side, encoder in encoders.items()}}
