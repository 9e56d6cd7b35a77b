"""Diagnostics go through ``logging`` (logger ``latentfuse``) to stderr; results stay on stdout.

The CLI's ``--verbose`` / ``--quiet`` set the level once (``configure``). Library users get Python's
defaults — nothing below WARNING unless they configure logging themselves.
"""
from __future__ import annotations

import logging
import os
import sys

LOGGER = "latentfuse"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners and pipes swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """INFO by default (epochs, stages, where things were saved); DEBUG with --verbose; WARNING with
    --quiet, which also turns progress bars off (tqdm reads TQDM_DISABLE)."""
    logger = logging.getLogger(LOGGER)
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _CurrentStderr)]
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"


def bars_off(progress: bool) -> bool:
    """Whether a progress bar stays hidden: the caller asked for none, or --quiet (``TQDM_DISABLE``) is in force
    — tqdm reads that variable only when ``disable`` is not passed, and our bars pass it."""
    return not progress or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
