"""Multi-scale deformable attention (Zhu et al., Deformable DETR), in pure PyTorch — no compiled op.

Each query looks at ``points`` sampling locations per head and per level, around its reference point (its
own grid position); the offsets and the attention weights over the ``levels × points`` samples are predicted
from the query, and the samples are read from each level's value map by bilinear interpolation
(``grid_sample``). Follows Deformable-DETR's ``models/ops/modules/ms_deform_attn.py`` (``MSDeformAttn``) and
its pure-PyTorch reference ``ms_deform_attn_core_pytorch``, which MMFuser's projector calls through its CUDA op.

Levels and queries are square token grids (row-major), as the taps of ``Encoder.encode_taps`` are.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def grid_side(tokens: int) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"deformable attention needs square token grids; got {tokens} tokens")
    return side


def reference_points(tokens: int, device: torch.device | None = None) -> torch.Tensor:
    """(tokens, 2) normalised (x, y) centres of a square grid's cells, row-major."""
    side = grid_side(tokens)
    centres = (torch.arange(side, dtype=torch.float32, device=device) + 0.5) / side
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=-1)


def sample_levels(value: torch.Tensor, sides: list[int], locations: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """The deformable read: ``value`` (B, ΣHW, heads, d) split into square levels; ``locations``
    (B, Q, heads, levels, points, 2) in [0, 1] (x, y); ``weights`` (B, Q, heads, levels, points).
    Returns (B, Q, heads · d): per head, the weighted sum of the bilinearly sampled values (zero outside)."""
    batch, _, heads, d = value.shape
    queries, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    grids = 2 * locations - 1  # grid_sample's [-1, 1]
    sampled = []
    start = 0
    for level, side in enumerate(sides):
        level_value = value[:, start:start + side * side]  # (B, HW, heads, d)
        start += side * side
        level_value = level_value.permute(0, 2, 3, 1).reshape(batch * heads, d, side, side)
        grid = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, queries, points, 2)
        sampled.append(F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # (B·heads, d, Q, points)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # (B·heads, d, Q, levels·points)
    w = weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (stacked * w).sum(-1).view(batch, heads * d, queries)
    return out.transpose(1, 2)


class MultiScaleDeformableAttention(nn.Module):
    """``MSDeformAttn``: queries (B, Q, d) over ``levels`` square value grids concatenated (B, ΣHW, d)."""

    def __init__(self, width: int, levels: int, heads: int, points: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.width, self.levels, self.heads, self.points = width, levels, heads, points
        self.sampling_offsets = nn.Linear(width, heads * levels * points * 2)
        self.attention_weights = nn.Linear(width, heads * levels * points)
        self.value_proj = nn.Linear(width, width)
        self.output_proj = nn.Linear(width, width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As MSDeformAttn: offsets start on a ring of directions, one per head, growing with the point
        index; uniform attention weights; Xavier value and output projections."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        for i in range(self.points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: torch.Tensor, values: torch.Tensor, level_tokens: list[int]) -> torch.Tensor:
        batch, queries, _ = query.shape
        sides = [grid_side(n) for n in level_tokens]
        if len(sides) != self.levels:
            raise ValueError(f"expected {self.levels} levels, got {len(sides)}")
        value = self.value_proj(values).view(batch, values.shape[1], self.heads, self.width // self.heads)
        offsets = self.sampling_offsets(query).view(batch, queries, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(batch, queries, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(batch, queries, self.heads, self.levels, self.points)
        reference = reference_points(queries, query.device)  # (Q, 2)
        normaliser = torch.tensor(sides, dtype=query.dtype, device=query.device)[:, None].expand(-1, 2)
        locations = reference[None, :, None, None, None, :] + offsets / normaliser[None, None, None, :, None, :]
        return self.output_proj(sample_levels(value, sides, locations, weights))
