"""``hf:<id-or-path>[#option...]``: any Hugging Face encoder from a local folder or the local HF cache.

Text models (the usual case) go through :class:`TransformerTextEncoder`. Options after ``#``:
``#mean`` (default) or ``#cls`` pooling, ``#normalize`` (L2), ``#max_length=N`` (default 256).
Example: ``hf:bert-base-uncased#cls#normalize``.

A vision config (it has ``image_size`` and no vocabulary, e.g. ViT) gives an image encoder instead:
``#cls`` (default) or ``#mean`` pooling of ``last_hidden_state``, with the resize / crop / mean / std
of the folder's preprocessor_config.json re-implemented in numpy (no torchvision). Outputs are raw.

A dual-tower config (``text_config`` + ``vision_config``: CLIP, SigLIP, ...) gives either tower, picked
with ``#image`` or ``#text``: the tower *with its projection* — ``get_image_features`` /
``get_text_features``, the embeddings the model was trained to align — e.g.
``hf:openai/clip-vit-large-patch14#image`` (MMFuser's encoder). Text is truncated to the tower's position
limit; SigLIP text is padded to it, as SigLIP was trained. Outputs are raw (not normalised).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..specs import options
from . import ENCODERS
from .base import Encoder, EncoderUnavailableError, Tap
from .images import _RESAMPLE, ImagePreprocess, TorchImageEncoder
from .text import POOLINGS, TransformerTextEncoder, hidden_size
from .weights import quiet_transformers, read_json, resolve_model_dir, weights_identity

_PIL_CODES = {int(code): name for name, code in _RESAMPLE.items()}
TOWERS = ("image", "text")


def parse_hf_spec(arg: str) -> tuple[str, dict[str, Any]]:
    """``"path#cls#max_length=128"`` → ``("path", {"pooling": "cls", "max_length": 128})``."""
    model, given = options(arg)
    if not model:
        raise ConfigError("hf: needs a model id or folder, e.g. hf:bert-base-uncased or hf:/models/x#cls")
    settings: dict[str, Any] = {}
    for key, value in given:
        option = f"{key}={value}" if value else key
        if key in TOWERS and not value:
            settings["tower"] = key
        elif key in POOLINGS and not value:
            settings["pooling"] = key
        elif key == "normalize" and not value:
            settings["normalize"] = True
        elif key == "max_length" and value.isdigit() and int(value) > 0:
            settings["max_length"] = int(value)
        else:
            raise ConfigError(f"hf:{arg}: unknown option #{option}; expected #mean, #cls, #normalize, "
                              f"#max_length=N, or #image / #text (a tower of a CLIP-style model)")
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
        vision = config.get("vision_config", config)  # read once: taps() is on the encode path
        layers, width = vision.get("num_hidden_layers"), vision.get("hidden_size")
        self._layers = (layers, width) if isinstance(layers, int) and isinstance(width, int) else None

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

    def taps(self) -> dict[str, Tap]:
        """``layer0`` (patch embeddings) … ``layerN`` of a ViT-style model: the patch tokens (CLS and other
        prefix tokens dropped) as their square grid, average-pooled to ``tap_grid``². MMFuser's CLIP
        setting, ``hidden_states[-22, -17, -12, -7, -2]`` of a 24-block ViT-L, is layer3,8,13,18,23."""
        if self._layers is None:
            return {}
        layers, width = self._layers
        return {f"layer{i}": Tap(f"layer{i}", width, self.tap_grid ** 2,
                                 "patch embeddings" if i == 0 else f"patch tokens after block {i}")
                for i in range(layers + 1)}

    def _tap_forward(self, model: Any, pixels: Any, taps: Sequence[str]) -> dict[str, Any]:
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states
        return {tap: _as_grid(hidden[int(tap.removeprefix("layer"))]) for tap in taps}


def _as_grid(states: Any) -> Any:
    """(n, prefix + g², C) ViT tokens → (n, C, g, g); a convnet's (n, C, h, w) map is returned as is."""
    if states.dim() == 4:
        return states
    side = math.isqrt(states.shape[1])  # 1 + g² (CLS) or a few register tokens more: still g
    patches = states[:, states.shape[1] - side * side:]  # CLS / register tokens come first
    return patches.transpose(1, 2).reshape(states.shape[0], states.shape[2], side, side)


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


def is_dual_config(config: dict[str, Any]) -> bool:
    """CLIP-style: one checkpoint, a text tower and a vision tower projected into one space."""
    return isinstance(config.get("text_config"), dict) and isinstance(config.get("vision_config"), dict)


def tower_features(output: Any) -> Any:
    """``get_*_features`` gives a tensor (transformers 4) or an output whose pooler_output is it (5)."""
    return output if hasattr(output, "dim") else output.pooler_output


def tower_dim(config: dict[str, Any], tower: str) -> int:
    """Width of a tower's projected features: ``projection_dim`` (CLIP), else the tower's hidden size (SigLIP)."""
    if isinstance(config.get("projection_dim"), int):
        return config["projection_dim"]
    dim = hidden_size(config[f"{'vision' if tower == 'image' else 'text'}_config"])
    if dim is None:
        raise EncoderUnavailableError(f"config.json: cannot tell the {tower} tower's width")
    return dim


class HFTowerImageEncoder(HFImageEncoder):
    """The image tower of a CLIP-style model, with its projection (``get_image_features``)."""

    def __init__(self, model_dir: Path, *, name: str) -> None:
        TorchImageEncoder.__init__(self)
        self.name, self.model_dir, self.pooling = name, model_dir, "projection"
        config = read_json(model_dir / "config.json")
        self.dim = tower_dim(config, "image")
        self.preprocess = processor_preprocess(model_dir, config["vision_config"])

    def _pool(self, model: Any, pixels: Any) -> Any:
        return tower_features(model.get_image_features(pixel_values=pixels))


class HFTowerTextEncoder(TransformerTextEncoder):
    """The text tower of a CLIP-style model, with its projection (``get_text_features``)."""

    def __init__(self, model_dir: Path, *, name: str, max_length: int = 256) -> None:
        config = read_json(model_dir / "config.json")
        text = config["text_config"]
        limit = int(text.get("max_position_embeddings", max_length))
        super().__init__(model_dir, name=name, max_length=min(max_length, limit), dim=tower_dim(config, "text"))
        self.pooling = "projection"
        if str(config.get("model_type", "")).startswith("siglip"):
            self._pad_to = self.max_length  # SigLIP pools the last position: pad as it was trained
        layers, width = text.get("num_hidden_layers"), hidden_size(text)
        self._layers = layers if isinstance(layers, int) and width else None  # taps: the text model's layers
        self._width = width or self.dim

    @property
    def _tap_width(self) -> int:
        return self._width  # the text transformer's hidden size, before the projection to ``dim``

    def _hidden_states(self, model: Any, inputs: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
        return model.text_model(**inputs, output_hidden_states=True).hidden_states

    def _forward(self, model: Any, inputs: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
        return tower_features(model.get_text_features(**inputs))


@ENCODERS.register("hf", help="hf:ID-OR-FOLDER[#cls|#mean][#normalize][#max_length=N][#image|#text] "
                              "Hugging Face encoder (a tower of a CLIP-style model with #image / #text)")
def hf(arg: str | None = None) -> Encoder:
    if not arg:
        raise ConfigError("hf: needs a model id or folder, e.g. hf:bert-base-uncased or hf:/models/x#cls")
    model, settings = parse_hf_spec(arg)
    model_dir = resolve_model_dir(model)
    name = f"hf:{arg}"
    config = read_json(model_dir / "config.json")
    tower = settings.pop("tower", None)
    encoder = _hf_encoder(name, model_dir, config, tower, settings)
    if not Path(model).expanduser().exists():
        encoder.hub_id = model  # a Hub id (a local folder is no base_model anyone else can name)
    return encoder


def _hf_encoder(name: str, model_dir: Path, config: dict, tower: str | None, settings: dict) -> Encoder:
    if is_dual_config(config):
        if tower is None:
            raise ConfigError(f"{name}: a dual-tower (CLIP-style) model; pick a tower: {name}#image or {name}#text")
        if set(settings) - {"max_length"} or (tower == "image" and settings):
            raise ConfigError(f"{name}: a tower uses its own projection; only #max_length (text) applies")
        if tower == "image":
            return HFTowerImageEncoder(model_dir, name=name)
        return HFTowerTextEncoder(model_dir, name=name, **settings)
    if tower is not None:
        raise ConfigError(f"{name}: #{tower} picks a tower of a CLIP-style model, but {model_dir} has one tower")
    if is_vision_config(config):
        if "max_length" in settings:
            raise ConfigError(f"{name}: #max_length is for text models")
        return HFImageEncoder(model_dir, name=name, **settings)
    return TransformerTextEncoder(model_dir, name=name, **settings)
