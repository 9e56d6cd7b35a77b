"""FuseMix (Vouitsis et al., CVPR 2024): MLP adapters on frozen latents + contrastive loss + latent mixup.

Each side gets its own adapter: input projection → residual MLP blocks (pre-norm, expansion, dropout)
→ norm → projection to the joint space. Mixup happens on the *frozen input latents*, with one λ and one
permutation shared by both sides (``losses.latent_mixup``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import METHODS
from .base import ContrastiveConfig, ContrastiveMethod


@dataclass
class FuseMixConfig(ContrastiveConfig):
    hidden: int = 512
    """Width of the residual stream inside each adapter."""
    n_blocks: int = 1
    """Residual MLP blocks per adapter (paper: 4; defaults here are sized for small data on a CPU)."""
    expansion: int = 2
    """Hidden-layer expansion inside a block (paper: 4)."""


class ResidualBlock(nn.Module):
    def __init__(self, width: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width * expansion), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(width * expansion, width), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(x)


class Adapter(nn.Module):
    """Frozen feature (d_in) → joint space (dim)."""

    def __init__(self, d_in: int, cfg: FuseMixConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_in) if cfg.input_norm else nn.Identity(),
            nn.Dropout(cfg.input_dropout),
            nn.Linear(d_in, cfg.hidden),
            *[ResidualBlock(cfg.hidden, cfg.expansion, cfg.dropout) for _ in range(cfg.n_blocks)],
            nn.LayerNorm(cfg.hidden),
            nn.Linear(cfg.hidden, cfg.dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@METHODS.register("fusemix")
class FuseMix(ContrastiveMethod):
    """MLP adapters per modality, symmetric InfoNCE with learnable temperature, latent mixup."""

    name = "fusemix"
    config_cls = FuseMixConfig

    def __init__(self, dims: dict[str, int], config: FuseMixConfig) -> None:
        super().__init__(dims, config)
        self.adapters = nn.ModuleDict({side: Adapter(d, config) for side, d in dims.items()})

    def project(self, side: str, x: torch.Tensor) -> torch.Tensor:
        return self.adapters[side](x)
