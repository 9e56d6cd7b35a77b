"""The frozen-encoder protocol every backbone implements.

An encoder turns a batch of raw inputs (image paths / PIL images, or strings) into a float32 array.
Its ``fingerprint`` (name + weights identity + preprocessing) keys the feature cache, so changing any of
them invalidates cached features and nothing else does.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

from ..errors import ConfigError, DataError, LatentfuseError
from ..utils.blobs import is_blob
from ..utils.hashing import digest
from ..utils.runtime import CPU, Runtime

T = TypeVar("T")


class Encoder:
    name: str = ""  # the registry spec that rebuilds it, e.g. "minilm-l6" or "hf:/path/to/model"
    modality: str = ""  # "image" | "text"
    dim: int = 0
    hub_id: str = ""  # the Hugging Face Hub model these weights are, a model card's base_model ('' = none there)
    license: str = ""  # the weights' license as a Hub license id ('' = not known here)

    def provenance(self) -> list[tuple[str, str]]:
        """(hub id, license) of the weights it runs: its own, or each member's (an ensemble)."""
        return [(self.hub_id, self.license)]

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Embed a batch; returns float32 of shape (len(batch), dim)."""
        raise NotImplementedError

    def prepare(self, batch: Sequence[Any]) -> list[Any]:
        """The CPU-side work that can run apart from the model, e.g. in Ray tasks: decoding and resizing
        images; for texts, the check that each is a string. Raises :class:`BadItemError` for a bad item, like
        :meth:`encode`."""
        return check_texts(batch) if self.modality == "text" else list(batch)

    def encode_prepared(self, prepared: Any) -> np.ndarray:
        """:meth:`encode` of what :meth:`prepare` returned."""
        return self.encode(prepared)

    def taps(self) -> dict[str, "Tap"]:
        """Named intermediate outputs this encoder can return as token sequences (MMFuser, LightCRL tokens,
        and the cheap shallow features of distillation and dynamic fusion). None by default."""
        return {}

    def encode_taps(self, batch: Sequence[Any], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """For each tap, one float32 (tokens, channels) array per item, in batch order.

        Image taps have a fixed token count (a grid); text taps one token per word piece, the true length
        (no padding). Raises :class:`BadItemError` for a bad item, like :meth:`encode`."""
        raise EncoderUnavailableError(f"{self.name} exposes no token taps")

    def check_taps(self, taps: Sequence[str]) -> list[str]:
        """``taps`` in this encoder's order, or a ConfigError naming the ones it has."""
        known = self.taps()
        unknown = [t for t in taps if t not in known]
        if unknown or not taps:
            listing = ", ".join(f"{t.name} {t.shape}" for t in known.values()) or "none"
            raise ConfigError(f"encoder {self.name!r} has no tap {unknown[0] if unknown else '(none given)'!r}; "
                              f"its taps: {listing}")
        return [name for name in known if name in taps]

    cost_per_item: float | None = None  # relative compute cost, for resource-aware gating

    parts: tuple["Encoder", ...] = ()
    """An ensemble's member encoders (``ensemble.py``): the feature store caches each on its own and joins
    them with ``join``; empty for a single encoder."""

    def join(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """An ensemble's feature from its members' features of the same items; single encoders have none."""
        raise NotImplementedError(f"{self.name} is not an ensemble")

    runtime: Runtime = CPU
    """Device and precision of this encoder's forward passes (``use``); weights move on their next use."""
    uses_runtime: bool = False
    """Whether ``runtime`` changes anything: torch encoders; not a lookup table or a packaged int4 engine."""

    def use(self, runtime: Runtime) -> "Encoder":
        """Run forwards on ``runtime``'s device at its precision; called once on a fresh instance (by
        ``build_encoder``): encoders are shared, so a built one is never switched to another runtime."""
        self.runtime = runtime
        return self

    @property
    def cache_key(self) -> str:
        """What keys this encoder's cached features: its fingerprint, plus the precision when that is not
        fp32 (bf16 features differ from fp32 beyond float16 storage; the device changes nothing that does)."""
        tag = self.runtime.cache_tag if self.uses_runtime else ""
        return digest(self.fingerprint, tag) if tag else self.fingerprint

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.modality} dim={self.dim}>"


@dataclass(frozen=True)
class Tap:
    """One intermediate output of an encoder, as tokens × channels."""

    name: str
    channels: int
    tokens: int | None  # a fixed count (an image grid), or None: one per word piece (ragged)
    doc: str = ""

    @property
    def shape(self) -> str:
        return f"({self.tokens if self.tokens is not None else 'T'}, {self.channels})"


def default_threads() -> int:
    """Torch intra-op threads: all cores unless the user pinned OMP_NUM_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS")
    return int(env) if env and env.isdigit() else max(1, os.cpu_count() or 1)


# --- errors -----------------------------------------------------------------------------------------


class BadItemError(DataError):
    """One input of a batch cannot be encoded. ``index`` (its position in the batch) lets a caller drop it
    and retry the rest; ``reason`` is the message without the item's name, for skip reports."""

    def __init__(self, index: int, item: Any, reason: str) -> None:
        self.index, self.item, self.reason = index, item, reason
        super().__init__(f"{describe_item(item, index)}: {reason}")

    def __reduce__(self):  # keep it picklable (process pools, Ray) despite the custom __init__
        return type(self), (self.index, self.item, self.reason)


class EncoderUnavailableError(LatentfuseError):
    """An encoder whose package or weights are not installed here; the message says what to install."""


def check_texts(batch: Sequence[Any]) -> list[str]:
    """The batch as a list of str, or :class:`BadItemError` naming the first item that is not one."""
    for index, item in enumerate(batch):
        if not isinstance(item, str):
            raise BadItemError(index, item, f"expected a text string, got {type(item).__name__}")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from undecodable bytes in argv or a file
            raise BadItemError(index, item, f"text cannot be encoded as UTF-8: lone surrogate "
                                            f"{item[exc.start]!r} at character {exc.start}") from None
    return list(batch)


def describe_item(item: Any, index: int) -> str:
    """How an error names an item: a path as itself, anything else by position and type."""
    if isinstance(item, (str, os.PathLike)) or is_blob(item):  # a blob by the file and member it names
        text = (str(item) if is_blob(item) else os.fspath(item)).encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= 120 else text[:117] + "..."
    return f"item {index} ({type(item).__name__})"


# --- helpers shared by the encoders -------------------------------------------------------------------

_torch_ready = False


def init_torch() -> None:
    """Set torch's intra-op thread count once per process (before the first forward pass)."""
    global _torch_ready
    if not _torch_ready:
        import torch

        torch.set_num_threads(default_threads())
        _torch_ready = True


def dist_version(dist: str) -> str:
    """Installed version of a distribution, cheaply (no import); part of encoder fingerprints."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


def make_fingerprint(name: str, weights: str, preprocess: Any, dists: Sequence[str] = ()) -> str:
    """The cache key of an encoder: what it is, which weights, how inputs are prepared, which code runs it."""
    versions = {d: dist_version(d) for d in ("latentfuse", *dists)}
    return digest(name, weights, preprocess, versions)


def empty(dim: int) -> np.ndarray:
    return np.zeros((0, dim), dtype=np.float32)


class Placed:
    """A frozen torch module kept on one device, moved (once, under a lock) when the runtime changes;
    shared by the encoders so that none of them names a device."""

    def __init__(self) -> None:
        self._device: Any = None
        self._lock = threading.Lock()

    def __call__(self, model: Any, runtime: Runtime) -> Any:
        if self._device != runtime.device:
            with self._lock:
                if self._device != runtime.device:
                    model.to(runtime.torch_device)
                    self._device = runtime.device
        return model


class Lazy(Generic[T]):
    """A value built on first use, once, even when several threads ask at the same time.

    Encoders keep their weights in one, so building an encoder (``load()``, ``latentfuse info``) is cheap.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None
