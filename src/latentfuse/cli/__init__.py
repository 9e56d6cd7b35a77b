"""The ``latentfuse`` command, generated from the configuration schemas (``cli.schema``).

Each subcommand names its schema (``config.RunConfig``, ``config.commands.EvalConfig``, ...); its flags,
``--help``, ``--set key=value`` and ``--config FILE`` come from it, so an option is declared once and means
the same in every command (``-m/--model`` reads a model everywhere). Importing this package imports neither
torch nor any model code: ``latentfuse --help`` is instant; each command imports what it runs.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import LatentfuseError
from ..utils.logs import configure as configure_logging
from ..version import __version__

log = logging.getLogger(__name__)
WORKER_ERRORS = "LATENTFUSE_WORKER_ERRORS"  # where --nproc workers leave their one-line error (cli.jobs._torchrun)
_STATE: dict[str, bool] = {}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="latentfuse", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Debug diagnostics, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress bars.")
def app(verbose: bool, quiet: bool) -> None:
    """Multimodal joint embedding spaces from frozen encoders: cached features, small heads.

    Every command takes --config FILE, --set KEY=VALUE and --help; `latentfuse info --fields` lists every
    key. Shell completion: `latentfuse completion bash|zsh|fish`."""
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet contradict each other")
    _STATE["verbose"] = verbose
    configure_logging(verbose=verbose, quiet=quiet)


from . import info, jobs, query  # noqa: E402,F401  (registers the commands on ``app``)


def main(argv: list[str] | None = None) -> None:
    if "HF_HUB_OFFLINE" not in os.environ:  # encoders never download; a dataset fetch may (data/_flickr8k_fetch)
        os.environ["HF_HUB_OFFLINE"] = os.environ["LATENTFUSE_HUB_OFFLINE_BY_DEFAULT"] = "1"
    try:
        code: Any = app.main(args=argv, prog_name="latentfuse", standalone_mode=False)
    except click.ClickException as exc:  # usage errors: click's one line (and usage), exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.secho("interrupted: committed feature shards and checkpoints are kept (extract resumes when re-run; "
                    "train with --resume)", err=True)
        sys.exit(130)
    except (LatentfuseError, OSError) as exc:  # an OSError here is the user's file system: name the file
        if _STATE.get("verbose"):
            log.exception("traceback of the error below")
        text = str(exc) if isinstance(exc, LatentfuseError) else f"{exc.filename or 'file system'}: {exc.strerror or exc}"
        message = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates print too
        errors = os.environ.get(WORKER_ERRORS)
        if errors:  # a torchrun worker: the launching process prints one line for all of them
            Path(errors, f"rank{os.environ.get('RANK', '0')}.txt").write_text(message)
        else:
            click.secho(f"error: {message}", fg="red", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
