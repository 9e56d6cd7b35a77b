"""ASIF (Norelli et al., 2023): training-free alignment through relative representations.

Each input is described by its similarities to a set of *anchors* of its own modality; anchors come in
pairs (image i ↔ its captions), so the two descriptions live in one shared coordinate system. Only the
top-k similarities are kept and raised to a power p, which makes the vectors sparse and peaked.
Anchors here are the training images; a text anchor is the mean of that image's caption features.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import NonNegativeFloat, Positive
from ..store.paired import PairedFeatures
from . import METHODS
from .base import Method, MethodConfig, normalize


@dataclass
class ASIFConfig(MethodConfig):
    top_k: Positive = 800
    """Similarities kept per input (paper: 800)."""
    power: NonNegativeFloat = 8.0
    """Exponent applied to the kept similarities (paper: 8)."""


@METHODS.register("asif")
class ASIF(Method):
    """Relative representations over paired anchors from the training split; no training."""

    name = "asif"
    config_cls = ASIFConfig
    trainable = False

    def __init__(self, dims: dict[str, int], config: ASIFConfig) -> None:
        super().__init__(dims, config)
        for i, d in enumerate(dims.values()):
            self.register_buffer(f"anchors{i}", torch.zeros(0, d))
            self.register_buffer(f"mean{i}", torch.zeros(d))

    @property
    def out_dim(self) -> int:
        return int(self.anchors0.shape[0])

    def fit(self, train: PairedFeatures) -> None:
        """Anchor j = (image j, mean of its captions), both centred and normalised per side."""
        a, b = self.sides
        pairs = torch.from_numpy(train.pairs)
        groups, inverse = torch.unique(pairs[:, 0], return_inverse=True)
        xb = normalize(train.x[b][pairs[:, 1]])
        text_sum = torch.zeros(len(groups), xb.shape[1]).index_add_(0, inverse, xb)
        self.mean0 = train.x[a][groups].mean(0)
        self.mean1 = xb.mean(0)
        self.anchors0 = normalize(train.x[a][groups] - self.mean0)
        self.anchors1 = normalize(text_sum / torch.bincount(inverse)[:, None] - self.mean1)

    def project(self, side: str, x: torch.Tensor) -> torch.Tensor:
        i = self.sides.index(side)
        if side == self.sides[1]:
            x = normalize(x)  # captions were normalised before averaging into anchors
        sims = normalize(x - getattr(self, f"mean{i}")) @ getattr(self, f"anchors{i}").T
        k = min(self.config.top_k, sims.shape[1])
        top = sims.topk(k, dim=1)
        sparse = torch.zeros_like(sims).scatter_(1, top.indices, top.values.clamp_min(0) ** self.config.power)
        return sparse
