"""Shared losses and latent-space augmentations used by the trainable methods."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LearnableTemperature(nn.Module):
    """CLIP-style logit scale ``1/τ``, stored as log so it stays positive; clamped to [τ_min, τ_max]."""

    def __init__(self, init: float = 0.07, minimum: float = 0.01, maximum: float = 1.0) -> None:
        super().__init__()
        if not minimum <= init <= maximum:
            raise ValueError(f"temperature init {init} outside [{minimum}, {maximum}]")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init)))
        self.lo, self.hi = math.log(1.0 / maximum), math.log(1.0 / minimum)

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(self.lo, self.hi).exp()

    @property
    def temperature(self) -> float:
        return float(1.0 / self())


def symmetric_infonce(za: torch.Tensor, zb: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean of a→b and b→a cross-entropy over in-batch negatives; row i of ``za`` pairs with row i of ``zb``."""
    logits = scale * za @ zb.T
    targets = torch.arange(len(za), device=za.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def latent_mixup(xa: torch.Tensor, xb: torch.Tensor, alpha: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """FuseMix: mix each pair with a shuffled partner using ONE λ ~ Beta(α, α) and ONE permutation for
    both modalities, so a mixed image latent still matches the equally mixed text latent."""
    if alpha <= 0:
        return xa, xb, 1.0
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = float(beta.sample()) if generator is None else float(_beta_with(generator, alpha))
    perm = torch.randperm(len(xa), generator=generator, device=xa.device)
    return lam * xa + (1 - lam) * xa[perm], lam * xb + (1 - lam) * xb[perm], lam


def _beta_with(generator: torch.Generator, alpha: float) -> torch.Tensor:
    """Beta(α, α) drawn from a seeded generator (torch.distributions ignores generators)."""
    a = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    b = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    return (a / (a + b))[0]
