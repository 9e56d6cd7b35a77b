"""The main job, as plain functions the CLI calls: features → fit/train → JointModel → reports."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

from .data import Source, SplitData, build_source
from .data.heldout import HeldOut, needs_holdout
from .encoders import Encoder, build_encoder
from .errors import ConfigError
from .specs import listed, named, public
from .cost import encoder_flops
from .runner import Trained, run_job, training_meta
from .methods import Method, build_method, make_config, method_class
from .model import JointModel, SideSpec
from .store import PairedFeatures, get_features, get_tokens, paired_features
from .store.streamed import available_memory
from .config import RunConfig, StoreConfig, TrainConfig, load_yaml, run_identity
from .train import Trainer, seed_everything
from .utils import distributed
from .utils.runtime import CPU, Runtime

log = logging.getLogger(__name__)


def side_encoders(source: Source, encoders: dict[str, str], rt: Runtime = CPU) -> dict[str, Encoder]:
    """Check that every side of the source has an encoder, and build them to run on ``rt`` (the store checks
    modalities)."""
    names = [side.name for side in source.sides]
    missing, extra = sorted(set(names) - set(encoders)), sorted(set(encoders) - set(names))
    if missing or extra:
        raise ConfigError(f"encoders must name exactly the sides of {source.spec}: {names} "
                          f"(missing {missing or 'none'}, unknown {extra or 'none'})")
    return {side: build_encoder(encoders[side], rt) for side in names}


def split_features(source: Source, split: str, encoders: dict[str, Encoder], store: StoreConfig,
                   skip_bad: bool = False, progress: bool = True, limit: int = 0,
                   taps: dict[str, list[str]] | None = None, stream: str = "off") -> PairedFeatures:
    """Cached features of both sides of a split (or its first ``limit`` items), joined by pairs; the sides
    named in ``taps`` as those token taps. Features are filed by content, so the items a split shares with
    another (a cut of a table, a subset, another source over the same files) are encoded once. ``stream``
    (``train.stream``: on | off | auto) leaves pooled features in the store's shards."""
    data = source.load(split).head(limit)
    streamed = should_stream(stream, data, encoders, taps or {})
    return paired_features(source, data, encoders, store, skip_bad=skip_bad, progress=progress, taps=taps,
                           stream=streamed)


def should_stream(stream: str, data: SplitData, encoders: dict[str, Encoder], taps: dict[str, list[str]]) -> bool:
    """``train.stream`` for one split: on, off, or (auto) whether its pooled features as float32 would take
    more than half of the memory available now — then said in a log line."""
    if stream != "auto":
        return stream == "on"
    pooled = [side for side in encoders if not taps.get(side)]
    size = sum(len(data.items[side]) * encoders[side].dim * 4 for side in pooled)
    if size <= available_memory() // 2 or any(encoders[side].parts for side in pooled):
        return False
    log.info("the %s split's features (%.1f GB as float32) exceed half of the available memory: training reads "
             "them from the feature store's shards a batch at a time (train.stream auto)", data.split, size / 1e9)
    return True


def training_source(config: RunConfig) -> Source:
    """The run's data; with no splits of its own (one split, e.g. a table without a split column), cut by
    image into train / val / test (``data.split_shares``, ``data.split_seed``; ``announce_cut`` says so)."""
    source = build_source(config.data.spec(), skip_bad=config.data.skip_bad)
    data = config.data
    if not needs_holdout(source, [data.train_split, data.val_split, data.test_split]):
        return source
    return HeldOut(source, data.split_shares, data.split_seed)


def announce_cut(source: Source) -> None:
    """One log line when the run's data is a held-out cut: which shares, which seed."""
    if isinstance(source, HeldOut):
        log.info("%s has no train / val / test splits: its %s are cut %s %% by a digest of each (data.split_shares, "
                 "data.split_seed %d); the test split is never trained on", public(source.spec),
                 f"{source.sides[0].name}s", "/".join(f"{s:g}" for s in source.shares), source.seed)


def method_taps(name: str, options: dict[str, Any], source: Source) -> dict[str, list[str]]:
    """The token taps method ``name`` reads, per side of ``source`` (empty: pooled features only)."""
    config = make_config(name, options)
    return method_class(name).wanted_taps(config, {side.name: side.modality for side in source.sides})


def extract_split(source: Source, split: str, encoders: dict[str, Encoder], store: StoreConfig,
                  skip_bad: bool = False, progress: bool = True) -> dict[str, int]:
    """Cache the features of every non-empty side of a split; → rows per side. Needs no pairs, so a
    one-sided collection (``images:DIR``) extracts too."""
    data = source.load(split)
    return {side: len(get_features(source, data, side, encoders[side], store, skip_bad=skip_bad,
                                   progress=progress).ids)
            for side, items in data.items.items() if items}


def extract_taps(source: Source, split: str, encoders: dict[str, Encoder], taps: dict[str, list[str]],
                 store: StoreConfig, skip_bad: bool = False, progress: bool = True) -> list[tuple[str, str, Any]]:
    """Cache the token features of each side's taps; → (side, tap, TokenFeatures) for the storage report."""
    check_taps(source, encoders, taps)
    data = source.load(split)
    out = []
    for side, names in taps.items():
        if data.items[side]:
            got = get_tokens(source, data, side, encoders[side], names, store, skip_bad=skip_bad,
                             progress=progress)
            out += [(side, tap, features) for tap, features in got.items()]
    return out


def check_taps(source: Source, encoders: dict[str, Encoder], taps: dict[str, list[str]]) -> None:
    """Each side's taps exist (side → tap names): a side the data lacks, or a tap its encoder lacks, is a
    ConfigError before any work."""
    for side, names in taps.items():
        if side not in encoders:
            raise ConfigError(f"taps name side {side!r}, but {source.spec} has sides {', '.join(encoders)}")
        encoders[side].check_taps(names)


def taps_by_side(requested: list[str], encoders: dict[str, Encoder]) -> dict[str, list[str]]:
    """``--layers`` values → side → taps. ``SIDE=TAP,TAP`` names the side; a bare ``TAP,TAP`` goes to every
    side whose encoder has the tap, and a tap no encoder has is an error listing what they have."""
    out: dict[str, list[str]] = {}
    for item in requested:
        side, names = named(item)
        if side is not None:
            if side not in encoders:
                raise ConfigError(f"--layers {item!r}: no side {side!r}; sides: {', '.join(encoders)}")
            out.setdefault(side, []).extend(listed([names]))
            continue
        for tap in listed([names]):
            owners = [s for s, encoder in encoders.items() if tap in encoder.taps()]
            if not owners:
                listing = "; ".join(f"{s} ({e.name}): {', '.join(e.taps()) or 'none'}" for s, e in encoders.items())
                raise ConfigError(f"--layers: no encoder has a tap {tap!r}; taps by side: {listing}")
            for owner in owners:
                out.setdefault(owner, []).append(tap)
    return out


def train_method(name: str, options: dict[str, Any], train: PairedFeatures, val: PairedFeatures | None,
                 train_config: TrainConfig, work_dir: Path, resume: bool = False,
                 progress: bool = True, rt: Runtime = CPU) -> tuple[Method, float]:
    """Fit or train one method; returns it (best checkpoint loaded) and the seconds spent. The method's own
    ``validate`` picks the best checkpoint.

    Seeded before the heads are built, so their initialisation — not only the batches — follows the seed.
    """
    seed_everything(train_config.seed)
    method = build_method(name, train.dims(), options)
    result = Trainer(method, train_config, work_dir, type(method).validate, rt).fit(train, val, resume=resume,
                                                                                      progress=progress)
    return method, result.seconds


def data_options(name: str, options: dict[str, Any], train: PairedFeatures,
                 encoders: dict[str, Encoder]) -> dict[str, Any]:
    """What a method's options take from its training data (``Method.data_options``; e.g. a classifier's label
    vocabulary and the measured FLOPs of the encoder inputs it weighs)."""
    return method_class(name).data_options(options, train, lambda side, tap: encoder_flops(encoders[side], tap))


def joint_model(method: Method, encoders: dict[str, Encoder], source: Source, seconds: float,
                config: RunConfig) -> JointModel:
    sides = [SideSpec(s.name, s.modality, encoders[s.name].name, encoders[s.name].fingerprint)
             for s in source.sides]
    training = training_meta(config.train, {s.name: encoders[s.name] for s in source.sides})
    if isinstance(source, HeldOut):
        training["held_out_cut"] = {"shares": source.shares, "seed": source.seed}
    return JointModel(method, sides, {"trained_on": public(source.spec), "train_seconds": round(seconds, 2),
                                      "training": training})


def run(config: RunConfig, resume: bool = False, progress: bool = True,
        overwrite: bool = False) -> list[dict[str, Any]]:
    """extract → train (main method + baselines) → evaluate on the test split → save the main model
    (``runner.run_job`` with a :class:`PairsJob`)."""
    return run_job(PairsJob(config), resume=resume, overwrite=overwrite, progress=progress)


def _saved_identity(folder: Path) -> dict[str, Any] | None:
    """The identity of a run saved before output markers existed, read from its run.yaml."""
    try:
        return run_identity(load_yaml(folder / "run.yaml"))
    except ConfigError:
        return None


class PairsJob:
    """Training on paired data: the main method and its side-by-side baselines on one source's splits."""

    kind, config_file = "model-run", "run.yaml"

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def saved_identity(self, folder: Path) -> dict[str, Any] | None:
        return _saved_identity(folder)

    def data_identity(self) -> dict[str, Any]:
        return {"data_fingerprint": self.source.fingerprint}

    def prepare(self, rt: Runtime) -> None:
        """The run's source, built once for its identity and its training; a report on the training rows is
        refused unless asked for; a run config's taps are checked; option typos fail in ``train`` before any
        extraction."""
        data = self.config.data
        if data.test_split and data.test_split == data.train_split and not data.test_on_train:
            raise ConfigError(f"data.test_split {data.test_split!r} is the training split: the report would score "
                              "what the model was trained on. Give the data a split column, or leave the splits "
                              "alone and training cuts a table without one; data.test_on_train=true allows it "
                              "(to check a fit)")
        self.source = training_source(self.config)
        if self.config.taps:  # `taps` is extract's field: named in a run config, it must at least exist
            check_taps(self.source, side_encoders(self.source, self.config.encoders, rt), self.config.taps)

    def train(self, out: Path, resume: bool, progress: bool, rt: Runtime) -> Iterator[Trained]:
        """Under torchrun every rank trains; only rank 0 extracts first, fits the closed-form baselines and
        yields (the runner banks, reports and saves)."""
        config, source = self.config, self.source
        announce_cut(source)  # here, not in prepare: a refusal of the output folder stays the only line
        encoders = side_encoders(source, config.encoders, rt)
        main = distributed.is_main()
        cache: dict[tuple[str, str], PairedFeatures] = {}

        def feats(split: str, taps: dict[str, list[str]], every_rank: bool = True) -> PairedFeatures | None:
            """One split's paired inputs for one set of taps, built once and shared by the methods. Under
            torchrun, what ``every_rank`` reads is cached by rank 0 first, then read by the others."""
            key = (split, repr(sorted(taps.items())))
            if split and key not in cache:
                limit = 0 if split == config.data.test_split else config.data.limit
                with distributed.main_first() if every_rank else contextlib.nullcontext():
                    stream = config.train.stream if split == config.data.train_split else "off"
                    cache[key] = split_features(source, split, encoders, config.store, config.data.skip_bad,
                                                progress, limit, taps, stream)
            return cache.get(key)

        names = [config.method.name] + [b for b in config.baselines if b != config.method.name]
        wanted = {name: method_taps(name, config.method.options if name == config.method.name else {}, source)
                  for name in names}  # typos in the options fail here, before any extraction
        for name in names:
            if not main and not method_class(name).trainable:
                continue
            options = config.method.options if name == config.method.name else {}
            work = out if name == config.method.name else out / "baselines" / name
            if progress:
                log.info("── %s", name)
            taps = wanted[name]
            if not method_class(name).trainable and feats(config.data.train_split, taps).streamed:
                if name == config.method.name:
                    raise ConfigError(f"method {name!r} fits in closed form on features held in memory; training "
                                      "would stream them (train.stream): set train.stream off")
                log.info("baseline %s skipped: its closed-form fit needs the training features in memory, and "
                         "training streams them (train.stream)", name)
                continue
            options = data_options(name, options, feats(config.data.train_split, taps), encoders)
            method, seconds = train_method(name, options, feats(config.data.train_split, taps),
                                           feats(config.data.val_split, taps), config.train, work, resume,
                                           progress, rt)
            if main:
                yield Trained(joint_model(method, encoders, source, seconds, config),
                              feats(config.data.train_split, taps, every_rank=False).x, config.hubness,
                              feats(config.data.test_split, taps, every_rank=False), source.spec,
                              config.data.test_split)
