"""The JointModel artifact (this file: save / load / card / Hub; ``embedder.py``: runtime, encoders, encoding;
``bank.py``: QB-Norm's query bank): frozen encoders (by name + fingerprint) + trained heads, saved as a folder.

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

Which model side embeds a modality is decided in one place, :meth:`Embedder.side_for`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from huggingface_hub import ModelHubMixin
from safetensors.torch import load_file, save_file

from ..choices import DEFAULT_BACKEND
from ..config import HubnessConfig, from_dict
from ..encoders import Encoder
from ..errors import LatentfuseError, ModelError
from ..methods import Method, build_method
from ..utils import atomic
from ..utils.runtime import CPU
from ..version import __version__
from .bank import QueryBank, too_small
from .embedder import Embedder, image_batch

__all__ = ["BANK_FILE", "FORMAT", "JointModel", "SideSpec", "image_batch", "load", "read_config"]

FORMAT = "latentfuse.joint-model/1"
BANK_FILE = "query_bank.safetensors"
NO_HUBNESS = HubnessConfig(norm="none", bank_size=0)


@dataclass(frozen=True)
class SideSpec:
    name: str
    modality: str
    encoder: str
    encoder_fingerprint: str


class JointModel(Embedder, QueryBank, ModelHubMixin, library_name="latentfuse", tags=["latentfuse", "multimodal", "joint-embedding"],
                 repo_url="https://github.com/latentfuse/latentfuse"):
    def __init__(self, method: Method, sides: Sequence[SideSpec], meta: dict[str, Any] | None = None,
                 query_bank: dict[str, torch.Tensor] | None = None, hubness: HubnessConfig = NO_HUBNESS) -> None:
        self.method = method.eval()
        self.sides = {side.name: side for side in sides}
        self.meta = dict(meta or {})
        banks = query_bank or {}
        small = too_small({side: len(bank) for side, bank in banks.items()}, hubness)
        self.query_bank = {side: bank.float() for side, bank in banks.items() if side not in small}
        """side → (n, dim) joint embeddings of typical queries of that side (``set_query_bank``)."""
        self.hubness = hubness
        self._encoders: dict[str, Encoder] = {}
        self.runtime = CPU

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
        datasets = None  # a source's name (pairs, flickr8k) is not a Hub dataset id: no entry rather than a wrong one
        results = [EvalResult(**entry) for entry in eval_results]
        weights = [tuple(entry) for entries in config.get("training", {}).get("base_weights", {}).values()
                   for entry in entries]
        base = sorted({hub for hub, _ in weights if hub})
        licenses = {license for _, license in weights}
        data = ModelCardData(library_name="latentfuse", tags=["latentfuse", config["method"],
                                                               *sorted({s.modality for s in self.sides.values()})],
                             datasets=datasets, model_name=name if results else None, eval_results=results or None,
                             base_model=(base[0] if len(base) == 1 else base) or None,
                             license=(licenses.pop() if len(licenses) == 1 and "" not in licenses else
                                      "other" if weights else None))
        sides = "\n".join(f"- `{s.name}` ({s.modality}): `{s.encoder}` (fingerprint `{s.encoder_fingerprint}`)"
                          for s in self.sides.values())
        body = [f"# latentfuse model: {config['method']}", "",
                f"Joint embedding space ({config['out_dim']}-d) over frozen encoders:", sides, "",
                "```python", "import latentfuse", "model = latentfuse.load('.')   # or JointModel.from_pretrained('user/repo')",
                "model.similarity(images=['photo.jpg'], texts=['a dog on the beach'])", "```", "",
                "## Method options", "```json", json.dumps(config["method_config"], indent=2), "```"]
        body += training_section(config)
        if evaluation:
            body += ["", "## Evaluation", "", evaluation]
        return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))

    def save_pretrained(self, save_directory: str | Path, *, card: str | None = None, push_to_hub: bool = False,
                        repo_id: str | None = None, config: Any = None, model_card_kwargs: Any = None,
                        overwrite: bool = False, **push_to_hub_kwargs: Any) -> Path:
        """Write the folder (each file atomically); ``push_to_hub=True`` then uploads it (needs a Hub login).

        The CLI's output rule applies: an absent or empty folder, or one holding this same model, is written;
        a folder holding another model, a training run or anyone's other files is refused with a message, unless
        ``overwrite=True``, which replaces it whole once the new folder is written (so no ``run.yaml``, report
        or checkpoint of another model stays beside these weights). ``card``: the README text (default:
        :meth:`card` without evaluation). ``config`` and ``model_card_kwargs`` are accepted for
        ``ModelHubMixin.push_to_hub`` and ignored: the config is the model's own.
        """
        from ..utils.outdir import MARKER, output_dir

        fingerprint = self.fingerprint
        try:
            with output_dir(save_directory, "model", {"fingerprint": fingerprint}, overwrite=overwrite,
                            option="folder", known_files=("config.json", "model.safetensors"),
                            legacy_identity=_saved_fingerprint) as folder:
                self.write(folder, card, fingerprint)
        except LatentfuseError as exc:
            raise ModelError("save_pretrained: " + str(exc).replace("--overwrite", "overwrite=True")) from None
        except OSError as exc:  # a file in the way, an unwritable folder: one line naming it
            raise ModelError(f"save_pretrained {save_directory}: {exc.strerror or exc}") from None
        directory = Path(save_directory)
        (directory / MARKER).unlink(missing_ok=True)  # a model repo carries no marker: its config.json says what it is
        if push_to_hub:
            self.push_to_hub(repo_id or directory.name, **push_to_hub_kwargs)
        return directory

    def write(self, directory: str | Path, card: str | None = None, fingerprint: str = "") -> Path:
        """Write the model's files into ``directory`` (each atomically), which the caller has already cleared
        for writing (``save_pretrained``, or the job runner inside its run folder). ``fingerprint``: the
        model's, when the caller has it already (it hashes every weight)."""
        directory = Path(directory)
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
        atomic.write_json(directory / "config.json", {**self.config(), "fingerprint": fingerprint or self.fingerprint})
        atomic.write_text(directory / "README.md", card or self.card())
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
            if rows.ndim != 2 or rows.shape[1] != method.out_dim or not len(rows) or not bool(torch.isfinite(rows).all()):
                raise ModelError(f"{directory / BANK_FILE}: the bank of side {side!r} must be finite (n > 0, "
                                 f"{method.out_dim}) embeddings, got {tuple(rows.shape)}; the model folder is damaged")
        bad = method.nonfinite_weights()
        if bad:
            raise ModelError(f"{weights_path}: {len(bad)} weight tensor(s) hold NaN/inf (first: {bad[0]}); "
                             "this model came from a diverged run and would rank every query alike")
        known = {"format", "latentfuse_version", "method", "method_config", "dims", "out_dim", "sides", "hubness",
                 "fingerprint"}
        return cls(method, sides, {k: v for k, v in config.items() if k not in known}, bank, hubness)


def _saved_fingerprint(folder: Path) -> dict[str, Any] | None:
    """The identity of a model folder saved before output markers: its config's fingerprint (None: unknown)."""
    try:
        return {"fingerprint": json.loads((folder / "config.json").read_text())["fingerprint"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


def training_section(config: dict[str, Any]) -> list[str]:
    """The card's "Training" lines: the data by name, the hyper-parameters, the held-out cut, the weights'
    licenses (the heads are trained on top of them, so theirs apply)."""
    training = config.get("training")
    if not training:
        return []
    lines = ["", "## Training", ""]
    if config.get("trained_on"):
        lines.append(f"- data: `{config['trained_on']}`")
    cut = training.get("held_out_cut")
    if cut:
        lines.append(f"- held-out cut by image: train/val/test {'/'.join(f'{s:g}' for s in cut['shares'])} %, "
                     f"seed {cut['seed']} (the report is on images never trained on)")
    lines += [f"- {key}: {value}" for key, value in training.get("hyperparameters", {}).items()]
    lines += ["", "Frozen weights (their licenses apply to this model too):", ""]
    for side, entries in training.get("base_weights", {}).items():
        spec = next((s["encoder"] for s in config["sides"] if s["name"] == side), side)
        named = ", ".join(f"{hub or 'not on the Hub'} ({license or 'license not known'})" for hub, license in entries)
        lines.append(f"- `{side}`: `{spec}` — {named}")
    return lines
