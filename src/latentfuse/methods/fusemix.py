"""FuseMix (Vouitsis et al., CVPR 2024): MLP adapters on frozen latents + contrastive loss + latent mixup.

Each side gets its own adapter: input projection → residual MLP blocks (pre-norm, expansion, dropout)
→ norm → projection to the joint space. Mixup happens on the *frozen input latents*, with one λ and one
permutation shared by both sides (``losses.latent_mixup``).

Follows the official layer6ai-labs/fusemix code: ``lavis/models/fusion_models/mlp_contrastive_fusion.py``
(``Block``, ``MLPContrastiveFusion``), ``lavis/models/fusion_models/mixup.py`` and the paper's run config
``lavis/projects/fusion/mlp_contrastive_fusion_pretrain_dinov2_vitg14_bge_large_coco_vg_sbu_cap_cc3m.yaml``.
Deviations, each with its reason:

* Input: LayerNorm and dropout (``input_norm``, ``input_dropout`` 0.5) on the frozen feature, then a Linear
  to ``hidden``; the official blocks run at the encoder's own width with neither. Encoders differ wildly in
  scale, input dropout was the strongest regulariser on small data (``bench/flickr8k.py``, docs/results.md), and
  ``hidden`` keeps the adapter's cost independent of the encoder's width.
* Block: a Dropout also after the block's second Linear (official: only after the GELU).
* Mixup: each pair is mixed with a shuffled partner (one permutation, one λ ~ Beta(α, α) for both sides),
  so the batch keeps its size; the official forward mixes the batch's first half with its second half
  (halving it) and keeps the permutation form commented out (``mixup_pairs: halves``). With a shuffled
  partner every mixed row shares a component with another row of the batch (row i mixes x_i with x_π(i),
  row π⁻¹(i) mixes x_π⁻¹(i) with x_i): a negative that is partly the positive, which the halves have not.
  Measured anyway on the shipped default (``python -m bench.mixup_pairs``, two seeds, docs/results.md "Mixup
  partners"): mean t2i + i2t R@5 62.59 with shuffled partners vs 60.82 with halves on val (test 62.89 vs
  61.75), at equal epochs; the halves train in ~60 % of the time.
* Not implemented, no-ops at the paper's configuration: the official α schedulers (``mixup.py``; the run
  config's ``cosine_mixup_alpha`` goes from ``init_mixup_alpha`` 1.0 to ``max_mixup_alpha`` 1.0, a constant
  α = 1) and the datasets' feature noise (``noise_std: 0`` for every dataset of the run config).
* Temperature: learned as a log logit scale, τ clamped to [``temperature_min`` = 0.01, 1]; the official
  code learns τ itself (init 0.07) clamped to [0.001, 0.5]. CLIP's clamp, for a stable logit scale.
* Multi-positive targets (``multi_positive``, off by default): an addition, not in the official code, which
  treats in-batch duplicates of an image as negatives. Measured on Flickr8k val, it changes recall by a few
  tenths (``bench/quality.py``): at batch 512 of 30,000 pairs only ~7 % of rows have a duplicate.
* Defaults are sized for a CPU and ~30k pairs: 1 block, expansion 2, hidden 512, batch 512, 20 epochs,
  5 % warm-up. The paper config: 4 blocks, expansion 4, dropout 0.6, dim 512, batch 40,960, 500 epochs,
  100 warm-up steps, lr 1e-3, weight decay 0.1, α = 1 throughout.

``method.options.preset: paper`` reproduces the official adapter and objective exactly — blocks at the
encoder's width (``project_input: false``), no input norm/dropout, no dropout after a block, τ clamped to
[0.001, 0.5], mixup on half-batches — so each deviation above can be measured against it.
``tests/unit/methods/test_fusemix_paper.py`` checks its loss against a transcription of the official
``MLPContrastiveFusion.forward`` on the same weights and λ. The training
budget (batch, epochs, warm-up) stays the run's ``train`` config: the paper's batch of 40,960 is larger
than most datasets this runs on (Flickr8k train has 30,000 pairs). τ stays parameterised as a log scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import NonNegative, Positive
from . import METHODS
from .base import ContrastiveConfig, ContrastiveMethod


@dataclass
class FuseMixConfig(ContrastiveConfig):
    hidden: Positive = 512
    """Width of the residual stream inside each adapter."""
    n_blocks: NonNegative = 1
    """Residual MLP blocks per adapter (paper: 4; defaults here are sized for small data on a CPU)."""
    expansion: Positive = 2
    """Hidden-layer expansion inside a block (paper: 4)."""
    project_input: bool = True
    """A Linear from the encoder's width to ``hidden`` before the blocks; off, the blocks run at the
    encoder's own width (``hidden`` unused), as in the official adapter."""
    block_out_dropout: bool = True
    """Dropout also after a block's second Linear (official: only after the GELU)."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # lavis/projects/fusion/mlp_contrastive_fusion_pretrain_..._cc3m.yaml + mlp_contrastive_fusion.py:
        # 4 blocks × expansion 4 at the input width, dropout 0.6, no input norm/dropout, 512-d output,
        # τ init 0.07 clamped to [0.001, 0.5], mixup α = 1 on half-batches.
        "paper": {"n_blocks": 4, "expansion": 4, "dropout": 0.6, "dim": 512, "project_input": False,
                  "block_out_dropout": False, "input_norm": False, "input_dropout": 0.0, "mixup_alpha": 1.0,
                  "mixup_pairs": "halves", "temperature_init": 0.07, "temperature_min": 0.001,
                  "temperature_max": 0.5},
    }


class ResidualBlock(nn.Module):
    def __init__(self, width: int, expansion: int, dropout: float, out_dropout: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width * expansion), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(width * expansion, width),
            nn.Dropout(dropout) if out_dropout else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(x)


class Adapter(nn.Module):
    """Frozen feature (d_in) → joint space (dim)."""

    def __init__(self, d_in: int, cfg: FuseMixConfig) -> None:
        super().__init__()
        width = cfg.hidden if cfg.project_input else d_in
        self.net = nn.Sequential(
            nn.LayerNorm(d_in) if cfg.input_norm else nn.Identity(),
            nn.Dropout(cfg.input_dropout),
            nn.Linear(d_in, width) if cfg.project_input else nn.Identity(),
            *[ResidualBlock(width, cfg.expansion, cfg.dropout, cfg.block_out_dropout) for _ in range(cfg.n_blocks)],
            nn.LayerNorm(width),
            nn.Linear(width, cfg.dim),
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
