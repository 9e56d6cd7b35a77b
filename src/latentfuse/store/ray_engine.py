"""Extraction on Ray Data (``extract --engine ray``): the same feature store, shards and manifest as local
extraction, with decoding in Ray tasks and encoding in a pool of actors that each load the encoder once.

The driver stays the only writer. It sends only the items the store lacks (by content key) through the
pipeline and commits every ``shard_size`` of them (atomically, like local extraction) as soon as all their
rows are back. So a killed job resumes with what it committed; a batch whose actor died is re-run by Ray
without duplicating anything (rows are keyed by their position); and the result is what ``--engine local``
writes, float16 for float16.

Resources are sized so a small machine cannot deadlock: decode tasks and encoder actors ask for half a CPU
each (measured on a 2-core box: two 1-CPU actors starved the read task and the dataset never progressed).
Local by default (``ray.init`` on this machine); ``store.ray_address`` joins an existing cluster, whose
workers need latentfuse and the encoder's package installed and the data paths readable.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..config import StoreConfig
from ..utils.logs import bars_off
from ..data import Item
from ..encoders import Encoder, build_encoder
from ..encoders.base import BadItemError
from ..errors import ConfigError, DataError
from ..utils.runtime import runtime
from .feature_store import Shelf

log = logging.getLogger(__name__)
ACTOR_CPUS = 0.5
DECODE_CPUS = 0.5


def ray_module() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'latentfuse[dist]'") from None
    return ray


def start(store: StoreConfig) -> Any:
    """Ray, initialised once per process: the cluster at ``store.ray_address``, else a local instance."""
    ray = ray_module()
    if not ray.is_initialized():
        if store.ray_address:
            check_reachable(store.ray_address)  # ray.init retries an unreachable address without end
            ray.init(address=store.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts committed rows
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if store.gpus_per_worker > gpus:  # the actors would wait forever for GPUs that do not exist
        raise ConfigError(f"--gpus-per-worker {store.gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs; use 0 "
                          "(encode on CPUs) or a cluster with GPUs")
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (``ray://host:port``) that answers within ``timeout`` seconds, else one line naming it;
    ``auto`` and other forms are left to Ray."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: cannot reach the Ray cluster ({exc.strerror or exc}); start it, "
                          "or leave --ray-address empty for a local Ray instance") from None


def _decode(batch: dict[str, np.ndarray], spec: str) -> dict[str, np.ndarray]:
    """A Ray Data task: payloads → what the encoder's actors consume (pixels for an image encoder); a bad
    item becomes a row with ``ok = False`` and its reason, never an exception in the pipeline."""
    encoder = build_encoder(spec)  # cheap: weights load lazily and decoding needs none
    prepared, ok, reasons = [], [], []
    for payload in list(batch["payload"]):  # per row: a path or text, or an in-memory image array
        try:
            prepared.append(encoder.prepare([payload])[0])
            ok.append(True)
            reasons.append("")
        except BadItemError as exc:
            prepared.append(None)
            ok.append(False)
            reasons.append(exc.reason)
    return {"pos": batch["pos"], "ok": np.array(ok), "reason": np.array(reasons, dtype=object),
            "prepared": _column(prepared)}


def _portable(payload: Any) -> Any:
    """A payload as Ray can ship it: paths as strings; texts and in-memory images (arrays) as they are."""
    return os.fspath(payload) if isinstance(payload, os.PathLike) else payload


def _column(values: list[Any]) -> np.ndarray:
    """One column of prepared inputs: a stacked array (bad rows as zeros), or objects (texts)."""
    shaped = [v for v in values if isinstance(v, np.ndarray)]
    if shaped:
        zero = np.zeros_like(shaped[0])
        return np.stack([v if isinstance(v, np.ndarray) else zero for v in values])
    return np.array(["" if v is None else v for v in values], dtype=object)


class _Encode:
    """A Ray Data actor: builds the encoder once (on its GPU when it has one), then encodes batches."""

    def __init__(self, spec: str, device: str, precision: str, backend: str) -> None:
        self.encoder = build_encoder(spec, runtime(device, precision, backend))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["ok"].astype(bool)
        features = np.zeros((len(ok), self.encoder.dim), dtype=np.float32)
        if ok.any():
            good = batch["prepared"][ok]
            features[ok] = self.encoder.encode_prepared(good if good.dtype != object else good.tolist())
        return {"pos": batch["pos"], "ok": ok, "reason": batch["reason"], "features": features}


def extract_shards(encoder: Encoder, todo: Sequence[tuple[str, Item]], shelf: Shelf, store: StoreConfig,
                   skip_bad: bool, progress: bool, label: str) -> None:
    """Encode the (key, item) pairs of ``todo`` on Ray and commit each ``store.shard_size`` of them as soon as
    they are all back."""
    ray = start(store)
    size = store.shard_size
    dataset = ray.data.from_items([{"pos": p, "payload": _portable(item.payload)} for p, (_, item) in enumerate(todo)],
                                  override_num_blocks=max(1, min(len(todo) // store.batch_size, 200)))
    gpus = store.gpus_per_worker
    device = "cuda" if gpus > 0 else "cpu"
    dataset = dataset.map_batches(_decode, fn_args=(encoder.name,), batch_size=store.batch_size,
                                  num_cpus=DECODE_CPUS, compute=ray.data.TaskPoolStrategy(size=store.workers))
    dataset = dataset.map_batches(_Encode, fn_constructor_args=(encoder.name, device, encoder.runtime.precision,
                                                                 encoder.runtime.backend),
                                  batch_size=store.batch_size, compute=ray.data.ActorPoolStrategy(size=store.workers),
                                  num_cpus=ACTOR_CPUS, num_gpus=gpus or None,
                                  max_restarts=-1, max_task_retries=-1)  # a lost actor's batch runs again
    pending: dict[int, dict[int, tuple[np.ndarray | None, str]]] = {}  # shard → {position: (features, reason)}
    committed: set[int] = set()
    bar = tqdm(total=len(todo), desc=f"{label} (ray)", unit="item", disable=bars_off(progress), file=sys.stderr,
               dynamic_ncols=True)
    with bar, _ray_errors(ray, label):
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            for pos, ok, reason, row in zip(batch["pos"].tolist(), batch["ok"], batch["reason"], batch["features"]):
                shard = pos // size
                if shard in committed or pos in pending.get(shard, {}):
                    continue  # a re-run batch of a lost actor
                bar.update(1)
                pending.setdefault(shard, {})[pos] = (row if ok else None, str(reason))
                if len(pending[shard]) == min(size, len(todo) - shard * size):
                    _commit(shelf, pending.pop(shard), todo, skip_bad)
                    committed.add(shard)


@contextlib.contextmanager
def _ray_errors(ray: Any, label: str) -> Iterator[None]:
    """A failure inside a Ray worker reaches the user as one line naming the job, not a Ray traceback."""
    try:
        yield
    except ray.exceptions.RayError as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise DataError(f"{label}: extraction on Ray failed: {lines[-1] if lines else type(exc).__name__}; "
                        "the committed shards are kept (re-run to resume)") from None


def _commit(shelf: Shelf, rows: dict[int, tuple[np.ndarray | None, str]], todo: Sequence[tuple[str, Item]],
            skip_bad: bool) -> None:
    keys, kept, bad = [], [], {}
    for pos in sorted(rows):
        features, reason = rows[pos]
        key, item = todo[pos]
        if features is None:
            if not skip_bad:
                where = f" ({item.origin})" if item.origin else ""
                raise DataError(f"{item.payload}: {reason}{where}; pass --skip-bad to skip such items")
            bad[key] = reason
            continue
        keys.append(key)
        kept.append(features)
    dim = kept[0].shape[0] if kept else 0
    shelf.commit(keys, np.stack(kept) if kept else np.zeros((0, dim), np.float32), bad)
