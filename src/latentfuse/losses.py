"""Shared losses and latent-space augmentations used by the trainable methods.

They are where distribution lives (``utils.distributed``): under torchrun the contrastive loss sees the
embeddings of every rank (gathered with gradients) and mixup mixes the global batch, so a method's code is
the same for one process or many and its loss is that of the global batch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .utils.distributed import gather_inputs as all_inputs, gather_with_grad as all_rows, local_part, world_size


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

    def clamp_(self) -> None:
        """Keep the parameter itself within its bounds, as official FuseMix, CLIP and open_clip do after each
        optimiser step: with the clamp in the forward pass alone, a parameter past a bound gets no gradient and
        AdamW's momentum carries it further, so the temperature froze there (20 steps the other way left it
        still past the bound)."""
        with torch.no_grad():
            self.log_scale.clamp_(self.lo, self.hi)

    @property
    def temperature(self) -> float:
        return float(1.0 / self())


def symmetric_infonce(za: torch.Tensor, zb: torch.Tensor, scale: torch.Tensor,
                      positives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of a→b and b→a cross-entropy over in-batch negatives; row i of ``za`` pairs with row i of ``zb``.

    ``positives`` (N, N) over the global batch, optional: how much row j of the other side is also a correct
    answer for row i (``positive_weights``); each row's target spreads over its positives in proportion,
    instead of sitting on the diagonal alone (duplicates of one image are then not negatives of each other).

    Under torchrun the rows of all ranks take part (the global batch's negatives, gradients kept)."""
    za, zb = all_rows(za), all_rows(zb)
    logits = scale * za @ zb.T
    if positives is None:
        targets = torch.arange(len(za), device=za.device)
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    positives = positives.to(logits.dtype)
    return 0.5 * (F.cross_entropy(logits, _rows_sum_to_one(positives))
                  + F.cross_entropy(logits.T, _rows_sum_to_one(positives.T)))


def _rows_sum_to_one(weights: torch.Tensor) -> torch.Tensor:
    return weights / weights.sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class MixPlan:
    """One draw of latent mixup for a (global) batch: pair ``first[i]`` mixed with pair ``second[i]`` at λ."""

    lam: float
    first: torch.Tensor
    second: torch.Tensor

    @classmethod
    def identity(cls, n: int) -> "MixPlan":
        rows = torch.arange(n)
        return cls(1.0, rows, rows)


def positive_weights(items: dict[str, torch.Tensor], plan: MixPlan) -> torch.Tensor:
    """(N, N) weights of which (mixed) pairs are correct answers for each other, from the item ids of each
    side (e.g. the image row of every pair): pairs i and j match when they share an item on either side (five
    captions of one image all describe it), and mixed pairs match as much as their parts do:
    ``λ·match(first) + (1 − λ)·match(second)``. The diagonal is always 1."""
    def match(rows: torch.Tensor) -> torch.Tensor:
        same = None
        for ids in items.values():
            ids = ids[rows.to(ids.device)]
            eq = ids[:, None] == ids[None, :]
            same = eq if same is None else same | eq
        return same.float()

    if plan.lam == 1.0:
        return match(plan.first)
    return plan.lam * match(plan.first) + (1 - plan.lam) * match(plan.second)


def latent_mixup(xa: Any, xb: Any, alpha: float, generator: torch.Generator | None = None,
                 pairs: str = "shuffle") -> tuple[Any, Any, float]:
    """FuseMix: mix the frozen latents with ONE λ ~ Beta(α, α) and the same partners for both modalities,
    so a mixed image latent still matches the equally mixed text latent.

    ``pairs="shuffle"``: each pair with a shuffled partner (the batch keeps its size); ``"halves"``: the
    first half of the batch with the second half, as the official forward does (the batch is halved; an
    odd last row is dropped).

    A side may also be token taps, ``{tap: (tokens (B, T, C), mask (B, T))}``: each tap's tokens are mixed
    position by position with the same λ and partners, and a mixed position is real if it is in either.

    Under torchrun the global batch is mixed (every rank draws the same λ and partners from its generator,
    which runs in lockstep with the others) and each rank keeps its own slice of the result."""
    xa, xb, plan = planned_mixup(xa, xb, alpha, generator, pairs)
    return xa, xb, plan.lam


def planned_mixup(xa: Any, xb: Any, alpha: float, generator: torch.Generator | None = None,
                  pairs: str = "shuffle") -> tuple[Any, Any, MixPlan]:
    """``latent_mixup`` that also returns its draw (λ and partners over the global batch), so the loss can
    tell which mixed pairs share items (``positive_weights``)."""
    if alpha <= 0:
        return xa, xb, MixPlan.identity(distributed_batch(xa))
    lam = float(_beta_with(generator, alpha)) if generator is not None else float(
        torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha))).sample())
    xa, xb = all_inputs(xa), all_inputs(xb)
    n = _batch_size(xa)
    if pairs == "halves":
        half = n // 2
        first, second = torch.arange(half), torch.arange(half, 2 * half)
    else:
        first = torch.arange(n)
        second = torch.randperm(n, generator=generator)
    plan = MixPlan(lam, first, second)
    return local_part(_mix(xa, lam, first, second)), local_part(_mix(xb, lam, first, second)), plan


def distributed_batch(x: Any) -> int:
    """Rows of the global batch: this rank's rows times the world size under torchrun (every rank's batch has
    the same size, ``distributed.check_batch``)."""
    return _batch_size(x) * world_size()


def _batch_size(x: Any) -> int:
    return len(next(iter(x.values()))[0]) if isinstance(x, dict) else len(x)


def _mix(x: Any, lam: float, first: torch.Tensor, second: torch.Tensor) -> Any:
    if isinstance(x, dict):
        return {tap: _mix_tokens(tokens, mask, lam, first.to(tokens.device), second.to(tokens.device))
                for tap, (tokens, mask) in x.items()}
    first, second = first.to(x.device), second.to(x.device)
    return lam * x[first] + (1 - lam) * x[second]


def _mix_tokens(tokens: torch.Tensor, mask: torch.Tensor, lam: float, first: torch.Tensor,
                second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return lam * tokens[first] + (1 - lam) * tokens[second], mask[first] | mask[second]


def _beta_with(generator: torch.Generator, alpha: float) -> torch.Tensor:
    """Beta(α, α) drawn from a seeded generator (torch.distributions ignores generators)."""
    a = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    b = torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator)
    return (a / (a + b))[0]


def distill_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) between row-wise softmaxes at ``temperature``, averaged over rows — DIME-FM's
    ``compute_kl_loss``: ``KLDivLoss(batchmean)(log_softmax(student / T), softmax(teacher / T))``, with no T²
    factor (the official code has none)."""
    target = F.softmax(teacher_logits / temperature, dim=1)
    log_input = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_input, target, reduction="batchmean")
