"""LightCRL on token sequences, as published: the Deep Fusion Encoder is ONE shared Transformer layer over each
side's tokens, steered by a per-modality context (``lightcrl`` with ``inputs: tokens``).

Per side ``s`` with frozen tokens ``x`` (B, T, C_s) and a mask of the real ones::

    t   = LayerNorm(Dropout(Linear(GELU(Linear_s(x)))))   # the side's token-wise projection head, to d
    c   = LN(MLP(κ_s))                                    # κ_s: learnable low-dim context; MLP shared
    f   = fuse(t, c)                                      # token-wise, below
    r   = f + TransformerEncoderLayer(LN(f))              # ONE layer, shared by every side; padding masked
    out = mean of r over the real tokens                  # (→ Linear to ``dim`` only when dim ≠ d)

Fusion ops, token-wise (official: ``text_image/<op>/fusion.py``):

* ``add``: ``t_i + c``  (official: ``x + contexts.unsqueeze(1)``);  ``mul``: ``t_i ⊙ c``;
* ``concat``: ``Linear(2d→d)([t_i; c])``, initialised ``[I, W_c]`` so it starts at ``t_i``; with
  ``concat_form: residual-mlp`` the official ``t_i + MLP([t_i; c])`` on a 10-d context (``MLP`` = Linear(d+10,
  d+10) → ReLU → Linear(d+10, d); the context from κ by one Linear + LayerNorm);
* attention ops — the context is the one query, the real tokens are keys/values, and the attended vector
  ``a = Σ_i α_i v_i`` is added to every token, ``t_i + a`` (official: ``x + attention`` broadcast):
  ``additive-attention`` score_i = vᵀ tanh(W_q c + W_k t_i), values t_i (official ``BahdanauAttention``: no
  tanh, ``additive_tanh: false``);
  ``general-attention`` score_i = cᵀ W t_i, values t_i (official ``LuongAttention``; its bias cancels);
  ``scaled-dot-attention`` score_i = (W_q c)·(W_k t_i)/√d, values W_v t_i (official ``ScaledDotProduct``).
  α is a softmax over the real tokens only — with token inputs the attention finally has more than one
  feature to attend to.

Follows ``text_image/baseline.py`` (``ProjectionHead``), ``text_image/<op>/fusion.py`` (``ContextEncoder``,
``Fusion``) of b-faye/lightweightCRL. Deviations, each with its reason:

* Padding: the official mean and Transformer run over padded text positions (no ``src_key_padding_mask``);
  here padding is masked everywhere, so a padded token never changes an output (tested).
* The context MLP is ``κ (context_dim) → 64 → 128 → d`` with ReLU and a final LayerNorm, as official, but
  each side has its own κ (officially one per modality; the same for two sides of one modality there).
* ``dim``: the official embedding is the d-wide mean; a Linear to ``dim`` is added only when ``dim ≠ d``.
* κ starts at N(0, 0.35²) (``CONTEXT_STD``); officially at N(0, s²) with s drawn once from U[0.1, 0.6] per
  modality — 0.35 is that draw's mean, so runs do not differ by a random init scale.

The official configuration (``preset: paper``) and the tests that check it are in ``lightcrl.py``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import masked_mean

Tokens = tuple[torch.Tensor, torch.Tensor]  # (tokens (B, T, C), mask (B, T))
CONTEXT_STD = 0.35  # κ's init std; official: a random std drawn from [0.1, 0.6] per modality


class ProjectionHead(nn.Module):
    """Linear → GELU → Linear → Dropout → LayerNorm, applied to every token (official ``ProjectionHead``)."""

    def __init__(self, d_in: int, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, width), nn.GELU(), nn.Linear(width, width), nn.Dropout(dropout),
                                 nn.LayerNorm(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ContextEncoder(nn.Module):
    """A learnable low-dimensional κ per side, lifted to ``width`` by one MLP shared by every side: κ → 64 → 128 →
    width (ReLU, final LayerNorm); with ``deep=False`` one Linear + LayerNorm (the official concatenation
    folder's encoder, to a 10-d context)."""

    def __init__(self, sides: tuple[str, ...], width: int, context_dim: int, std: float, deep: bool = True) -> None:
        super().__init__()
        self.kappa = nn.ParameterDict({side: nn.Parameter(std * torch.randn(context_dim)) for side in sides})
        hidden = [nn.Linear(context_dim, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, width)]
        self.mlp = nn.Sequential(*(hidden if deep else [nn.Linear(context_dim, width)]), nn.LayerNorm(width))

    def forward(self, side: str) -> torch.Tensor:
        return self.mlp(self.kappa[side])


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


CONCAT_CONTEXT = 10  # the official concatenation folder's context width (configs.py: context_output_dim)


class TokenFusion(nn.Module):
    """fuse(t (B, T, d), mask, c) → (fused tokens (B, T, d), attention weights (B, T) or None); c is (d,), or
    (10,) for the residual-MLP concat."""

    def __init__(self, op: str, width: int, additive_tanh: bool = True, concat_form: str = "linear") -> None:
        super().__init__()
        self.op, self.scale, self.tanh = op, 1.0 / math.sqrt(width), additive_tanh
        self.residual_mlp = op == "concat" and concat_form == "residual-mlp"
        if self.residual_mlp:  # official: t + MLP([t; c]), MLP = Linear(d+10, d+10) → ReLU → Linear(d+10, d)
            both = width + CONCAT_CONTEXT
            self.proj = nn.Sequential(nn.Linear(both, both), nn.ReLU(), nn.Linear(both, width))
        elif op == "concat":
            self.proj = nn.Linear(2 * width, width)
            with torch.no_grad():
                self.proj.weight[:, :width].copy_(torch.eye(width))
                self.proj.bias.zero_()
        elif op == "additive-attention":
            self.w_q = nn.Linear(width, width, bias=False)
            self.w_k = nn.Linear(width, width)
            self.v = nn.Linear(width, 1, bias=False)
        elif op == "general-attention":
            self.w = nn.Linear(width, width, bias=False)
        elif op == "scaled-dot-attention":
            self.w_q, self.w_k, self.w_v = (nn.Linear(width, width) for _ in range(3))

    def forward(self, t: torch.Tensor, mask: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.op == "add":
            return t + c, None
        if self.op == "mul":
            return t * c, None
        if self.op == "concat":
            fused = self.proj(torch.cat([t, c.expand(*t.shape[:-1], -1)], dim=-1))
            return (t + fused if self.residual_mlp else fused), None
        if self.op == "additive-attention":
            energy = self.w_q(c) + self.w_k(t)
            scores, values = self.v(torch.tanh(energy) if self.tanh else energy).squeeze(-1), t
        elif self.op == "general-attention":
            scores, values = t @ (c @ self.w.weight), t
        else:
            scores, values = self.w_k(t) @ self.w_q(c) * self.scale, self.w_v(t)
        weights = _masked_softmax(scores, mask)  # over the real tokens only
        attended = torch.einsum("bt,btd->bd", weights, values)
        return t + attended[:, None, :], weights


class TokenDFE(nn.Module):
    """Context + fusion + ONE shared TransformerEncoderLayer with a residual, masked mean pooling."""

    def __init__(self, dims: dict[str, Any], cfg: Any) -> None:
        super().__init__()
        sides = tuple(dims)
        self.heads = nn.ModuleDict({side: ProjectionHead(_channels(d), cfg.width, cfg.dropout)
                                    for side, d in dims.items()})
        residual_mlp = cfg.fusion == "concat" and cfg.concat_form == "residual-mlp"
        self.context = ContextEncoder(sides, CONCAT_CONTEXT if residual_mlp else cfg.width, cfg.context_dim,
                                      CONTEXT_STD, deep=not residual_mlp)
        self.fusion = TokenFusion(cfg.fusion, cfg.width, cfg.additive_tanh, cfg.concat_form)
        self.norm = nn.LayerNorm(cfg.width)
        self.layer = nn.TransformerEncoderLayer(cfg.width, cfg.transformer_heads,
                                                dim_feedforward=cfg.ffn_width or 4 * cfg.width,
                                                dropout=cfg.dropout, batch_first=True)
        self.out = nn.Linear(cfg.width, cfg.dim) if cfg.dim != cfg.width else nn.Identity()

    def forward(self, x: Tokens, side: str) -> tuple[torch.Tensor, Any]:
        tokens, mask = x
        t = self.heads[side](tokens)
        fused, weights = self.fusion(t, mask, self.context(side))
        r = fused + self.layer(self.norm(fused), src_key_padding_mask=~mask)
        return self.out(masked_mean(r, mask)), weights


def _channels(d: Any) -> int:
    """A token side's dims entry is {tap: channels}; the tokens variant reads one tap per side."""
    return int(next(iter(d.values()))) if isinstance(d, dict) else int(d)


def single_tap(x: Any) -> Tokens:
    """The one tap of a token side's inputs ({tap: (tokens, mask)} → (tokens, mask))."""
    if isinstance(x, dict):
        return next(iter(x.values()))
    raise TypeError("lightcrl with inputs: tokens needs token inputs (the side's tap), got a pooled feature")
