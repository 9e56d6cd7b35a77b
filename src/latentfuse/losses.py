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


def latent_mixup(xa: torch.Tensor, xb: torch.Tensor, alpha: float, generator: torch.Generator | None = None,
                 pairs: str = "shuffle") -> tuple[torch.Tensor, torch.Tensor, float]:
    """FuseMix: mix the frozen latents with ONE λ ~ Beta(α, α) and the same partners for both modalities,
    so a mixed image latent still matches the equally mixed text latent.

    ``pairs="shuffle"``: each pair with a shuffled partner (the batch keeps its size); ``"halves"``: the
    first half of the batch with the second half, as the official forward does (the batch is halved; an
    odd last row is dropped)."""
    if alpha <= 0:
        return xa, xb, 1.0
    lam = float(_beta_with(generator, alpha)) if generator is not None else float(
        torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha))).sample())
    if pairs == "halves":
        half = len(xa) // 2
        return (lam * xa[:half] + (1 - lam) * xa[half:2 * half],
                lam * xb[:half] + (1 - lam) * xb[half:2 * half], lam)
    perm = torch.randperm(len(xa), generator=generator, device=xa.device)
    return lam * xa + (1 - lam) * xa[perm], lam * xb + (1 - lam) * xb[perm], lam


def _beta_with(generator: torch.Generator, alpha: float) -> torch.Tensor:
    """Beta(α, α) drawn from a seeded generator (torch.distributions ignores generators)."""
    a = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    b = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    return (a / (a + b))[0]
