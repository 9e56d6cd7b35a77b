"""Data sources: a registry of names (``flickr8k:DIR``, ``pairs:FILE``, ``fashion-mnist``, ``imagefolder:DIR``,
``sts-b``, ``mrpc``, …) → Source."""
from __future__ import annotations

from ..errors import DataError
from ..registry import Registry
from .base import Item, Payload, Side, Source, SplitData

SOURCES: Registry[Source] = Registry("data source", __name__, "latentfuse.sources")


def build_source(spec: str, *, skip_bad: bool = False) -> Source:
    """Build a source from its spec, e.g. ``build_source("flickr8k:../shared/data/flickr8k")``."""
    if not spec.strip():
        raise DataError("no data source: give --data SPEC (or data.source), e.g. pairs:captions.csv; "
                        "`latentfuse info` lists the sources")
    return SOURCES.build(spec, skip_bad=skip_bad)


__all__ = ["SOURCES", "Item", "Payload", "Side", "Source", "SplitData", "build_source"]
