"""The embedder half of a JointModel: the runtime, the frozen encoders, and raw inputs → joint embeddings.

``Embedder`` owns where the heads and encoders run (``to``, ``on_torch``), builds each side's frozen encoder
once per runtime (checked against its saved fingerprint), and runs the one chunked encode loop
(``methods.base.embed``) on cached features (``encode_features``) or raw inputs (``encode``,
``encode_image``, ``encode_text``, ``similarity``, the way sentence-transformers' ``encode`` does). A pair
classifier's ``predict`` is the method's own protocol (``Method.predict``). Which model side embeds a
modality is decided in one place, :meth:`Embedder.side_for`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..choices import DEFAULT_BACKEND
from ..encoders import Encoder, build_encoder
from ..errors import ModelError
from ..methods import Method
from ..methods.base import embed
from ..store import TapInputs
from ..store.tokens import in_memory_tokens
from ..utils.runtime import Runtime, runtime as make_runtime


class Embedder:
    """Mixed into ``JointModel``: what it needs of it are ``method``, ``sides``, ``runtime``, ``_encoders``."""

    method: Method
    sides: dict[str, Any]
    runtime: Runtime
    _encoders: dict[str, Encoder]

    def to(self, device: str = "auto", precision: str = "fp32", backend: str = DEFAULT_BACKEND) -> "Embedder":
        """Run the heads and the frozen encoders on ``device`` (auto|cpu|cuda|cuda:N|mps) at ``precision``
        (fp32|bf16|fp16), the encoders on ``backend`` (auto|torch|onnx|onnx-int8); returns the model.
        Outputs are float32 numpy on the host whatever the device."""
        self.runtime = make_runtime(device, precision, backend)
        self.method.to(self.runtime.torch_device)
        self._encoders = {}  # rebuilt on first use for the new runtime (build_encoder keeps one per runtime)
        return self

    @contextlib.contextmanager
    def on_torch(self) -> Iterator["Embedder"]:
        """Inside, the frozen encoders run on torch whatever the backend (FLOP counters see torch ops only)."""
        saved = self.runtime, self._encoders
        self.runtime, self._encoders = dataclasses.replace(self.runtime, backend="torch"), {}
        try:
            yield self
        finally:
            self.runtime, self._encoders = saved

    # ---------------------------------------------------------------- sides
    @property
    def dim(self) -> int:
        return self.method.out_dim

    def side_for(self, modality: str, requested: str = "", *, other_than: str = "", purpose: str = "") -> str:
        """The model side that embeds ``modality`` — the one rule every caller uses.

        ``requested`` (a side name) wins and must hold ``modality``. Otherwise the first side of that
        modality in the model's order; ``other_than`` skips a side when another of the same modality exists
        (a text–text model answers a text query against its ``text_a`` index through ``text_b``).
        """
        where = f"{purpose}: " if purpose else ""
        described = ", ".join(f"{s.name} ({s.modality})" for s in self.sides.values())
        if requested:
            if requested not in self.sides:
                raise ModelError(f"{where}the model has no side {requested!r}; its sides are {described}")
            if self.sides[requested].modality != modality:
                raise ModelError(f"{where}side {requested!r} holds {self.sides[requested].modality}, "
                                 f"but {modality} is needed; the model's sides are {described}")
            return requested
        matches = [s.name for s in self.sides.values() if s.modality == modality]
        if not matches:
            raise ModelError(f"{where}needs a side of modality {modality!r}, but the model's sides are {described}")
        others = [name for name in matches if name != other_than]
        return (others or matches)[0]


    def encoder(self, side: str) -> Encoder:
        """The frozen encoder of a side, built on first use and checked against the saved fingerprint."""
        if side not in self._encoders:
            spec = self.sides[side]
            encoder = build_encoder(spec.encoder, self.runtime)
            if encoder.fingerprint != spec.encoder_fingerprint:
                raise ModelError(f"encoder {spec.encoder!r} now has fingerprint {encoder.fingerprint}, but this "
                                 f"model was trained on {spec.encoder_fingerprint}: its weights or "
                                 "preprocessing changed, so the heads no longer fit it")
            self._encoders[side] = encoder
        return self._encoders[side]

    # ---------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode_features(self, side: str, features: Any, chunk: int = 1024, normalize: bool = True) -> np.ndarray:
        """Joint embeddings from already-extracted frozen features (the cached path): a pooled matrix, or the
        side's token taps (``store.TapInputs``)."""
        if not self.method.embeds:
            raise ModelError(f"a {self.method.name} model classifies pairs and has no embedding space: use "
                             "model.predict(images=..., texts=...)")
        x = features if isinstance(features, TapInputs) else torch.as_tensor(np.asarray(features, dtype=np.float32))
        embedded = embed(self.method, side, x, chunk, normalize, self.runtime.autocast).numpy()
        bad = ~np.isfinite(embedded).all(axis=1)
        if bad.any():  # NaN would score every item alike: a silent, perfect-looking wrong answer downstream
            cause = "weights" if isinstance(x, TapInputs) or bool(torch.isfinite(x).all()) else "features"
            raise ModelError(f"side {side!r}: {int(bad.sum())} of {len(bad)} embeddings are NaN/inf (first row "
                             f"{int(np.argmax(bad))}); the input {cause} hold non-finite values")
        return embedded

    def encode(self, side: str, inputs: Sequence[Any], batch_size: int = 64, normalize: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        """Raw inputs of a side → joint embeddings (n, dim), float32, L2-normalised unless told otherwise."""
        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        encoder = self.encoder(side)
        starts = range(0, len(inputs), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{encoder.name} {side}", unit="batch")
        rows = [self.encode_features(side, self.frozen_inputs(side, list(inputs[i:i + batch_size])),
                                     normalize=normalize) for i in starts]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def frozen_inputs(self, side: str, batch: list[Any]) -> Any:
        """What the method reads for a batch of raw inputs: the pooled feature, or its token taps (only the
        encoder stages those taps need run)."""
        encoder = self.encoder(side)
        taps = self.method.side_taps(side)
        if not taps:
            return encoder.encode(batch)
        return TapInputs({tap: in_memory_tokens(items, encoder.taps()[tap].channels)
                          for tap, items in encoder.encode_taps(batch, taps).items()})

    def predict(self, images: Any, texts: str | Sequence[str], *, batch_size: int = 64,
                threshold: float = 0.5) -> dict[str, Any]:
        """A pair classifier's labels for (image, text) pairs (``labels`` per pair, ``scores``, and what the
        method adds, e.g. DynMM's ``experts`` and ``mflops_per_sample``); one image → one pair's answer. The
        method decides what runs (``Method.predict``): a dynamic model encodes only what its gate needs."""
        image_list, single = image_batch(images)
        text_list = [texts] if isinstance(texts, str) else list(texts)
        if self.method.embeds:
            raise ModelError(f"a {self.method.name} model embeds; predict() is for classifiers (e.g. dynmm)")
        if len(image_list) != len(text_list):
            raise ModelError(f"predict takes one text per image: got {len(image_list)} images, {len(text_list)} texts")
        raw = {side: image_list if spec.modality == "image" else text_list for side, spec in self.sides.items()}
        with self.runtime.autocast():
            out = self.method.predict(raw, self.encoder, batch_size=batch_size, threshold=threshold)
        if single and len(text_list) == 1:
            out = {key: value[0] if isinstance(value, (list, np.ndarray)) else value for key, value in out.items()}
        return out

    def encode_image(self, images: Any, *, side: str = "", batch_size: int = 64, normalize: bool = True,
                     convert_to_tensor: bool = False, show_progress_bar: bool = False,
                     normalize_embeddings: bool | None = None) -> np.ndarray | torch.Tensor:
        """Images → (n, dim); one image (a path, a PIL image, an (H, W[, C]) array, a (C, H, W) tensor) → (dim,).

        A list of images, an (N, H, W, C) / (N, H, W) / (N, C, H, W) array or an (N, C, H, W) tensor is a
        batch of N (see :func:`image_batch`). ``normalize_embeddings``: sentence-transformers' name for
        ``normalize``.
        """
        batch, single = image_batch(images)
        normalize = normalize if normalize_embeddings is None else normalize_embeddings
        x = self.encode(self.side_for("image", side, purpose="encode_image"), batch, batch_size, normalize,
                        show_progress_bar)
        return _finish(x, single, convert_to_tensor)

    def encode_text(self, texts: str | Sequence[str], *, side: str = "", batch_size: int = 64,
                    normalize: bool = True, convert_to_tensor: bool = False,
                    show_progress_bar: bool = False, normalize_embeddings: bool | None = None) -> np.ndarray | torch.Tensor:
        """Strings → (n, dim); one string → (dim,). ``normalize_embeddings``: an alias of ``normalize``."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        normalize = normalize if normalize_embeddings is None else normalize_embeddings
        x = self.encode(self.side_for("text", side, purpose="encode_text"), batch, batch_size, normalize,
                        show_progress_bar)
        return _finish(x, single, convert_to_tensor)

    def similarity(self, images: Any = None, texts: Any = None, *, images_b: Any = None,
                   texts_b: Any = None) -> np.ndarray:
        """Cosine similarity matrix between two groups of raw inputs, rows = the first group.

        ``images=, texts=`` → (n_images, n_texts); ``texts=, texts_b=`` → text–text (``texts_b`` goes through
        the model's second text side when it has one, so a text–text model compares across its two spaces);
        ``images=, images_b=`` → image–image, likewise. Two matrices of joint embeddings (float, the model's
        width), passed positionally as sentence-transformers users do, are compared as they are.
        """
        given = {name for name, value in (("images", images), ("texts", texts), ("images_b", images_b),
                                          ("texts_b", texts_b)) if value is not None}
        if given == {"images", "texts"}:
            a, b = _embeddings(images, self.dim), _embeddings(texts, self.dim)
            if a is not None and b is not None:  # model.similarity(emb_a, emb_b): embeddings already
                return _unit(a) @ _unit(b).T
        if given == {"images", "texts"}:
            return _matrix(self.encode_image(images)) @ _matrix(self.encode_text(texts)).T
        for modality, first, second in (("text", texts, texts_b), ("image", images, images_b)):
            if given == {f"{modality}s", f"{modality}s_b"}:
                side = self.side_for(modality, purpose="similarity")
                other = self.side_for(modality, other_than=side, purpose="similarity")
                embed = self.encode_text if modality == "text" else self.encode_image
                return _matrix(embed(first, side=side)) @ _matrix(embed(second, side=other)).T
        raise ModelError(f"similarity takes two groups: images= and texts=, texts= and texts_b=, or images= "
                         f"and images_b=; got {sorted(given) or 'none'}")



def image_batch(images: Any) -> tuple[list[Any], bool]:
    """(list of images, was it a single image), for images as people pass them.

    * Arrays (uint8): (H, W) and (H, W, 1|3|4) are one image; (N, H, W, 1|3|4) and (N, H, W) are N images;
      (N, 1|3|4, H, W) is N channels-first images. A 3-D array whose first axis could be channels,
      (1|3|4, H, W), is refused as ambiguous (one channels-first image, or that many greyscale ones?).
    * torch tensors follow torch's layout, channels first: (C, H, W) is one image, (N, C, H, W) N images;
      float tensors in [0, 1] (torchvision's ``ToTensor``) are scaled to 0..255.
    * A list / tuple is a batch of any of these, paths, bytes or PIL images; anything else is one image.
    """
    if _is_tensor(images):
        return _tensor_images(images)
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in CHANNELS):
            return [images], True
        if images.ndim == 3 and images.shape[0] in CHANNELS and min(images.shape[1:]) > max(CHANNELS):
            raise ModelError(f"an image array of shape {images.shape} is ambiguous: one channels-first image or "
                             f"{images.shape[0]} greyscale ones? Pass image.transpose(1, 2, 0) for one (H, W, C) "
                             "image, or a list of 2-D arrays")
        if images.ndim == 4 and images.shape[1] in CHANNELS and images.shape[-1] not in CHANNELS:
            return list(np.ascontiguousarray(images.transpose(0, 2, 3, 1))), False  # (N, C, H, W)
        if images.ndim in (3, 4):
            return list(images), False
        raise ModelError(f"an image array must be (H, W), (H, W, C) or (N, H, W[, C]); got shape {images.shape}")
    if isinstance(images, (list, tuple)):
        return [_tensor_images(x)[0][0] if _is_tensor(x) else x for x in images], False
    return [images], True  # a path, a PIL image, ...


CHANNELS = (1, 3, 4)


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _tensor_images(tensor: torch.Tensor) -> tuple[list[np.ndarray], bool]:
    """torch's (C, H, W) / (N, C, H, W) → channels-last uint8 arrays; floats must lie in [0, 1]."""
    x = tensor.detach().cpu()
    if x.ndim not in (3, 4) or x.shape[-3] not in CHANNELS:
        raise ModelError(f"an image tensor must be (C, H, W) or (N, C, H, W) with C in 1, 3, 4 (torch's layout); "
                         f"got shape {tuple(x.shape)}")
    if x.is_floating_point():
        if x.numel() and not (0.0 <= float(x.min()) and float(x.max()) <= 1.0):
            raise ModelError(f"a float image tensor must hold values in [0, 1] (torchvision's ToTensor); got "
                             f"{float(x.min()):.3g}..{float(x.max()):.3g}")
        x = (x * 255.0).round()
    pixels = x.to(torch.uint8).numpy()
    pixels = pixels.transpose(0, 2, 3, 1) if pixels.ndim == 4 else pixels.transpose(1, 2, 0)
    pixels = np.ascontiguousarray(pixels)
    return (list(pixels), False) if pixels.ndim == 4 else ([pixels], True)


def _embeddings(x: Any, dim: int) -> np.ndarray | None:
    """``x`` as a float (n, dim) matrix when it is already joint embeddings (floats of the model's width),
    else None: images and texts are never float vectors of that width."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.ndim in (1, 2) and x.shape[-1] == dim:
        return np.atleast_2d(x.astype(np.float32))
    return None


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _finish(x: np.ndarray, single: bool, convert_to_tensor: bool) -> np.ndarray | torch.Tensor:
    out = x[0] if single else x
    return torch.from_numpy(np.ascontiguousarray(out)) if convert_to_tensor else out


def _matrix(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.atleast_2d(np.asarray(x))
