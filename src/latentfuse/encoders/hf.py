"""``hf:<id-or-path>[#option...]``: any Hugging Face encoder from a local folder or the local HF cache.

Text models (the usual case) go through :class:`TransformerTextEncoder`. Options after ``#``:
``#mean`` (default) or ``#cls`` pooling, ``#normalize`` (L2), ``#max_length=N`` (default 256).
Example: ``hf:bert-base-uncased#cls#normalize``.

A vision config (it has ``image_size`` and no vocabulary, e.g. ViT) gives an image encoder instead:
``#cls`` (default) or ``#mean`` pooling of ``last_hidden_state``, with the resize / crop / mean / std
of the folder's preprocessor_config.json re-implemented in numpy (no torchvision). Outputs are raw.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import ENCODERS
from .base import Encoder, EncoderUnavailableError
from .images import _RESAMPLE, ImagePreprocess, TorchImageEncoder
from .text import POOLINGS, TransformerTextEncoder, hidden_size
from .weights import quiet_transformers, read_json, resolve_model_dir, weights_identity

_PIL_CODES = {int(code): name for name, code in _RESAMPLE.items()}


def parse_hf_spec(arg: str) -> tuple[str, dict[str, Any]]:
    """``"path#cls#max_length=128"`` → ``("path", {"pooling": "cls", "max_length": 128})``."""
    model, *options = arg.split("#")
    if not model:
        raise ConfigError("hf: needs a model id or folder, e.g. hf:bert-base-uncased or hf:/models/x#cls")
    settings: dict[str, Any] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key in POOLINGS and not value:
            settings["pooling"] = key
        elif key == "normalize" and not value:
            settings["normalize"] = True
        elif key == "max_length" and value.isdigit() and int(value) > 0:
            settings["max_length"] = int(value)
        else:
            raise ConfigError(f"hf:{arg}: unknown option #{option}; expected #mean, #cls, #normalize, "
                              f"#max_length=N")
    return model, settings


class HFImageEncoder(TorchImageEncoder):
    """A Hugging Face vision backbone (ViT, DeiT, ...) with CLS or mean pooling."""

    _dists = ("transformers",)

    def __init__(self, model_dir: Path, *, name: str, pooling: str = "cls", normalize: bool = False) -> None:
        super().__init__()
        if normalize:
            raise ConfigError(f"{name}: #normalize is for text models; image features are kept raw")
        self.name, self.model_dir, self.pooling = name, model_dir, pooling
        config = read_json(model_dir / "config.json")
        dim = hidden_size(config)
        if dim is None:
            raise EncoderUnavailableError(f"{model_dir}/config.json: cannot tell the hidden size")
        self.dim = dim
        self.preprocess = processor_preprocess(model_dir, config)

    def _weights_identity(self) -> str:
        return weights_identity(self.model_dir)

    def _settings(self) -> dict[str, Any]:
        return {**self.preprocess.as_dict(), "pooling": self.pooling}

    def _load(self) -> Any:
        from transformers import AutoModel

        with quiet_transformers():
            return AutoModel.from_pretrained(str(self.model_dir))

    def _pool(self, model: Any, pixels: Any) -> Any:
        hidden = model(pixel_values=pixels).last_hidden_state
        if hidden.dim() == 4:  # convnet feature map (n, c, h, w): average over space
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)


def processor_preprocess(model_dir: Path, config: dict[str, Any]) -> ImagePreprocess:
    """Translate a Hugging Face preprocessor_config.json into an :class:`ImagePreprocess`."""
    file = model_dir / "preprocessor_config.json"
    proc = read_json(file) if file.is_file() else {}
    default = config.get("image_size", 224)
    size = proc.get("size", default)
    resample = _PIL_CODES.get(int(proc.get("resample", 2)), "bilinear")
    mean = tuple(proc.get("image_mean", (0.5, 0.5, 0.5)))
    std = tuple(proc.get("image_std", (0.5, 0.5, 0.5)))
    if not proc.get("do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    crop = _hw(proc.get("crop_size")) if proc.get("do_center_crop") else None
    if isinstance(size, dict) and "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if proc.get("crop_pct"):  # ConvNeXt-style: resize edge/crop_pct, crop edge
            scale = int(edge / proc["crop_pct"])
            return ImagePreprocess((edge, edge), "center", interpolation=resample, mean=mean, std=std,
                                   scale_size=(scale, scale))
        if crop is None:
            raise EncoderUnavailableError(f"{file}: shortest_edge resize without a center crop gives "
                                          f"images of varying size; unsupported")
        return ImagePreprocess(crop, "center", interpolation=resample, mean=mean, std=std,
                               scale_size=(edge, edge))
    resized = _hw(size)
    return ImagePreprocess(crop or resized, "squash", interpolation=resample, mean=mean, std=std,
                           scale_size=resized)


def _hw(size: Any) -> tuple[int, int]:
    if isinstance(size, dict):
        return int(size["height"]), int(size["width"])
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def is_vision_config(config: dict[str, Any]) -> bool:
    return "image_size" in config and "vocab_size" not in config


@ENCODERS.register("hf", help="hf:ID-OR-FOLDER[#cls|#mean][#normalize][#max_length=N] Hugging Face encoder")
def hf(arg: str | None = None) -> Encoder:
    if not arg:
        raise ConfigError("hf: needs a model id or folder, e.g. hf:bert-base-uncased or hf:/models/x#cls")
    model, settings = parse_hf_spec(arg)
    model_dir = resolve_model_dir(model)
    name = f"hf:{arg}"
    if is_vision_config(read_json(model_dir / "config.json")):
        if "max_length" in settings:
            raise ConfigError(f"{name}: #max_length is for text models")
        return HFImageEncoder(model_dir, name=name, **settings)
    return TransformerTextEncoder(model_dir, name=name, **settings)
