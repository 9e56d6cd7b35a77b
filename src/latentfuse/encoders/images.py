"""Image decoding and preprocessing with Pillow + numpy, shared by every image encoder.

torchvision is not a dependency (its wheels must match the local torch build exactly), so the standard
eval transforms are re-implemented here: resize + center crop in the three flavours in common use
(torchvision/timm ``center`` and ``squash``, TensorFlow's crop-then-resize ``tf``), then per-channel
normalisation. Decoding runs in a small thread pool: Pillow releases the GIL while decoding and resizing.

Inputs may be file paths (str / PathLike), encoded bytes, PIL images, or uint8 arrays (HxW grayscale,
HxWx3 RGB, HxWx4 RGBA). Anything that cannot be fully decoded raises :class:`BadItemError`; truncated
files are never silently padded (Pillow's ``LOAD_TRUNCATED_IMAGES`` is forced off on every batch).
"""
from __future__ import annotations

import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..utils.blobs import Blob, is_blob
from ..utils.hashing import not_regular
from ..utils.runtime import inference
from .base import BadItemError, Encoder, Lazy, Placed, empty, init_torch, make_fingerprint
from .onnx_backend import GraphSpec, OnnxSession, Sessions, wrap

ImageInput = Union[str, os.PathLike, bytes, Blob, Image.Image, np.ndarray]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("center", "squash", "tf")
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
MAX_DECODE_WORKERS = 8


@dataclass(frozen=True)
class ImagePreprocess:
    """How a picture becomes network input. Every field goes into the encoder's fingerprint.

    ``crop_mode``:
      * ``center`` (torchvision / timm): resize so the image covers ``scale_size`` keeping its aspect
        ratio (shorter edge → ``floor(size / crop_pct)``), then center-crop ``size``;
      * ``squash``: resize to ``scale_size`` ignoring aspect ratio, then center-crop ``size``;
      * ``tf`` (TensorFlow EfficientNet eval): center-crop a square of ``crop_pct * shorter edge``, then
        resize it to ``size``.
    ``mean`` / ``std`` are in units of pixel/255, as timm and Hugging Face state them.
    """

    size: tuple[int, int]  # (height, width) fed to the network
    crop_mode: str = "center"
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scale_size: tuple[int, int] | None = None  # explicit resize target; default size / crop_pct

    def __post_init__(self) -> None:
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode {self.crop_mode!r}: expected one of {CROP_MODES}")
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation {self.interpolation!r}: expected one of {sorted(_RESAMPLE)}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct {self.crop_pct}: expected 0 < crop_pct <= 1")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per RGB channel")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.asarray(self.std, dtype=np.float32) * 255.0
        return (1.0 / std).astype(np.float32), (np.asarray(self.mean, np.float32) * 255.0 / std)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image → float32 array (3, height, width), normalised."""
        return self.normalise(self.resize_crop(image))

    def normalise(self, image: Image.Image) -> np.ndarray:
        """An already resized and cropped RGB image → float32 (3, height, width), per-channel normalised."""
        scale, shift = self._affine
        pixels = np.asarray(image, dtype=np.float32) * scale - shift
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def resize_crop(self, image: Image.Image) -> Image.Image:
        th, tw = self.size
        w, h = image.size
        resample = _RESAMPLE[self.interpolation]
        if self.crop_mode == "tf":
            side = max(1, int(self.crop_pct * min(h, w)))
            top, left = (h - side + 1) // 2, (w - side + 1) // 2
            return image.resize((tw, th), resample, box=(left, top, left + side, top + side))
        sh, sw = self.scale_size or (math.floor(th / self.crop_pct), math.floor(tw / self.crop_pct))
        if self.crop_mode == "squash":
            nh, nw = sh, sw
        elif sh == sw:  # torchvision Resize(int): shorter edge exact, longer edge truncated
            nh, nw = (sh, int(sh * w / h)) if h <= w else (int(sw * h / w), sw)
        else:
            ratio = max(sh / h, sw / w)
            nh, nw = max(sh, round(h * ratio)), max(sw, round(w * ratio))
        if (nw, nh) != (w, h):
            image = image.resize((nw, nh), resample)
        top, left = round((nh - th) / 2.0), round((nw - tw) / 2.0)  # as torchvision CenterCrop
        if (top, left, th, tw) == (0, 0, nh, nw):
            return image
        return image.crop((left, top, left + tw, top + th))


def load_image(item: Any, index: int = 0) -> Image.Image:
    """Decode one input fully into an RGB PIL image, or raise :class:`BadItemError` saying why."""
    try:
        if isinstance(item, Image.Image):
            strict_load(item)
            return _rgb(item)
        if isinstance(item, np.ndarray):
            return _rgb(array_image(item))
        if isinstance(item, (bytes, bytearray, memoryview)):
            source: Any = io.BytesIO(item)
        elif is_blob(item):  # a tar member or a dataset cell: its bytes, read now
            source = io.BytesIO(item.read_bytes())
        elif isinstance(item, (str, os.PathLike)):
            kind = not_regular(os.stat(item).st_mode)  # a FIFO would block Image.open, a device never end
            if kind:
                raise BadItemError(index, item, f"cannot decode image (not a file): is {kind}")
            source = item
        else:
            raise TypeError(f"expected an image path, bytes, a blob, PIL image or uint8 array, got {type(item).__name__}")
        with Image.open(source) as image:
            strict_load(image)
            return _rgb(image, copy=True)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise _bad(item, index, "missing", exc) from exc
    except UnidentifiedImageError as exc:
        raise BadItemError(index, item, "cannot decode image (not an image): no image format recognised") from exc
    except TypeError as exc:
        raise _bad(item, index, "not an image", exc) from exc
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt or unreadable"
        raise _bad(item, index, kind, exc) from exc


def strict_load(image: Image.Image) -> None:
    """Decode all pixel data now, so a file whose pixel data is short fails here instead of being
    zero-padded: Pillow pads when ``ImageFile.LOAD_TRUNCATED_IMAGES`` is on, and any library in the
    process may have turned it on. Every decode path (batches, ``load()``, the server) comes through here."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    image.load()


def _bad(item: Any, index: int, kind: str, exc: BaseException) -> BadItemError:
    """The reason leaves the item's path out: the error message and skip reports name it already."""
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(item, (str, os.PathLike)):
        detail = detail.replace(repr(os.fspath(item)), "").replace(os.fspath(item), "").strip(" :") or kind
    return BadItemError(index, item, f"cannot decode image ({kind}): {detail}")


def _rgb(image: Image.Image, copy: bool = False) -> Image.Image:
    if image.mode == "RGB":
        return image.copy() if copy else image
    return image.convert("RGB")


def array_image(array: np.ndarray) -> Image.Image:
    """The one rule for pixels held in an array (encoding, ``fit`` rows): uint8 HxW, HxWx1, HxWx3 or HxWx4, or
    whole numbers in 0..255 of another integer type (a table's image column of nested lists). Floats are
    refused rather than guessed: 0..1 and 0..255 conventions both exist, and a wrong guess is a silent error."""
    if array.dtype.kind in "iu" and array.size and 0 <= array.min() and array.max() <= 255:
        array = array.astype(np.uint8)
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {array.dtype} (scale floats to 0..255 first)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(np.ascontiguousarray(array))
    raise TypeError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}")


def iter_pixel_chunks(batch: Sequence[ImageInput], preprocess: ImagePreprocess, chunk: int,
                      workers: int | None = None) -> Iterator[np.ndarray]:
    """Decode + preprocess a batch, yielding float32 (<=chunk, 3, height, width) arrays in batch order.

    All items are queued on a thread pool at once, so later items decode while the caller runs the
    network on earlier chunks. Raises :class:`BadItemError` for the first bad item in batch order.
    """
    n = len(batch)

    def prepare(i: int) -> np.ndarray:
        return preprocess(load_image(batch[i], i))

    workers = min(n, workers or min(MAX_DECODE_WORKERS, 2 * (os.cpu_count() or 1)))
    if workers <= 1:
        for start in range(0, n, chunk):
            yield np.stack([prepare(i) for i in range(start, min(n, start + chunk))])
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="latentfuse-decode")
    try:
        futures = [pool.submit(prepare, i) for i in range(n)]
        for start in range(0, n, chunk):
            yield np.stack([future.result() for future in futures[start:start + chunk]])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def load_pixels(batch: Sequence[ImageInput], preprocess: ImagePreprocess, workers: int | None = None) -> np.ndarray:
    """Decode + preprocess a whole batch into float32 (n, 3, height, width)."""
    if len(batch) == 0:
        return np.zeros((0, 3, *preprocess.size), dtype=np.float32)
    return np.concatenate(list(iter_pixel_chunks(batch, preprocess, len(batch), workers)))


class TorchImageEncoder(Encoder):
    """Base of the torch image encoders: lazy weights, threaded decoding, pooled features out.

    Subclasses set ``name``/``dim``/``preprocess`` and implement ``_load``, ``_pool`` and
    ``_weights_identity``; ``_dists`` names the packages whose versions join the fingerprint.
    """

    modality = "image"
    preprocess: ImagePreprocess
    _dists: tuple[str, ...] = ()
    # Forward passes run on chunks of this many images: activations of small chunks stay in cache,
    # which on a 2-core CPU ran EfficientNet-Lite0 several times faster than one batch of 32.
    micro_batch: int = 16
    channels_last: bool = False  # NHWC memory layout: faster for convnets on CPU (oneDNN)

    uses_runtime = True

    def __init__(self) -> None:
        self._model = Lazy(self._load_eval)
        self._placed = Placed()
        self._sessions = Sessions()

    def _ready(self) -> Any:
        """The eval-mode model, on the runtime's device."""
        return self._placed(self._model(), self.runtime)

    def _pixels(self, chunk: np.ndarray) -> Any:
        import torch

        pixels = torch.from_numpy(chunk).to(self.runtime.torch_device)
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels

    def _load(self) -> Any:
        raise NotImplementedError

    def _pool(self, model: Any, pixels: Any) -> Any:
        """(n, 3, H, W) tensor → (n, dim) tensor."""
        raise NotImplementedError

    def _weights_identity(self) -> str:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        """Everything besides weights that changes the output; part of the fingerprint."""
        return self.preprocess.as_dict()

    def _load_eval(self) -> Any:
        init_torch()
        model = self._load()
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if self.channels_last:
            import torch

            model = model.to(memory_format=torch.channels_last)
        return model

    @cached_property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, self._weights_identity(), self._settings(), self._dists)

    # ---------------------------------------------------------------- ONNX Runtime backend
    def _session(self, taps: tuple[str, ...] = ()) -> OnnxSession | None:
        """The ONNX Runtime session of the pooled output (or of these taps' maps) when the runtime's
        backend is onnx / onnx-int8 and the graph passed its check; None: run on torch."""
        if not self.runtime.uses_onnx:
            return None
        return self._sessions.get(taps, lambda: self._graph(taps), self.runtime)

    def _graph(self, taps: tuple[str, ...]) -> GraphSpec:
        if taps:
            def forward(model: Any, pixels: Any) -> tuple[Any, ...]:
                maps = self._tap_forward(model, pixels, taps)
                return tuple(maps[tap] for tap in taps)
        else:
            forward = self._pool
        return GraphSpec(self.name, self.fingerprint, ("pixels",), taps or ("pooled",),
                         {"pixels": {0: "batch"}}, module=lambda: wrap(self._model(), forward),
                         example=self._example_pixels)

    def _example_pixels(self, variant: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(variant)
        return {"pixels": rng.standard_normal((2 + variant, 3, *self.preprocess.size)).astype(np.float32)}

    def _pooled(self, chunk: np.ndarray) -> np.ndarray:
        """Pooled features of one preprocessed chunk, on the runtime's backend."""
        session = self._session()
        if session is not None:
            return session({"pixels": chunk})[0]
        with inference(self.runtime):
            return self._pool(self._ready(), self._pixels(chunk)).float().cpu().numpy()

    def _maps(self, chunk: np.ndarray, taps: tuple[str, ...]) -> dict[str, Any]:
        """Each tap's feature map of one chunk, as float32 torch tensors on the runtime's device."""
        import torch

        session = self._session(taps)
        if session is not None:
            maps = zip(taps, session({"pixels": chunk}))
            return {tap: self.runtime.to(torch.from_numpy(fmap)) for tap, fmap in maps}
        maps = self._tap_forward(self._ready(), self._pixels(chunk), taps).items()
        return {tap: fmap.float() for tap, fmap in maps}

    tap_grid: int = 7
    """Each image tap is average-pooled to a tap_grid × tap_grid grid: 49 tokens by default."""

    def _tap_forward(self, model: Any, pixels: Any, taps: Sequence[str]) -> dict[str, Any]:
        """(n, 3, H, W) → {tap: (n, C, h, w) feature map} for the requested taps."""
        raise NotImplementedError

    def encode_taps(self, batch: Sequence[ImageInput], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Each tap's feature map average-pooled to ``tap_grid``², as (grid², C) float32 per image, tokens
        in row-major grid order."""
        import torch.nn.functional as F

        taps = tuple(self.check_taps(taps))
        out: dict[str, list[np.ndarray]] = {tap: [] for tap in taps}
        if len(batch) == 0:
            return out
        with inference(self.runtime):
            for chunk in iter_pixel_chunks(batch, self.preprocess, self.micro_batch):
                for tap, fmap in self._maps(chunk, taps).items():
                    grid = F.adaptive_avg_pool2d(fmap, self.tap_grid)  # (n, C, g, g)
                    out[tap].extend(grid.flatten(2).transpose(1, 2).contiguous().cpu().numpy())
        return out

    def prepare(self, batch: Sequence[ImageInput]) -> np.ndarray:
        """Decoded, resized, normalised pixels, float32 (n, 3, H, W)."""
        return load_pixels(batch, self.preprocess, workers=1)

    def encode_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Pooled features of pixels from :meth:`prepare`, a micro-batch at a time as :meth:`encode` runs."""
        pixels = np.asarray(prepared, dtype=np.float32)
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        for start in range(0, len(pixels), self.micro_batch):
            chunk = pixels[start:start + self.micro_batch]
            out[start:start + len(chunk)] = self._pooled(chunk)
        return out

    def encode(self, batch: Sequence[ImageInput]) -> np.ndarray:
        """Raw pooled features (not L2-normalised), float32 (len(batch), dim)."""
        if len(batch) == 0:
            return empty(self.dim)
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        start = 0
        for chunk in iter_pixel_chunks(batch, self.preprocess, self.micro_batch):
            out[start:start + len(chunk)] = self._pooled(chunk)
            start += len(chunk)
        return out
