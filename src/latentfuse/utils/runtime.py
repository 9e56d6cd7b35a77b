"""Where tensors live and at which precision they are computed: decided once, applied everywhere.

``Runtime`` is what the trainer, the encoders and ``JointModel`` share (open_clip's
``create_model(..., precision=, device=)`` is the one place it decides the same): the device every
head, feature batch and encoder forward runs on, and the autocast precision of training and encoding.
Nothing else in latentfuse names a device; random draws use CPU generators and move their results, so a
seed gives the same draws on every device.

``--device auto`` takes CUDA when torch sees a GPU, else the CPU (never MPS unasked: several ops the heads
use still fall back to the CPU there). ``bf16`` autocasts to bfloat16 (CPU and recent GPUs); ``fp16`` to
float16 with a gradient scaler (CUDA only; on a CPU fp16 autocast is slow and needs no scaler).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """A resolved device and a precision; build one with :func:`runtime` (checks both)."""

    device: str = "cpu"
    precision: str = "fp32"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` at this precision on this device type; nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.torch_device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is live only for fp16 on CUDA (bf16 keeps fp32's exponent range and needs none)."""
        return torch.amp.GradScaler(self.torch_device.type, enabled=self.precision == "fp16" and self.is_cuda)

    def to(self, value: Any) -> Any:
        """``value`` (tensors, or dicts / tuples / lists of them) on this runtime's device."""
        return move(value, self.torch_device)

    @property
    def cache_tag(self) -> str:
        """What encoding at this precision adds to a feature-cache key: nothing for fp32 (features agree
        across devices to float16 storage resolution), the precision otherwise (bf16 differs by ~1e-2)."""
        return "" if self.precision == "fp32" else self.precision


CPU = Runtime()


def move(value: Any, device: torch.device | str) -> Any:
    """Tensors (or dicts / tuples / lists of them) on ``device``; a tensor already there is returned as is,
    so the CPU path costs nothing. Pinned host tensors are copied without blocking."""
    device = torch.device(device)
    if isinstance(value, torch.Tensor):
        if value.device == device:
            return value
        return value.to(device, non_blocking=value.is_pinned())
    if isinstance(value, dict):
        return {k: move(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(move(v, device) for v in value)
    return value


def resolve_device(spec: str) -> str:
    """``auto|cpu|cuda|cuda:N|mps`` → a device torch can use here, or a ConfigError saying why not."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"device {spec!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r}: torch {torch.__version__} sees no CUDA GPU on this machine; "
                              "use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {spec!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device {spec!r}: MPS (Apple GPU) is not available here; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
    return str(device)


def runtime(device: str = "auto", precision: str = "fp32") -> Runtime:
    """A checked :class:`Runtime`; fp16 needs CUDA (a CPU has no fast float16 path)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    resolved = resolve_device(device)
    if precision == "fp16" and not resolved.startswith("cuda"):
        raise ConfigError(f"precision fp16 needs a CUDA device (got {resolved}); use bf16 on a CPU")
    return Runtime(resolved, precision)


@contextlib.contextmanager
def inference(rt: Runtime) -> Iterator[None]:
    """No autograd, and autocast at the runtime's precision: how frozen encoders and eval heads run."""
    with torch.inference_mode(), rt.autocast():
        yield
