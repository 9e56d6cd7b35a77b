"""The JointModel artifact: frozen encoders (by name + fingerprint) + trained heads, saved as a folder.

    OUT/model.safetensors   the method's tensors (heads, temperature, or closed-form projections)
    OUT/config.json         method name + options, side → encoder spec + fingerprint, dims
    OUT/README.md           model card with the evaluation table

``load(OUT)`` rebuilds the encoders from the registry, so ``encode_image`` / ``encode_text`` take raw
inputs (paths, PIL images, strings) end to end.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .encoders import Encoder, build_encoder
from .errors import ModelError
from .methods import Method, build_method
from .utils import atomic

FORMAT = "latentfuse.joint-model/1"


@dataclass(frozen=True)
class SideSpec:
    name: str
    modality: str
    encoder: str
    encoder_fingerprint: str


class JointModel:
    def __init__(self, method: Method, sides: Sequence[SideSpec], meta: dict[str, Any] | None = None) -> None:
        self.method = method.eval()
        self.sides = {side.name: side for side in sides}
        self.meta = dict(meta or {})
        self._encoders: dict[str, Encoder] = {}

    # ---------------------------------------------------------------- encoding
    @property
    def dim(self) -> int:
        return self.method.out_dim

    def encoder(self, side: str) -> Encoder:
        """The frozen encoder of a side, built on first use and checked against the saved fingerprint."""
        if side not in self._encoders:
            spec = self.sides[side]
            encoder = build_encoder(spec.encoder)
            if encoder.fingerprint != spec.encoder_fingerprint:
                raise ModelError(f"encoder {spec.encoder!r} now has fingerprint {encoder.fingerprint}, but this "
                                 f"model was trained on {spec.encoder_fingerprint}: its weights or "
                                 "preprocessing changed, so the heads no longer fit it")
            self._encoders[side] = encoder
        return self._encoders[side]

    def side_for(self, modality: str) -> str:
        matches = [s.name for s in self.sides.values() if s.modality == modality]
        if len(matches) != 1:
            raise ModelError(f"model has {len(matches)} {modality} sides ({matches}); use encode(side, ...)")
        return matches[0]

    @torch.inference_mode()
    def encode_features(self, side: str, features: np.ndarray | torch.Tensor, chunk: int = 4096) -> np.ndarray:
        """Joint embeddings from already-extracted frozen features (the cached path)."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        out = [self.method.encode(side, x[i:i + chunk]) for i in range(0, len(x), chunk)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), dtype=np.float32)

    def encode(self, side: str, inputs: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Raw inputs of a side → L2-normalised joint embeddings (n, dim), float32."""
        encoder = self.encoder(side)
        rows = [self.encode_features(side, encoder.encode(list(inputs[i:i + batch_size])))
                for i in range(0, len(inputs), batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def encode_image(self, images: Any) -> np.ndarray:
        """Image paths / PIL images (one or a list) → (n, dim)."""
        return self.encode(self.side_for("image"), _as_list(images))

    def encode_text(self, texts: str | Iterable[str]) -> np.ndarray:
        """Strings (one or a list) → (n, dim)."""
        return self.encode(self.side_for("text"), _as_list(texts))

    def similarity(self, images: Any = None, texts: Any = None) -> np.ndarray:
        """Cosine similarity matrix (n_images, n_texts); two text lists give (n, m) for text–text models."""
        if images is not None and texts is not None:
            return self.encode_image(images) @ self.encode_text(texts).T
        raise ValueError("similarity needs both images= and texts=")

    @property
    def fingerprint(self) -> str:
        """Identity of the heads *and* the encoders they sit on: changes on any retrain or re-save with
        other weights, so an index (or any cache of joint embeddings) can refuse a model it was not built by."""
        h = hashlib.sha256(json.dumps([self.method.name, self.method.config_dict(), self.method.dims,
                                       [vars(s) for s in self.sides.values()]], sort_keys=True).encode())
        for name, tensor in sorted(self.method.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------- persistence
    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "latentfuse_version": __version__,
            "method": self.method.name, "method_config": self.method.config_dict(),
            "dims": self.method.dims, "out_dim": self.dim,
            "sides": [vars(s) for s in self.sides.values()], **self.meta,
        }

    def save(self, directory: str | Path, card: str | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.method.state_dict().items()}
        with atomic.atomic_path(directory / "model.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "method": self.method.name})
        atomic.write_json(directory / "config.json", self.config())
        atomic.write_text(directory / "README.md", card or model_card(self.config(), []))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "JointModel":
        directory = Path(directory)
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                raise ModelError(f"{directory}: not a latentfuse model ({path.name} is missing)")
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT:
            raise ModelError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r}")
        method = build_method(config["method"], config["dims"], config["method_config"])
        method.load_tensors(load_file(str(weights_path)))
        sides = [SideSpec(**s) for s in config["sides"]]
        known = {"format", "latentfuse_version", "method", "method_config", "dims", "out_dim", "sides"}
        return cls(method, sides, {k: v for k, v in config.items() if k not in known})


def load(path: str | Path) -> JointModel:
    """Load a saved JointModel folder."""
    return JointModel.load(path)


def _as_list(inputs: Any) -> list[Any]:
    if isinstance(inputs, (str, Path)) or not isinstance(inputs, (list, tuple)):
        return [inputs]
    return list(inputs)


def model_card(config: dict[str, Any], reports: list[dict[str, Any]]) -> str:
    """A README for the model folder: what it is, how to load it, and its measured results."""
    sides = "\n".join(f"- `{s['name']}` ({s['modality']}): `{s['encoder']}` (fingerprint `{s['encoder_fingerprint']}`)"
                      for s in config["sides"])
    lines = [f"# latentfuse model: {config['method']}", "",
             f"Joint embedding space ({config['out_dim']}-d) over frozen encoders:", sides, "",
             "```python", "import latentfuse", "model = latentfuse.load('.')",
             "model.similarity(images=['photo.jpg'], texts=['a dog on the beach'])", "```", "",
             "## Method options", "```json", json.dumps(config["method_config"], indent=2), "```"]
    if reports:
        from .eval.report import markdown_table
        lines += ["", "## Evaluation", "", markdown_table(reports)]
    return "\n".join(lines) + "\n"
