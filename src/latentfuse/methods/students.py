"""Small trainable towers for students (DIME-FM, ``methods/dime.py``): each maps one side's cheap inputs to the
joint space.

* ``TokenStudent`` — tokens (a shallow tap of a frozen backbone, or GloVe word vectors) → Linear to
  ``width`` + learned positions → ``layers`` Transformer encoder layers (padding masked) → pooling (a
  learned query attending over the real tokens, or their mean) → Linear to ``dim``.
* ``MLPStudent`` — a pooled vector (bag-of-GloVe, or any pooled feature) → LayerNorm → MLP → ``dim``.
* ``ConvStudent`` — a flat low-resolution image (``pixels:SIZE``) → four stride-2 3×3 conv blocks
  (BatchNorm + ReLU) → global average pool → Linear to ``dim``; trained from raw pixels.
* ``TeacherTower`` — a side that is *not* distilled: the teacher's own frozen head on the teacher's
  encoder (DIME-FM's released code keeps the text tower this way).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Method, masked_mean

Tokens = tuple[torch.Tensor, torch.Tensor]


def one_tap(x: Any) -> Tokens:
    """A token student reads one tap: ``{tap: (tokens, mask)}`` → ``(tokens, mask)``."""
    if isinstance(x, dict) and len(x) == 1:
        return next(iter(x.values()))
    raise TypeError("a token student needs exactly one token tap as input, got "
                    f"{sorted(x) if isinstance(x, dict) else 'a pooled feature'}")


class TokenStudent(nn.Module):
    def __init__(self, channels: int, width: int, dim: int, layers: int, heads: int, dropout: float,
                 max_tokens: int, pool: str) -> None:
        super().__init__()
        self.max_tokens, self.pool = max_tokens, pool
        self.embed = nn.Sequential(nn.Linear(channels, width), nn.LayerNorm(width))
        self.position = nn.Parameter(torch.zeros(max_tokens, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        if pool == "attention":
            self.query = nn.Parameter(torch.zeros(1, 1, width))
            nn.init.trunc_normal_(self.query, std=0.02)
            self.attend = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: Any) -> torch.Tensor:
        tokens, mask = one_tap(x)
        tokens, mask = tokens[:, :self.max_tokens], mask[:, :self.max_tokens]  # longer texts: first tokens
        h = self.embed(tokens) + self.position[:tokens.shape[1]]
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        if self.pool == "attention":
            query = self.query.expand(len(h), -1, -1)
            pooled = self.attend(query, h, h, key_padding_mask=~mask, need_weights=False)[0][:, 0]
        else:
            pooled = masked_mean(h, mask)
        return self.out(pooled)


class MLPStudent(nn.Module):
    def __init__(self, d_in: int, width: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(width, width), nn.GELU(), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvStudent(nn.Module):
    """A small CNN from raw pixels: (B, 3·S²) flat → (B, 3, S, S) → 4 stride-2 conv blocks → pool → dim."""

    def __init__(self, d_in: int, dim: int, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.size = int(round((d_in / 3) ** 0.5))
        if 3 * self.size * self.size != d_in:
            raise ValueError(f"a conv student reads flat (3, S, S) pixels (the pixels:S encoder); {d_in} values "
                             "are not 3·S² for any S")
        blocks, channels = [], 3
        for width in widths:
            blocks += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.out = nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.reshape(len(x), 3, self.size, self.size)
        return self.out(self.features(pixels).mean(dim=(2, 3)))


class TeacherTower(nn.Module):
    """A side kept as the teacher has it: the teacher's head, frozen (its weights ride in the student's
    file, so the student loads on its own). Always in eval mode: its dropout never runs."""

    def __init__(self, teacher: Method, side: str) -> None:
        super().__init__()
        self.teacher, self.side = teacher, side
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True) -> "TeacherTower":
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: Any) -> torch.Tensor:
        return self.teacher.project(self.side, x)
