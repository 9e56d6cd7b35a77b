"""``timm:<model>`` or ``timm:<model>@<weights file>``: any timm backbone as a frozen image encoder.

The model is built with ``num_classes=0``, so it returns timm's pooled pre-classifier features (raw, not
normalised). Without a weights file the pretrained weights must already be in the local Hugging Face
cache (nothing is downloaded). Preprocessing follows ``timm.data.resolve_data_config`` (input size,
interpolation, mean/std, crop_pct, crop_mode) re-implemented with Pillow + numpy, since torchvision is not
a dependency. Size and preprocessing are read from a weightless skeleton of the model (meta device), so
constructing the encoder never loads weights.
"""
from __future__ import annotations

import importlib.util
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..specs import part
from . import ENCODERS
from .base import EncoderUnavailableError, Lazy
from .images import CROP_MODES, ImagePreprocess, TorchImageEncoder
from .weights import resolve_model_dir, weights_identity

_INSTALL = "timm: encoders need timm: pip install latentfuse[timm]"


class TimmEncoder(TorchImageEncoder):
    """A timm model's pooled features; see the module docstring."""

    channels_last = True
    _dists = ("timm",)

    def __init__(self, model_name: str, weights: str | Path | None = None) -> None:
        super().__init__()
        if importlib.util.find_spec("timm") is None:
            raise EncoderUnavailableError(_INSTALL)
        self.model_name = model_name
        self.weights = Path(weights).expanduser() if weights else None
        if self.weights is not None and not self.weights.is_file():
            raise EncoderUnavailableError(f"timm:{model_name}: no weights file {self.weights}")
        self.name = f"timm:{model_name}" + (f"@{weights}" if weights else "")
        self._skeleton = Lazy(self._build_skeleton)

    def _build_skeleton(self) -> Any:
        """The architecture without real weights: cheap, and enough for dim + data config."""
        import timm
        import torch

        try:
            with torch.device("meta"):
                return timm.create_model(self.model_name, pretrained=False, num_classes=0)
        except Exception as exc:  # (some inits call .item()/.tolist(), which meta refuses)
            if "unknown model" in str(exc).lower():
                raise EncoderUnavailableError(f"timm has no model {self.model_name!r} "
                                              f"(see timm.list_models())") from exc
            return timm.create_model(self.model_name, pretrained=False, num_classes=0)  # meta-unfriendly init

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return int(self._skeleton().num_features)

    @cached_property
    def preprocess(self) -> ImagePreprocess:  # type: ignore[override]
        from timm.data import resolve_data_config

        return preprocess_from_timm(resolve_data_config(model=self._skeleton()))

    def _weights_identity(self) -> str:
        if self.weights is not None:
            return weights_identity(self.weights)
        cfg = dict(getattr(self._skeleton(), "pretrained_cfg", None) or {})
        hub = cfg.get("hf_hub_id")
        if hub:
            try:
                return weights_identity(resolve_model_dir(hub))
            except EncoderUnavailableError:
                pass  # not cached yet: name the release instead
        return f"timm-pretrained:{self.model_name}:{hub or cfg.get('url', '')}"

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import timm

        overlay = {"file": str(self.weights)} if self.weights is not None else None
        try:
            return timm.create_model(self.model_name, pretrained=True, num_classes=0,
                                     pretrained_cfg_overlay=overlay)
        except (OSError, RuntimeError, ValueError) as exc:
            where = self.weights or "the local Hugging Face cache (nothing is downloaded)"
            raise EncoderUnavailableError(f"{self.name}: cannot load pretrained weights from {where}: "
                                          f"{exc}") from exc

    def _pool(self, model: Any, pixels: Any) -> Any:
        return model(pixels)


def preprocess_from_timm(config: dict[str, Any]) -> ImagePreprocess:
    """timm's resolved data config (``input_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct``,
    ``crop_mode``) → :class:`ImagePreprocess` with the same eval transform."""
    _, height, width = config["input_size"]
    crop_mode = config.get("crop_mode") or "center"
    if crop_mode not in CROP_MODES:
        raise EncoderUnavailableError(f"timm crop_mode {crop_mode!r} is not supported (only {CROP_MODES})")
    interpolation = config.get("interpolation") or "bilinear"
    return ImagePreprocess(
        size=(int(height), int(width)), crop_mode=crop_mode, crop_pct=float(config.get("crop_pct") or 0.875),
        interpolation="bicubic" if interpolation == "random" else interpolation,
        mean=tuple(float(v) for v in config["mean"]), std=tuple(float(v) for v in config["std"]),
    )


@ENCODERS.register("timm", help="timm:MODEL[@WEIGHTS] timm backbone, pooled features (pip install latentfuse[timm])")
def timm_encoder(arg: str | None = None) -> TimmEncoder:
    if not arg:
        raise ConfigError("timm: needs a model name, e.g. timm:resnet50 or timm:resnet50@/models/r50.pth")
    model_name, weights = part(arg)
    return TimmEncoder(model_name, weights or None)
