"""MMFuser (Cao et al., 2024): fuse several layers of a frozen vision encoder — the deepest tap's tokens are
the queries, the taps' tokens (each projected to a common width) the keys/values — then pool into the joint
space and train with the contrastive objective every method here shares.

Follows the official projector, ``llava/model/multimodal_projector/ms_cross_attn.py`` (``MSCrossAttnBlock``):

    attn  = CrossAttn(LN_q(query), LN_kv(concat of the key/value levels))
    attn  = attn + γ2 · SelfAttn(LN_1(attn))
    out   = query + γ1 · attn                 γ1, γ2: per-channel, initialised to 0

so the block starts as the identity on the deep tokens.

``method.options.preset: paper`` is the official block: deformable attention (16 heads, 4 points), the deepest
tap querying only the shallower ones (``kv_levels: shallow``; ``builder.py``'s ``select_layer=range(4)``,
``query_layer=-1`` over the scripts' layers ``-22,-17,-12,-7,-2``), γ = 0, no position or level embedding
(``pos = None``), no mixup. ``tests/unit/methods/test_mmfuser_paper.py`` checks it against a transcription of
``MSCrossAttnBlock.forward`` and Deformable-DETR's ``ms_deform_attn_core_pytorch`` on the same weights. What
the official code has no counterpart for stays ours under the preset: the per-tap projections, the pooling and
the text adapter (below).

Deviations of the defaults, each with its reason:

* Key/value levels: every tap, the query's own included (``kv_levels: all``); officially only the shallower
  ones. With all, the deep tokens can also attend among themselves in the cross-attention. Measured on
  Flickr8k (``python -m bench.mmfuser_kv``, lite0 taps + MiniLM, 5 epochs, one seed; docs/results.md): val
  t2i / i2t R@5 44.0 / 46.2 with every tap, 43.6 / 46.1 with the official set — within noise, so the default
  stays; the official set is 6 % cheaper per epoch (160 vs 170 s). Both beat the last tap alone on t2i (42.4 at
  5 epochs; 42.0 at 8, the same training time).
* Standard multi-head attention (``attention: standard``; every query sees every key) instead of deformable
  attention: on a convnet's small grids (7×7 to 28×28 tokens) it costs little and needs no sampling.
* Mixup on the pooled inputs and FuseMix's objective come with the config it extends (``mixup_alpha`` and the
  rest); the official training feeds the tokens to an LLM and has neither (the preset sets ``mixup_alpha: 0``).

* Taps of different widths (a convnet's stages: 40 … 1280 channels) are each projected to ``width`` by
  their own LayerNorm + Linear; the official levels are ViT layers of one width and need no projection.
* Position and level: the official code leaves both as ``TODO`` (``pos = None``). Here every token gets a
  fixed 2-D sine-cosine embedding of its grid position (MAE-style: parameter-free, any square grid) and
  a learned per-tap level embedding (``level_embed``, ``pos_embed`` turn them off, so their effect can be
  measured). Positions go to the queries and keys of standard attention, and to the queries of deformable
  attention (which reads the keys' positions from its sampling grid, as Deformable-DETR's encoder does).
* ``attention: deformable`` is the paper's multi-scale deformable attention — sampling points per head per
  level around a reference point, offsets and weights predicted from the query — in pure PyTorch with
  ``grid_sample`` (no compiled op), as Deformable-DETR's ``ms_deform_attn_core_pytorch``.
* After the block: the tokens are pooled into one vector — attention pooling with one learned query
  (``pool: attention``) or the masked mean (``pool: mean``) — then LayerNorm + Linear to ``dim``. MMFuser
  feeds its tokens to an LLM instead; a joint embedding space needs one vector.
* The text side (pooled feature) goes through FuseMix's adapter (``hidden``, ``n_blocks``, ``expansion``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import OneOf, Positive, Range
from ..errors import ConfigError
from . import METHODS
from .base import ContrastiveMethod, masked_mean
from .deformable import MultiScaleDeformableAttention
from .fusemix import Adapter, FuseMixConfig

Tokens = dict[str, tuple[torch.Tensor, torch.Tensor]]  # tap → (tokens (B, T, C), mask (B, T))


@dataclass
class MMFuserConfig(FuseMixConfig):
    presets: ClassVar[dict[str, dict[str, Any]]] = {  # not FuseMix's: MMFuser's config extends FuseMix's
        # ms_cross_attn.py MSCrossAttnBlock(d_model, n_levels=4, n_heads=16, n_points=4, init_values=0.) with
        # builder.py's select_layer=range(4), query_layer=-1: deformable attention of the deepest layer over
        # the shallower ones only, pos = None (no position or level embedding), no mixup.
        "paper": {"attention": "deformable", "kv_levels": "shallow", "heads": 16, "points": 4, "gamma_init": 0.0,
                  "level_embed": False, "pos_embed": False, "mixup_alpha": 0.0},
    }
    taps: list[str] = field(default_factory=lambda: ["stride8", "stride16", "stride32", "head"])
    """The image side's taps, shallow to deep: the last one's tokens are the queries; which are the
    keys/values is ``kv_levels`` (`latentfuse info` lists an encoder's taps)."""
    kv_levels: Annotated[str, OneOf(("all", "shallow"))] = "all"
    """Keys/values of the cross-attention: every tap, the query's own included (all), or only the taps before
    the last (shallow; official: the deepest layer queries the shallower ones)."""
    width: Positive = 256
    """Common width every tap is projected to, and the attention's model width."""
    heads: Positive = 8
    """Attention heads (must divide width)."""
    attention: Annotated[str, OneOf(("standard", "deformable"))] = "standard"
    """standard multi-head attention, or the paper's multi-scale deformable attention (pure PyTorch)."""
    points: Positive = 4
    """deformable: sampling points per head and level."""
    gamma_init: Annotated[float, Range(0.0, 1.0)] = 0.0
    """Initial per-channel γ of both attention branches (official: 0 — the block starts as the identity)."""
    level_embed: bool = True
    """Add a learned embedding per tap to its tokens (the official code leaves it as a TODO)."""
    pos_embed: bool = True
    """Add a fixed 2-D sine-cosine embedding of each token's grid position (official: TODO)."""
    pool: Annotated[str, OneOf(("attention", "mean"))] = "attention"
    """How the fused tokens become one vector: a learned query attending over them, or their mean."""
    def __post_init__(self) -> None:
        if not self.taps:
            raise ConfigError("mmfuser: taps must name at least one tap (the last is the query level)")
        if len(set(self.taps)) != len(self.taps):
            raise ConfigError(f"mmfuser: taps {self.taps} name a tap twice")
        if self.width % self.heads:
            raise ConfigError(f"mmfuser: heads={self.heads} must divide width={self.width}")
        if self.kv_levels == "shallow" and len(self.taps) < 2:
            raise ConfigError(f"mmfuser: kv_levels: shallow needs at least 2 taps (the last queries the others); "
                              f"taps: {self.taps}")


def sincos_2d(tokens: int, width: int) -> torch.Tensor:
    """(tokens, width) fixed 2-D sine-cosine position embedding of a square grid (MAE's ``get_2d_sincos``)."""
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ConfigError(f"mmfuser: {tokens} tokens do not form a square grid; use pos_embed: false")
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / max(1, quarter))
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    parts = []
    for coord in (xs.reshape(-1), ys.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    embedding = torch.cat(parts, dim=1)
    return F.pad(embedding, (0, width - embedding.shape[1]))


class FusionBlock(nn.Module):
    """MSCrossAttnBlock: deep tokens cross-attend to every level, then self-attend; both scaled by γ."""

    def __init__(self, cfg: MMFuserConfig, levels: int) -> None:
        super().__init__()
        d = cfg.width
        self.deformable = cfg.attention == "deformable"
        self.shallow_only = cfg.kv_levels == "shallow"
        levels -= self.shallow_only  # the query level is no key/value level
        self.query_norm, self.feat_norm, self.norm1 = (nn.LayerNorm(d, eps=1e-6) for _ in range(3))
        if self.deformable:
            self.cross_attn = MultiScaleDeformableAttention(d, levels, cfg.heads, cfg.points)
            self.self_attn = MultiScaleDeformableAttention(d, 1, cfg.heads, cfg.points)
        else:
            self.cross_attn = nn.MultiheadAttention(d, cfg.heads, batch_first=True)
            self.self_attn = nn.MultiheadAttention(d, cfg.heads, batch_first=True)
        self.gamma1 = nn.Parameter(torch.full((d,), float(cfg.gamma_init)))
        self.gamma2 = nn.Parameter(torch.full((d,), float(cfg.gamma_init)))

    def cross(self, levels: list[torch.Tensor], masks: list[torch.Tensor], pos: list[torch.Tensor] | None,
              need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The deepest level's tokens (the last) cross-attending to the key/value levels (every level, or those
        before the last with ``kv_levels: shallow``): (attn, weights or None).

        ``pos``: one (tokens, width) position embedding per level, added to the queries and, with standard
        attention, the keys (DETR's way: deformable attention reads positions from its sampling grid and adds
        them to the queries only), or None. Weights (B, queries, keys) exist for standard attention only."""
        q = self.query_norm(levels[-1])
        if pos is not None:
            q = q + pos[-1]
        kv = slice(0, len(levels) - 1) if self.shallow_only else slice(0, len(levels))
        feat = self.feat_norm(torch.cat(levels[kv], dim=1))
        if self.deformable:
            return self.cross_attn(q, feat, [lv.shape[1] for lv in levels[kv]]), None
        keys = feat + torch.cat(pos[kv], dim=0) if pos is not None else feat
        return self.cross_attn(q, keys, feat, key_padding_mask=~torch.cat(masks[kv], dim=1),
                               need_weights=need_weights)

    def forward(self, levels: list[torch.Tensor], masks: list[torch.Tensor],
                pos: list[torch.Tensor] | None) -> torch.Tensor:
        attn, _ = self.cross(levels, masks, pos)
        attn1 = self.norm1(attn)
        if self.deformable:
            positioned = attn1 + pos[-1] if pos is not None else attn1
            attn2 = self.self_attn(positioned, attn1, [attn1.shape[1]])
        else:
            positioned = attn1 + pos[-1] if pos is not None else attn1
            attn2, _ = self.self_attn(positioned, positioned, attn1, key_padding_mask=~masks[-1],
                                      need_weights=False)
        attn = attn + self.gamma2 * attn2
        return levels[-1] + self.gamma1 * attn


class ImageFuser(nn.Module):
    """Taps → per-tap projection → fusion block → pooling → the joint space."""

    def __init__(self, dims: dict[str, int], cfg: MMFuserConfig) -> None:
        super().__init__()
        missing = [t for t in cfg.taps if t not in dims]
        if missing:
            raise ConfigError(f"mmfuser: taps {missing} are not among the side's inputs {list(dims)}")
        self.taps, self.cfg = list(cfg.taps), cfg
        self.project = nn.ModuleDict({t: nn.Sequential(nn.LayerNorm(dims[t]), nn.Linear(dims[t], cfg.width))
                                      for t in self.taps})
        self.level = nn.Parameter(torch.zeros(len(self.taps), cfg.width)) if cfg.level_embed else None
        if self.level is not None:
            nn.init.normal_(self.level, std=0.02)
        self.block = FusionBlock(cfg, len(self.taps))
        if cfg.pool == "attention":
            self.pool_query = nn.Parameter(torch.zeros(1, 1, cfg.width))
            nn.init.normal_(self.pool_query, std=0.02)
            self.pool_attn = nn.MultiheadAttention(cfg.width, cfg.heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, cfg.dim))

    def levels(self, x: Tokens) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
        """Each tap projected to ``width`` (+ its level embedding), its mask, and its grid positions."""
        levels, masks = [], []
        for i, tap in enumerate(self.taps):
            tokens, mask = x[tap]
            h = self.project[tap](tokens)
            levels.append(h + self.level[i] if self.level is not None else h)
            masks.append(mask)
        pos = [sincos_2d(h.shape[1], self.cfg.width).to(h) for h in levels] if self.cfg.pos_embed else None
        return levels, masks, pos

    def fused_tokens(self, x: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output tokens (B, T_query, width) and their mask."""
        levels, masks, pos = self.levels(x)
        return self.block(levels, masks, pos), masks[-1]

    @torch.no_grad()
    def level_attention(self, x: Tokens) -> dict[str, float]:
        """Share of the cross-attention each tap receives, averaged over queries, heads and the batch — the
        evidence of what the block reads (with γ, ``gammas``). Standard attention only."""
        if self.cfg.attention != "standard":
            raise ConfigError("level_attention reads standard attention's weights; this block is deformable")
        levels, masks, pos = self.levels(x)
        _, weights = self.block.cross(levels, masks, pos, need_weights=True)
        per_key = weights.mean(dim=(0, 1))  # (keys,), averaged over batch and queries (heads averaged by torch)
        taps = self.taps[:-1] if self.block.shallow_only else self.taps
        bounds = torch.cumsum(torch.tensor([0] + [lv.shape[1] for lv in levels[:len(taps)]]), 0)
        return {tap: float(per_key[bounds[i]:bounds[i + 1]].sum()) for i, tap in enumerate(taps)}

    def gammas(self) -> dict[str, float]:
        """Mean |γ1| (cross-attention branch) and |γ2| (self-attention branch): 0 = the branch is unused."""
        return {"gamma1": float(self.block.gamma1.detach().abs().mean()),
                "gamma2": float(self.block.gamma2.detach().abs().mean())}

    def forward(self, x: Tokens) -> torch.Tensor:
        tokens, mask = self.fused_tokens(x)
        if self.cfg.pool == "attention":
            query = self.pool_query.expand(len(tokens), -1, -1)
            pooled, _ = self.pool_attn(query, tokens, tokens, key_padding_mask=~mask, need_weights=False)
            pooled = pooled[:, 0]
        else:
            pooled = masked_mean(tokens, mask)
        return self.out(pooled)


@METHODS.register("mmfuser")
class MMFuser(ContrastiveMethod):
    """Multi-layer fusion of an image encoder's taps (deep tokens query every level), text via an adapter."""

    name = "mmfuser"
    config_cls = MMFuserConfig

    @classmethod
    def wanted_taps(cls, config: MMFuserConfig, modalities: dict[str, str]) -> dict[str, list[str]]:
        images = [side for side, modality in modalities.items() if modality == "image"]
        if not images:
            raise ConfigError(f"mmfuser fuses the taps of an image side; these sides are {modalities}")
        return {images[0]: list(config.taps)}

    def __init__(self, dims: dict[str, Any], config: MMFuserConfig) -> None:
        super().__init__(dims, config)
        self.heads = nn.ModuleDict({side: ImageFuser(d, config) if isinstance(d, dict) else Adapter(d, config)
                                    for side, d in dims.items()})

    def project(self, side: str, x: Any) -> torch.Tensor:
        return self.heads[side](x)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The shared contrastive loss; the γ gates' opening (mean |γ1|, |γ2|) rides along in the step's
        extras, so ``metrics.jsonl`` records how far the block opened epoch by epoch."""
        loss, extras = super().loss(batch)
        for head in self.heads.values():
            if isinstance(head, ImageFuser):
                extras.update(head.gammas())
        return loss, extras
