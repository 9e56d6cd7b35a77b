"""The `latentfuse` command: extract | train | distill | eval | run | demo | index | search | serve | info.

Every command is a thin shell over ``pipeline``; options mirror the dataclass config, and anything not
exposed as an option can be set with ``--set dotted.key=value`` (see ``latentfuse info --config``).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer
from typer.core import TyperCommand

from .version import __version__
from .config import RunConfig, apply_overrides, describe, load_yaml, set_field
from .errors import LatentfuseError
from .utils.logs import configure as configure_logging

log = logging.getLogger(__name__)
_STATE: dict[str, bool] = {}

if TYPE_CHECKING:
    from .config import StoreConfig
    from .model import JointModel

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal joint embedding spaces from frozen encoders: cached features, small heads.")

EncoderOpt = typer.Option(None, "--encoder", "-e", help="SIDE=SPEC, e.g. image=efficientnet-lite0 (repeatable).")
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace what the output already holds: the new result is "
                            "swapped in only once it is complete.")
DeviceOpt = typer.Option(None, "--device", help="auto (CUDA when torch sees a GPU, else CPU) | cpu | cuda | "
                         "cuda:N | mps.")
PrecisionOpt = typer.Option(None, "--precision", help="fp32 (default) | bf16 | fp16 (CUDA): autocast precision.")
_BACKEND_HELP = ("What runs the frozen encoders: auto (default: ONNX Runtime when installed, else torch) | torch | "
                 "onnx | onnx-int8.")
BackendOpt = typer.Option(None, "--backend", "--encoder-backend", help=_BACKEND_HELP)
SetOpt = typer.Option(None, "--set", help="Override any config field: dotted.key=value (repeatable); "
                      "`latentfuse info --config` lists them.")


def _registry_help() -> dict[str, str]:
    """What help texts say about registered things, read from the registries when help is shown."""
    from .eval.tasks import TASKS
    from .methods import METHODS

    listing, options = [], []
    for name, doc in TASKS.describe().items():
        task = TASKS.get(name)
        default = f" (default data: {task.default_data})" if task.default_data else ""
        listing.append(f"  {name:<20} {task.summary or doc}{default}")
        knobs = ", ".join(f"{option}={_short(value)}" for option, value, _ in task.describe_options())
        if knobs:
            options.append(f"  {name}: {knobs}")
    return {"methods": " | ".join(METHODS.names()), "tasks": "\n".join(listing),
            "task_options": "\n".join(options)}


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


class RegistryHelp(TyperCommand):
    """A command whose help names registered methods / tasks: filled in from the registries when shown,
    so a new (or plugin) method or task appears without editing this file, and start-up stays cheap."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        values = _registry_help()
        templates = self.__dict__.setdefault("_templates", {"": self.help or ""})  # help may be shown twice
        self.help = templates[""].format(**values)
        for param in self.params:
            if getattr(param, "help", None):
                template = templates.setdefault(param.name or "", param.help)
                param.help = template.replace("{methods}", values["methods"])
        super().format_help(ctx, formatter)


def _config(config: Optional[Path], data: Optional[str], encoders: Optional[List[str]],
            overrides: Optional[List[str]], **fields) -> RunConfig:
    """YAML (or defaults) → ``--set`` overrides (parsed as YAML) → typed options, set as the values they are."""
    cfg = load_yaml(config) if config else RunConfig()
    if overrides:
        cfg = apply_overrides(cfg, list(overrides))
    if data:
        set_field(cfg, "data.source", data, "--data")
    if encoders:
        set_field(cfg, "encoders", dict(_side_spec(item) for item in encoders), "--encoder")
    for key, value in fields.items():
        if value is not None:
            set_field(cfg, key, value)
    return cfg


def _side_spec(item: str) -> tuple[str, str]:
    side, sep, spec = item.partition("=")
    if not sep or not side.strip() or not spec.strip():
        raise typer.BadParameter(f"--encoder {item!r}: expected SIDE=SPEC, e.g. text=minilm-l6")
    return side.strip(), spec.strip()


@app.command()
def extract(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data source spec, e.g. flickr8k:DIR."),
    encoder: Optional[List[str]] = EncoderOpt,
    split: Optional[List[str]] = typer.Option(None, "--split", help="Split(s) to extract (default: all)."),
    layers: Optional[List[str]] = typer.Option(
        None, "--layers", help="Token taps to cache too: TAP,TAP or SIDE=TAP,TAP (repeatable; `latentfuse info` "
        "lists each encoder's taps)."),
    store: Optional[str] = typer.Option(None, "--store", help="Feature cache directory."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Record and skip bad items instead of failing."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config to start from."),
    device: Optional[str] = DeviceOpt,
    precision: Optional[str] = PrecisionOpt,
    backend: Optional[str] = BackendOpt,
    engine: Optional[str] = typer.Option(None, "--engine", help="local (default) | ray: Ray Data decode tasks + "
                                         "encoder actors, same store ([dist] extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="engine ray: cluster to join "
                                              "(default: a local Ray instance)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="engine ray: encoder actors (default 2)."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="engine ray: GPUs per actor."),
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Run the frozen encoders over a dataset into the feature cache (resumable; cached on re-run)."""
    from .data import build_source
    from .pipeline import extract_split, extract_taps, side_encoders, taps_by_side
    from .utils.runtime import runtime

    cfg = _config(config, data, encoder, set_, **{"store.root": store, "runtime.device": device,
                                                 "runtime.precision": precision, "runtime.backend": backend,
                                                 "store.engine": engine,
                                                 "store.ray_address": ray_address, "store.workers": workers,
                                                 "store.gpus_per_worker": gpus_per_worker})
    rt = runtime(cfg.runtime.device, cfg.runtime.precision, cfg.runtime.backend)  # a missing GPU fails first
    skip = skip_bad or cfg.data.skip_bad
    source = build_source(cfg.data.source, skip_bad=skip)
    encoders = side_encoders(source, cfg.encoders, rt)
    taps = {**cfg.taps, **taps_by_side(list(layers or []), encoders)}
    for side, names in taps.items():  # typos fail before any work
        if side in encoders:
            encoders[side].check_taps(names)
    for name in split or source.splits():
        source.check_split(name)
        counts = extract_split(source, name, encoders, cfg.store, skip_bad=skip)
        log.info("%s: %s features  → %s", name, ", ".join(f"{s}={n}" for s, n in counts.items()), cfg.store.root)
        for side, tap, features in extract_taps(source, name, encoders, taps, cfg.store, skip_bad=skip):
            lengths = features.lengths()
            shape = f"{int(lengths[0]) if len(set(lengths.tolist())) == 1 else f'{lengths.mean():.1f} (mean)'}"
            typer.echo(f"{name}/{side} tap {tap}: {len(features)} items × {shape} tokens × {features.channels} "
                       f"channels, {features.bytes_per_item() / 1024:.1f} KiB per item")


@app.command(cls=RegistryHelp)
def train(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data source spec, e.g. flickr8k:DIR."),
    encoder: Optional[List[str]] = EncoderOpt,
    method: Optional[str] = typer.Option(None, "--method", "-m", help="{methods} (see `latentfuse info`)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Where the JointModel is saved."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.pt."),
    overwrite: bool = OverwriteOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config to start from."),
    device: Optional[str] = DeviceOpt,
    precision: Optional[str] = PrecisionOpt,
    backend: Optional[str] = BackendOpt,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train with N local processes (launches torchrun: gloo on "
                              "CPU, NCCL on GPU); the global batch is train.batch_size."),
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Train (or fit) a method on cached features and save the JointModel; baselines are not run.

    OUT must be new, empty, or hold this same run; anything else needs --overwrite (or --resume)."""
    from .pipeline import run

    cfg = _config(config, data, encoder, set_, **{"method.name": method, "out": out,
                                                 "train.epochs": epochs, "train.seed": seed,
                                                 "runtime.device": device, "runtime.precision": precision,
                                                 "runtime.backend": backend})
    if nproc > 1:
        _torchrun(nproc, cfg)
    cfg.baselines = []
    reports = run(cfg, resume=resume, overwrite=overwrite)
    _show(reports, cfg.out)


def _torchrun(nproc: int, cfg: Any) -> None:
    """Re-run this command under ``torch.distributed.run`` with ``nproc`` local processes, then exit with
    its status (the same as ``torchrun --standalone --nproc-per-node N -m latentfuse …``). The settings every
    process would refuse (device, precision, a batch that does not split) are checked here first, so they
    are one line, not one per process under torchrun's own report."""
    import subprocess

    from .utils.distributed import check_batch
    from .utils.runtime import runtime

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
    raise typer.Exit(subprocess.call(command))


@app.command()
def distill(
    teacher: Optional[Path] = typer.Option(None, "--teacher", "-t", help="Trained JointModel folder to distil."),
    images: Optional[List[str]] = typer.Option(
        None, "--images", help="Image pool: SOURCE or SOURCE@SPLIT, only its images are read (repeatable)."),
    texts: Optional[List[str]] = typer.Option(
        None, "--texts", help="Sentence pool: SOURCE or SOURCE@SPLIT, e.g. lines:FILE (repeatable)."),
    student: Optional[str] = typer.Option(
        None, "--student", help="image=truncated[:TAP[:SIZE]]|pixels[:SIZE]|teacher,"
        "text=glove-transformer[:LAYERS]|glove-bag|teacher (default image=truncated:stride16,text=glove-transformer)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Where the student JointModel is saved."),
    val: Optional[str] = typer.Option(None, "--val", help="Paired source whose val split picks the best checkpoint."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (one epoch = one pass over the larger pool)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    store: Optional[str] = typer.Option(None, "--store", help="Feature cache directory."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Record and skip bad pool items instead of failing."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.pt."),
    overwrite: bool = OverwriteOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML distill config to start from."),
    device: Optional[str] = DeviceOpt,
    precision: Optional[str] = PrecisionOpt,
    backend: Optional[str] = BackendOpt,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train the student with N local processes (torchrun)."),
    set_: Optional[List[str]] = SetOpt,
    data: Optional[str] = typer.Option(None, "--data", "-d", hidden=True),
) -> None:
    """Distil a trained model into small, fast student towers from UNPAIRED image and sentence pools (DIME-FM).

    OUT must be new, empty, or hold this same run; anything else needs --overwrite (or --resume)."""
    from .config import DistillConfig
    from .distill import distill as run_distill

    if data:
        raise typer.BadParameter(f"distill learns from unpaired pools, not from a paired --data source: give "
                                 f"--images {data} and --texts {data} to use its images and its sentences "
                                 "separately (their pairing is dropped)", param_hint="--data")
    cfg = load_yaml(config, DistillConfig) if config else DistillConfig()
    if set_:
        cfg = apply_overrides(cfg, list(set_))
    fields = {"teacher": str(teacher) if teacher else None, "images": list(images) if images else None,
              "texts": list(texts) if texts else None, "student": student, "out": out, "val": val,
              "train.epochs": epochs, "train.seed": seed, "store.root": store, "skip_bad": skip_bad or None,
              "runtime.device": device, "runtime.precision": precision, "runtime.backend": backend}
    for key, value in fields.items():
        if value is not None:
            set_field(cfg, key, value)
    if nproc > 1:
        _torchrun(nproc, cfg)
    summary = run_distill(cfg, resume=resume, overwrite=overwrite)
    if not summary:  # a torchrun rank other than 0: rank 0 saved and reports
        return
    typer.echo(f"student saved to {cfg.out} (best epoch {summary['best_epoch']}, {summary['train_seconds']:.0f} s; "
               f"rows: {', '.join(f'{k}={v}' for k, v in summary['rows'].items())}); "
               f"`latentfuse info --cost {cfg.out}` compares its cost")


EVAL_HELP = """Evaluate a saved model (--model) or frozen encoder(s) (--frozen) on one or
more tasks: prints one table per task and writes one JSON report (--json).

\b
Tasks: --task NAME or --task NAME=DATA (repeatable, also with the same NAME):
{tasks}

A task without =DATA uses --data when given, else its default dataset.
--split applies to every task (default: test, or the dataset's only split).
Without --task: retrieval on --data, and the JSON is that single report (the
original form). With --task the JSON is {{"reports": [...]}}, one per task.

\b
Task options: --opt TASK.OPTION=VALUE (YAML values), e.g. --opt sts.side=cross
{task_options}

\b
Examples:
  latentfuse eval -m runs/f8k --data flickr8k:DIR --json report.json
  latentfuse eval -m runs/f8k --task retrieval=flickr8k:DIR --task zeroshot
    --task linear-probe --task sts --task pair-classification --json all.json
  latentfuse eval --frozen minilm-l6 --task sts --task sts=wordsim353
  latentfuse eval --frozen efficientnet-lite0 -t linear-probe=imagefolder:DIR
  latentfuse eval -m runs/text2text --task sts --opt sts.side=cross
"""


@app.command("eval", help=EVAL_HELP, cls=RegistryHelp)
def eval_(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Saved JointModel folder."),
    frozen: Optional[List[str]] = typer.Option(
        None, "--frozen", help="Evaluate frozen encoder(s) instead of a model: SPEC or SIDE=SPEC "
        "(repeatable; e.g. --frozen minilm-l6)."),
    task: Optional[List[str]] = typer.Option(None, "--task", "-t", help="NAME or NAME=DATA (repeatable)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset for tasks given without =DATA."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to evaluate (default: test, or the only one)."),
    opt: Optional[List[str]] = typer.Option(None, "--opt", help="TASK.OPTION=VALUE (repeatable)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report JSON here (a new file)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    store: Optional[str] = typer.Option(None, "--store", help="Feature cache directory."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable items instead of failing."),
    device: Optional[str] = DeviceOpt,
    precision: Optional[str] = PrecisionOpt,
    backend: Optional[str] = BackendOpt,
) -> None:
    from .eval.suite import parse_jobs, run_jobs
    from .eval.tables import print_reports
    from .eval.tasks import parse_options

    if not task and not data:
        raise typer.BadParameter("give --data SPEC (retrieval) or one or more --task NAME[=DATA]")
    jobs = parse_jobs(list(task or ["retrieval"]), data)  # typos fail here, before any model is loaded
    options = parse_options(opt)
    if json_path:
        from .utils.outdir import check_new_file

        check_new_file(json_path, overwrite, "--json")  # before the work, not after it
    joint = _eval_model(model, frozen).to(device or "auto", precision or "fp32", backend or "auto")
    reports = run_jobs(joint, jobs, split, _store(store), options,
                       skip_bad=skip_bad, on_report=lambda r: print_reports([r]))
    if json_path:
        from .utils import atomic

        atomic.write_json(json_path, {"reports": reports} if task else reports[0])
        log.info("report → %s", json_path)


def _eval_model(model: Optional[Path], frozen: Optional[List[str]]) -> "JointModel":
    """The JointModel to evaluate: a saved folder, or an identity model over frozen encoders."""
    if bool(model) == bool(frozen):
        raise typer.BadParameter("give exactly one of --model DIR or --frozen ENCODER_SPEC")
    if frozen:
        from .eval.frozen import frozen_model

        return frozen_model(list(frozen))
    from .model import JointModel

    return JointModel.load(model)


@app.command("run")
def run_(
    config: Path = typer.Argument(..., help="YAML whose fields mirror the dataclass config."),
    resume: bool = typer.Option(False, "--resume", help="Continue training from the last checkpoint."),
    overwrite: bool = OverwriteOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """extract → train → eval from one YAML file (unknown keys are errors)."""
    from .pipeline import run

    cfg = _config(config, None, None, set_)
    _show(run(cfg, resume=resume, overwrite=overwrite), cfg.out)


@app.command()
def demo(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Where the demo model is saved."),
    overwrite: bool = OverwriteOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """The embedded default job: FuseMix vs baselines on the bundled encoders, offline, in minutes."""
    from .demo import demo_config
    from .pipeline import run

    cfg = apply_overrides(demo_config(out), list(set_ or []))
    log.info("demo: %s with %s; method %s; baselines %s", cfg.data.source, cfg.encoders, cfg.method.name,
             cfg.baselines)
    _show(run(cfg, overwrite=overwrite), cfg.out)


@app.command()
def index(
    data: str = typer.Option(..., "--data", "-d", help="Collection to index: flickr8k:DIR, images:DIR, pairs:FILE, ..."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder (created, or grown when it exists)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="JointModel folder (needed to create)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to index (default: the only one)."),
    side: Optional[str] = typer.Option(None, "--side", help="Model side to index (default: image side)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="exact (default) | ivf | hnsw (faiss)."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="ivf: cells searched per query."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Retrain the ivf/hnsw structure on all items."),
    store: Optional[str] = typer.Option(None, "--store", help="Feature cache directory."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable items instead of failing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the folder with a new index (swapped in "
                                   "once complete) instead of growing it; needs --model."),
    device: Optional[str] = DeviceOpt,
    precision: Optional[str] = PrecisionOpt,
    encoder_backend: Optional[str] = typer.Option(None, "--encoder-backend", help=_BACKEND_HELP),
) -> None:
    """Embed a collection into a search index; on an existing index, add only the items it lacks.

    OUT must be new, empty, or an index; a folder holding anything else needs --overwrite."""
    from .index.build import build_index

    built, added = build_index(model, data, out, split=split, side=side, backend=backend, nprobe=nprobe,
                               store=_store(store), skip_bad=skip_bad, rebuild=rebuild, overwrite=overwrite,
                               device=device or "auto", precision=precision or "fp32",
                               encoder_backend=encoder_backend or "auto")
    skipped = f", {len(built.skipped)} skipped: see index.json" if built.skipped else ""
    typer.echo(f"{out}: {len(built)} {built.modality} items ({added} added{skipped}), backend "
               f"{built.backend_config.kind}, model {built.model.fingerprint}")


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="Text query."),
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index folder built by `latentfuse index`."),
    image: Optional[Path] = typer.Option(None, "--image", help="Image query (with text: both combined)."),
    k: int = typer.Option(10, "-k", min=1, max=10000, help="Number of results."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder, if it moved (same model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    hubness: str = typer.Option("", "--hubness", help="Query-bank normalisation: the model's setting (default) "
                                "| none | is | dis."),
) -> None:
    """Rank the indexed items for a text and/or image query."""
    from .config import HUBNESS_OVERRIDES, OneOf
    from .index import open_index

    if not (query and query.strip()) and image is None:
        raise typer.BadParameter("give a text QUERY, --image PATH, or both")
    OneOf(HUBNESS_OVERRIDES).check(hubness, "search options", "--hubness")
    opened = open_index(index_dir, model)
    opened.hubness = hubness
    hits = opened.search(text=query, image=image, k=k)
    if as_json:
        typer.echo(json.dumps({"query": query, "image": str(image) if image else None, "k": k,
                               "results": [h.to_dict() for h in hits]}, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(hits)} results")
    for name in ("rank", "score", "id", "path / text"):
        table.add_column(name, justify="right" if name in ("rank", "score") else "left")
    for h in hits:
        table.add_row(str(h.rank), f"{h.score:.4f}", h.id, h.payload or h.source)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def serve(
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index folder built by `latentfuse index`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder, if it moved (same model)."),
    max_upload_mb: float = typer.Option(8.0, "--max-upload-mb", help="Largest accepted request body."),
    max_k: int = typer.Option(100, "--max-k", help="Largest k a request may ask for."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps: where queries are encoded."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16 (CUDA)."),
    backend: str = typer.Option("auto", "--backend", "--encoder-backend", help=_BACKEND_HELP),
    hubness: str = typer.Option("", "--hubness", help="Query-bank normalisation: the model's setting (default) "
                                "| none | is | dis."),
) -> None:
    """HTTP API (/search, /embed, /health, /docs) and a search page at / over an index."""
    from .config import Range
    from .serve import ServeConfig, run_server

    Range(0.0, 2.0**20, lo_open=True).check(max_upload_mb, "serve options", "--max-upload-mb")  # nan/inf too
    run_server(index_dir, ServeConfig(host=host, port=port, max_upload_bytes=int(max_upload_mb * 2**20),
                                      max_k=max_k, device=device, precision=precision, backend=backend,
                                      hubness=hubness), model)


def _store(store: Optional[str]) -> "StoreConfig":
    from .config import StoreConfig

    return StoreConfig(root=store) if store else StoreConfig()


@app.command()
def info(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Describe a saved model instead."),
    config: bool = typer.Option(False, "--config", help="List every config field with its default and doc."),
    cost: Optional[Path] = typer.Option(None, "--cost", help="A saved model: FLOPs and CPU ms per item of each side."),
) -> None:
    """Registered encoders, data sources and methods; or a saved model; or its cost; or the config reference."""
    if cost:
        from .cost import cost_table, model_cost
        from .model import load

        typer.echo(cost_table(model_cost(load(cost))))
        return
    if model:
        from .model import read_config

        typer.echo(json.dumps(read_config(model / "config.json"), indent=2))
        return
    if config:
        from .methods import METHODS, method_class

        from .config import DistillConfig

        for key, default, doc in describe(RunConfig):
            typer.echo(f"{key:<24} {default:<36} {doc}")
        typer.echo("\nlatentfuse distill (DistillConfig):")
        for key, default, doc in describe(DistillConfig):
            typer.echo(f"  {key:<22} {default:<36} {doc}")
        for name in METHODS.names():
            typer.echo(f"\nmethod.options when method.name={name}:")
            for key, default, doc in describe(method_class(name).config_cls):
                typer.echo(f"  {key:<22} {default:<12} {doc}")
        return
    from .data import SOURCES
    from .encoders import ENCODERS
    from .eval import TASKS
    from .methods import METHODS

    typer.echo(f"latentfuse {__version__}")
    for title, registry in (("encoders", ENCODERS), ("data sources", SOURCES), ("methods", METHODS),
                            ("evaluation tasks (latentfuse eval --task)", TASKS)):
        typer.echo(f"\n{title}:")
        for name, doc in registry.describe().items():
            typer.echo(f"  {name:<22} {doc}")
    typer.echo("\ntoken taps (extract --layers; shape = tokens × channels, T = one per word piece):")
    for name, taps in _encoder_taps(ENCODERS).items():
        for tap in taps:
            typer.echo(f"  {name:<22} {tap.name:<10} {tap.shape:<12} {tap.doc}")
    typer.echo(f"  {'hf:MODEL':<22} {'layerN':<10} {'per model':<12} a ViT's patch tokens (pooled to 7×7) or a "
               "text model's hidden states")


def _encoder_taps(registry: Any) -> dict[str, list[Any]]:
    """Taps of every registered encoder that builds without an argument and whose weights are installed."""
    out = {}
    for name in registry.names():
        try:
            taps = registry.build(name).taps()
        except (LatentfuseError, TypeError):  # needs an argument (hf:, timm:), or weights not installed
            continue
        if taps:
            out[name] = list(taps.values())
    return out


def _show(reports: list[dict], out: str) -> None:
    from .eval.tables import print_reports

    if not reports:  # a torchrun rank other than 0: rank 0 evaluated, saved and reports
        return
    print_reports(reports)
    log.info("model saved to %s  (report: %s)", out, Path(out) / "report.json")


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug diagnostics, and tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only; no progress bars."),
) -> None:
    """Multimodal joint embedding spaces from frozen encoders: cached features, small heads."""
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet contradict each other")
    _STATE["verbose"] = verbose
    configure_logging(verbose=verbose, quiet=quiet)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        app()
    except (LatentfuseError, OSError) as exc:  # an OSError here is the user's file system: name the file
        if _STATE.get("verbose"):
            log.exception("traceback of the error below")
        text = str(exc) if isinstance(exc, LatentfuseError) else f"{exc.filename or 'file system'}: {exc.strerror or exc}"
        message = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates print too
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted: committed feature shards and checkpoints are kept (extract resumes when re-run; "
                    "train with --resume)", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
