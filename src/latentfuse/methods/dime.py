"""DIME-FM: distil a joint model (the teacher) into small, fast student towers from UNPAIRED images and texts.

Follows the official ``Training/utils/utils.py`` (``compute_kl_loss``, ``get_loss``) and ``utils/opts.py`` of
sunxm2357/DIME-FM. Similarities are ``s(a, b) = scale·cos(a, b)`` (official: CLIP's 100); every term is
``KL(teacher ‖ student)`` between row-wise softmaxes at a temperature T (``losses.distill_kl``). With I/X the
image/text embeddings of a batch of B images and B *unrelated* sentences, T = teacher, S = student:

* **VL** (weight 0.7, T = 1): ``KL(s(I_T, X_T) ‖ s(I_S, X_T)) + KL(s(X_T, I_T) ‖ s(X_T, I_S))`` — both
  directions, as official;
* **PVL** (0.3, T = 3): the teacher's image embeddings stand in as pseudo-text,
  ``2·KL(s(I_T, I_T) ‖ s(I_S, I_T))`` (the official factor 2 kept);
* **udist** (0, T = 7): ``2·KL(s(I_T, I_T) ‖ s(I_S, I_S))``.

The student's embeddings live in the teacher's joint space (same ``dim``), so a distilled image tower
works with the teacher's text tower and vice versa.

``method.options.preset: paper`` (``distill --set method.options.preset=paper``; the ``dime-paper`` recipe adds
the augmented views) is the released configuration: the image tower alone (``text_student: teacher``, so ``distill`` keeps the teacher's text
tower unless ``--student`` names another), VL + PVL at their official weights and temperatures, no udist, no
cross term, s = 100·cos. ``tests/unit/methods/test_dime.py`` checks its loss against a transcription of the
released ``get_loss`` on the same features. The training budget stays the run's.

Deviations, each with its reason:

* **Text tower.** The released code distils only the image tower (the student uses the teacher's text
  features); the paper also distils text. Here a text student gets the mirrored terms —
  VL ``KL(s(X_T, I_T) ‖ s(X_S, I_T)) + KL(s(I_T, X_T) ‖ s(I_T, X_S))``, PVL ``2·KL(s(X_T, X_T) ‖ s(X_S, X_T))``,
  udist ``2·KL(s(X_T, X_T) ‖ s(X_S, X_S))`` — so each tower is anchored to the teacher's other side.
  These terms alone leave each student free in the directions the teacher's embeddings do not span
  (similarities to teacher embeddings cannot see them), so two distilled towers drifted apart: on a
  synthetic world (tests/unit/methods/test_dime.py) student-to-student R@1 stayed near chance (≈5–10 %) while each
  tower matched the teacher. A **cross** term between the two students, ``w_cross·[KL(s(I_T, X_T) ‖
  s(I_S, X_S)) + KL(s(X_T, I_T) ‖ s(X_S, I_S))]`` at t_vl (still unpaired data: the teacher's similarities
  of unrelated items are the target), lifted it to 85–90 %. ``image_student: teacher`` /
  ``text_student: teacher`` keep a side as the teacher has it (the released code's setting is
  ``text_student: teacher``); the cross term then coincides with VL and is not added.
* **Similarity scale.** Official: ``s = 100·cos``, the scale CLIP learned. Our teachers learned their own
  (FuseMix: 1/τ ≈ 22); at 100 their distributions are ~4.5× sharper than the ones they were trained with,
  nearly one-hot over a batch of unrelated items. The default (``logit_scale: 0``) is therefore the
  teacher's own scale, which ``distill`` fills in: on Flickr8k it moved the student's t2i R@5 from 28.4 to
  31.9 on test (val 28.0 → 31.1; docs/results.md). ``preset: paper`` restores 100.
* **Augmentation.** The released student sees each image through RandomResizedCrop + horizontal flip, a fresh
  draw every epoch; here the student's inputs are cached, so ``distill --set augment=K`` adds K fixed views per
  pool image (the released transform, ``encoders/augment.py``), each encoded once and distilled toward the
  teacher's embedding of the whole image, as the released loader pairs them. Off by default (each view is
  another pass of the student's encoder over the pool); the ``dime-paper`` recipe sets 2. Its effect on
  Flickr8k is a row of ``bench/distill.py`` not measured yet.
* **Unpaired batches.** Officially images and texts come from two loaders. Here the trainer's one loop
  walks fixed random (image, sentence) partners (``distill.unpaired``); every loss term compares all B
  images with all B sentences, so which sentence shares a row with which image plays no role.
* **Students.** The paper's students are ViTs trained on 40M images; ours are towers over cheap inputs
  (``methods/students.py``): a shallow tap of the teacher's own frozen backbone + attention pooling
  (a truncated backbone), a small CNN on 96 px pixels, GloVe + a 1-layer Transformer, bag-of-GloVe.
* ``objective: contrastive`` trains the same student architecture on *pairs* with symmetric InfoNCE and
  latent mixup (FuseMix's objective): the baseline the distilled student is compared with.
* **Several processes** (torchrun): every term's similarities span the *global* batch — the teacher targets
  of all ranks (``losses.all_inputs``) and the student embeddings gathered with gradients
  (``losses.all_rows``) — so the loss is the one a single process would compute on that batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import torch
from torch import nn

from . import METHODS, build_method
from ..config import NonNegativeFloat, OneOf, Positive, PositiveFloat, Rate
from ..errors import ConfigError
from ..losses import LearnableTemperature, all_inputs, all_rows, distill_kl, latent_mixup, symmetric_infonce
from .base import Method, MethodConfig, normalize
from .students import ConvStudent, MLPStudent, TeacherTower, TokenStudent

IMAGE_STUDENTS = ("attention", "conv", "mlp", "teacher")
TEXT_STUDENTS = ("transformer", "mlp", "teacher")


@dataclass
class DimeConfig(MethodConfig):
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # Training/utils/utils.py get_loss + opts.py defaults, run with --use_pvl_loss: the image tower alone
        # (the teacher's text features stand in for the student's), VL (0.7, T = 1) + PVL (0.3, T = 3), no
        # udist, create_logits' scale 100. `distill` keeps the teacher's text tower under it (--student).
        "paper": {"text_student": "teacher", "logit_scale": 100.0, "w_vl": 0.7, "w_pvl": 0.3, "w_udist": 0.0,
                  "w_cross": 0.0, "t_vl": 1.0, "t_pvl": 3.0}}

    image_student: Annotated[str, OneOf(IMAGE_STUDENTS)] = "attention"
    """Image tower: attention (a shallow tap of a frozen backbone + attention pooling), conv (a small CNN on
    pixels:SIZE), mlp (on a pooled feature) or teacher (the teacher's tower, not distilled)."""
    text_student: Annotated[str, OneOf(TEXT_STUDENTS)] = "transformer"
    """Text tower: transformer (over word vectors, e.g. GloVe's `words` tap), mlp (on a pooled feature,
    e.g. bag-of-GloVe) or teacher (the teacher's tower, not distilled)."""
    image_side: str = "image"
    """The model side holding images (the teacher's side name)."""
    text_side: str = "text"
    """The model side holding texts (the teacher's side name)."""
    image_tap: str = "stride16"
    """The tap an attention image student reads (efficientnet-lite0: stride8, stride16, stride32, head)."""
    text_tap: str = "words"
    """The tap a transformer text student reads (glove-6b-50d: words)."""
    dim: Positive = 512
    """Joint embedding size: the teacher's (`distill` sets it)."""
    width: Positive = 256
    """Width of the student towers."""
    layers: Positive = 1
    """Transformer layers of a token student (DIME-FM issue: 1–2)."""
    heads: Positive = 4
    """Attention heads of a token student."""
    max_tokens: Positive = 64
    """Tokens a token student reads per item (the first ones; image grids have 49)."""
    dropout: Rate = 0.1
    """Dropout inside the student towers."""
    objective: Annotated[str, OneOf(("distill", "contrastive"))] = "distill"
    """distill (KL to the teacher, from unpaired pools) or contrastive (InfoNCE + mixup on pairs: the
    same architecture trained without a teacher)."""
    w_vl: NonNegativeFloat = 0.7
    """Weight of the VL loss (official: 0.7)."""
    w_pvl: NonNegativeFloat = 0.3
    """Weight of the pseudo-VL loss (official: 0.3)."""
    w_udist: NonNegativeFloat = 0.0
    """Weight of the image–image (udist) loss (official default: 0, off)."""
    w_cross: NonNegativeFloat = 0.7
    """Weight of the VL loss between the two student towers (when both are distilled; not in the
    released code, which distils one tower)."""
    t_vl: PositiveFloat = 1.0
    """Softmax temperature of the VL loss (official: 1)."""
    t_pvl: PositiveFloat = 3.0
    """Softmax temperature of the PVL loss (official: 3)."""
    t_udist: PositiveFloat = 7.0
    """Softmax temperature of the udist loss (official: 7)."""
    logit_scale: NonNegativeFloat = 0.0
    """s(a, b) = logit_scale · cos(a, b). 0 = the teacher's own learned scale (`distill` fills it in; FuseMix
    ≈ 22; 100 when the teacher has none): +3.5 t2i R@5 over CLIP's 100 on Flickr8k (docs/results.md). Official:
    100, the scale CLIP learned (`preset: paper`)."""
    mixup_alpha: NonNegativeFloat = 1.0
    """contrastive objective only: latent mixup λ ~ Beta(α, α) (FuseMix); 0 = off."""
    temperature_init: PositiveFloat = 0.07
    """contrastive objective only: initial learnable InfoNCE temperature."""
    teacher: dict[str, Any] = field(default_factory=dict)
    """The teacher's method, options and dims ({method, method_config, dims}), kept when a side is
    `teacher`: `distill` fills it in, so the student file holds everything it runs."""

    def __post_init__(self) -> None:
        """Cross-field checks, before any work: each would otherwise fail deep in torch, or train nothing."""
        token_students = [kind for kind in (self.image_student, self.text_student) if kind in ("attention", "transformer")]
        if token_students and self.width % self.heads:
            raise ConfigError(f"dime: heads={self.heads} must divide width={self.width} (the {token_students[0]} "
                              "student's attention splits its width across heads)")
        if self.image_student == "teacher" and self.text_student == "teacher":
            raise ConfigError("dime: both towers are the teacher's (image_student and text_student = teacher): "
                              "the student would have nothing to train; distil at least one side")
        weights = {"w_vl": self.w_vl, "w_pvl": self.w_pvl, "w_udist": self.w_udist, "w_cross": self.w_cross}
        if self.objective == "distill" and not any(weights.values()):
            raise ConfigError("dime: every loss weight is 0 (w_vl, w_pvl, w_udist, w_cross): the student would "
                              "learn nothing; give at least one a weight")


@METHODS.register("dime", help="DIME-FM: small student towers distilled from a joint model with unpaired data")
class Dime(Method):
    name = "dime"
    config_cls = DimeConfig

    @classmethod
    def wanted_taps(cls, config: DimeConfig, modalities: dict[str, str]) -> dict[str, list[str]]:
        taps = {}
        if config.image_student == "attention":
            taps[config.image_side] = [config.image_tap]
        if config.text_student == "transformer":
            taps[config.text_side] = [config.text_tap]
        for side, kind in ((config.image_side, config.image_student), (config.text_side, config.text_student)):
            teacher_dims = config.teacher.get("dims", {}).get(side) if kind == "teacher" else None
            if isinstance(teacher_dims, dict):  # the teacher reads token taps on this side
                taps[side] = list(teacher_dims)
        return taps

    def __init__(self, dims: dict[str, Any], config: DimeConfig) -> None:
        super().__init__(dims, config)
        roles = {config.image_side: config.image_student, config.text_side: config.text_student}
        if set(roles) != set(dims) or len(roles) != 2:
            raise ConfigError(f"dime: image_side {config.image_side!r} and text_side {config.text_side!r} must be "
                              f"the two sides of the data, {list(dims)}")
        self.kinds = roles
        teacher = self._teacher() if "teacher" in roles.values() else None
        self.towers = nn.ModuleDict({side: self._tower(side, kind, dims[side], teacher)
                                     for side, kind in roles.items()})
        if config.objective == "contrastive":
            self.temperature = LearnableTemperature(config.temperature_init)
        self.generator: torch.Generator | None = None  # set by the trainer (mixup draws)

    def _teacher(self) -> Method:
        spec = self.config.teacher
        if not {"method", "method_config", "dims"} <= set(spec):
            raise ConfigError("dime: a `teacher` tower needs the teacher's {method, method_config, dims} in the "
                              "`teacher` option (latentfuse distill fills it in)")
        return build_method(spec["method"], spec["dims"], spec["method_config"])

    def _tower(self, side: str, kind: str, d_in: Any, teacher: Method | None) -> nn.Module:
        cfg = self.config
        if kind == "teacher":
            return TeacherTower(teacher, side)
        if kind in ("attention", "transformer"):
            if not isinstance(d_in, dict) or len(d_in) != 1:
                raise ConfigError(f"dime: the {kind} student of side {side!r} reads one token tap, got inputs {d_in}")
            pool = "attention" if kind == "attention" else "mean"
            return TokenStudent(int(next(iter(d_in.values()))), cfg.width, cfg.dim, cfg.layers, cfg.heads,
                                cfg.dropout, cfg.max_tokens, pool)
        if isinstance(d_in, dict):
            raise ConfigError(f"dime: the {kind} student of side {side!r} reads a pooled feature, got taps {list(d_in)}")
        if kind == "conv":
            return ConvStudent(int(d_in), cfg.dim)
        return MLPStudent(int(d_in), cfg.width, cfg.dim, cfg.dropout)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def project(self, side: str, x: Any) -> torch.Tensor:
        return self.towers[side](x)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.config.objective == "contrastive":
            return self._contrastive(batch)
        if "targets" not in batch:
            raise ConfigError("dime: the distill objective needs the teacher's embeddings as targets "
                              "(train it with `latentfuse distill`, or set objective: contrastive for pairs)")
        cfg = self.config
        image, text = cfg.image_side, cfg.text_side
        # Similarities span the global batch under torchrun: every rank's teachers, and students with gradients.
        teacher = {side: normalize(all_inputs(batch["targets"][side])) for side in (image, text)}
        total, parts = torch.zeros((), device=teacher[image].device), {}
        students = {}
        for side, other in ((image, text), (text, image)):
            if self.kinds[side] == "teacher":
                continue
            students[side] = all_rows(normalize(self.project(side, batch[side])))
            terms = tower_terms(students[side], teacher[side], teacher[other], cfg)
            for name, value in terms.items():
                parts[f"{side}_{name}"] = float(value.detach())
            total = total + cfg.w_vl * terms["vl"] + cfg.w_pvl * terms["pvl"] + cfg.w_udist * terms["udist"]
        if len(students) == 2 and cfg.w_cross:
            cross = cross_term(students[image], students[text], teacher[image], teacher[text], cfg)
            parts["cross"] = float(cross.detach())
            total = total + cfg.w_cross * cross
        return total, parts

    def _contrastive(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        image, text = self.config.image_side, self.config.text_side
        xa, xb, lam = latent_mixup(batch[image], batch[text], self.config.mixup_alpha, self.generator)
        scale = self.temperature()
        loss = symmetric_infonce(self.encode(image, xa), self.encode(text, xb), scale)
        return loss, {"temperature": float(1.0 / scale.detach()), "lambda": lam}


def scale_of(cfg: DimeConfig) -> float:
    """The similarity scale: the configured one, or CLIP's 100 when none was resolved (0)."""
    return cfg.logit_scale or 100.0


def cross_term(image: torch.Tensor, text: torch.Tensor, teacher_image: torch.Tensor, teacher_text: torch.Tensor,
               cfg: DimeConfig) -> torch.Tensor:
    """VL between the two students: ``KL(s(I_T, X_T) ‖ s(I_S, X_S)) + KL(s(X_T, I_T) ‖ s(X_S, I_S))`` at t_vl."""
    teacher = scale_of(cfg) * teacher_image @ teacher_text.T
    student = scale_of(cfg) * image @ text.T
    return distill_kl(teacher, student, cfg.t_vl) + distill_kl(teacher.T, student.T, cfg.t_vl)


def tower_terms(student: torch.Tensor, teacher_own: torch.Tensor, teacher_other: torch.Tensor,
                cfg: DimeConfig) -> dict[str, torch.Tensor]:
    """The VL, PVL and udist terms of one student tower (unit-norm embeddings, B rows each): ``student`` and
    ``teacher_own`` embed the same B items, ``teacher_other`` the B items of the other modality."""
    def s(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return scale_of(cfg) * a @ b.T

    vl = (distill_kl(s(teacher_own, teacher_other), s(student, teacher_other), cfg.t_vl)
          + distill_kl(s(teacher_other, teacher_own), s(teacher_other, student), cfg.t_vl))
    zero = torch.zeros((), device=student.device)
    pvl = 2 * distill_kl(s(teacher_own, teacher_own), s(student, teacher_own), cfg.t_pvl) if cfg.w_pvl else zero
    udist = 2 * distill_kl(s(teacher_own, teacher_own), s(student, student), cfg.t_udist) if cfg.w_udist else zero
    return {"vl": vl, "pvl": pvl, "udist": udist}
