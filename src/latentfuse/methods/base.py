"""What every method is: heads over frozen features that map each side into one joint space.

A method is an ``nn.Module`` with ``project(side, x)`` (``encode`` L2-normalises it into the joint space) and either
``loss(batch)`` for the shared trainer, or ``fit(train)`` for closed-form baselines. It never runs
its own loop. Its config is a dataclass registered with it, so YAML and the CLI can configure it.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar

import torch
from torch import nn
import torch.nn.functional as F

from ..config import NonNegativeFloat, OneOf, Positive, PositiveFloat, Rate
from ..errors import ConfigError, ModelError
from ..losses import LearnableTemperature, all_inputs, planned_mixup, positive_weights, symmetric_infonce
from ..metrics import retrieval_metrics, retrieval_report
from ..store.paired import PairedFeatures, SideInputs, take
from ..utils.runtime import move


@dataclass
class MethodConfig:
    """Base of method configs (empty: baselines may have no knobs).

    ``presets``: named sets of option values (``method.options.preset: paper``); options given beside a
    preset override its values."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


@dataclass
class ContrastiveConfig(MethodConfig):
    """The knobs every ``ContrastiveMethod`` (FuseMix, LightCRL) shares; each adds its own architecture."""

    dim: Positive = 512
    """Joint embedding size (FuseMix paper: 512)."""
    dropout: Rate = 0.6
    """Dropout inside the residual blocks (FuseMix paper: 0.6)."""
    input_dropout: Rate = 0.5
    """Dropout on the frozen input features: the strongest regulariser on small data (measured with and
    without in bench/flickr8k.py, see docs/results.md)."""
    input_norm: bool = True
    """LayerNorm on each frozen feature first: encoders differ wildly in scale (raw CNN activations vs
    unit-norm sentence vectors), and the heads learn much faster on standardised inputs."""
    mixup_alpha: NonNegativeFloat = 1.0
    """λ ~ Beta(α, α) for latent mixup on the frozen inputs (one λ for both sides); 0 turns mixup off."""
    temperature_init: PositiveFloat = 0.07
    """Initial softmax temperature τ of the contrastive loss (learned; CLIP/FuseMix: 0.07)."""
    temperature_min: PositiveFloat = 0.01
    """Lower clamp on τ, so the logit scale 1/τ cannot blow up (CLIP clamps at 100)."""
    temperature_max: PositiveFloat = 1.0
    """Upper clamp on τ (official FuseMix: 0.5)."""
    multi_positive: bool = False
    """Contrastive targets spread over every pair of the batch that shares an item with the pair (the other
    captions of the same image), instead of the pair alone: such duplicates are no longer negatives."""
    mixup_pairs: Annotated[str, OneOf(("shuffle", "halves"))] = "shuffle"
    """Whom latent mixup mixes each pair with: a shuffled partner (batch keeps its size), or, as the
    official FuseMix forward does, the batch's first half with its second half (batch halved)."""


class Method(nn.Module):
    name: ClassVar[str] = ""
    config_cls: ClassVar[type] = MethodConfig
    trainable: ClassVar[bool] = True
    embeds: ClassVar[bool] = True
    """Whether the method maps each side into a joint space (scored by retrieval, searchable, with a query
    bank); a pair classifier (DynMM) does not, and supplies its own ``validate``, ``report``, ``headline``,
    ``predict`` and ``data_options`` below — the only place that knows what kind of thing it learns."""
    default_select: ClassVar[str] = "rsum"
    """The validation metric that picks the best checkpoint when ``train.select`` is empty."""
    max_grad_norm: ClassVar[float] = 0.0
    """The trainer clips the gradient norm to this before each step (0 = no clipping); a method whose official
    recipe clips (DynMM's ``grad_clip``) says so here."""

    # ---------------------------------------------------------------- what the method is scored by
    def validate(self, data: PairedFeatures) -> dict[str, Any]:
        """The trainer's per-epoch validation metrics (``default_select`` is one of them)."""
        return validate(self, data)

    def report(self, data: PairedFeatures, *, dataset: str, split: str, train_seconds: float | None = None,
               embeddings: dict[str, Any] | None = None, norms: dict[str, Any] | None = None,
               hubness: dict[str, Any] | None = None) -> dict[str, Any]:
        """The test report of a split: retrieval of the given joint ``embeddings`` (per side) ranked under the
        model's QB-Norm ``norms``, which ``hubness`` names."""
        a, b = data.sides
        return retrieval_report(embeddings[a], embeddings[b], data, dataset=dataset, split=split,
                                method=self.name, train_seconds=train_seconds, norms=norms, hubness=hubness)

    @staticmethod
    def headline(report: dict[str, Any]) -> dict[str, float]:
        """A report's few numbers a robustness table follows: R@1 and R@5 of both directions."""
        return {f"{direction} {k}": values[k] for direction, values in report["metrics"].items()
                for k in ("R@1", "R@5")}

    def predict(self, raw: dict[str, list[Any]], encoder: Any, *, batch_size: int = 64,
                threshold: float = 0.5) -> dict[str, Any]:
        """Labels of raw (image, text) pairs: only pair classifiers have them."""
        raise ModelError(f"a {self.name} model embeds; predict() is for classifiers (e.g. dynmm)")

    @classmethod
    def data_options(cls, options: dict[str, Any], train: PairedFeatures,
                     flops_of: Any) -> dict[str, Any]:
        """Options the method takes from its training data (given values win); ``flops_of(side, tap)`` counts
        an encoder input's FLOPs. Default: the options as given."""
        return options

    def __init__(self, dims: dict[str, int], config: Any) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.config = config

    @property
    def sides(self) -> tuple[str, ...]:
        return tuple(self.dims)

    @classmethod
    def wanted_taps(cls, config: Any, modalities: dict[str, str]) -> dict[str, list[str]]:
        """Which sides this method reads as token taps, and which taps (side → tap names), given its config
        and the data's sides (side → modality). Default: none — every side is a pooled feature."""
        return {}

    @classmethod
    def encoder_inputs(cls, config: Any) -> list[tuple[str, str]]:
        """(side, tap) of the encoder inputs whose measured FLOPs the method needs in its config (tap "" =
        the pooled feature); the pipeline counts them before training. Default: none."""
        return []

    def side_taps(self, side: str) -> list[str]:
        """The taps a side consumes ([] = the pooled feature): a token side's ``dims`` entry is
        {tap: channels}, so a saved model says by itself what to extract for raw inputs."""
        dims = self.dims[side]
        return list(dims) if isinstance(dims, dict) else []

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def encode(self, side: str, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Joint embedding of a side's frozen features; L2-normalised unless ``normalize=False``."""
        z = self.project(side, x)
        return F.normalize(z, dim=-1) if normalize else z

    def project(self, side: str, x: torch.Tensor) -> torch.Tensor:
        """The head's output before normalisation (what ``encode(..., normalize=False)`` returns)."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError(f"{self.name} is fit in closed form; it has no training loss")

    def fit(self, train: PairedFeatures) -> None:
        """Closed-form fitting for baselines; trainable methods leave this alone."""

    def after_step(self) -> None:
        """Called by the trainer after each optimiser step: learnable temperatures are clamped in place."""
        for module in self.modules():
            if isinstance(module, LearnableTemperature):
                module.clamp_()

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer before each epoch (1-based, of ``epochs``), also when a run resumes: a staged
        method switches phase or anneals a temperature here, from the epoch alone, so resume needs no state."""

    @property
    def selectable(self) -> bool:
        """Whether the current epoch's weights may become the best checkpoint; a staged method's warm-up
        phase (e.g. DynMM's experts trained before its gate) may not."""
        return True

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    @property
    def device(self) -> torch.device:
        """Where the heads live (the trainer or ``JointModel.to`` put them there); inputs are moved to it."""
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def nonfinite_weights(self) -> list[str]:
        """Names of the float tensors holding NaN/inf: such weights score every input alike, and ranking
        metrics would then report them as perfect."""
        return [name for name, tensor in self.state_dict().items()
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]

    def load_tensors(self, state: dict[str, torch.Tensor]) -> None:
        """Load saved tensors; buffers are replaced whole, since closed-form fits size them from data."""
        buffers = dict(self.named_buffers())
        params = {k: v for k, v in state.items() if k not in buffers}
        for key, value in state.items():
            if key in buffers:
                owner_path, _, attr = key.rpartition(".")
                owner = self.get_submodule(owner_path) if owner_path else self
                owner.register_buffer(attr, value.clone())
        try:
            missing, unexpected = self.load_state_dict({**params, **dict(self.named_buffers())}, strict=False)
        except RuntimeError as exc:  # a size mismatch: the weights belong to other options or dims
            detail = " ".join(str(exc).split("\n", 1)[-1].split())
            raise ModelError(f"weights do not fit {self.name} with these options: {detail:.300}") from None
        missing = [k for k in missing if k not in state]
        if missing or unexpected:
            raise ModelError(f"weights do not match {self.name}: missing {missing}, unexpected {unexpected}")


class ContrastiveMethod(Method):
    """Two sides trained with symmetric InfoNCE over a learnable temperature, plus FuseMix's latent mixup.

    The objective every trainable two-sided method shares; subclasses build their heads and ``encode``.
    Their config provides ``dim``, ``mixup_alpha``, ``temperature_init`` and ``temperature_min``.
    """

    def __init__(self, dims: dict[str, int], config: Any) -> None:
        super().__init__(dims, config)
        if len(dims) != 2:
            raise ValueError(f"{self.name} aligns exactly two sides, got {list(dims)}")
        if not config.temperature_min <= config.temperature_init <= config.temperature_max:
            raise ConfigError(f"{self.name}: temperature_init {config.temperature_init} must lie in "
                              f"[temperature_min {config.temperature_min}, temperature_max {config.temperature_max}]")
        self.logit_scale = LearnableTemperature(config.temperature_init, config.temperature_min,
                                                config.temperature_max)
        self.generator: torch.Generator | None = None  # set by the trainer for reproducible mixup

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        a, b = self.sides
        xa, xb, plan = planned_mixup(batch[a], batch[b], self.config.mixup_alpha, self.generator,
                                     self.config.mixup_pairs)
        positives = None
        if self.config.multi_positive and "items" in batch:
            positives = positive_weights({side: all_inputs(rows) for side, rows in batch["items"].items()}, plan)
        scale = self.logit_scale()
        loss = symmetric_infonce(self.encode(a, xa), self.encode(b, xb), scale, positives)
        return loss, {"temperature": float(1.0 / scale.detach()), "lambda": plan.lam}


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) tokens, (B, T) mask of the real ones → (B, d) mean over the real tokens only."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


@torch.inference_mode()
def embed(method: Method, side: str, x: SideInputs, chunk: int = 1024, normalize: bool = True,
          autocast: Any = None) -> torch.Tensor:
    """Joint embeddings of a side's inputs (pooled features or token taps; any rows ``take`` reads), a chunk at a
    time, in eval mode, as float32 on the host: the one encode loop (validation, ``JointModel.encode_features``
    and its query bank all run it). ``autocast``: a context factory, e.g. ``Runtime.autocast``."""
    method.eval()
    device = method.device
    with autocast() if autocast is not None else contextlib.nullcontext():
        out = [method.encode(side, move(take(x, slice(i, i + chunk)), device), normalize=normalize).float().cpu()
               for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.zeros(0, method.out_dim)


def validate(method: Method, data: PairedFeatures) -> dict[str, Any]:
    """The trainer's validation hook for two-sided heads: both directions' recalls and their sum (``rsum``).

    ``rsum`` adds R@1/5/10 of both directions (CLIP-style selection).
    """
    a, b = data.sides
    metrics: dict[str, Any] = retrieval_metrics(embed(method, a, data.x[a]), embed(method, b, data.x[b]),
                                                data.pairs)
    metrics["rsum"] = sum(v for d in (metrics["a2b"], metrics["b2a"]) for k, v in d.items() if k != "medr")
    return metrics

