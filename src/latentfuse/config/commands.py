"""The schema of every command beside ``RunConfig`` and ``DistillConfig``: one dataclass each.

``latentfuse COMMAND`` takes its flags, ``--help`` texts, ``--set key=value`` and ``--config FILE`` from
the dataclass named here (``cli.schema`` builds them), so a field is declared and documented once. The
runtime (device, precision, encoder backend) is the same ``RuntimeConfig`` everywhere, and a query-time
hubness choice is the same ``hubness`` field in eval, search and serve.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from ..choices import HUBNESS_OVERRIDES, INDEX_KINDS
from . import (DATA, HUBNESS, JSON_OUT, MODEL, OVERWRITE, SIDE, SKIP_BAD, SPLIT, STORE, TASK, TOP_K, default_store,
               FeatureConfig, Flag, NonNegativeFloat, check_fields, OneOf, Positive, Range, RuntimeConfig, StoreConfig)

HubnessOverride = Annotated[str, OneOf(HUBNESS_OVERRIDES), HUBNESS]


@dataclass
class Overwritable:
    overwrite: Annotated[bool, OVERWRITE] = False
    """Replace what the output already holds: the new result is swapped in only once it is complete."""


@dataclass
class ReadsCache(Overwritable):
    """What a command that reads data through the feature cache shares (eval, index)."""

    skip_bad: Annotated[bool, SKIP_BAD] = False
    """Skip unreadable images / empty captions (recorded in the feature cache) instead of failing."""
    store: StoreConfig = field(default_factory=StoreConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass
class JobOptions(Overwritable):
    """How a training job treats its output folder and processes (not part of the run's identity)."""

    resume: Annotated[bool, Flag("--resume")] = False
    """Continue from OUT/checkpoints/last.pt (the same run: same data, encoders and settings)."""
    nproc: Annotated[Positive, Flag("--nproc")] = 1
    """Train with N local processes (launches torchrun: gloo on CPU, NCCL on GPU); the global batch is
    train.batch_size."""


@dataclass
class ExtractConfig(FeatureConfig):
    """``latentfuse extract``: run the frozen encoders over a dataset into the feature cache."""

    split: Annotated[list[str], SPLIT] = field(default_factory=lambda: ["all"])
    """Split(s) to work on (repeatable or comma-separated; all = every split of the data)."""
    layers: Annotated[list[str], Flag("--layers")] = field(default_factory=list)
    """Token taps to cache too: TAP,TAP or SIDE=TAP,TAP (repeatable; `latentfuse info` lists each encoder's
    taps)."""


@dataclass
class EvalConfig(ReadsCache):
    """``latentfuse eval``: a saved model (or frozen encoders) on one or more tasks."""

    model: Annotated[str, MODEL] = ""
    """Saved JointModel folder (or Hub repo id) to read."""
    frozen: Annotated[list[str], Flag("--frozen")] = field(default_factory=list)
    """Evaluate frozen encoder(s) instead of a model: SPEC or SIDE=SPEC (repeatable; e.g. --frozen minilm-l6)."""
    task: Annotated[list[str], TASK] = field(default_factory=list)
    """Task NAME or NAME=DATA (repeatable); none = retrieval on --data."""
    data: Annotated[str, DATA] = ""
    """Data source spec, e.g. flickr8k:DIR or pairs:FILE; for eval, the dataset of tasks given without =DATA."""
    split: Annotated[list[str], SPLIT] = field(default_factory=list)
    """Split(s) to work on (repeatable or comma-separated; all = every split of the data); eval's default is
    test, or the dataset's only split."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task options, task → option → value, e.g. --set options.sts.side=cross (`latentfuse eval --help`
    lists each task's)."""
    hubness: HubnessOverride = ""
    """Query-bank normalisation (QB-Norm) of retrieval scores: '' = the model's own setting | none | is | dis."""
    json: Annotated[str, JSON_OUT] = ""
    """Write the report JSON to this new file."""


@dataclass
class IndexConfig(ReadsCache):
    """``latentfuse index``: embed a collection into a search index, or grow, update, prune or convert one."""

    data: Annotated[str, Flag("-d", "--data")] = ""
    """Data source spec, e.g. flickr8k:DIR or pairs:FILE; for index, the collection whose items are added."""
    out: Annotated[str, Flag("-o", "--out", required=True)] = ""
    """Index folder (created, or grown when it exists)."""
    model: Annotated[str, MODEL] = ""
    """Saved JointModel folder (or Hub repo id) to read; needed to create an index."""
    split: Annotated[list[str], SPLIT] = field(default_factory=list)
    """Split(s) to work on (repeatable or comma-separated; all = every split of the data); index's default is
    the dataset's only split."""
    side: Annotated[str, SIDE] = ""
    """Model side to index ('' = the image side, else the first)."""
    index_kind: Annotated[str, OneOf(("", *INDEX_KINDS)), Flag("--index-kind")] = ""
    """Search structure: exact | ivf | ivf-pq | ivf-rq | hnsw (LanceDB's); '' = exact for a new index, else the index's own."""
    nprobe: Annotated[int, Range(0), Flag("--nprobe")] = 0
    """ivf, ivf-pq, ivf-rq, hnsw: cells searched per query (0 = the index's own)."""
    refine: Annotated[int, Range(0), Flag("--refine")] = 0
    """ivf-pq, ivf-rq: the best refine × k candidates re-ranked on their stored vectors (0 = the index's own)."""
    index_dtype: Annotated[str, OneOf(("", "float32", "float16")), Flag("--index-dtype")] = ""
    """How a new index stores embeddings: float32 | float16 (half the disk); '' = float32, or the index's own."""
    rebuild: Annotated[bool, Flag("--rebuild")] = False
    """Retrain the ANN structure on all items."""
    update: Annotated[bool, Flag("--update")] = False
    """Re-embed every item of --data, replacing the rows of ids the index has (an upsert), adding the others."""
    delete: Annotated[list[str], Flag("--delete")] = field(default_factory=list)
    """Remove the items with this id (repeatable), from any source, before adding."""
    delete_where: Annotated[str, Flag("--delete-where")] = ""
    """Remove the items this filter keeps (LanceDB SQL over id, source, split, label, payload), before adding."""


@dataclass
class SearchConfig:
    """``latentfuse search``: rank an index's items for a text and/or image query."""

    query: Annotated[str, Flag("QUERY")] = ""
    """Text query."""
    index: Annotated[str, Flag("-i", "--index", required=True)] = ""
    """Index folder built by `latentfuse index`."""
    image: Annotated[str, Flag("--image")] = ""
    """Image query (with a text query: both combined)."""
    top_k: Annotated[int, Range(1, 10000), TOP_K] = 10
    """Number of results."""
    model: Annotated[str, MODEL] = ""
    """Saved JointModel folder (or Hub repo id) to read; for an index, only if the model moved (same model)."""
    json: Annotated[bool, JSON_OUT] = False
    """Print JSON instead of a table."""
    hubness: HubnessOverride = ""
    """Query-bank normalisation (QB-Norm) of retrieval scores: '' = the model's own setting | none | is | dis."""
    where: Annotated[str, Flag("--where")] = ""
    """Only items this filter keeps, e.g. "source = 'photos:/data/x'" or "label IN ('dog', 'cat')" (LanceDB SQL
    over id, source, split, label, payload)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass
class ServeConfig:
    """``latentfuse serve``: HTTP API and a search page over an index."""

    index: Annotated[str, Flag("-i", "--index", required=True)] = ""
    """Index folder built by `latentfuse index`."""
    model: Annotated[str, MODEL] = ""
    """Saved JointModel folder (or Hub repo id) to read; for an index, only if the model moved (same model)."""
    host: Annotated[str, Flag("--host")] = "127.0.0.1"
    """Interface to listen on."""
    port: Annotated[int, Range(0, 65535), Flag("--port")] = 8000
    """TCP port."""
    max_upload_mb: Annotated[float, Range(0.0, 2.0**20, lo_open=True), Flag("--max-upload-mb")] = 8.0
    """Largest request body (an uploaded image) accepted, in MiB; larger ones get 413."""
    max_k: Annotated[Positive, Flag("--max-k")] = 100
    """Largest k a request may ask for."""
    max_query_chars: Positive = 2000
    """Longest text query accepted."""
    thumbnail_px: Annotated[int, Range(16, 4096)] = 256
    """Longest side of the JPEG thumbnails of image hits."""
    max_batch: Positive = 32
    """Most queries encoded in one call when requests arrive together."""
    batch_wait_ms: NonNegativeFloat = 2.0
    """How long the batcher waits for more queries after the first one."""
    index_name: str = ""
    """The name clip-retrieval clients pass as ``indice_name`` (default: the index folder's name)."""
    hubness: HubnessOverride = ""
    """Query-bank normalisation (QB-Norm) of text-only / image-only searches: '' = the model's own setting |
    none | is | dis."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:  # built directly in Python (create_app), not only from the CLI
        check_fields(self, "serve options")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


@dataclass
class InfoConfig:
    """``latentfuse info``: what is registered, a saved model, its cost, or the configuration reference."""

    model: Annotated[str, MODEL] = ""
    """Saved JointModel folder (or Hub repo id) to read; info describes it."""
    cost: Annotated[bool, Flag("--cost")] = False
    """With --model: FLOPs and CPU ms per item of each side."""
    fields: Annotated[bool, Flag("--fields")] = False
    """List every configuration field of every command (the keys --set and --config accept)."""


@dataclass
class RecipesConfig:
    """``latentfuse recipes``: the named recipes shipped in the package."""

    show: Annotated[str, Flag("NAME")] = ""
    """Print this recipe's YAML instead of the list."""


@dataclass
class CacheConfig:
    """``latentfuse cache``: what the feature cache holds, or removing what nothing references."""

    action: Annotated[str, OneOf(("show", "gc")), Flag("ACTION")] = "show"
    """show (items and bytes per encoder and tap, and which data read them) | gc (remove the rows no
    data's latest read used, files of killed runs, and folders of the older layout)."""
    root: Annotated[str, STORE] = field(default_factory=default_store)
    """Feature cache directory (default ~/.cache/latentfuse/features or $LATENTFUSE_CACHE)."""
    dry_run: Annotated[bool, Flag("--dry-run")] = False
    """gc: count what would be removed, remove nothing."""


@dataclass
class CompletionConfig:
    """``latentfuse completion``: the shell completion script."""

    shell: Annotated[str, OneOf(("bash", "zsh", "fish")), Flag("SHELL", required=True)] = ""
    """The shell to complete in: bash | zsh | fish (e.g. eval "$(latentfuse completion bash)")."""

