"""DynMM (Xue & Marculescu, CVPR-W 2023): a per-sample gate picks one of several experts of different cost, so
the expensive encoder runs only for the samples that need it; a resource-aware loss trades accuracy for compute.

Follows the official ``ModalityDynMM/multimedia/imdb_dyn.py`` (``DynMMNet``, ``DiffSoftmax``) and, for the
temperature schedule, the budget and the depth experts, ``FusionDynMM/train.py`` + ``src/utils.py``
(``ExpDecayTemp``) and ``src/models/model_skip_mod_globalgate.py``:

* experts: ``text`` (the cheap side alone), ``image`` (the costly side alone), ``fusion`` (late fusion: one
  encoder per side, concatenated, one Linear — the shape of the official ``MMDL(encoders, Concat(), Linear)``,
  whose encoders are MaxOut_MLPs: ``fusion_head: maxout``); a multi-label head each (``BCEWithLogitsLoss``, as
  the official ``task="multilabel"``);
* ``DiffSoftmax``: ``softmax(logits / τ)``, with a straight-through one-hot when hard; soft in training
  unless ``hard`` (the official ``--hard``), always hard at inference; output ``Σ_k w_k · E_k``;
* τ decays exponentially from ``tau_start`` (1) to ``tau_end`` (0.001) as ``ExpDecayTemp`` does, or stays
  fixed (``anneal: fixed``);
* resource loss ``λ · max(0, E[cost] − budget)`` (``loss_flop_ratio``, ``flop_budget``), with
  ``E[cost] = mean_batch Σ_k w_k · cost_k``;
* ``freeze`` (the official ``--freeze``, off by default as there): the gate phase trains the gate only.

``method.options.preset: paper`` is ``imdb_dyn.py``'s ``DynMMNet`` at its argparse defaults, trained as
MultiBench's ``train()`` does: two experts (``text``; ``fusion`` as MaxOut_MLP late fusion + one Linear), text
and gate heads as MultiBench ``MLP``s without input norm, τ = 1 fixed and soft in training, the resource term
λ = 0.1 times the fusion branch's mean gate weight (``resource_units: above-cheapest``), the gradient norm
clipped at 8 and the best epoch chosen by macro-F1. ``tests/unit/methods/test_dynmm_paper.py`` checks its loss
against a transcription of ``DynMMNet.forward`` and the MultiBench modules on the same weights, and the clipping
and selection in a real run. Left to the run: the budget (official: 50 epochs, batch 128, AdamW lr 1e-4, weight
decay 1e-2, early stop after 7 epochs without a better macro-F1). FusionDynMM's switch to the hard gate after
``--epoch-hard`` epochs, with τ decaying over them, is ``hard_from``.

Deviations of the defaults, each with its reason (measured by ``python -m bench.dynmm_defaults`` on the shipped
encoders, Flickr8k tags, chosen on val; ``docs/results.md`` renders the table):

* The gate reads the cheap side's frozen feature only (``text``), never the costly one: the official gate
  reads both (``MLP(4396, 128, 2)`` on text + VGG features), which means running the image encoder for
  every sample and saves nothing; here a sample routed to ``text`` never has its image decoded or encoded.
* ``cost_k`` is measured, not hand-entered: FLOPs per item (counted by torch's ``FlopCounterMode``) of the
  encoder work the expert needs — the cheap side always (the gate reads it), the costly encoder only for
  experts that read it, and only up to the tap it reads — plus the gate's and the expert's head FLOPs. The
  default ``resource_units: above-cheapest`` scales it to (cost_k − min) / (max − min): with two experts that is
  exactly the official term (λ · the costly branch's mean weight), so λ values from the paper transfer.
  ``full-model`` (cost_k / max: λ and ``budget`` in units of the most expensive expert) has a gradient
  (1 − min/max) times the official one (×0.68 for MiniLM-L6 text vs lite0 + MiniLM fusion).
* λ = 0.015 (official 0.1), two expert epochs, then the gate alone (``freeze: true``; official default: the
  experts are fine-tuned with the gate): on the shipped 3,968-d image ensemble the fusion expert overfits
  within 5 epochs and again when fine-tuned in the gate phase. The earlier defaults (three experts, late
  fusion, λ = 0.1 in full-model units, 5 expert epochs) scored val micro-F1 56.8 with the image encoder on
  100 % of samples, 14 points under the text expert alone (70.5); these score 69.8 with it on 42 % (test:
  70.9 on 43 %, the best static expert 71.7 on 100 %), chosen on val as the dynamic candidate within 1 point
  of the best static expert that runs the image encoder least (λ 0.005 / 0.01 / 0.02: 90 / 62 / 25 % and
  70.6 / 70.3 / 69.3).
* The fusion expert is FuseMix's adapters (``fusion_head: fusemix``: the joint-embedding head latentfuse
  trains contrastively, then [a, b, a⊙b] of the normalised embeddings, trained here for the labels), not the
  official MaxOut_MLP late fusion (``maxout``) or our MLP per side (``late``): val micro-F1 of the static
  fusion expert 70.4 (fusemix, 2 epochs) vs 63.4 (late, 5 epochs). Two experts (``text``, ``fusion``), as the
  official code (it discards the image-only branch "due to poor performance"); ``image`` is available.
  The text expert is our LayerNorm-first MLP (``unimodal_head: ours``), not MultiBench's ``MLP`` (``official``).
* No gradient clipping and the best epoch by micro-F1 (``grad_clip: 0``, ``select: f1/micro``): micro-F1 is
  the score latentfuse's reports lead with; the official script selects by macro-F1 and clips at 8. Neither
  default has been measured against the official choice on val.
* ``gumbel`` (off by default) adds Gumbel noise to the gate logits in training; not in the official code.
* The official modality-level code loads experts pre-trained by separate scripts; here the experts are
  trained first, inside the same run (``expert_epochs``: each expert on its own loss, summed), and their
  epochs are never chosen as the best checkpoint (the gate is untrained then).
* Depth level on our encoders: an expert ``fusion@TAP`` (or ``image@TAP``) reads the costly encoder only up
  to tap ``TAP`` (its tokens mean-pooled), so the gate picks how deep the image encoder runs per sample; the
  official fusion-level code gates RGB-D fusion blocks inside a segmentation network instead.
* Every side's frozen feature is LayerNorm'd first, as in latentfuse's other heads: encoders differ wildly
  in scale.
* Under torchrun the per-sample losses average exactly over ranks, but Gumbel noise is drawn for each
  rank's slice shape (the ranks' generators run in lockstep, so their slices share noise values) and a
  ``budget`` in the resource loss applies to each rank's slice, not the global batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NonNegative, NonNegativeFloat, OneOf, Positive, PositiveFloat, Rate
from ..errors import ConfigError
from ..specs import part
from ..store.paired import PairedFeatures
from . import METHODS, dynmm_scoring as scoring, make_config
from .base import Method, MethodConfig, masked_mean
from .fusemix import Adapter, FuseMixConfig

EXPERT_KINDS = ("text", "image", "fusion")


@dataclass
class DynMMConfig(MethodConfig):
    labels: list[str] = field(default_factory=list)
    """The label vocabulary, in output order (filled in from the training data's tags)."""
    experts: list[str] = field(default_factory=lambda: ["text", "fusion"])
    """The experts, cheapest first: `text` (cheap side only), `image` (costly side only), `fusion` (both);
    `image@TAP` / `fusion@TAP` read the costly encoder only up to tap TAP (depth level)."""
    fusion_head: Annotated[str, OneOf(("late", "maxout", "fusemix"))] = "fusemix"
    """The fusion experts' head: `late` (our MLP per side, concatenated, one Linear), `maxout` (the official
    late fusion: MultiBench's MaxOut_MLP per side — BatchNorm, two maxout layers with BatchNorm and dropout 0.3,
    widths hidden/hidden for the cheap side and 2·hidden/hidden for the costly one — concatenated, one Linear)
    or `fusemix` (FuseMix's adapters into a joint space, then [a, b, a⊙b] of the normalised embeddings)."""
    unimodal_head: Annotated[str, OneOf(("ours", "official"))] = "ours"
    """text / image experts: ours (LayerNorm → Linear → GELU → dropout → Linear → GELU, then dropout → Linear) or
    the official MultiBench pair MLP(d, h, hidden) → MLP(hidden, hidden, labels) (Linear → ReLU → Linear each,
    no norm or dropout; h = hidden for the cheap side, 2·hidden for the costly one)."""
    input_norm: bool = True
    """LayerNorm on the cheap side's feature before the gate (the official gate MLP has none)."""
    cheap: str = "text"
    """The side every sample runs (the gate reads it)."""
    costly: str = "image"
    """The side only some experts run."""
    hidden: Positive = 512
    """Width of each expert's per-side MLP (official: 512)."""
    gate_hidden: Positive = 128
    """Hidden width of the gate MLP (official: 128)."""
    dropout: Rate = 0.2
    """Dropout inside the experts' MLPs."""
    tau_start: PositiveFloat = 1.0
    """Gate softmax temperature at the start of the gate phase (official --temp: 1)."""
    tau_end: PositiveFloat = 0.001
    """Temperature at the last epoch when annealing (official --end-temp: 0.001)."""
    anneal: Annotated[str, OneOf(("exp", "fixed"))] = "exp"
    """`exp`: τ decays exponentially from tau_start to tau_end over the gate phase (ExpDecayTemp); `fixed`."""
    hard: bool = False
    """Straight-through one-hot gate in training too (official --hard); inference is always hard."""
    gumbel: bool = False
    """Add Gumbel noise to the gate logits in training (exploration)."""
    resource_weight: NonNegativeFloat = 0.015
    """λ of the resource loss λ·max(0, E[cost] − budget) (official --reg / --loss-ratio)."""
    resource_units: Annotated[str, OneOf(("full-model", "above-cheapest"))] = "above-cheapest"
    """What a cost of 1 is in the resource loss: the most expensive expert (full-model: cost_k / max cost), or
    the step from the cheapest to the most expensive (above-cheapest: (cost_k − min) / (max − min)). With two
    experts above-cheapest is the official modality-level term, λ · the mean gate weight of the costly branch,
    so λ values from the paper transfer; full-model's gradient is (1 − min/max) times that."""
    budget: NonNegativeFloat = 0.0
    """Cost allowed for free, in resource_units (official --flop-budget)."""
    hard_from: NonNegative = 0
    """Gate-phase epochs after which the gate is hard (straight-through one-hot) in training and τ's decay ends
    its schedule there (FusionDynMM's --epoch-hard with ExpDecayTemp over it); 0 = never (hard decides)."""
    grad_clip: NonNegativeFloat = 0.0
    """Clip the gradient norm to this before each step (official clip_val: 8); 0 = no clipping."""
    select: Annotated[str, OneOf(("f1/micro", "f1/macro"))] = "f1/micro"
    """The validation F1 that picks the best checkpoint (official: macro for multi-label), unless train.select
    names another metric."""
    freeze: bool = True
    """Gate phase trains the gate only (official --freeze); false = the experts are fine-tuned with the gate
    (the official default)."""
    expert_epochs: Positive = 2
    """Epochs that train the experts (each on its own loss) before the gate; train.epochs must be larger."""
    encoder_flops: dict[str, float] = field(default_factory=dict)
    """FLOPs per item of each encoder input: `text`, `image`, `image@TAP` (measured when training starts)."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # ModalityDynMM/multimedia/imdb_dyn.py (DynMMNet, defaults of its argparse) + MultiBench's train(): two
        # branches (text; late fusion of MaxOut_MLPs + Linear), gate MLP(·, 128, 2), DiffSoftmax at τ = 1, soft
        # in training, loss BCE + 0.1 · mean weight of the fusion branch, clip_val 8, best epoch by macro-F1.
        "paper": {"experts": ["text", "fusion"], "fusion_head": "maxout", "unimodal_head": "official",
                  "input_norm": False, "hidden": 512, "gate_hidden": 128, "tau_start": 1.0, "anneal": "fixed",
                  "hard": False, "gumbel": False, "resource_weight": 0.1, "resource_units": "above-cheapest",
                  "budget": 0.0, "freeze": False, "grad_clip": 8.0, "select": "f1/macro"},
    }


def diff_softmax(logits: torch.Tensor, tau: float = 1.0, hard: bool = False, dim: int = -1) -> torch.Tensor:
    """The official ``DiffSoftmax``: ``softmax(logits / τ)``; when ``hard``, the one-hot of its argmax in the
    forward pass with the soft gradient (straight-through)."""
    soft = (logits / tau).softmax(dim)
    if not hard:
        return soft
    index = soft.argmax(dim, keepdim=True)
    one_hot = torch.zeros_like(logits).scatter_(dim, index, 1.0)
    return one_hot - soft.detach() + soft


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like``, drawn on the generator's device, moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(like.shape, generator=generator, device=device).to(like.device)
    return -torch.log(-torch.log(u.clamp(1e-9, 1 - 1e-9)))


def resource_loss(weights: torch.Tensor, costs: torch.Tensor, budget: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(``max(0, E[cost] − budget)``, ``E[cost]``) with ``E[cost] = mean_batch Σ_k w_k · cost_k``."""
    expected = (weights * costs).sum(-1).mean()
    return torch.clamp(expected - budget, min=0.0), expected


def parse_expert(spec: str) -> tuple[str, str]:
    """``"fusion@stride16"`` → (``"fusion"``, ``"stride16"``); ``"text"`` → (``"text"``, ``""``)."""
    kind, tap = part(spec)
    if kind not in EXPERT_KINDS or (kind == "text" and tap):
        raise ConfigError(f"dynmm: expert {spec!r} is not one of text, image, fusion, image@TAP, fusion@TAP")
    return kind, tap


def mlp(dim_in: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim_in), nn.Linear(dim_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.GELU())


def multibench_mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """MultiBench's ``MLP(indim, hiddim, outdim)``: Linear → ReLU → Linear (its dropout is off by default)."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(), nn.Linear(hidden, dim_out))


class Maxout(nn.Module):
    """MultiBench's ``Maxout(d, m, k)``: a Linear to m·k values, the max over each group of k."""

    def __init__(self, dim_in: int, dim_out: int, pool: int = 2) -> None:
        super().__init__()
        self.dim_out, self.pool = dim_out, pool
        self.lin = nn.Linear(dim_in, dim_out * pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).view(*x.shape[:-1], self.dim_out, self.pool).max(dim=-1).values


def maxout_mlp(dim_in: int, first: int, second: int) -> nn.Sequential:
    """MultiBench's ``MaxOut_MLP(·, first, dim_in, second, linear_layer=False)``."""
    return nn.Sequential(nn.BatchNorm1d(dim_in, eps=1e-4), Maxout(dim_in, first), nn.BatchNorm1d(first),
                         nn.Dropout(0.3), Maxout(first, second), nn.BatchNorm1d(second), nn.Dropout(0.3))


class Expert(nn.Module):
    """One expert: an MLP per side it reads, concatenated (late fusion), then a Linear to the labels; with
    ``fusion_head: fusemix`` a fusion expert maps both sides into a joint space with FuseMix's adapters and
    reads [a, b, a⊙b] of the normalised embeddings."""

    def __init__(self, kind: str, dims: dict[str, int], cfg: DynMMConfig) -> None:
        super().__init__()
        self.kind = kind
        reads = {"text": [cfg.cheap], "image": [cfg.costly], "fusion": [cfg.cheap, cfg.costly]}[kind]
        self.in_dims = {side: dims[side] for side in reads}
        self.joint = kind == "fusion" and cfg.fusion_head == "fusemix"
        first = {side: cfg.hidden if side == cfg.cheap else 2 * cfg.hidden for side in reads}  # official widths
        labels = len(cfg.labels)
        if self.joint:
            adapter_cfg = FuseMixConfig(dim=cfg.hidden)
            self.branches = nn.ModuleDict({side: Adapter(dims[side], adapter_cfg) for side in reads})
        elif kind == "fusion" and cfg.fusion_head == "maxout":
            self.branches = nn.ModuleDict({side: maxout_mlp(dims[side], first[side], cfg.hidden) for side in reads})
            self.head = nn.Linear(cfg.hidden * len(reads), labels)
            return
        elif kind != "fusion" and cfg.unimodal_head == "official":
            self.branches = nn.ModuleDict({side: multibench_mlp(dims[side], first[side], cfg.hidden)
                                           for side in reads})
            self.head = multibench_mlp(cfg.hidden, cfg.hidden, labels)
            return
        else:
            self.branches = nn.ModuleDict({side: mlp(dims[side], cfg.hidden, cfg.dropout) for side in reads})
        width = cfg.hidden * (3 if self.joint else len(reads))
        # unit-norm embeddings have tiny coordinates: the joint head standardises them, or its logits stay near 0
        # (measured: 34.1 micro-F1 without, every label under-predicted)
        norm = [nn.LayerNorm(width)] if self.joint else []
        self.head = nn.Sequential(*norm, nn.Dropout(cfg.dropout), nn.Linear(width, labels))

    @property
    def reads(self) -> list[str]:
        return list(self.branches)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [branch(inputs[side]) for side, branch in self.branches.items()]
        if self.joint:
            a, b = (F.normalize(x, dim=-1) for x in parts)
            parts = [a, b, a * b]
        return self.head(torch.cat(parts, dim=-1))


@METHODS.register("dynmm")
class DynMM(Method):
    """DynMM: a gate on the cheap side picks an expert per sample (text / image / fusion, or fusion at depth k)."""

    name = "dynmm"
    config_cls = DynMMConfig
    embeds: ClassVar[bool] = False
    def __init__(self, dims: dict[str, Any], config: DynMMConfig) -> None:
        super().__init__(dims, config)
        if not config.labels:
            raise ConfigError("dynmm: needs labelled pairs (labels is empty); train it on a tagged source such as "
                              "flickr8k-tags:DIR or a pairs: table with a labels column")
        missing = [s for s in (config.cheap, config.costly) if s not in dims]
        if missing or config.cheap == config.costly:
            raise ConfigError(f"dynmm: cheap {config.cheap!r} and costly {config.costly!r} must be two sides of "
                              f"the data; its sides: {', '.join(dims)}")
        if not config.experts:
            raise ConfigError("dynmm: experts is empty")
        self.specs = [parse_expert(spec) for spec in config.experts]
        taps = {tap for kind, tap in self.specs if kind != "text"}
        if len(taps) > 1 and "" in taps:
            raise ConfigError(f"dynmm: experts {config.experts} mix the pooled costly feature with taps; use "
                              "either pooled experts (image, fusion) or tap experts (fusion@TAP) only")
        cheap = _width(dims[config.cheap])
        self.experts = nn.ModuleList(
            Expert(kind, {config.cheap: cheap} if kind == "text" else
                   {config.cheap: cheap, config.costly: _width(dims[config.costly], tap)}, config)
            for kind, tap in self.specs)
        self.gate = nn.Sequential(nn.LayerNorm(cheap) if config.input_norm else nn.Identity(),
                                  nn.Linear(cheap, config.gate_hidden), nn.ReLU(),
                                  nn.Linear(config.gate_hidden, len(self.specs)))
        self.generator: torch.Generator | None = None
        self.tau = config.tau_start
        self.hard_now = config.hard  # the gate's training form this epoch (hard_from switches it on)
        self.phase = "gate"
        self.flops = self._expert_flops()

    @property
    def out_dim(self) -> int:
        return len(self.config.labels)

    @property  # type: ignore[override]
    def default_select(self) -> str:
        return self.config.select

    @property  # type: ignore[override]
    def max_grad_norm(self) -> float:
        return self.config.grad_clip

    # ------------------------------------------------------------------ what it is scored by (dynmm_scoring)
    def validate(self, data: PairedFeatures) -> dict[str, Any]:
        return scoring.classification_metrics(self, data)

    def report(self, data: PairedFeatures, *, dataset: str, split: str, train_seconds: float | None = None,
               **_: Any) -> dict[str, Any]:
        return scoring.classification_report(self, data, dataset=dataset, split=split, train_seconds=train_seconds)

    @staticmethod
    def headline(report: dict[str, Any]) -> dict[str, float]:
        f1 = report["metrics"]["f1"]
        return {"micro-F1": f1["micro"], "macro-F1": f1["macro"]}

    def predict(self, raw: dict[str, list[Any]], encoder: Any, *, batch_size: int = 64,
                threshold: float = 0.5) -> dict[str, Any]:
        return scoring.predict_raw(self, raw, encoder, batch_size=batch_size, threshold=threshold)

    @classmethod
    def data_options(cls, options: dict[str, Any], train: PairedFeatures, flops_of: Any) -> dict[str, Any]:
        """The label vocabulary of the training pairs and the measured FLOPs of the encoder inputs the
        resource loss weighs (given values win)."""
        out = dict(options)
        out.setdefault("labels", list(train.label_names))
        if not out.get("encoder_flops"):
            out["encoder_flops"] = {f"{side}@{tap}" if tap else side: flops_of(side, tap)
                                    for side, tap in cls.encoder_inputs(make_config(cls.name, out))}
        return out

    # ------------------------------------------------------------------ taps and costs
    @classmethod
    def wanted_taps(cls, config: DynMMConfig, modalities: dict[str, str]) -> dict[str, list[str]]:
        missing = [side for side in (config.cheap, config.costly) if side not in modalities]
        if missing:  # before any extraction (the cost count would otherwise fail on a KeyError)
            raise ConfigError(f"dynmm: {'cheap' if missing[0] == config.cheap else 'costly'} side {missing[0]!r} is "
                              f"not a side of the data ({', '.join(modalities)}); set method.options.cheap / costly")
        taps = list(dict.fromkeys(parse_expert(spec)[1] for spec in config.experts if "@" in spec))
        return {config.costly: taps} if taps else {}

    @classmethod
    def encoder_inputs(cls, config: DynMMConfig) -> list[tuple[str, str]]:
        """(side, tap) of every encoder input whose FLOPs the costs need (tap "" = the pooled feature)."""
        specs = [parse_expert(spec) for spec in config.experts]
        costly = {(config.costly, tap) for kind, tap in specs if kind != "text"}
        return [(config.cheap, ""), *sorted(costly)]

    def expert_input(self, k: int) -> str:
        """What expert ``k`` needs of the costly encoder: "" (nothing), "pooled", or a tap name."""
        kind, tap = self.specs[k]
        return "" if kind == "text" else (tap or "pooled")

    def _expert_flops(self) -> list[float]:
        """FLOPs per item of each expert: the cheap encoder + the gate + its costly input (up to its tap) + its head."""
        enc = self.config.encoder_flops
        gate = _count_flops(self.gate, torch.zeros(1, self.gate[1].in_features))
        out = []
        for (kind, tap), expert in zip(self.specs, self.experts):
            sample = {side: torch.zeros(1, width) for side, width in expert.in_dims.items()}
            key = f"{self.config.costly}@{tap}" if tap else self.config.costly
            costly = 0.0 if kind == "text" else float(enc.get(key, 0.0))
            out.append(float(enc.get(self.config.cheap, 0.0)) + gate + costly + _count_flops(expert, sample))
        return out

    def relative_costs(self, like: torch.Tensor) -> torch.Tensor:
        """Each expert's cost in ``resource_units``: of the full model (cost / max), or of the step from the
        cheapest expert to the full model ((cost − min) / (max − min))."""
        costs = torch.tensor(self.flops, dtype=like.dtype, device=like.device)
        if self.config.resource_units == "above-cheapest":
            return (costs - costs.min()) / (costs.max() - costs.min()).clamp(min=1e-12)
        return costs / costs.max().clamp(min=1e-12)

    # ------------------------------------------------------------------ phases
    def begin_epoch(self, epoch: int, epochs: int) -> None:
        cfg = self.config
        if epoch <= cfg.expert_epochs:
            self.phase = "experts"
            return
        self.phase = "gate"
        for expert in self.experts:
            expert.requires_grad_(not cfg.freeze)
        done = epoch - cfg.expert_epochs - 1  # gate-phase epochs finished (FusionDynMM's 0-based epoch)
        span = cfg.hard_from or max(1, epochs - cfg.expert_epochs - 1)  # ExpDecayTemp's time_len
        self.tau = cfg.tau_start if cfg.anneal == "fixed" else cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** (
            done / span)
        self.hard_now = cfg.hard or bool(cfg.hard_from and done >= cfg.hard_from)

    @property
    def selectable(self) -> bool:
        return self.phase == "gate"

    # ------------------------------------------------------------------ forward
    def inputs(self, batch: dict[str, Any], k: int) -> dict[str, torch.Tensor]:
        """Expert ``k``'s inputs from a batch: the cheap side's feature, the costly side's pooled feature or
        its tap's tokens, mean-pooled over the real tokens."""
        cfg, (_, tap) = self.config, self.specs[k]
        out = {cfg.cheap: batch[cfg.cheap]}
        if self.specs[k][0] != "text":
            x = batch[cfg.costly]
            out[cfg.costly] = masked_mean(*x[tap]) if tap else x
        return out

    def gate_logits(self, cheap: torch.Tensor) -> torch.Tensor:
        return self.gate(cheap)

    def route(self, cheap: torch.Tensor) -> torch.Tensor:
        """The expert each sample goes to at inference (hard gate): (B,) long."""
        return self.gate_logits(cheap).argmax(-1)

    def expert_logits(self, k: int, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.experts[k](inputs)

    def classify(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(label logits, chosen expert) per sample with the hard gate — on cached features every expert is
        evaluated and the chosen one gathered; ``JointModel.predict`` runs only the chosen one."""
        chosen = self.route(batch[self.config.cheap])
        logits = torch.stack([self.expert_logits(k, self.inputs(batch, k)) for k in range(len(self.specs))], 1)
        return logits[torch.arange(len(chosen), device=chosen.device), chosen], chosen

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        logits = [self.expert_logits(k, self.inputs(batch, k)) for k in range(len(self.specs))]
        if self.phase == "experts":
            losses = [F.binary_cross_entropy_with_logits(x, labels) for x in logits]
            return torch.stack(losses).sum(), {f"loss_{spec}": float(v.detach()) for spec, v in zip(self.config.experts, losses)}
        gate = self.gate_logits(batch[self.config.cheap])
        if self.config.gumbel:
            gate = gate + gumbel_noise(gate, self.generator)
        weights = diff_softmax(gate, self.tau, hard=self.hard_now)
        output = (weights.unsqueeze(-1) * torch.stack(logits, 1)).sum(1)
        task = F.binary_cross_entropy_with_logits(output, labels)
        penalty, expected = resource_loss(weights, self.relative_costs(weights), self.config.budget)
        share = weights.detach().mean(0)
        extras = {"task_loss": float(task.detach()), "expected_cost": float(expected.detach()), "tau": self.tau,
                  **{f"share_{spec}": float(s) for spec, s in zip(self.config.experts, share)}}
        return task + self.config.resource_weight * penalty, extras


def _width(dim: Any, tap: str = "") -> int:
    """A side's input width: the pooled width, or a tap's channels (``dims`` of a token side is {tap: C})."""
    if isinstance(dim, dict):
        if not tap:
            raise ConfigError(f"dynmm: this side is read as taps {list(dim)}; name one (fusion@TAP)")
        if tap not in dim:
            raise ConfigError(f"dynmm: tap {tap!r} is not among the side's taps {list(dim)}")
        return int(dim[tap])
    return int(dim)


def _count_flops(module: nn.Module, *args: Any) -> float:
    """FLOPs of one forward of ``module`` (torch's ``FlopCounterMode``), in eval mode, without gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*args)
    finally:
        module.train(was_training)
    return float(counter.get_total_flops())


__all__ = ["DynMM", "DynMMConfig", "diff_softmax", "resource_loss"]
