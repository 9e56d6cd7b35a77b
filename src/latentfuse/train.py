"""One training loop for every method: batches sliced from in-memory tensors, AdamW + warmup/cosine,
a validation hook each epoch, atomic best/last checkpoints, resume, JSONL metrics.

A non-finite loss stops the run at once (``TrainingError`` naming epoch and step), and the weights are
checked at every epoch end before anything is checkpointed: a diverged run never leaves NaN weights that
would evaluate as perfect. A fresh run removes an earlier run's checkpoints first, so nothing stale is ever
published as this run's result.

Closed-form methods (``trainable = False``) are fitted once and skip the loop. What "validation" means is
the caller's choice (``validate``: method + split → nested metrics dict): retrieval recall for contrastive
heads (``eval.retrieval.validate``), another metric for a classifier. The trainer sits below the evaluators
and never imports them.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import ConfigError, DataError, TrainingError
from .methods import Method
from .config import TrainConfig
from .store.paired import PairedFeatures
from .store.streamed import chunked_order, read_ahead
from .utils.extras import require
from .utils import atomic, distributed
from .utils.nested import flatten
from .utils.runtime import CPU, Runtime

log = logging.getLogger(__name__)
Validator = Callable[[Method, PairedFeatures], dict[str, Any]]


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_score(metrics: dict[str, Any], key: str) -> float:
    value: Any = metrics
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            valid = ", ".join("/".join(path) for path, _ in flatten(metrics))
            raise ConfigError(f"train.select: {key!r} is not a validation metric; valid: {valid}")
        value = value[part]
    return float(value)


def check_finite(method: Method, when: str) -> None:
    """Refuse weights that are NaN/inf: they would score every query alike and evaluate as perfect."""
    bad = method.nonfinite_weights()
    if bad:
        raise TrainingError(f"{when}: {len(bad)} weight tensor(s) hold NaN/inf (first: {bad[0]}); the run "
                            "diverged. Nothing was saved from it: lower train.lr or check the input features")


class Trainer:
    def __init__(self, method: Method, config: TrainConfig, out_dir: str | Path,
                 validate: Validator | None = None, runtime: Runtime = CPU) -> None:
        self.method, self.config, self.validate, self.runtime = method, config, validate, runtime
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.log_path = self.out_dir / "metrics.jsonl"
        default = type(config)().select  # a classifier has no rsum: the default means "the method's own"
        self.select = method.default_select if config.select == default else config.select

    def fit(self, train: PairedFeatures, val: PairedFeatures | None, resume: bool = False,
            progress: bool = True) -> TrainResult:
        cfg = self.config
        if val is not None and self.validate is None:
            raise ValueError("a validation split needs a validate hook, e.g. Trainer(..., "
                             "validate=latentfuse.eval.retrieval.validate)")
        generator = seed_everything(cfg.seed)
        previous_threads = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            return self._fit(train, val, generator, resume, progress)
        finally:
            torch.set_num_threads(previous_threads)

    def _fit(self, train: PairedFeatures, val: PairedFeatures | None, generator: torch.Generator,
             resume: bool, progress: bool) -> TrainResult:
        started = time.perf_counter()
        if not self.method.trainable:
            self.method.fit(train)
            check_finite(self.method, f"{self.method.name}: after fitting")
            metrics = self.validate(self.method, val) if val is not None else {}
            score = select_score(metrics, self.select) if metrics else 0.0
            self._log({"epoch": 0, "fit": "closed-form", **_flat(metrics)})
            return TrainResult(0, score, time.perf_counter() - started, [metrics])
        return self._loop(train, val, generator, resume, progress, started)

    def _loop(self, train: PairedFeatures, val: PairedFeatures | None, generator: torch.Generator,
              resume: bool, progress: bool, started: float) -> TrainResult:
        cfg, method = self.config, self.method
        distributed.check_batch(cfg.batch_size)
        if len(train) < 2:  # a batch of one has nothing to contrast, and batch norm cannot train on it
            raise DataError(f"training needs at least 2 rows; the training data has {len(train)}")
        method.to(self.runtime.torch_device)
        distributed.broadcast_module(method)  # every rank starts from rank 0's weights
        train = train.placed(self.runtime.torch_device)
        steps_per_epoch = max(1, len(train) // cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        optimizer = torch.optim.AdamW(_param_groups(method, cfg.weight_decay), lr=cfg.lr)
        warm = max(1, int(cfg.warmup * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_cosine(s, warm, total))
        scaler = self.runtime.grad_scaler()
        setattr(method, "generator", generator)
        state = {"epoch": 0, "best_score": -math.inf, "best_epoch": -1, "history": [], "elapsed": 0.0}
        main = distributed.is_main()  # only rank 0 validates, writes and prints
        if distributed.broadcast_object(resume and (self.ckpt_dir / "last.pt").exists()):
            state = self._restore(optimizer, schedule, scaler, generator)
        elif not resume and main:  # a fresh run: nothing of an earlier one may be mistaken for this run's
            self.log_path.unlink(missing_ok=True)
            for name in ("best.pt", "last.pt"):
                (self.ckpt_dir / name).unlink(missing_ok=True)
        writer = _tensorboard(self.out_dir) if cfg.tensorboard and main else None
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            method.train()
            method.begin_epoch(epoch, cfg.epochs)
            if distributed.active():  # dropout differs between ranks; seeded per epoch, so resume is exact
                torch.manual_seed(cfg.seed + 1_000_003 * distributed.rank() + epoch)
            order = epoch_order(len(train), generator, cfg.shuffle, train.streamed)

            def batch_at(step: int, order: torch.Tensor = order) -> dict[str, Any]:
                return train.batch(distributed.local_part(order[step * cfg.batch_size:(step + 1) * cfg.batch_size]))

            batches = read_ahead(batch_at, steps_per_epoch) if train.streamed else map(batch_at, range(steps_per_epoch))
            losses = []
            for step, batch in enumerate(batches):
                with self.runtime.autocast():
                    loss, extras = method.loss(self.runtime.to(batch))
                value = float(loss.detach())  # the step's one device sync: checked here, logged below
                if not math.isfinite(value):
                    raise self._diverged(epoch, step + 1, steps_per_epoch, value, state["best_epoch"])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                distributed.average_gradients(method)
                if method.max_grad_norm > 0:  # on the true gradients: a scaled one is unscaled first
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(method.parameters(), method.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                method.after_step()
                schedule.step()
                losses.append(value)
            record = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": schedule.get_last_lr()[0], **extras}
            if val is not None and main:
                metrics = self.validate(method, val)
                record.update(_flat(metrics))
                score = select_score(metrics, self.select)
            else:
                score = -record["loss"]
            record["seconds"] = state["elapsed"] + time.perf_counter() - started
            state["history"].append(record)
            check_finite(method, f"epoch {epoch}")
            if method.selectable and score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch)
                self._save("best.pt", {"model": method.state_dict(), "epoch": epoch, "score": score})
            state["epoch"] = epoch
            self._checkpoint(optimizer, schedule, scaler, generator, state, started)
            if not main:
                continue
            self._log(record)
            if writer is not None:
                for key, value in record.items():
                    if isinstance(value, (int, float)):
                        writer.add_scalar(key, value, epoch)
            if progress:
                _print_epoch(record, self.select, cfg.epochs)
        if state["best_epoch"] < 1 and state["epoch"] >= 1:
            raise TrainingError(f"{self.out_dir}: none of the {state['epoch']} epochs could become the best checkpoint: "
                                f"{method.name}'s warm-up phase covered them all; raise train.epochs")
        if state["best_epoch"] < 1:
            raise TrainingError(f"{self.out_dir}: no epoch was trained (train.epochs={cfg.epochs}, "
                                f"already at epoch {state['epoch']}); nothing to publish")
        if not main:  # rank 0 publishes the best checkpoint; the others' part ends with the last step
            return TrainResult(state["best_epoch"], state["best_score"], 0.0, state["history"])
        best = torch.load(self.ckpt_dir / "best.pt", weights_only=True, map_location="cpu")
        method.load_state_dict(best["model"])
        elapsed = state["elapsed"] + time.perf_counter() - started
        return TrainResult(state["best_epoch"], state["best_score"], elapsed, state["history"])

    def _diverged(self, epoch: int, step: int, steps: int, loss: float, best_epoch: int) -> TrainingError:
        kept = f"; {self.ckpt_dir / 'best.pt'} (epoch {best_epoch}) is the last good one" if best_epoch > 0 else ""
        return TrainingError(f"training diverged at epoch {epoch}, step {step}/{steps}: the loss is {loss} "
                             f"(train.lr={self.config.lr:g}: try a lower one, or look for NaN/inf in the features). "
                             f"Nothing from this epoch was saved{kept}")

    def _checkpoint(self, optimizer, schedule, scaler, generator, state, started) -> None:
        saved = dict(state, elapsed=state["elapsed"] + time.perf_counter() - started)
        self._save("last.pt", {"model": self.method.state_dict(), "optimizer": optimizer.state_dict(),
                               "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                               "rng": generator.get_state(),
                               "torch_rng": torch.get_rng_state(), "state": saved,
                               "config": asdict(self.config)})

    def _restore(self, optimizer, schedule, scaler, generator) -> dict[str, Any]:
        path = self.ckpt_dir / "last.pt"
        ckpt = distributed.broadcast_object(_read_checkpoint(path) if distributed.is_main() else None)
        try:
            self.method.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise TrainingError(f"{path}: the checkpoint does not fit method {self.method.name!r} with these "
                                f"options ({first}); resume with the method and options it was trained with, "
                                "or train without --resume") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        generator.set_state(ckpt["rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        state["elapsed"] = state.get("elapsed", 0.0)
        return state

    def _save(self, name: str, payload: dict[str, Any]) -> None:
        if not distributed.is_main():
            return
        with atomic.atomic_path(self.ckpt_dir / name) as tmp:
            torch.save(payload, tmp)

    def _log(self, record: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:  # append-only: a line is whole or absent
            handle.write(json.dumps(record) + "\n")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise TrainingError(f"{path}: not a readable checkpoint ({exc}); train again without --resume") from None


def epoch_order(n: int, generator: torch.Generator, shuffle: str, streamed: bool) -> torch.Tensor:
    """The order of the training pairs for one epoch (``train.shuffle``): a random permutation, or the chunked
    shuffle that reads streamed features forward (``store.streamed.chunked_order``)."""
    if shuffle == "chunked" or (shuffle == "auto" and streamed):
        return chunked_order(n, generator)
    return torch.randperm(n, generator=generator)


def _param_groups(method: Method, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in method.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    """Nested validation metrics → ``{"val/b2a/R@5": 53.5, ...}`` (one JSONL/TensorBoard key each)."""
    return {"val/" + "/".join(path): float(value) for path, value in flatten(metrics)}


def _tensorboard(out_dir: Path):
    require("tensorboard", "train.tensorboard")  # the job checked it already; a Trainer built directly too
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out_dir / "tensorboard"))


def _print_epoch(record: dict[str, Any], select: str, epochs: int) -> None:
    val = f"  val {select}={record.get('val/' + select, float('nan')):.2f}" if f"val/{select}" in record else ""
    log.info("epoch %3d/%d  loss %.4f%s  (%.1fs)", record["epoch"], epochs, record["loss"], val, record["seconds"])
