"""The query-bank half of a JointModel: QB-Norm's bank of typical queries per side, and its setting.

The bank is a seeded sample of the training queries of each side, embedded (``set_query_bank``) and saved
with the model; ``gallery_norm`` turns a gallery of joint embeddings into the statistics the retrieval
metrics, the index and the server rescore with (``hubness.py``); ``hub_norm`` resolves the norm in force.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..choices import HUBNESS_NORMS
from ..config import HubnessConfig
from ..errors import ModelError
from ..hubness import GalleryNorm, gallery_norm
from ..methods import Method
from ..metrics import Retriever
from ..methods.base import embed
from ..store import take
from ..utils.runtime import Runtime

log = logging.getLogger(__name__)


class QueryBank:
    """Mixed into ``JointModel``: it reads ``method``, ``runtime``, ``query_bank`` and ``hubness``."""

    method: Method
    runtime: Runtime
    query_bank: dict[str, torch.Tensor]
    hubness: HubnessConfig

    def set_query_bank(self, inputs: dict[str, Any], hubness: HubnessConfig, seed: int = 0) -> None:
        """Keep a seeded sample of up to ``hubness.bank_size`` rows of each side's frozen ``inputs`` (training
        queries) as joint embeddings: the bank QB-Norm normalises retrieval against, saved with the model."""
        self.hubness, self.query_bank = hubness, {}
        if hubness.bank_size == 0 or not self.method.embeds:
            return
        generator = torch.Generator().manual_seed(seed)
        sample = {side: torch.randperm(len(x), generator=generator)[:hubness.bank_size].sort().values.numpy()
                  for side, x in inputs.items()}
        small = too_small({side: len(rows) for side, rows in sample.items()}, hubness)
        for side, rows in sample.items():
            if side not in small:
                bank = embed(self.method, side, Rows(inputs[side], rows), autocast=self.runtime.autocast)
                self.query_bank[side] = bank.half().float()  # as saved: a reloaded model scores the same

    def gallery_norm(self, query_side: str, gallery: np.ndarray | torch.Tensor, norm: str = "") -> GalleryNorm | None:
        """QB-Norm statistics of ``gallery`` (joint embeddings) for queries of ``query_side``, with the model's
        setting (or ``norm``: none | is | dis); None when normalisation is off or the side has no bank."""
        self.require_bank(query_side, norm)
        norm = self.hub_norm(norm)
        if norm == "none" or query_side not in self.query_bank:
            return None
        return gallery_norm(self.query_bank[query_side], torch.as_tensor(np.asarray(gallery, dtype=np.float32)),
                            self.hubness.beta, dynamic=norm == "dis")

    def require_bank(self, query_side: str, asked: str) -> None:
        """An explicitly asked normalisation (``asked``: is | dis) needs a bank of the query side: refused, saying
        why there is none, instead of quietly ranking by cosine. The model's own setting ('') is not asked."""
        norm = self.hub_norm(asked)
        if norm != "none" and asked and query_side not in self.query_bank:
            have = ", ".join(self.query_bank) or ("none (trained before query banks, on fewer than "
                                                  f"hubness.min_bank {self.hubness.min_bank} queries per side, "
                                                  "or with hubness.bank_size 0)")
            raise ModelError(f"hubness {norm} needs a query bank of side {query_side!r}; this model's banks: {have}")

    def retriever(self, query_side: str, gallery: np.ndarray | torch.Tensor, norm: str = "") -> Retriever:
        """``gallery`` (joint embeddings) ranked for queries of ``query_side`` under the model's QB-Norm (or
        ``norm``): what evaluation, the run's report and the index rank with."""
        return Retriever(gallery, self.gallery_norm(query_side, gallery, norm))

    def hub_norm(self, norm: str = "") -> str:
        """The normalisation in force: ``norm`` when given (none | is | dis), else the model's setting."""
        norm = norm or self.hubness.norm
        if norm not in HUBNESS_NORMS:
            raise ModelError(f"hubness norm {norm!r}: expected {', '.join(HUBNESS_NORMS)}")
        return norm

    def hubness_summary(self, norm: str = "") -> dict[str, Any]:
        """What a report says about the normalisation it used."""
        norm = self.hub_norm(norm)
        if norm == "none" or not self.query_bank:
            return {"norm": "none"}
        return {"norm": norm, "beta": self.hubness.beta, "bank": {s: len(b) for s, b in self.query_bank.items()}}


def too_small(sizes: dict[str, int], hubness: HubnessConfig) -> set[str]:
    """The sides whose query bank is too small for QB-Norm to estimate hubness from (fewer than
    ``hubness.min_bank`` queries: it would divide out noise; measured in ``bench/qbnorm_bank.py``), said in one
    log line; such a bank is neither kept nor saved, and those queries rank by cosine."""
    small = {side: n for side, n in sizes.items() if n < hubness.min_bank}
    if small and hubness.norm != "none":
        listed = ", ".join(f"{n} {side} queries" for side, n in small.items())
        log.info("QB-Norm (%s) skipped for %s: a query bank needs at least %d (hubness.min_bank) to estimate "
                 "hubness; retrieval ranks by cosine", hubness.norm, listed, hubness.min_bank)
    return set(small)


@dataclass(frozen=True)
class Rows:
    """Some rows of a side's inputs, read lazily a chunk at a time (``embed`` slices it like the inputs)."""

    inputs: Any
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> Any:
        return take(self.inputs, self.rows[index])
