"""Workers for the distributed tests: N local processes joined by gloo through a file, each doing one job
the parent then compares with the single-process result (torch.multiprocessing.spawn pickles the function
by name, so it lives in an importable module)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from latentfuse.config import TrainConfig
from latentfuse.eval.retrieval import validate
from latentfuse.methods import build_method
from latentfuse.train import Trainer, seed_everything
from latentfuse.utils import distributed


class Interrupted(Exception):
    """Raised on every rank after a chosen epoch's checkpoint: a run killed there, to be resumed."""


def run(world: int, job: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """Run ``job`` on ``world`` local processes; → each rank's result (what it saved to ``tmp``)."""
    init = tmp / f"init-{os.getpid()}-{job['name']}"
    init.unlink(missing_ok=True)
    mp.spawn(_worker, args=(world, str(init), job, str(tmp)), nprocs=world, join=True)
    return [torch.load(tmp / f"{job['name']}-rank{r}.pt", weights_only=False) for r in range(world)]


def _worker(rank: int, world: int, init: str, job: dict[str, Any], tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        result = JOBS[job["kind"]](job)
        torch.save(result, Path(tmp) / f"{job['name']}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def one_step(job: dict[str, Any]) -> dict[str, Any]:
    """Loss and gradients of one step on the global batch ``job['positions']`` (this rank takes its slice)."""
    train = job["train"]
    seed_everything(0)
    method = build_method(job["method"], train.dims(), job["options"])
    distributed.broadcast_module(method)
    method.generator = torch.Generator().manual_seed(7)
    loss, _ = method.loss(train.batch(distributed.local_part(job["positions"])))
    loss.backward()
    distributed.average_gradients(method)
    return {"loss": float(loss.detach()), "grads": {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}}


def fit(job: dict[str, Any]) -> dict[str, Any]:
    """Trainer.fit of ``job['method']``; with ``stop_after`` every rank stops after that epoch."""
    train, val = job["train"], job.get("val")
    seed_everything(job["config"].seed)
    method = build_method(job["method"], train.dims(), job["options"])
    trainer = Trainer(method, job["config"], job["out"], validate if val is not None else None)
    if job.get("stop_after"):  # every rank stops as the next epoch begins: that epoch is checkpointed and logged
        begin = method.begin_epoch

        def begin_or_stop(epoch: int, epochs: int) -> None:
            if epoch == job["stop_after"] + 1:
                raise Interrupted
            begin(epoch, epochs)

        method.begin_epoch = begin_or_stop  # type: ignore[method-assign]
    try:
        result = trainer.fit(train, val, resume=job.get("resume", False), progress=False)
    except Interrupted:
        return {"interrupted": True}
    return {"state": {k: v.clone() for k, v in method.state_dict().items()}, "best_epoch": result.best_epoch}


def single(job: dict[str, Any]) -> dict[str, Any]:
    """The same job in this one process (no process group): the reference."""
    return JOBS[job["kind"]](job)


JOBS = {"step": one_step, "fit": fit}


__all__ = ["run", "single", "TrainConfig"]
