"""The JointModel artifact: frozen encoders (by name + fingerprint) + trained heads, saved as a folder.

    OUT/model.safetensors   the method's tensors (heads, temperature, or closed-form projections)
    OUT/config.json         method name + options, side → encoder spec + fingerprint, dims
    OUT/README.md           model card: YAML front matter (library_name, tags, datasets, model-index) + text
    OUT/query_bank.safetensors  optional: joint embeddings of a sample of training queries per side, the
                            bank hubness-aware retrieval normalises against (``hubness.py``); config.json
                            says how (``hubness``)

The folder is a Hugging Face model repo: ``save_pretrained(OUT)`` / ``JointModel.from_pretrained(OUT or
"user/repo")`` / ``push_to_hub("user/repo")`` (``huggingface_hub.ModelHubMixin``); ``latentfuse.load(OUT)``
is the short form. Loading rebuilds the encoders from the registry, so ``encode_image`` / ``encode_text``
take raw inputs (paths, PIL images, numpy arrays, strings) end to end, the way sentence-transformers'
``encode`` does (``batch_size``, ``normalize``, ``convert_to_tensor``, ``show_progress_bar``).

Which model side embeds a modality is decided in one place, :meth:`JointModel.side_for`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from huggingface_hub import ModelHubMixin
from safetensors.torch import load_file, save_file

from .encoders import Encoder, build_encoder
from .choices import DEFAULT_BACKEND, HUBNESS_NORMS
from .config import HubnessConfig, from_dict
from .errors import LatentfuseError, ModelError
from .hubness import GalleryNorm, gallery_norm
from .methods import Method, build_method
from .methods.base import embed
from .store import TapInputs, take
from .store.tokens import in_memory_tokens
from .utils import atomic
from .utils.runtime import CPU, runtime as make_runtime
from .version import __version__

FORMAT = "latentfuse.joint-model/1"
BANK_FILE = "query_bank.safetensors"
NO_HUBNESS = HubnessConfig(norm="none", bank_size=0)


@dataclass(frozen=True)
class SideSpec:
    name: str
    modality: str
    encoder: str
    encoder_fingerprint: str


class JointModel(ModelHubMixin, library_name="latentfuse", tags=["latentfuse", "multimodal", "joint-embedding"],
                 repo_url="https://github.com/latentfuse/latentfuse"):
    def __init__(self, method: Method, sides: Sequence[SideSpec], meta: dict[str, Any] | None = None,
                 query_bank: dict[str, torch.Tensor] | None = None, hubness: HubnessConfig = NO_HUBNESS) -> None:
        self.method = method.eval()
        self.sides = {side.name: side for side in sides}
        self.meta = dict(meta or {})
        self.query_bank = {side: bank.float() for side, bank in (query_bank or {}).items()}
        """side → (n, dim) joint embeddings of typical queries of that side (``set_query_bank``)."""
        self.hubness = hubness
        self._encoders: dict[str, Encoder] = {}
        self.runtime = CPU

    def to(self, device: str = "auto", precision: str = "fp32", backend: str = DEFAULT_BACKEND) -> "JointModel":
        """Run the heads and the frozen encoders on ``device`` (auto|cpu|cuda|cuda:N|mps) at ``precision``
        (fp32|bf16|fp16), the encoders on ``backend`` (auto|torch|onnx|onnx-int8); returns the model.
        Outputs are float32 numpy on the host whatever the device."""
        self.runtime = make_runtime(device, precision, backend)
        self.method.to(self.runtime.torch_device)
        self._encoders = {}  # rebuilt on first use for the new runtime (build_encoder keeps one per runtime)
        return self

    @contextlib.contextmanager
    def on_torch(self) -> Iterator["JointModel"]:
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

    # ---------------------------------------------------------------- hubness
    def set_query_bank(self, inputs: dict[str, Any], hubness: HubnessConfig, seed: int = 0) -> None:
        """Keep a seeded sample of up to ``hubness.bank_size`` rows of each side's frozen ``inputs`` (training
        queries) as joint embeddings: the bank QB-Norm normalises retrieval against, saved with the model."""
        self.hubness, self.query_bank = hubness, {}
        if hubness.bank_size == 0 or not self.method.embeds:
            return
        generator = torch.Generator().manual_seed(seed)
        for side, x in inputs.items():
            rows = torch.randperm(len(x), generator=generator)[:hubness.bank_size].sort().values.numpy()
            bank = embed(self.method, side, Rows(x, rows), autocast=self.runtime.autocast)
            self.query_bank[side] = bank.half().float()  # as saved: a reloaded model scores the same

    def gallery_norm(self, query_side: str, gallery: np.ndarray | torch.Tensor, norm: str = "") -> GalleryNorm | None:
        """QB-Norm statistics of ``gallery`` (joint embeddings) for queries of ``query_side``, with the model's
        setting (or ``norm``: none | is | dis); None when normalisation is off or the side has no bank."""
        asked, norm = norm, self.hub_norm(norm)
        if norm != "none" and asked and query_side not in self.query_bank:
            have = ", ".join(self.query_bank) or "none (trained before query banks, or with hubness.bank_size 0)"
            raise ModelError(f"hubness {norm} needs a query bank of side {query_side!r}; this model's banks: {have}")
        if norm == "none" or query_side not in self.query_bank:
            return None
        return gallery_norm(self.query_bank[query_side], torch.as_tensor(np.asarray(gallery, dtype=np.float32)),
                            self.hubness.beta, dynamic=norm == "dis")

    def hub_norm(self, norm: str = "") -> str:
        """The normalisation in force: ``norm`` when given (none | is | dis), else the model's setting."""
        norm = norm or self.hubness.norm
        if norm not in HUBNESS_NORMS:
            raise ModelError(f"hubness norm {norm!r}: expected {', '.join(HUBNESS_NORMS)}")
        return norm

    def hubness_summary(self, norm: str = "") -> dict[str, Any]:
        """What a report says about the normalisation it used."""
        norm = self.hub_norm(norm)
        if norm == "none" or not self.query_bank:
            return {"norm": "none"}
        return {"norm": norm, "beta": self.hubness.beta, "bank": {s: len(b) for s, b in self.query_bank.items()}}

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
                     convert_to_tensor: bool = False, show_progress_bar: bool = False) -> np.ndarray | torch.Tensor:
        """Images → (n, dim); one image (a path, a PIL image, an (H, W[, C]) array) → (dim,).

        A list of images or an (N, H, W, C) / (N, H, W) array is a batch of N.
        """
        batch, single = image_batch(images)
        x = self.encode(self.side_for("image", side, purpose="encode_image"), batch, batch_size, normalize,
                        show_progress_bar)
        return _finish(x, single, convert_to_tensor)

    def encode_text(self, texts: str | Sequence[str], *, side: str = "", batch_size: int = 64,
                    normalize: bool = True, convert_to_tensor: bool = False,
                    show_progress_bar: bool = False) -> np.ndarray | torch.Tensor:
        """Strings → (n, dim); one string → (dim,)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        x = self.encode(self.side_for("text", side, purpose="encode_text"), batch, batch_size, normalize,
                        show_progress_bar)
        return _finish(x, single, convert_to_tensor)

    def similarity(self, images: Any = None, texts: Any = None, *, images_b: Any = None,
                   texts_b: Any = None) -> np.ndarray:
        """Cosine similarity matrix between two groups of raw inputs, rows = the first group.

        ``images=, texts=`` → (n_images, n_texts); ``texts=, texts_b=`` → text–text (``texts_b`` goes through
        the model's second text side when it has one, so a text–text model compares across its two spaces);
        ``images=, images_b=`` → image–image, likewise.
        """
        given = {name for name, value in (("images", images), ("texts", texts), ("images_b", images_b),
                                          ("texts_b", texts_b)) if value is not None}
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
            "sides": [vars(s) for s in self.sides.values()],
            "hubness": dataclasses.asdict(self.hubness), **self.meta,
        }

    def card(self, evaluation: str = "", eval_results: Sequence[dict[str, Any]] = ()) -> str:
        """The model card: Hub front matter (``library_name``, tags, datasets, ``model-index``) + how to use it.

        ``evaluation`` is a rendered markdown section and ``eval_results`` its numbers as model-index entries
        (``eval.tables.model_card`` makes both from reports); the model never renders tables itself.
        """
        from huggingface_hub import EvalResult, ModelCard, ModelCardData

        config = self.config()
        name = f"latentfuse-{config['method']}"
        # the source's name (``flickr8k``), not its spec: a local path means nothing on the Hub
        datasets = [str(config["trained_on"]).split(":")[0]] if config.get("trained_on") else None
        results = [EvalResult(**entry) for entry in eval_results]
        data = ModelCardData(library_name="latentfuse", tags=["latentfuse", config["method"],
                                                               *sorted({s.modality for s in self.sides.values()})],
                             datasets=datasets, model_name=name if results else None, eval_results=results or None)
        sides = "\n".join(f"- `{s.name}` ({s.modality}): `{s.encoder}` (fingerprint `{s.encoder_fingerprint}`)"
                          for s in self.sides.values())
        body = [f"# latentfuse model: {config['method']}", "",
                f"Joint embedding space ({config['out_dim']}-d) over frozen encoders:", sides, "",
                "```python", "import latentfuse", "model = latentfuse.load('.')   # or JointModel.from_pretrained('user/repo')",
                "model.similarity(images=['photo.jpg'], texts=['a dog on the beach'])", "```", "",
                "## Method options", "```json", json.dumps(config["method_config"], indent=2), "```"]
        if evaluation:
            body += ["", "## Evaluation", "", evaluation]
        return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))

    def save_pretrained(self, save_directory: str | Path, *, card: str | None = None, push_to_hub: bool = False,
                        repo_id: str | None = None, config: Any = None, model_card_kwargs: Any = None,
                        **push_to_hub_kwargs: Any) -> Path:
        """Write the folder (each file atomically); ``push_to_hub=True`` then uploads it (needs a Hub login).

        ``card``: the README text (default: :meth:`card` without evaluation). ``config`` and
        ``model_card_kwargs`` are accepted for ``ModelHubMixin.push_to_hub`` and ignored: the config is the
        model's own.
        """
        directory = Path(save_directory)
        bad = self.method.nonfinite_weights()
        if bad:
            raise ModelError(f"{directory}: refusing to save weights holding NaN/inf ({len(bad)} tensor(s), first "
                             f"{bad[0]}): the model would rank every query alike")
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.method.state_dict().items()}
        with atomic.atomic_path(directory / "model.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "method": self.method.name})
        if self.query_bank:
            with atomic.atomic_path(directory / BANK_FILE) as tmp:
                save_file({side: bank.half().contiguous() for side, bank in self.query_bank.items()}, str(tmp),
                          metadata={"format": FORMAT})
        else:
            (directory / BANK_FILE).unlink(missing_ok=True)  # a bank of earlier weights would not fit these
        atomic.write_json(directory / "config.json", self.config())
        atomic.write_text(directory / "README.md", card or self.card())
        if push_to_hub:
            self.push_to_hub(repo_id or directory.name, **push_to_hub_kwargs)
        return directory

    save = save_pretrained

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, device: str = "auto",
                        precision: str = "fp32", backend: str = DEFAULT_BACKEND, **kwargs: Any) -> "JointModel":
        """A saved folder, or a Hub repo id (downloaded with ``huggingface_hub``; needs the network), on the
        runtime every entry point defaults to (``load``, ``open_index``, the CLI and the server alike):
        ``device`` auto, ``precision`` fp32, encoders on ``backend`` auto (ONNX Runtime when it can run)."""
        path = Path(pretrained_model_name_or_path)
        if path.exists() or not _looks_like_repo_id(str(pretrained_model_name_or_path)):
            return cls._load_dir(path).to(device, precision, backend)
        try:
            model = super().from_pretrained(str(pretrained_model_name_or_path), **kwargs)
            return model.to(device, precision, backend)
        except ModelError:
            raise
        except Exception as exc:  # offline, unknown repo, no access: one line, not a hub traceback
            raise ModelError(f"{pretrained_model_name_or_path}: no such model folder, and the Hugging Face Hub "
                             f"could not provide it ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None = None, cache_dir: Any = None,
                         force_download: bool = False, local_files_only: bool = False, token: Any = None,
                         **_config_values: Any) -> "JointModel":
        from huggingface_hub import snapshot_download

        directory = snapshot_download(model_id, revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, local_files_only=local_files_only,
                                      token=token)
        return cls._load_dir(Path(directory))

    @classmethod
    def load(cls, directory: str | Path, **runtime: Any) -> "JointModel":
        """A saved folder (or Hub repo id): the same as :meth:`from_pretrained`."""
        return cls.from_pretrained(directory, **runtime)

    @classmethod
    def _load_dir(cls, directory: Path) -> "JointModel":
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        if not directory.is_dir():
            raise ModelError(f"{directory}: not a model folder ({'a file' if directory.exists() else 'no such folder'})")
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{directory}: not a latentfuse model ({path.name} is missing)")
        config = read_config(config_path)
        try:
            method = build_method(config["method"], config["dims"], config["method_config"])
            sides = [SideSpec(**s) for s in config["sides"]]
        except LatentfuseError as exc:
            raise ModelError(f"{config_path}: {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{config_path}: damaged model config ({type(exc).__name__}: {exc})") from None
        method.load_tensors(_read_weights(weights_path))
        bank = _read_weights(directory / BANK_FILE) if (directory / BANK_FILE).is_file() else {}
        try:
            hubness = from_dict(HubnessConfig, config["hubness"], str(config_path), "hubness.") \
                if "hubness" in config else NO_HUBNESS
        except LatentfuseError as exc:
            raise ModelError(str(exc)) from None
        if set(bank) - set(config["dims"]):
            raise ModelError(f"{directory / BANK_FILE}: banks of sides {sorted(set(bank) - set(config['dims']))} "
                             f"the model does not have ({', '.join(config['dims'])})")
        for side, rows in bank.items():
            if rows.ndim != 2 or rows.shape[1] != method.out_dim or not bool(torch.isfinite(rows).all()):
                raise ModelError(f"{directory / BANK_FILE}: the bank of side {side!r} must be finite (n, "
                                 f"{method.out_dim}) embeddings, got {tuple(rows.shape)}; the model folder is damaged")
        bad = method.nonfinite_weights()
        if bad:
            raise ModelError(f"{weights_path}: {len(bad)} weight tensor(s) hold NaN/inf (first: {bad[0]}); "
                             "this model came from a diverged run and would rank every query alike")
        known = {"format", "latentfuse_version", "method", "method_config", "dims", "out_dim", "sides", "hubness"}
        return cls(method, sides, {k: v for k, v in config.items() if k not in known}, bank, hubness)


@dataclass(frozen=True)
class Rows:
    """Some rows of a side's inputs, read lazily a chunk at a time (``embed`` slices it like the inputs)."""

    inputs: Any
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> Any:
        return take(self.inputs, self.rows[index])


CONFIG_KEYS = {"format": str, "method": str, "method_config": dict, "dims": dict, "sides": list}


def read_config(path: Path) -> dict[str, Any]:
    """config.json, checked key by key: a damaged file is a one-line error, not a KeyError deep inside."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); the model folder is damaged") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ModelError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    for key, kind in CONFIG_KEYS.items():
        if not isinstance(config.get(key), kind):
            raise ModelError(f"{path}: field {key!r} must be a {kind.__name__}, got {config.get(key)!r:.60}")
    if not all(isinstance(s, dict) for s in config["sides"]):
        raise ModelError(f"{path}: field 'sides' must be a list of objects")
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged header
        raise ModelError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); "
                         "the model folder is damaged (re-save or re-train it)") from None


def load(path: str | Path, device: str = "auto", precision: str = "fp32", backend: str = DEFAULT_BACKEND) -> JointModel:
    """Load a saved JointModel folder (or Hub repo id), its heads and encoders on ``device`` (auto = CUDA
    when torch sees a GPU, else the CPU) at ``precision``; the frozen encoders run on ``backend`` (auto =
    ONNX Runtime when installed, else torch). The same defaults as ``from_pretrained`` and ``open_index``."""
    return JointModel.from_pretrained(path, device=device, precision=precision, backend=backend)


def _looks_like_repo_id(text: str) -> bool:
    """``user/name`` (one slash, no path-like parts) — anything else is taken as a local folder."""
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


def image_batch(images: Any) -> tuple[list[Any], bool]:
    """(list of images, was it a single image). Arrays: (H, W) and (H, W, 1|3|4) are one image; (N, H, W, C)
    and other 3-D arrays, e.g. (N, 28, 28) grayscale, are N images."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4)):
            return [images], True
        if images.ndim in (3, 4):
            return list(images), False
        raise ModelError(f"an image array must be (H, W), (H, W, C) or (N, H, W[, C]); got shape {images.shape}")
    if isinstance(images, (list, tuple)):
        return list(images), False
    return [images], True  # a path, a PIL image, ...


def _finish(x: np.ndarray, single: bool, convert_to_tensor: bool) -> np.ndarray | torch.Tensor:
    out = x[0] if single else x
    return torch.from_numpy(np.ascontiguousarray(out)) if convert_to_tensor else out


def _matrix(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.atleast_2d(np.asarray(x))
