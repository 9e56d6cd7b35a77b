"""Closed-form linear baselines: orthogonal Procrustes and CCA, fit on the training pairs.

Both start from centred features (means from the training split), so they share ``_Centred``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import NonNegativeFloat, Positive
from ..store.paired import PairedFeatures
from . import METHODS
from .base import Method, MethodConfig, normalize


@dataclass
class ProcrustesConfig(MethodConfig):
    dim: Positive = 256
    """Both sides are reduced to this many principal components before the rotation is fit."""


@dataclass
class CCAConfig(MethodConfig):
    dim: Positive = 256
    """Number of canonical directions kept."""
    ridge: NonNegativeFloat = 0.1
    """Ridge added to each covariance (relative to its mean eigenvalue); small data needs it."""
    power: NonNegativeFloat = 1.0
    """Scale canonical direction k by correlation_k ** power (0 = unweighted)."""


class _Centred(Method):
    """Holds per-side mean and a projection matrix; ``encode`` = normalise((x - mean) @ proj)."""

    trainable = False

    def __init__(self, dims: dict[str, int], config) -> None:
        super().__init__(dims, config)
        for i, d in enumerate(dims.values()):
            self.register_buffer(f"mean{i}", torch.zeros(d))
            self.register_buffer(f"proj{i}", torch.zeros(d, config.dim))

    @property
    def out_dim(self) -> int:
        return int(self.proj0.shape[1])

    def _index(self, side: str) -> int:
        return self.sides.index(side)

    def project(self, side: str, x: torch.Tensor) -> torch.Tensor:
        i = self._index(side)
        return (x - getattr(self, f"mean{i}")) @ getattr(self, f"proj{i}")

    def _paired_centred(self, train: PairedFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.sides
        xa = train.x[a].double()[train.pairs[:, 0]]
        xb = train.x[b].double()[train.pairs[:, 1]]
        self.mean0, self.mean1 = xa.mean(0).float(), xb.mean(0).float()
        return xa - xa.mean(0), xb - xb.mean(0)


def _top_components(x: torch.Tensor, k: int) -> torch.Tensor:
    """Principal axes (d, k) of centred data."""
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return vh[:k].T


@METHODS.register("procrustes")
class Procrustes(_Centred):
    """PCA both sides to a common size, then the orthogonal map W minimising ||A W - B||."""

    name = "procrustes"
    config_cls = ProcrustesConfig

    def fit(self, train: PairedFeatures) -> None:
        xa, xb = self._paired_centred(train)
        k = min(self.config.dim, *self.dims.values())
        pa, pb = _top_components(xa, k), _top_components(xb, k)
        za, zb = normalize(xa @ pa), normalize(xb @ pb)
        u, _, vh = torch.linalg.svd(za.T @ zb)
        self.proj0 = (pa @ u @ vh).float()
        self.proj1 = pb.float()


def _inv_sqrt(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    cov = cov + ridge * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    vals, vecs = torch.linalg.eigh(cov)
    return vecs @ torch.diag(vals.clamp_min(1e-12).rsqrt()) @ vecs.T


@METHODS.register("cca")
class CCA(_Centred):
    """Regularised CCA via whitening + SVD of the cross-covariance."""

    name = "cca"
    config_cls = CCAConfig

    def fit(self, train: PairedFeatures) -> None:
        xa, xb = self._paired_centred(train)
        n = len(xa) - 1
        wa = _inv_sqrt(xa.T @ xa / n, self.config.ridge)
        wb = _inv_sqrt(xb.T @ xb / n, self.config.ridge)
        u, s, vh = torch.linalg.svd(wa @ (xa.T @ xb / n) @ wb)
        k = min(self.config.dim, len(s))
        weight = s[:k].clamp_min(0) ** self.config.power
        self.proj0 = (wa @ u[:, :k] * weight).float()
        self.proj1 = (wb @ vh[:k].T * weight).float()
