"""``latentfuse distill``: a trained JointModel (the teacher) → a student JointModel of small towers, learnt from
an UNPAIRED image pool and an UNPAIRED sentence pool (DIME-FM, ``methods/dime.py``).

Data flow, the same seams as training: each pool's items go through the teacher's frozen encoder (feature
store, cached) and the teacher's heads → the teacher's embeddings (the targets), and through the student's
cheap encoder (a shallow tap of the same backbone, low-resolution pixels or GloVe; feature store, cached) →
the student's inputs. The shared trainer then fits the student's towers; the student saves as a normal
JointModel, whose sides run only the student's encoders. What is cached is what costs: the frozen encoders'
outputs (the teacher's and the student's), in the feature store; the teacher's small heads are re-applied to
the cached features on every run (seconds), so a retrained teacher never meets stale embeddings.

Pools are read one side each — ``--images`` reads only images, ``--texts`` only sentences — and a pool's own
pairing (Flickr8k's captions of an image) is dropped: the two pools are shuffled independently and each
image is given a random sentence partner (``unpaired``). An epoch is one pass over the larger pool.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .config import DistillConfig
from .data import Source, SplitData, build_source
from .encoders import Encoder, build_encoder
from .encoders.augment import AugmentedEncoder
from .encoders.ensemble import member_specs
from .errors import ConfigError, DataError
from .specs import key_value, part, public
from .eval.tasks import resolve_split
from .methods import build_method, make_config, method_class
from .model import JointModel, SideSpec
from .store import TapInputs, TokenFeatures, get_features, get_tokens, paired_features
from .store.paired import PairedFeatures
from .runner import Trained, run_job, training_meta
from .train import Trainer, seed_everything
from .utils import distributed
from .utils.runtime import Runtime

log = logging.getLogger(__name__)
GLOVE = "glove-6b-50d"


@dataclass
class Student:
    """What ``--student`` means: the ``dime`` options and, per model side, the student's encoder."""

    options: dict[str, Any]
    encoders: dict[str, str]


# A tower --student does not name follows the dime options' kind for it (a preset may set it): the kind → its spec.
IMAGE_DEFAULTS = {"attention": "truncated:stride16", "conv": "pixels", "teacher": "teacher"}
TEXT_DEFAULTS = {"transformer": "glove-transformer", "mlp": "glove-bag", "teacher": "teacher"}


def parse_student(spec: str, teacher: JointModel, options: dict[str, Any] | None = None) -> Student:
    """``image=truncated:stride16,text=glove-transformer`` → dime options + side encoders (see DistillConfig).
    A tower the spec leaves out follows ``options`` (the user's dime options, a preset resolved): their
    ``image_student`` / ``text_student`` kind, e.g. ``preset: paper`` keeps the teacher's text tower."""
    image, text = teacher.side_for("image", purpose="distill"), teacher.side_for("text", purpose="distill")
    parts = dict(_key_value(item, spec) for item in spec.split(",") if item.strip())
    unknown = sorted(set(parts) - {"image", "text"})
    if unknown:
        raise ConfigError(f"--student {spec!r}: unknown tower {unknown[0]!r}; write image=KIND,text=KIND")
    wanted = make_config("dime", dict(options or {}))
    parts.setdefault("image", IMAGE_DEFAULTS.get(wanted.image_student, "truncated:stride16"))
    parts.setdefault("text", TEXT_DEFAULTS[wanted.text_student])
    options: dict[str, Any] = {"image_side": image, "text_side": text, "dim": teacher.dim}
    encoders = {}
    kind, _, arg = parts["image"].partition(":")
    if kind == "truncated":
        tap, _, size = arg.partition(":")
        options.update(image_student="attention", image_tap=tap or "stride16")
        encoders[image] = member_specs(teacher.sides[image].encoder)[0]  # an ensemble's taps: its first member's
        if size:  # the same backbone at a lower input resolution: quadratically cheaper
            if ":" in encoders[image] or not encoders[image].startswith("efficientnet-lite"):
                raise ConfigError(f"--student image=truncated:{arg}: a resolution needs the teacher's image encoder "
                                  f"to be a packaged efficientnet-lite, not {encoders[image]!r}")
            encoders[image] = f"{encoders[image]}:size={_whole(size, 'image size')}"
        build_encoder(encoders[image]).check_taps([options["image_tap"]])
    elif kind == "pixels":
        options["image_student"] = "conv"
        encoders[image] = f"pixels:{arg or 96}"
    elif kind == "teacher" and not arg:
        options["image_student"] = "teacher"
        encoders[image] = teacher.sides[image].encoder
    else:
        raise ConfigError(f"--student: image={parts['image']!r}; expected truncated[:TAP[:SIZE]], pixels[:SIZE] or teacher")
    kind, _, arg = parts["text"].partition(":")
    if kind == "glove-transformer":
        options.update(text_student="transformer", text_tap="words", layers=_whole(arg or "1", "text layers"))
        encoders[text] = GLOVE
    elif kind == "glove-bag" and not arg:
        options["text_student"] = "mlp"
        encoders[text] = GLOVE
    elif kind == "teacher" and not arg:
        options["text_student"] = "teacher"
        encoders[text] = teacher.sides[text].encoder
    else:
        raise ConfigError(f"--student: text={parts['text']!r}; expected glove-transformer[:LAYERS], glove-bag or "
                          "teacher")
    if "teacher" in (options["image_student"], options["text_student"]):
        options["teacher"] = {"method": teacher.method.name, "method_config": teacher.method.config_dict(),
                              "dims": teacher.method.dims}
    return Student(options, encoders)


def teacher_scale(teacher: JointModel) -> float:
    """The logit scale the teacher learned (a contrastive method's 1/τ), else CLIP's 100: the similarity
    scale its own training distributions had."""
    scale = getattr(teacher.method, "logit_scale", None)
    if isinstance(scale, torch.nn.Module):
        with torch.no_grad():
            return round(float(scale()), 4)
    return 100.0


def _key_value(item: str, spec: str) -> tuple[str, str]:
    return key_value(item.strip(), f"--student {spec!r}:", "image=truncated:stride16", key="TOWER", value="KIND")


def _whole(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--student: {what} must be a whole number >= 1, got {text!r}")
    return int(text)


# ---------------------------------------------------------------- pools

@dataclass
class Pool:
    """One side's training rows, concatenated over its pools: student inputs + teacher embeddings."""

    ids: list[str]
    inputs: np.ndarray | TokenFeatures
    targets: np.ndarray
    counts: dict[str, int]  # pool spec → rows it gave


def read_pools(specs: list[str], modality: str, side: str, teacher: JointModel, student: Encoder,
               tap: str | None, config: DistillConfig, progress: bool) -> Pool:
    """Every pool's items of ``modality``: the student's inputs and the teacher's embeddings, row-aligned."""
    option = f"--{modality}s"
    if not specs:
        raise ConfigError(f"distill needs at least one {modality} pool: {option} SOURCE")
    parts: list[tuple[list[str], Any, np.ndarray]] = []
    counts: dict[str, int] = {}
    for number, spec in enumerate(specs):
        base, split = part(spec, last=True)
        source = build_source(base, skip_bad=config.skip_bad)
        data = source.load(resolve_split(source, split, preferred="train", how="as SPEC@SPLIT"))
        names = [s.name for s in data.sides if s.modality == modality and data.items[s.name]]
        if not names:
            have = ", ".join(f"{s.name} ({s.modality}, {len(data.items[s.name])} items)" for s in data.sides)
            raise DataError(f"{option} {spec}: holds no {modality}s (its sides: {have}); {option} takes a source "
                            f"of {modality}s")
        # augmented views: the same images through the student transform, distilled toward the same targets
        views = [AugmentedEncoder(student, view, config.train.seed)
                 for view in range(1, (config.augment if modality == "image" else 0) + 1)]
        for data_side in names:
            sides = _pool_side(source, data, data_side, side, teacher, [student, *views], tap, config, progress)
            for view, (ids, inputs, targets) in enumerate(sides):
                parts.append(([f"{number}:{i}" + (f"#view{view}" if view else "") for i in ids], inputs, targets))
                counts[spec] = counts.get(spec, 0) + len(ids)
    ids = [i for part in parts for i in part[0]]
    inputs = (TokenFeatures.concat([p[1] for p in parts]) if tap else np.concatenate([p[1] for p in parts]))
    return Pool(ids, inputs, np.concatenate([p[2] for p in parts]), counts)


def _pool_side(source: Source, data: SplitData, data_side: str, side: str, teacher: JointModel,
               students: list[Encoder], tap: str | None, config: DistillConfig,
               progress: bool) -> list[tuple[list[str], Any, np.ndarray]]:
    """One data side of one pool, per student encoder (the student's, then each augmented view's): (ids, student
    inputs, teacher embeddings), the same rows in the same order. The teacher embeds the items once for all."""
    store, skip = config.store, config.skip_bad
    teacher_taps = teacher.method.side_taps(side)
    encoder = teacher.encoder(side)
    if teacher_taps:
        teacher_inputs: Any = TapInputs(get_tokens(source, data, data_side, encoder, teacher_taps, store,
                                                   skip_bad=skip, progress=progress))
        teacher_ids = teacher_inputs.ids
    else:
        features = get_features(source, data, data_side, encoder, store, skip_bad=skip, progress=progress)
        teacher_inputs, teacher_ids = features.array, features.ids
    all_targets = teacher.encode_features(side, teacher_inputs)
    out = []
    for student in students:
        if tap:
            inputs: Any = get_tokens(source, data, data_side, student, [tap], store, skip_bad=skip,
                                     progress=progress)[tap]
            ids = inputs.ids
        else:
            features = get_features(source, data, data_side, student, store, skip_bad=skip, progress=progress)
            inputs, ids = np.asarray(features.array, dtype=np.float32), features.ids
        targets = all_targets
        if ids != teacher_ids:  # only with --skip-bad, when the two encoders dropped different items
            row = {item_id: r for r, item_id in enumerate(teacher_ids)}
            if tap or any(i not in row for i in ids):
                raise DataError(f"{source.spec} {data.split}/{data_side}: the teacher's and the student's encoders "
                                "skipped different items; re-extract both with the same --skip-bad setting")
            targets = all_targets[[row[i] for i in ids]]
        out.append((ids, inputs, targets))
    return out


def unpaired(n_images: int, n_texts: int, seed: int) -> np.ndarray:
    """(rows, 2) random (image, sentence) partners, max(n_images, n_texts) rows: the larger pool is walked
    once per epoch in shuffled order, the smaller one cycled through fresh permutations."""
    rng = np.random.default_rng(seed)
    n = max(n_images, n_texts)

    def walk(k: int) -> np.ndarray:
        return np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]

    return np.stack([walk(n_images), walk(n_texts)], axis=1).astype(np.int64)


def _side_inputs(inputs: np.ndarray | TokenFeatures, tap: str | None) -> Any:
    return TapInputs({tap: inputs}) if tap else torch.from_numpy(inputs)


# ---------------------------------------------------------------- the job

def distill(config: DistillConfig, *, resume: bool = False, overwrite: bool = False,
            progress: bool = True) -> list[dict[str, Any]]:
    """Teacher + pools → trained student, saved to ``config.out`` (``runner.run_job`` with a
    :class:`PoolsJob`); → its test reports (one with ``val`` and a ``test_split``, else none)."""
    return run_job(PoolsJob(config), resume=resume, overwrite=overwrite, progress=progress)


class PoolsJob:
    """Distillation: a teacher's embeddings of unpaired image and sentence pools → a student's towers."""

    kind, config_file = "distill-run", "distill.yaml"

    def __init__(self, config: DistillConfig) -> None:
        self.config = config

    def saved_identity(self, folder: Path) -> dict[str, Any] | None:
        return None  # distillation postdates the output markers

    def data_identity(self) -> dict[str, Any]:
        return {"teacher_fingerprint": self.teacher.fingerprint}

    def prepare(self, rt: Runtime) -> None:
        """The teacher, the student grammar and the dime options, checked before the output folder is touched."""
        config = self.config
        if not config.teacher:
            raise ConfigError("distill needs -m/--model TEACHER (a trained JointModel folder)")
        self.teacher = JointModel.load(config.teacher, device=rt.device, precision=rt.precision, backend=rt.backend)
        self.student = parse_student(config.student, self.teacher, config.method.options)
        self.options = {**self.student.options, **config.method.options}
        if config.augment and make_config("dime", self.options).image_student == "teacher":
            raise ConfigError(f"distill: augment={config.augment} gives a distilled image tower augmented views; this "
                              "student keeps the teacher's image tower (--student image=truncated… or pixels…)")
        if make_config("dime", self.options).logit_scale == 0:  # typos fail here, before any extraction
            self.options["logit_scale"] = teacher_scale(self.teacher)

    def train(self, out: Path, resume: bool, progress: bool, rt: Runtime) -> Iterator[Trained]:
        config, teacher, options = self.config, self.teacher, self.options
        image, text = options["image_side"], options["text_side"]
        encoders = {side: build_encoder(spec, teacher.runtime) for side, spec in self.student.encoders.items()}
        taps = method_class("dime").wanted_taps(make_config("dime", options), {image: "image", text: "text"})
        several = {side: names for side, names in taps.items() if len(names) > 1}
        if several:  # a `teacher` tower over a teacher that fuses several taps (MMFuser)
            raise ConfigError(f"distill: a student side reads one tap, but side(s) {sorted(several)} would need "
                              f"{several}; distil that side too instead of keeping the teacher's tower")
        one_tap = {side: (taps.get(side) or [None])[0] for side in (image, text)}
        with distributed.main_first():  # under torchrun rank 0 fills the cache, the others then read it
            pools = {side: read_pools(specs, modality, side, teacher, encoders[side], one_tap[side], config,
                                      progress)
                     for side, modality, specs in ((image, "image", config.images), (text, "text", config.texts))}
            val = _val_features(config, encoders, taps, (image, text), progress) if config.val else None
        if progress:
            log.info("pools: %s", "; ".join(f"{side} {len(p.ids)} rows ({', '.join(f'{k}: {n}' for k, n in p.counts.items())})"
                                            for side, p in pools.items()))
        train = PairedFeatures(
            sides=(image, text), x={side: _side_inputs(pools[side].inputs, one_tap[side]) for side in (image, text)},
            ids={side: pools[side].ids for side in (image, text)},
            pairs=unpaired(len(pools[image].ids), len(pools[text].ids), config.train.seed),
            targets={side: torch.from_numpy(np.asarray(pools[side].targets, dtype=np.float32))
                     for side in (image, text)})
        seed_everything(config.train.seed)
        method = build_method("dime", train.dims(), options)
        result = Trainer(method, config.train, out, type(method).validate if val is not None else None,
                         teacher.runtime).fit(train, val, resume=resume, progress=progress)
        if not distributed.is_main():  # rank 0 publishes the student
            return
        sides = [SideSpec(side, teacher.sides[side].modality, encoders[side].name, encoders[side].fingerprint)
                 for side in (image, text)]
        meta = {"distilled_from": {"teacher": Path(config.teacher).name, "fingerprint": teacher.fingerprint},
                "pools": {side: {public(spec): n for spec, n in pools[side].counts.items()} for side in (image, text)},
                "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 2),
                "training": training_meta(config.train, {side: encoders[side] for side in (image, text)})}
        test = _val_features(config, encoders, taps, (image, text), progress, config.test_split) \
            if config.val and config.test_split else None
        hubness = dataclasses.replace(teacher.hubness, bank_size=config.bank_size)  # the teacher's norm and β
        yield Trained(JointModel(method, sides, meta), train.x, hubness, test, config.val, config.test_split)


def _val_features(config: DistillConfig, encoders: dict[str, Encoder], taps: dict[str, list[str]],
                  sides: tuple[str, str], progress: bool, split: str = "") -> PairedFeatures:
    """A split of the paired ``val`` source through the student's encoders: ``val_split`` picks the best
    checkpoint, ``test_split`` is the saved student's report."""
    source = build_source(config.val, skip_bad=config.skip_bad)
    split = split or config.val_split
    source.check_split(split)
    names = [s.name for s in source.sides]
    if sorted(names) != sorted(sides):
        raise ConfigError(f"--val {config.val}: its sides {names} must be the model's sides {list(sides)}")
    data = source.load(split)
    return paired_features(source, data, encoders, config.store, skip_bad=config.skip_bad, progress=progress,
                           taps=taps)
