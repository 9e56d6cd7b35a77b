"""LightCRL: one Deep Fusion Encoder (DFE) shared by every modality, steered by per-modality context vectors.

Per side (modality) ``s`` with frozen feature ``x`` (any width)::

    h   = Linear_s(Dropout(LayerNorm(x)))          # own projection to the common width d
    f   = fuse(h, c_s)                             # c_s ∈ R^d: the side's learnable context vector
    z   = Linear(LayerNorm(Blocks(f)))             # shared DFE body (residual MLP blocks) + shared head
    out = z / ||z||                                # joint space, ``dim`` wide

Only the projections and the contexts belong to a side; the fusion op, the body and the head are ONE
module (``self.dfe``) used by all sides, with the contexts held in it (``dfe.contexts[side]``).

Fusion ops (config ``fusion``):

* ``add``: ``h + c``;  ``mul``: ``h ⊙ c``;  ``concat``: ``Linear(2d→d)([h; c])``.
* attention ops: the context is the single query, the feature's *tokens* are keys and values, and the
  output is ``h + Σ_i α_i v_i`` (the residual keeps the pooled projection; attention re-weights parts
  of it). Tokens of a pooled feature: ``h`` (already projected to d) is viewed as ``(n_tokens, d/n_tokens)``
  — token i is the i-th contiguous chunk of d/n_tokens values — and each chunk is lifted back to d by
  one Linear shared by all tokens, plus a learned position embedding per token index (chunk i and
  chunk j mean different things, and attention alone is order-blind). With ``t_i`` those tokens:

  - ``additive-attention`` (Bahdanau): ``score_i = vᵀ tanh(W_q c + W_k t_i)``, values ``t_i`` (without the
    tanh with ``additive_tanh: false``, as officially);
  - ``general-attention`` (Luong general): ``score_i = cᵀ W t_i`` (unscaled, as in Luong), values ``t_i``;
  - ``scaled-dot-attention``: ``score_i = (W_q c)·(W_k t_i)/√d``, values ``W_v t_i``;

  and ``α = softmax(score)`` over the n_tokens tokens. (Additive and scaled-dot compute the same numbers
  in factored form, at 1/n_tokens of the cost; tests check them against the formulas above.)

Every op starts at (about) ``h``: contexts start near 0 (near 1 for ``mul``), ``concat``'s Linear starts as
``[I, W_c]``, attention adds a residual. All sides' inputs get FuseMix's regularisers (input LayerNorm,
input dropout 0.5), which is what made FuseMix work on small data.

Training is the shared contrastive recipe: symmetric InfoNCE with a learnable temperature, plus
FuseMix's latent mixup on the frozen inputs (``mixup_alpha``), all inside the shared Trainer.

Follows the official b-faye/lightweightCRL code: ``text_image/<op>/fusion.py`` (``ContextEncoder``,
``Fusion``; one folder per fusion op), ``text_image/baseline.py``, ``text_image/configs.py`` and
``text_image/<op>/model.py`` / ``main.py``.

``method.options.preset: paper`` is the official model: the token form (``inputs: tokens``), width 256 (the
embedding is the 256-d mean), dropout 0.1, one Transformer layer with 4 heads and PyTorch's FFN of 2048, the
3-d context, the official op formulas (additive attention without tanh; concat as ``t + MLP([t; c])`` with a
10-d context), no mixup, and the logits scaled by ``exp(t)`` with ``t₀ = 0.07`` clamped to [0.01, 20] (here
1/τ = exp(t), the same parameter). ``tests/unit/methods/test_lightcrl_paper.py`` checks its loss against a
transcription of the official forward, op by op, on the same weights. The training budget and optimiser stay
the run's (below).

Deviations of the defaults, each with its reason:

* ``inputs: pooled`` (the default here): pooled features instead of token sequences, and a residual-MLP
  DFE body instead of the official one-layer ``nn.TransformerEncoder`` over tokens. ``inputs: tokens`` is
  the published form, on the encoders' token taps: see ``lightcrl_tokens.py`` (its own deviations listed
  there). Measured on Flickr8k (``bench/tokens.py``, docs/results.md): pooled ``add`` 48.7 vs tokens 42.8
  test t2i R@5 at the same budget, at 1/30 of the training time. The whole official form (``preset: paper``)
  against these defaults, op by op, on retrieval, zero-shot and STS: ``python -m bench.lightcrl_paper``
  (docs/results.md; 5 epochs each): ``add`` official 18.3 vs ours 48.7 test t2i R@5, Fashion-MNIST zero-shot
  10.0 vs 15.7 top-1, STS-B ρ 58.9 vs 78.7; ``mul`` 19.6 vs 48.6, 18.4 vs 15.7, 60.4 vs 78.7; ``concat`` 18.0
  vs 48.7, 9.3 vs 16.3, 57.8 vs 79.2; ``additive-attention`` 19.9 vs 48.3, 9.6 vs 19.1, 59.0 vs 79.0;
  ``general-attention`` 15.1 vs 49.1, 9.0 vs 18.4, 55.9 vs 78.5; ``scaled-dot-attention`` 17.8 vs 48.5, 13.6 vs
  15.5, 59.3 vs 79.5 — ours ahead on every op and task but ``mul``'s zero-shot; the official logit scale,
  starting at exp(0.07) ≈ 1.07, is the brake measured below.
* Context: one learnable ``d``-wide vector per side, used directly; officially a learnable 3-d vector per
  modality goes through a context-encoder MLP (3→64→128→256, LayerNorm). With one vector per side the MLP
  adds parameters but no expressiveness.
* ``additive-attention`` keeps Bahdanau's tanh (``additive_tanh: true``): without it the context's term is the
  same for every token and cancels in the softmax, so the official weights ignore the context (tested). On
  Flickr8k val the two are within noise (mean t2i/i2t R@5 50.5 with tanh, 51.0 without; one seed,
  ``python -m bench.lightcrl_defaults``), so the form that reads its context stays.
  ``concat`` is ``Linear(2d→d)`` started at ``[I, W_c]`` (pooled and, by default, tokens).
* Sizes: width 512, dropout 0.6 and FuseMix's input LayerNorm + input dropout 0.5 (the regularisers that made
  FuseMix work on small data, ``bench/flickr8k.py``), the Transformer FFN at 4·width (tokens), the logit scale
  starting at 1/0.07 ≈ 14.3 clamped to [1, 100] (CLIP's) where the official ``exp(0.07)`` ≈ 1.07 starts the
  loss near uniform. Measured one at a time on Flickr8k val (pooled ``add``, lite0 + MiniLM, 20 epochs,
  ``python -m bench.lightcrl_defaults``, docs/results.md; mean t2i/i2t R@5): ours 54.1; dropout 0.1 50.0; the
  official logit scale 20.9 (starting at 1.07, it does not grow far enough in 20 epochs); width 256 53.3 (512
  stays, by val).
* The encoders are frozen, as officially (``trainable=False``), but their features are cached once: the
  official code recomputes them every step with the backbones in train mode, so BERT's dropout acts as a
  feature augmentation that cached features do not have.
* Optimisation: the shared trainer (AdamW, warm-up + cosine, no weight decay on 1-d parameters such as the
  temperature, best checkpoint by validation recall) instead of the official AdamW (lr 1e-3, weight decay 1e-3
  on every parameter, the temperature included, batch 64) with ReduceLROnPlateau (patience 5, factor 0.8) and
  early stopping on the validation loss. The preset leaves the training budget and schedule to the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch
from torch import nn

from ..config import NonNegative, NonNegativeFloat, OneOf, Positive
from ..errors import ConfigError
from . import METHODS
from .base import ContrastiveConfig, ContrastiveMethod
from .fusemix import ResidualBlock
from .lightcrl_tokens import TokenDFE, single_tap

FUSIONS = ("add", "mul", "concat", "additive-attention", "general-attention", "scaled-dot-attention")
ATTENTION_FUSIONS = FUSIONS[3:]


@dataclass
class LightCRLConfig(ContrastiveConfig):
    fusion: str = "add"
    """How the DFE fuses a projected feature with its modality's context: add, mul, concat,
    additive-attention, general-attention or scaled-dot-attention."""
    width: Positive = 512
    """Common width d: each side's frozen feature is projected to d, and the DFE works at d."""
    n_blocks: NonNegative = 1
    """Residual MLP blocks in the shared DFE body."""
    expansion: Positive = 2
    """Hidden-layer expansion inside a DFE block."""
    n_tokens: Positive = 8
    """Attention ops only: the projected feature (width d) is split into this many chunks of d/n_tokens
    values, each lifted to d by a shared Linear (+ a position embedding); must divide width."""
    context_std: NonNegativeFloat = 0.02
    """Init std of the context vectors (around 0 for add/concat/attention, around 1 for mul)."""
    mixup_alpha: NonNegativeFloat = 0.0
    """λ ~ Beta(α, α) for FuseMix's latent mixup on the frozen inputs; 0 (default) turns it off. Measured on
    Flickr8k (12 epochs, t2i R@5): off is +1.5 to +2 points for add/mul/concat, within 1 point (mostly a
    little worse) for the attention ops."""

    inputs: Annotated[str, OneOf(("pooled", "tokens"))] = "pooled"
    """pooled: one frozen vector per item through the residual-MLP DFE (fast); tokens: the published form —
    each side's token tap through one shared Transformer layer (lightcrl_tokens.py)."""
    image_tap: str = "head"
    """tokens: the tap an image side reads (`latentfuse info` lists an encoder's taps)."""
    text_tap: str = "layer6"
    """tokens: the tap a text side reads (minilm-l6's last layer by default)."""
    context_dim: Positive = 3
    """tokens: width of each side's learnable context κ before the shared context MLP (official: 3)."""
    transformer_heads: Positive = 4
    """tokens: heads of the shared TransformerEncoderLayer (must divide width)."""
    ffn_width: NonNegative = 0
    """tokens: the Transformer layer's feed-forward width; 0 = 4·width (official: 2048, PyTorch's default)."""
    additive_tanh: bool = True
    """additive-attention: Bahdanau's tanh inside the score. The official score has none, and without it
    the context's term is the same for every token and cancels in the softmax: its weights ignore the context."""
    concat_form: Annotated[str, OneOf(("linear", "residual-mlp"))] = "linear"
    """concat, tokens: Linear(2d→d)([t; c]) from t (linear), or the official t + MLP([t; c]) with a 10-d context
    (residual-mlp: Linear(d+10, d+10) → ReLU → Linear(d+10, d), the context from one Linear + LayerNorm)."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # text_image/configs.py + <op>/fusion.py + <op>/model.py: token form, projection_dim 256, dropout 0.1,
        # 4 heads, one TransformerEncoderLayer at PyTorch's defaults (FFN 2048), 3-d context, no mixup; the
        # logits scaled by exp(t), t = 0.07 at the start and clamped to [0.01, 20] — here 1/τ = exp(t).
        "paper": {"inputs": "tokens", "width": 256, "dim": 256, "transformer_heads": 4, "dropout": 0.1,
                  "ffn_width": 2048, "context_dim": 3, "additive_tanh": False, "concat_form": "residual-mlp",
                  "mixup_alpha": 0.0, "temperature_init": math.exp(-0.07), "temperature_min": math.exp(-20.0),
                  "temperature_max": math.exp(-0.01)},
    }

    def __post_init__(self) -> None:
        if self.inputs == "tokens" and self.width % self.transformer_heads:
            raise ConfigError(f"lightcrl: transformer_heads={self.transformer_heads} must divide width={self.width}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"lightcrl: unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}")
        if self.inputs == "pooled" and self.fusion == "concat" and self.concat_form == "residual-mlp":
            raise ConfigError("lightcrl: concat_form: residual-mlp is the token form's (inputs: tokens); the pooled "
                              "concat is linear")
        if self.inputs == "pooled" and self.fusion in ATTENTION_FUSIONS and self.width % self.n_tokens:
            raise ConfigError(f"lightcrl: n_tokens={self.n_tokens} must divide width={self.width} "
                              f"(tokens are width/n_tokens-sized chunks of the projected feature)")


# ---------------------------------------------------------------- fusion ops
# Each maps (h: (B, d), c: (d,)) → (fused (B, d), attention weights (B, n_tokens) or None).


class AddFusion(nn.Module):
    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, None]:
        return h + c, None


class MulFusion(nn.Module):
    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, None]:
        return h * c, None


class ConcatFusion(nn.Module):
    """``Linear(2d→d)([h; c])``, initialised as ``[I, W_c]`` with zero bias: like every other op it starts
    at ``h`` (+ a small context term). With the default init the h-path starts ~2.4x smaller than in
    ``add`` and, measured on Flickr8k, trains to 3 points less t2i R@5."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * width, width)
        with torch.no_grad():
            self.proj.weight[:, :width].copy_(torch.eye(width))
            self.proj.bias.zero_()

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.proj(torch.cat([h, c.expand_as(h)], dim=-1)), None


class _TokenAttention(nn.Module):
    """Context-as-query attention over tokens cut from the pooled projection (module docstring)."""

    def __init__(self, width: int, n_tokens: int) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.lift = nn.Linear(width // n_tokens, width)
        self.position = nn.Parameter(0.02 * torch.randn(n_tokens, width))

    def tokens(self, h: torch.Tensor) -> torch.Tensor:
        """(B, d) → (B, n_tokens, d): contiguous chunks, each lifted to d, plus its position embedding."""
        return self.lift(h.reshape(len(h), self.n_tokens, -1)) + self.position

    def scores(self, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h + Σ_i α_i t_i, α) with α = softmax over tokens of ``scores`` (values = the tokens)."""
        t = self.tokens(h)
        weights = torch.softmax(self.scores(c, t), dim=-1)  # (B, n_tokens), sums to 1 over tokens
        return h + torch.einsum("bn,bnd->bd", weights, t), weights


class AdditiveAttention(_TokenAttention):
    """Bahdanau: score_i = vᵀ tanh(W_q c + W_k t_i) (without tanh with ``additive_tanh: false``)."""

    def __init__(self, width: int, n_tokens: int, tanh: bool = True) -> None:
        super().__init__(width, n_tokens)
        self.tanh = tanh
        self.w_q = nn.Linear(width, width, bias=False)
        self.w_k = nn.Linear(width, width)
        self.v = nn.Linear(width, 1, bias=False)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # W_k t_i = (W_k L) chunk_i + W_k (b_L + p_i) + b_k: one (d/n → d) map on the chunks instead of a
        # (d → d) map on every lifted token — the same numbers at 1/n_tokens of the cost.
        chunks = h.reshape(len(h), self.n_tokens, -1)
        keys = chunks @ (self.w_k.weight @ self.lift.weight).T + self.w_k(self.lift.bias + self.position)
        energy = self.w_q(c) + keys
        scores = self.v(torch.tanh(energy) if self.tanh else energy).squeeze(-1)
        weights = torch.softmax(scores, dim=-1)
        return h + torch.einsum("bn,bnd->bd", weights, self.tokens(h)), weights


class GeneralAttention(_TokenAttention):
    """Luong general: score_i = cᵀ W t_i, computed as (Wᵀc)·t_i (one matrix–vector product per batch)."""

    def __init__(self, width: int, n_tokens: int) -> None:
        super().__init__(width, n_tokens)
        self.w = nn.Linear(width, width, bias=False)

    def scores(self, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t @ (c @ self.w.weight)


class ScaledDotAttention(_TokenAttention):
    """score_i = (W_q c)·(W_k t_i)/√d, values W_v t_i."""

    def __init__(self, width: int, n_tokens: int) -> None:
        super().__init__(width, n_tokens)
        self.w_q = nn.Linear(width, width, bias=False)
        self.w_k = nn.Linear(width, width, bias=False)
        self.w_v = nn.Linear(width, width)
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Same numbers, 1/n_tokens of the cost: (W_q c)·(W_k t_i) = (W_kᵀ W_q c)·t_i, and since the weights
        # sum to 1, Σ α_i (W_v t_i) = W_v (Σ α_i t_i) (the bias included).
        t = self.tokens(h)
        query = self.w_k.weight.T @ self.w_q(c)
        weights = torch.softmax(t @ query * self.scale, dim=-1)
        return h + self.w_v(torch.einsum("bn,bnd->bd", weights, t)), weights


def make_fusion(cfg: LightCRLConfig) -> nn.Module:
    if cfg.fusion == "add":
        return AddFusion()
    if cfg.fusion == "mul":
        return MulFusion()
    if cfg.fusion == "concat":
        return ConcatFusion(cfg.width)
    if cfg.fusion == "additive-attention":
        return AdditiveAttention(cfg.width, cfg.n_tokens, cfg.additive_tanh)
    attention = {"general-attention": GeneralAttention, "scaled-dot-attention": ScaledDotAttention}
    return attention[cfg.fusion](cfg.width, cfg.n_tokens)


# ---------------------------------------------------------------- the shared encoder


class DeepFusionEncoder(nn.Module):
    """The one module every side goes through: its context, the fusion op, the body and the head."""

    def __init__(self, sides: tuple[str, ...], cfg: LightCRLConfig) -> None:
        super().__init__()
        centre = 1.0 if cfg.fusion == "mul" else 0.0  # mul starts near identity, the others near "no context"
        self.contexts = nn.ParameterDict(
            {side: nn.Parameter(centre + cfg.context_std * torch.randn(cfg.width)) for side in sides})
        self.fusion = make_fusion(cfg)
        self.body = nn.Sequential(*[ResidualBlock(cfg.width, cfg.expansion, cfg.dropout)
                                    for _ in range(cfg.n_blocks)], nn.LayerNorm(cfg.width))
        self.head = nn.Linear(cfg.width, cfg.dim)

    def forward(self, h: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        fused, weights = self.fusion(h, self.contexts[side])
        return self.head(self.body(fused)), weights


@METHODS.register("lightcrl")
class LightCRL(ContrastiveMethod):
    """Per-side projection + context vector, one shared Deep Fusion Encoder, symmetric InfoNCE (+ mixup)."""

    name = "lightcrl"
    config_cls = LightCRLConfig

    @classmethod
    def wanted_taps(cls, config: LightCRLConfig, modalities: dict[str, str]) -> dict[str, list[str]]:
        if config.inputs == "pooled":
            return {}
        return {side: [config.image_tap if modality == "image" else config.text_tap]
                for side, modality in modalities.items()}

    def __init__(self, dims: dict[str, Any], config: LightCRLConfig) -> None:
        super().__init__(dims, config)
        if config.inputs == "tokens":
            self.dfe = TokenDFE(dims, config)
            return
        self.projections = nn.ModuleDict({
            side: nn.Sequential(nn.LayerNorm(d) if config.input_norm else nn.Identity(),
                                nn.Dropout(config.input_dropout), nn.Linear(d, config.width))
            for side, d in dims.items()})
        self.dfe = DeepFusionEncoder(tuple(dims), config)

    def project(self, side: str, x: Any) -> torch.Tensor:
        return self._forward(side, x)[0]

    def attention(self, side: str, x: Any) -> torch.Tensor | None:
        """Attention weights of the side's context over its tokens — (B, n_tokens) chunks of a pooled
        feature, or (B, T) real tokens with ``inputs: tokens`` — None for add/mul/concat."""
        return self._forward(side, x)[1]

    def _forward(self, side: str, x: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.config.inputs == "tokens":
            return self.dfe(single_tap(x), side)
        return self.dfe(self.projections[side](x), side)



__all__ = ["FUSIONS", "DeepFusionEncoder", "LightCRL", "LightCRLConfig"]
