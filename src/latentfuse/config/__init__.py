"""Configuration as dataclasses that load from / dump to YAML; field docstrings become CLI help.

Every field is documented once, by the string literal under it; ``field_docs`` reads those strings, so
``latentfuse train --help`` and the YAML reference never drift apart. Unknown keys and wrong types are
errors naming the file and the dotted field.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import os
import textwrap
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml

from ..choices import BACKENDS, DEFAULT_BACKEND, ENGINES, HUBNESS_NORMS, PRECISIONS
from ..errors import ConfigError
from ..specs import key_value, public_value


# ---------------------------------------------------------------- declared ranges

@dataclass(frozen=True)
class Range:
    """The values a numeric field accepts; floats must also be finite. Declared in the field's type,
    ``Annotated[int, Range(1)]``, so loading, ``--set``, typed CLI options and the help all check one rule."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def check(self, value: Any, where: str, key: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {key}: expected a finite number {self.describe()}, got {value!r}")
        low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        high = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if low or high:
            raise ConfigError(f"{where}: {key}: expected a number {self.describe()}, got {value!r}")

    def describe(self) -> str:
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return " and ".join(part for part in (lo, hi) if part) or "(any)"


@dataclass(frozen=True)
class OneOf:
    """The values a text field accepts."""

    choices: tuple[str, ...]

    def check(self, value: Any, where: str, key: str) -> None:
        if value not in self.choices:
            raise ConfigError(f"{where}: {key}: expected one of {', '.join(c or repr(c) for c in self.choices)}, "
                              f"got {value!r}")

    def describe(self) -> str:
        return "one of " + " | ".join(c or "''" for c in self.choices)


@dataclass(frozen=True, init=False)
class Flag:
    """The command-line spelling of a field, declared in its type: ``Annotated[str, Flag("-m", "--model")]``.

    The CLI is generated from the schemas (``cli.schema``): every field that carries a Flag becomes an option
    (a name without dashes, a positional argument) whose help is the field's docstring, whose accepted values
    are its Range / OneOf, and whose value is set through the same checks as YAML and ``--set``. A flag used
    by several commands is declared once, as a shared alias below, so it means the same everywhere."""

    names: tuple[str, ...]
    required: bool
    commas: bool
    """A list flag whose values may also be comma-separated (``--split val,test``)."""

    def __init__(self, *names: str, required: bool = False, commas: bool = False) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "commas", commas)

    @property
    def long(self) -> str:
        """The canonical spelling: the first long name (``--model`` of ``-m, --model, --teacher``)."""
        return next((n for n in self.names if n.startswith("--")), self.names[0])

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


Positive = Annotated[int, Range(1)]
NonNegative = Annotated[int, Range(0)]
Fraction = Annotated[float, Range(0.0, 1.0)]
Rate = Annotated[float, Range(0.0, 1.0, hi_open=True)]  # dropout-like: 1.0 would zero everything
PositiveFloat = Annotated[float, Range(0.0, lo_open=True)]
NonNegativeFloat = Annotated[float, Range(0.0)]


# ---------------------------------------------------------------- the shared vocabulary of flags
# One Flag object per spelling: a command that names a model, a data source, a split, ... uses these, so
# `-m` is --model in every command (tests/unit/cli walks every command and fails on a clash).
MODEL = Flag("-m", "--model")
DATA = Flag("-d", "--data")
OUT = Flag("-o", "--out")
SPLIT = Flag("--split", commas=True)
STORE = Flag("--store")
SKIP_BAD = Flag("--skip-bad")
ENCODER = Flag("-e", "--encoder")
HUBNESS = Flag("--hubness")
OVERWRITE = Flag("--overwrite")
JSON_OUT = Flag("--json")
TOP_K = Flag("-k", "--top-k")
SIDE = Flag("--side")
TASK = Flag("-t", "--task")


def field_checks(hint: Any) -> tuple[Any, list[Any]]:
    """``Annotated[T, Range(...)]`` → (T, [Range(...)]); any other hint → (hint, [])."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, [e for e in extras if hasattr(e, "check")]
    return hint, []


def check_fields(config: Any, where: str, prefix: str = "") -> None:
    """Check every declared range of a dataclass built directly (not through ``from_dict``)."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, where, f"{prefix}{f.name}.")
            continue
        base, checks = field_checks(hints[f.name])
        if base in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{where}: {prefix}{f.name}: expected {base.__name__}, got {value!r}")
        for check in checks:
            check.check(value, where, prefix + f.name)


def default_store() -> str:
    """Feature cache shared by every run of this user (override with LATENTFUSE_CACHE)."""
    return os.environ.get("LATENTFUSE_CACHE") or str(Path.home() / ".cache" / "latentfuse" / "features")


@dataclass
class DataConfig:
    source: Annotated[str, DATA] = ""
    """Data source spec, e.g. flickr8k:DIR or pairs:FILE (`latentfuse info` lists every source)."""
    train_split: str = "train"
    """Split the heads are trained (or baselines fitted) on."""
    val_split: str = "val"
    """Split used for per-epoch validation and best-checkpoint selection ('' = none)."""
    test_split: str = "test"
    """Split reported at the end; never used for any choice."""
    skip_bad: Annotated[bool, SKIP_BAD] = False
    """Skip unreadable images / empty captions (recorded in the feature cache) instead of failing."""
    limit: NonNegative = 0
    """Use only the first N items (e.g. images) of each train/val split, 0 = all; the test split is whole."""
    split_shares: list[NonNegativeFloat] = field(default_factory=lambda: [80.0, 10.0, 10.0])
    """Data with no splits of its own (a table without a split column) is cut by image into train / val / test
    with these percentages, deterministically (the same cut on every run and machine)."""
    split_seed: Annotated[int, Range(0, 2**32 - 1)] = 0
    """Seed of that cut: another seed, another (equally deterministic) cut."""
    test_on_train: bool = False
    """Allow the test split to be the training split: a report on what the model was trained on checks a fit,
    it measures nothing; refused unless set."""
    columns: Annotated[list[str], Flag("--columns", commas=True)] = field(default_factory=list)
    """Which table column plays which role, ROLE=COLUMN (e.g. --columns image=filepath,text=title); unmapped
    roles read their usual spellings (file_name, filepath, caption, title, ...). A pairs: spec may carry the
    same as #image=filepath#text=title."""

    def spec(self) -> str:
        """The source spec with the column mapping folded in (``pairs:FILE#image=filepath``)."""
        pairs = [key_value(item, "--columns", "image=filepath", key="ROLE", value="COLUMN") for item in self.columns]
        return self.source + "".join(f"#{role}={column}" for role, column in pairs)


@dataclass
class StoreConfig:
    root: Annotated[str, STORE] = field(default_factory=default_store)
    """Feature cache directory (default ~/.cache/latentfuse/features or $LATENTFUSE_CACHE)."""
    batch_size: Positive = 64
    """Inputs per encoder call during extraction."""
    shard_size: Positive = 2048
    """Rows per committed shard: the unit of resume after a crash."""
    engine: Annotated[str, OneOf(ENGINES), Flag("--engine")] = "local"
    """Who runs extraction of pooled features: local (this process) or ray (Ray Data: decode tasks and a pool
    of encoder actors; needs the [dist] extra). Both write the same store."""
    ray_address: Annotated[str, Flag("--ray-address")] = ""
    """engine ray: the cluster to join (e.g. ray://head:10001 or auto); '' = a local Ray instance."""
    workers: Annotated[Positive, Flag("--workers")] = 2
    """engine ray: encoder actors (each loads the encoder once) and parallel decode tasks."""
    gpus_per_worker: Annotated[NonNegativeFloat, Flag("--gpus-per-worker")] = 0.0
    """engine ray: GPUs per encoder actor (fractions share a GPU); 0 = actors encode on CPUs."""


@dataclass
class MethodSpec:
    name: Annotated[str, Flag("--method")] = "fusemix"
    """Method to train: {methods} (`latentfuse info` lists them with a line each)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Method options (see `latentfuse info`); unknown ones are errors."""


@dataclass
class TrainConfig:
    epochs: Annotated[Positive, Flag("--epochs")] = 20
    """Passes over the training pairs."""
    batch_size: Annotated[int, Range(2)] = 512
    """Pairs per step; the other pairs of a batch are the contrastive negatives."""
    lr: Annotated[float, Range(0.0, 10.0, lo_open=True)] = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: NonNegativeFloat = 0.1
    """AdamW weight decay (not applied to norms, biases or the temperature)."""
    warmup: Fraction = 0.05
    """Fraction of steps spent on linear warm-up before the cosine decay."""
    seed: Annotated[int, Range(0, 2**32 - 1), Flag("--seed")] = 0  # numpy's seed range
    """Seeds torch, numpy and python; same seed + data gives the same run."""
    select: str = "rsum"
    """Validation metric that picks the best checkpoint: rsum, or e.g. b2a/R@5; a classifier (no rsum) reads
    the default as its own metric, f1/micro."""
    threads: NonNegative = 0
    """Torch threads (0 = all cores)."""
    stream: Annotated[str, OneOf(("auto", "on", "off"))] = "auto"
    """Read the training features from the store's memory-mapped shards a batch at a time (read ahead on a
    thread) instead of loading them: on | off | auto (on when they would take more than half of the memory
    available). Streaming shuffles chunk-wise (`shuffle`) and skips the closed-form baselines."""
    shuffle: Annotated[str, OneOf(("auto", "full", "chunked"))] = "auto"
    """The order of the training pairs each epoch: full (a random permutation) | chunked (contiguous chunks in a
    random order, the rows of every 16 chunks shuffled together: reads the disk forward) | auto (chunked when
    streaming, else full)."""
    tensorboard: bool = False
    """Also write TensorBoard scalars (needs the [tensorboard] extra)."""


@dataclass
class RuntimeConfig:
    device: Annotated[str, Flag("--device")] = "auto"
    """Where encoders and heads run: auto (CUDA when torch sees a GPU, else the CPU) | cpu | cuda | cuda:N | mps."""
    precision: Annotated[str, OneOf(PRECISIONS), Flag("--precision")] = "fp32"
    """Autocast precision of training and encoding: fp32 | bf16 | fp16 (CUDA only, with a gradient scaler).
    Features encoded at bf16/fp16 are cached apart from fp32 ones."""
    backend: Annotated[str, OneOf(BACKENDS), Flag("--backend")] = DEFAULT_BACKEND
    """What runs the frozen encoders: auto (ONNX Runtime when installed and the precision is fp32, else torch)
    | torch | onnx | onnx-int8 (quantised graphs; their features are cached apart). onnx and torch features
    agree to float16 storage resolution, so they share the cache."""


@dataclass
class HubnessConfig:
    """How retrieval scores are normalised against a bank of typical queries (QB-Norm, ``hubness.py``): the
    saved model keeps its bank and these settings, and eval, index and the server apply them."""

    norm: Annotated[str, OneOf(HUBNESS_NORMS)] = "none"
    """none | is (inverted softmax: every query's scores divided by how strongly each gallery item attracts
    the bank) | dis (dynamic: only queries whose best match is a hub, the top-1 of some bank query). The
    shipped default (the `default` recipe) is dis."""
    beta: Annotated[float, Range(0.0, 1000.0, lo_open=True)] = 20.0
    """Inverse temperature β of the inverted softmax (QB-Norm's paper: 20; the `default` recipe's 14 was best
    on Flickr8k val)."""
    bank_size: NonNegative = 8192
    """Training queries per side embedded into the saved model's query bank (a seeded sample; 0 = none,
    which turns normalisation off)."""
    min_bank: NonNegative = 512
    """A bank of fewer queries per side is not kept and QB-Norm is skipped, with a log line: too few to estimate
    hubness. Measured on Flickr8k val with the shipped default (`python -m bench.qbnorm_bank`): banks of 8 to
    256 queries lost 0.7 to 1.4 points of t2i + i2t R@5, 512 gained 0.5, 8,192 gained 3.1."""


@dataclass
class FeatureConfig:
    """What every job that reads cached features shares: the data, its frozen encoders, the cache, the runtime."""

    data: DataConfig = field(default_factory=DataConfig)
    encoders: Annotated[dict[str, str], ENCODER] = field(default_factory=dict)
    """Frozen encoder for each side of the data (side name → encoder spec; A+B is an ensemble). The shipped
    choice is the `default` recipe's (`latentfuse recipes default` prints it)."""
    taps: dict[str, list[str]] = field(default_factory=dict)
    """Token taps `extract` also caches, per side (side → tap names, e.g. {image: [stride8, head]});
    `latentfuse info` lists each encoder's taps."""
    store: StoreConfig = field(default_factory=StoreConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass
class RunConfig(FeatureConfig):
    """``latentfuse train`` / ``run`` / ``demo`` and ``latentfuse.fit``: features → method → JointModel → report."""

    method: MethodSpec = field(default_factory=MethodSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    hubness: HubnessConfig = field(default_factory=HubnessConfig)
    baselines: list[str] = field(default_factory=lambda: ["asif", "procrustes"])
    """Methods evaluated side by side on the same features (fitted, not saved as the main model)."""
    out: Annotated[str, OUT] = "runs/latest"
    """Directory of the saved JointModel (model.safetensors, config.json, README.md)."""


@dataclass
class StudentMethod:
    """The method ``distill`` trains is always ``dime``; its options sit where ``train``'s do (method.options)."""

    options: dict[str, Any] = field(default_factory=dict)
    """`dime` method options (w_pvl, t_vl, width, preset: paper, ...; `latentfuse info --config` lists them)."""


@dataclass
class DistillConfig:
    """``latentfuse distill``: a trained JointModel (the teacher) → small student towers, from unpaired pools."""

    teacher: Annotated[str, Flag("-m", "--model", "--teacher")] = ""
    """Folder of the trained JointModel to distil."""
    images: Annotated[list[str], Flag("--images")] = field(default_factory=list)
    """Image pools: source specs, SPEC or SPEC@SPLIT (default split: train, else the source's only split);
    only their images are read."""
    texts: Annotated[list[str], Flag("--texts")] = field(default_factory=list)
    """Sentence pools (e.g. lines:FILE, flickr8k:DIR, sts-b); only their sentences are read, shuffled."""
    student: Annotated[str, Flag("--student")] = ""
    """Student towers, IMAGE,TEXT: image=truncated[:TAP[:SIZE]] | pixels[:SIZE] | teacher and
    text=glove-transformer[:LAYERS] | glove-bag | teacher. A tower not named follows the dime options
    (image_student, text_student): truncated:stride16 and glove-transformer by default, the teacher's text tower
    under `preset: paper`."""
    method: StudentMethod = field(default_factory=StudentMethod)
    moved_keys: ClassVar[dict[str, str]] = {"options": "method.options"}  # where keys of older configs went
    val: Annotated[str, Flag("--val")] = ""
    """A paired source whose val split picks the best checkpoint by retrieval ('' = the lowest loss)."""
    val_split: str = "val"
    """The split of `val` used for checkpoint selection."""
    test_split: str = "test"
    """The split of `val` the saved student is reported on, as a trained model is (report.json, its card);
    '' = no report."""
    skip_bad: Annotated[bool, SKIP_BAD] = False
    """Skip unreadable images / empty sentences of the pools (recorded) instead of failing."""
    augment: NonNegative = 0
    """Augmented views per pool image, beside the image itself (DIME-FM's student transform: random resized
    crop + flip), each encoded once by the student's encoder and distilled toward the teacher's embedding of the
    whole image; 0 = none. Needs a distilled image tower."""
    store: StoreConfig = field(default_factory=StoreConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    bank_size: NonNegative = 8192
    """Pool rows per side embedded into the student's query bank (a seeded sample; 0 = none). The student
    normalises with its teacher's QB-Norm setting (norm and β), as it starts from its logit scale."""
    out: Annotated[str, OUT] = "runs/student"
    """Directory of the saved student JointModel."""


def run_identity(config: Any) -> dict[str, Any]:
    """What makes two runs (train or distill) the same run: every setting except where the output and the
    cache live and which device does the work (a run started on a CPU may resume on a GPU); a precision
    other than fp32, and the int8 encoder backend, are part of it; whether training streams its features is not
    (``train.stream``), nor ``train.shuffle`` left at auto. Paths are named by their last component (where the
    data lies is no part of a run: the job adds what its data *is*, e.g. the source's fingerprint)."""
    identity = {k: v for k, v in public_settings(config).items() if k not in ("store", "runtime")}
    train = identity.get("train")
    if isinstance(train, dict):  # how the features are read is no part of a run, as the device is not;
        train.pop("stream", None)  # the order is, once chosen (auto: as a run without the setting had)
        if train.get("shuffle") == "auto":
            train.pop("shuffle")
    if config.runtime.precision != "fp32":
        identity["precision"] = config.runtime.precision
    if config.runtime.backend == "onnx-int8":  # other features: another run (onnx and torch agree, tested)
        identity["backend"] = config.runtime.backend
    return identity


# ---------------------------------------------------------------- loading and dumping

def read_yaml(path: str | Path) -> Any:
    """A YAML config file's data (``{}`` when empty); a missing file or bad YAML is a one-line error."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_yaml(path: str | Path, cls: type = RunConfig) -> Any:
    return from_dict(cls, read_yaml(path), where=str(path))


def overlay(config: Any, data: Any, where: str = "config") -> Any:
    """``config`` with the fields ``data`` names replaced: sections (nested dataclasses) merge key by key, every
    other field (a mapping such as ``encoders`` included) is replaced whole; checked like ``from_dict``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level: expected a mapping, got {type(data).__name__}")
    return from_dict(type(config), _overlaid(config, data), where)


def _overlaid(config: Any, data: dict[str, Any]) -> dict[str, Any]:
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    for key, value in data.items():
        current = out.get(key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = _overlaid(current, value)
        out[key] = value
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in out.items()}


def overlay_yaml(config: Any, path: str | Path) -> Any:
    """``config`` with a YAML file's fields laid over it (what ``--config FILE`` does to a recipe)."""
    return overlay(config, read_yaml(path), where=str(path))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def saved_yaml(config: Any) -> str:
    """The settings file saved beside a model (``run.yaml`` / ``distill.yaml``): :func:`public_settings`."""
    return yaml.safe_dump(public_settings(config), sort_keys=False)


def public_settings(config: Any) -> dict[str, Any]:
    """A config as a saved artifact shows it (``run.yaml`` beside a model, the output marker's identity): no
    output folder, no cache root, every local path by its last component (``specs.public_value``)."""
    settings = dataclasses.asdict(config)
    settings.pop("out", None)
    if isinstance(settings.get("store"), dict):
        settings["store"].pop("root", None)
    return public_values(settings)


def public_values(value: Any) -> Any:
    """Every string in nested dicts and lists as an artifact may show it (``specs.public_value``)."""
    if isinstance(value, str):
        return public_value(value)
    if isinstance(value, dict):
        return {key: public_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [public_values(item) for item in value]
    return value


def from_dict(cls: type, data: Any, where: str = "config", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, checking keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        moved = [f"{prefix + k} is now {prefix + getattr(cls, 'moved_keys')[k]}" for k in unknown
                 if k in getattr(cls, "moved_keys", {})]  # a key a release moved: say where it went
        raise ConfigError(f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(known))}"
                          + (f" ({'; '.join(moved)})" if moved else ""))
    values = {key: _coerce(hints[key], value, where, prefix + key) for key, value in data.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str, key: str) -> Any:
    hint, checks = field_checks(hint)
    value = _coerce_type(hint, value, where, key)
    for check in checks:
        check.check(value, where, key)
    return value


def _coerce_type(hint: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(typing.get_args(hint), value, where, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {value!r}")
        value_hint = (typing.get_args(hint) or (Any, Any))[1]
        return {str(k): _coerce(value_hint, v, where, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {value!r}")
        item_hint = (typing.get_args(hint) or (Any,))[0]
        return [_coerce(item_hint, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected true/false, got {value!r}")
        return value
    if hint in (int, float):
        return _number(hint, value, where, key)
    if hint is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return str(value)
    return value


def _number(hint: type, value: Any, where: str, key: str) -> int | float:
    """An int or float field's value; ``1e400``, ``nan``, ``2.5`` for an int, or ``true`` are refused."""
    wrong = ConfigError(f"{where}: {key}: expected {'an integer' if hint is int else 'a number'}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise wrong
    try:
        number = float(value) if hint is float or isinstance(value, float) else int(value)
    except (ValueError, OverflowError):
        raise wrong from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}: {key}: expected a finite number, got {value!r}")
    if hint is int:
        if isinstance(number, float):
            if not number.is_integer():
                raise wrong
            number = int(number)
        return number
    return float(number)


def _coerce_union(options: tuple[Any, ...], value: Any, where: str, key: str) -> Any:
    """The first member of ``A | B | None`` the value fits; ``None`` only where the union allows it."""
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where}: {key}: a value is required")
    for option in (o for o in options if o is not type(None)):
        try:
            return _coerce(option, value, where, key)
        except ConfigError:
            continue
    raise ConfigError(f"{where}: {key}: {value!r} fits none of {' | '.join(getattr(o, '__name__', str(o)) for o in options)}")


def set_field(config: Any, key: str, value: Any, where: str = "command line", label: str = "") -> None:
    """Set dotted ``key`` of a dataclass config to an already-typed value (a CLI option), checking its type.

    Typed options are never turned back into text: ``--out on`` is the directory ``"on"``, not ``True``.
    """
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = getattr(node, part)
    hints = typing.get_type_hints(type(node), include_extras=True)
    if leaf not in hints:
        raise ConfigError(f"{where}: unknown field {key}")
    setattr(node, leaf, _coerce(hints[leaf], value, where, label or key))  # label: the flag the user typed


def apply_overrides(config: Any, overrides: list[str], where: str = "--set") -> Any:
    """Apply ``dotted.key=value`` strings (values parsed as YAML scalars) to a dataclass config."""
    data = dataclasses.asdict(config)
    for item in overrides:
        key, raw = key_value(item, where, "train.epochs=10", empty=True)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where} {item!r}: {part} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where} {key.strip()}: the value {raw[:40]!r} is not a YAML scalar ({problem})") from None
    return from_dict(type(config), data, where=where)


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass: its one place of documentation."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every leaf field: the YAML reference and `--set` help."""
    rows = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(describe(type(value), f"{prefix}{f.name}."))
        else:
            accepted = " ".join(f"[{check.describe()}]" for check in field_checks(hints[f.name])[1])
            rows.append((prefix + f.name, repr(value), " ".join(filter(None, (docs.get(f.name, ""), accepted)))))
    return rows
