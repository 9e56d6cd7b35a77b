"""One process or many under torchrun: the few torch.distributed calls the trainer and the losses make.

With one process (no ``WORLD_SIZE`` from torchrun, or a world of 1) every helper is the identity, so the
single-process path runs the same code and pays nothing. Under torchrun (gloo on CPU, NCCL on GPU):

- the trainer hands each rank its contiguous slice of every global batch (``local_part``);
- contrastive losses ``gather_with_grad`` the embeddings of all ranks, as open_clip's ``gather_features``
  with ``gather_with_grad=True``: every rank computes the loss of the *global* batch, whose negatives are
  everyone's, and the gradients flowing back through the gather are summed onto the rank that made them;
- latent mixup ``gather_inputs`` the frozen inputs (no gradients) so every rank mixes the global batch with
  the same λ and partners (the generators are in lockstep), then keeps its slice;
- ``average_gradients`` all-reduces the gradients. Every rank's loss is the global loss, so a rank's
  gradient is world-size × its rows' share; the average over ranks is exactly the single-process gradient.

Averaging is done here rather than by wrapping the method in DistributedDataParallel because methods are
trained through ``loss(batch)``, not ``forward``, and staged methods (DynMM) switch ``requires_grad``
between phases, which a DDP wrapper built once cannot follow.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import os
from typing import Any, Iterator

import torch
import torch.distributed as dist

from ..errors import ConfigError
from .runtime import Runtime


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes checkpoints, logs, models and reports."""
    return rank() == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(rt: Runtime) -> Runtime:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``…), once; → the
    runtime this rank works on (its own GPU, ``cuda:LOCAL_RANK``, when the runtime is CUDA)."""
    if not launched():
        return rt
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if rt.is_cuda:
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(f"torchrun started local rank {local}, but this machine has {count} GPU(s); "
                              "use --nproc-per-node at most the number of GPUs")
        torch.cuda.set_device(local)
        rt = dataclasses.replace(rt, device=f"cuda:{local}")
    if not dist.is_initialized():
        minutes = float(os.environ.get("LATENTFUSE_DIST_TIMEOUT_MIN", "180"))  # rank 0 may be extracting
        dist.init_process_group("nccl" if rt.is_cuda else "gloo", timeout=datetime.timedelta(minutes=minutes))
        atexit.register(_leave_group)
    return rt


def _leave_group() -> None:
    """Tear the process group down before the interpreter does: a gloo group left to interpreter shutdown
    can abort the process ("terminate called without an active exception", exit -6) after a finished run."""
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, processes: int | None = None) -> None:
    """Each of ``processes`` (default: this world's) takes an equal slice of every global batch."""
    processes = processes or world_size()
    if batch_size % processes:
        raise ConfigError(f"train.batch_size {batch_size} must be divisible by the number of processes "
                          f"({processes}): each takes an equal slice of every global batch")


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Rows of every rank, in rank order, with gradients flowing back to each rank's own rows."""
    if not active():
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered rows and hands each rank its
    own rows' share (what ``torch.distributed.nn.all_gather`` does, now deprecated in torch)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = len(x)
        return _gather(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]


def gather_inputs(x: Any) -> Any:
    """The global batch of frozen inputs (no gradients): a tensor, or token taps {tap: (tokens, mask)}
    padded to the longest sequence of any rank."""
    if not active():
        return x
    if isinstance(x, dict):
        return {tap: _gather_tokens(tokens, mask) for tap, (tokens, mask) in x.items()}
    return _gather(x)


def local_part(x: Any) -> Any:
    """This rank's contiguous slice of something global: a batch's positions, or rows computed on the global
    batch (a tensor or token taps); all of it in one process."""
    if not active():
        return x
    if isinstance(x, dict):
        return {tap: (local_part(tokens), local_part(mask)) for tap, (tokens, mask) in x.items()}
    share = len(x) // world_size()
    return x[rank() * share:(rank() + 1) * share]


def _gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _gather_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    length = torch.tensor([tokens.shape[1]], device=tokens.device)
    dist.all_reduce(length, op=dist.ReduceOp.MAX)
    pad = int(length) - tokens.shape[1]
    if pad:
        tokens = torch.nn.functional.pad(tokens, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad))
    return _gather(tokens), _gather(mask)


def average_gradients(module: torch.nn.Module) -> None:
    """All-reduce the gradients that exist (the same ones on every rank), averaged, in one flat buffer."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (the heads must start equal)."""
    if not active():
        return
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (e.g. a checkpoint read from rank 0's disk)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. fills the feature cache); the others run it after (cache hits)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
