"""``identity``: no parameters — each side's frozen features, L2-normalised.

This is how a *frozen encoder* becomes a JointModel, so every evaluator can score "the encoder alone" rows
next to trained methods without a second code path (``eval.frozen.frozen_model`` builds one). Cosine
similarity between the two sides is only meaningful when both sides come from one encoder (or encoders
trained into one space, e.g. CLIP towers); with sides of different widths ``out_dim`` is 0 and only
single-side tasks (linear probe, STS/pair classification through one side) make sense — the cross-side
evaluators check and say so.
"""
from __future__ import annotations

import torch

from ..store.paired import PairedFeatures
from . import METHODS
from .base import Method, MethodConfig


@METHODS.register("identity")
class Identity(Method):
    """Frozen features, L2-normalised per side; no parameters (the 'frozen encoder' baseline)."""

    name = "identity"
    config_cls = MethodConfig
    trainable = False

    @property
    def out_dim(self) -> int:
        """The common width of the sides, or 0 when they differ (there is no joint space then)."""
        widths = set(self.dims.values())
        return widths.pop() if len(widths) == 1 else 0

    def project(self, side: str, x: torch.Tensor) -> torch.Tensor:
        if side not in self.dims:
            raise KeyError(f"identity: no side {side!r}; this model has {list(self.dims)}")
        return x.float()

    def fit(self, train: PairedFeatures) -> None:
        """Nothing to fit: the frozen features are the embedding."""
