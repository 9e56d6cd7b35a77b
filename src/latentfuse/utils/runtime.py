"""Where tensors live and at which precision they are computed: decided once, applied everywhere.

``Runtime`` is what the trainer, the encoders and ``JointModel`` share (open_clip's
``create_model(..., precision=, device=)`` is the one place it decides the same): the device every
head, feature batch and encoder forward runs on, and the autocast precision of training and encoding.
Nothing else in latentfuse names a device; random draws use CPU generators and move their results, so a
seed gives the same draws on every device.

``--device auto`` takes CUDA when torch sees a GPU, else the CPU (never MPS unasked: several ops the heads
use still fall back to the CPU there). ``bf16`` autocasts to bfloat16 (CPU and recent GPUs); ``fp16`` to
float16 with a gradient scaler (CUDA only; on a CPU fp16 autocast is slow and needs no scaler).

The ``backend`` says what runs the *frozen encoders* (the heads always run on torch): ``torch``, ``onnx``
(ONNX Runtime on the exported graph, float32; ~3x faster than torch for EfficientNet-Lite on a 2-core CPU,
``python -m bench.encoders``) or
``onnx-int8`` (the same graph quantised to int8; its features are cached apart). ``auto`` takes ``onnx``
when onnxruntime is installed, the precision is fp32 and ONNX Runtime can run on the device, else torch.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

import torch

from ..choices import BACKENDS, DEFAULT_BACKEND, PRECISIONS
from ..errors import ConfigError

ONNX_HINT = "pip install 'latentfuse[onnx]'"
log = logging.getLogger("latentfuse")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """A resolved device and a precision; build one with :func:`runtime` (checks both)."""

    device: str = "cpu"
    precision: str = "fp32"
    backend: str = "torch"  # torch | onnx | onnx-int8 (resolved: never auto)

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
        """What encoding on this runtime adds to a feature-cache key: nothing for fp32 on torch or ONNX
        Runtime (their features agree across devices and backends to float16 storage resolution, a tested
        property), the precision otherwise (bf16 differs by ~1e-2), ``onnx-int8`` for int8 graphs."""
        if self.backend == "onnx-int8":
            return "onnx-int8"
        return "" if self.precision == "fp32" else self.precision

    @property
    def uses_onnx(self) -> bool:
        return self.backend in ("onnx", "onnx-int8")


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


def runtime(device: str = "auto", precision: str = "fp32", backend: str = DEFAULT_BACKEND) -> Runtime:
    """A checked :class:`Runtime`; fp16 needs CUDA (a CPU has no fast float16 path)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    resolved = resolve_device(device)
    if precision == "fp16" and not resolved.startswith("cuda"):
        raise ConfigError(f"precision fp16 needs a CUDA device (got {resolved}); use bf16 on a CPU")
    return Runtime(resolved, precision, resolve_backend(backend, resolved, precision))


def resolve_backend(backend: str, device: str, precision: str) -> str:
    """``auto|torch|onnx|onnx-int8`` → the backend the frozen encoders use here, or a ConfigError saying why
    the one asked for cannot run. ``auto`` falls back to torch, saying so once when onnxruntime is missing."""
    backend = (backend or "auto").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return backend
    problem = _onnx_problem(device, precision)
    if backend == "auto":
        if problem is None:
            return "onnx"
        if problem.startswith("onnxruntime is not installed"):
            _say_once(f"{problem}: frozen encoders run on torch ({ONNX_HINT} for faster CPU encoding)")
        return "torch"
    if problem is not None:
        raise ConfigError(f"backend {backend}: {problem}; use --backend torch (or auto)")
    return backend


def _onnx_problem(device: str, precision: str) -> str | None:
    """Why ONNX Runtime cannot run the encoders here, or None."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if precision != "fp32":
        return f"ONNX graphs run in float32 (or int8), not {precision}"
    kind = device.split(":")[0]
    if kind == "cpu":
        return None
    if kind == "cuda" and "CUDAExecutionProvider" in _ort_providers():
        return None
    return f"this onnxruntime cannot run on {device} (providers: {', '.join(_ort_providers())})"


@lru_cache(maxsize=1)
def _ort_providers() -> tuple[str, ...]:
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


@lru_cache(maxsize=None)
def _say_once(message: str) -> None:
    log.info(message)


@contextlib.contextmanager
def inference(rt: Runtime) -> Iterator[None]:
    """No autograd, and autocast at the runtime's precision: how frozen encoders and eval heads run."""
    with torch.inference_mode(), rt.autocast():
        yield
