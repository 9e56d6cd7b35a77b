"""Commands that read a saved model: eval | index | search | serve."""
from __future__ import annotations

import json
from pathlib import Path
import logging
import sys
from typing import TYPE_CHECKING

import click

from ..config.commands import EvalConfig, IndexConfig, SearchConfig, ServeConfig
from ..errors import ConfigError
from . import app
from .schema import SchemaCommand, schema_command

if TYPE_CHECKING:
    from ..model import JointModel

log = logging.getLogger("latentfuse.cli")

EVAL_HELP = """Evaluate a saved model (-m/--model) or frozen encoder(s) (--frozen) on one or
more tasks: prints one table per task and writes one JSON report (--json).

\b
Tasks: --task NAME or --task NAME=DATA (repeatable, also with the same NAME):
{tasks}

A task without =DATA uses --data; with neither it asks (naming its usual dataset).
--split applies to every task (default: test, or the dataset's only split).
Without --task: retrieval on --data, and the JSON is that single report. With
--task the JSON is {{"reports": [...]}}, one per task (and split).

\b
Task options: --set options.TASK.OPTION=VALUE (YAML values), e.g.
--set options.sts.side=cross
{task_options}

\b
Examples:
  latentfuse eval -m runs/f8k --data flickr8k:DIR --json report.json
  latentfuse eval -m runs/f8k --task retrieval=flickr8k:DIR --task zeroshot=fashion-mnist
    --task linear-probe=fashion-mnist --task sts=sts-b --json all.json
  latentfuse eval --frozen minilm-l6 --task sts=sts-b --task sts=wordsim353
  latentfuse eval --frozen efficientnet-lite0 -t linear-probe=imagefolder:DIR
  latentfuse eval -m runs/text2text --task sts=sts-b --set options.sts.side=cross
"""


class RegistryHelp(SchemaCommand):
    """A command whose help lists registered tasks: filled in from the registry only when help is shown, so
    a new (or plugin) task appears without editing this file, and start-up stays cheap."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = self.help
        self.help = (saved or "").format(**_task_help())
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = saved


def _task_help() -> dict[str, str]:
    from ..eval.tasks import TASKS

    listing, options = [], []
    for name, doc in TASKS.describe().items():
        task = TASKS.get(name)
        default = f" (usual data: {task.default_data})" if task.default_data else ""
        listing.append(f"  {name:<20} {task.summary or doc}{default}")
        knobs = ", ".join(f"{option}={_short(value)}" for option, value, _ in task.describe_options())
        if knobs:
            options.append(f"  {name}: {knobs}")
    return {"tasks": "\n".join(listing), "task_options": "\n".join(options)}


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


@schema_command(app, "eval", [EvalConfig], help=EVAL_HELP, cls=RegistryHelp)
def eval_(cfg: EvalConfig) -> None:
    from ..eval.suite import parse_jobs, require_data, run_jobs
    from ..eval.tables import print_reports
    from ..eval.tasks import check_options

    if not cfg.task and not cfg.data:
        raise ConfigError("give --data SPEC (retrieval) or one or more --task NAME[=DATA]")
    jobs = parse_jobs(cfg.task or ["retrieval"], cfg.data or None)  # typos fail here, before any model is loaded
    options = check_options(cfg.options, hubness=cfg.hubness)
    if bool(cfg.model) == bool(cfg.frozen):
        raise ConfigError("give exactly one of --model DIR or --frozen ENCODER_SPEC")
    require_data(jobs)
    if cfg.json:
        from ..utils.outdir import check_new_file

        check_new_file(cfg.json, cfg.overwrite, "--json")  # before the work, not after it
    joint = _eval_model(cfg).to(cfg.runtime.device, cfg.runtime.precision, cfg.runtime.backend)
    reports = []
    for split in cfg.split or [None]:
        reports += run_jobs(joint, jobs, split, cfg.store, options, skip_bad=cfg.skip_bad,
                            on_report=lambda r: print_reports([r]))
    if cfg.json:
        from ..utils import atomic

        atomic.write_json(cfg.json, {"reports": reports} if cfg.task or len(reports) > 1 else reports[0])
        log.info("report → %s", cfg.json)


def _eval_model(cfg: EvalConfig) -> "JointModel":
    """The JointModel to evaluate: a saved folder, or an identity model over frozen encoders (one of them)."""
    if cfg.frozen:
        from ..eval.frozen import frozen_model

        return frozen_model(cfg.frozen)
    from ..model import JointModel

    return JointModel.load(cfg.model)


@schema_command(app, "index", [IndexConfig])
def index(cfg: IndexConfig) -> None:
    """Embed a collection into a search index; on an existing index, add only the items it lacks.

    OUT must be new, empty, or an index; a folder holding anything else needs --overwrite."""
    from ..index.build import build_index

    if not (cfg.data or cfg.delete or cfg.delete_where) and not (Path(cfg.out) / "index.json").exists():
        raise ConfigError("give --data SOURCE (the items to index), or --delete / --delete-where on an index")
    built, added = build_index(cfg.model or None, cfg.data, cfg.out, splits=cfg.split, side=cfg.side,
                               kind=cfg.index_kind or None, nprobe=cfg.nprobe or None, refine=cfg.refine or None,
                               store=cfg.store, skip_bad=cfg.skip_bad, rebuild=cfg.rebuild, overwrite=cfg.overwrite,
                               update=cfg.update, delete=cfg.delete, delete_where=cfg.delete_where,
                               dtype=cfg.index_dtype or None, runtime=cfg.runtime)
    skipped = f", {len(built.skipped)} skipped: see index.json" if built.skipped else ""
    click.echo(f"{cfg.out}: {len(built)} {built.modality} items ({added} added{skipped}), index kind "
               f"{built.backend_config.kind}, model {built.model.fingerprint}")


@schema_command(app, "search", [SearchConfig])
def search(cfg: SearchConfig) -> None:
    """Rank the indexed items for a text QUERY and/or an --image query."""
    from ..index import open_index

    if not cfg.query.strip() and not cfg.image:
        raise ConfigError("give a text QUERY, --image PATH, or both")
    opened = open_index(cfg.index, cfg.model or None, runtime=cfg.runtime)
    opened.hubness = cfg.hubness
    hits = opened.search(text=cfg.query or None, image=cfg.image or None, k=cfg.top_k, where=cfg.where or None)
    if cfg.json:
        click.echo(json.dumps({"query": cfg.query or None, "image": cfg.image or None, "k": cfg.top_k,
                               **({"where": cfg.where} if cfg.where else {}),
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


@schema_command(app, "serve", [ServeConfig])
def serve(cfg: ServeConfig) -> None:
    """HTTP API (/search, /embed, /health, /docs) and a search page at / over an index."""
    from ..serve import run_server

    run_server(cfg.index, cfg, cfg.model or None)
