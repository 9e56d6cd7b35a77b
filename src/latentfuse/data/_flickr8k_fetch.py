"""Where ``flickr8k`` (no path) finds its data: a local copy, or — on a machine that is online — the Hugging Face
dataset, fetched once through ``datasets`` and written into the cache in the latentfuse layout (``images/``,
``captions.tsv``, ``splits.json``), so every later run reads it offline.

Looked for, in order: ``$LATENTFUSE_FLICKR8K``; ``<cache>/datasets/flickr8k`` (beside the feature cache:
``~/.cache/latentfuse``, or ``$LATENTFUSE_CACHE``'s parent); ``shared/data/flickr8k`` under the working folder
or its parent (a checkout next to a data folder). The Hub dataset is ``$LATENTFUSE_FLICKR8K_HUB`` (default
``jxie/flickr8k``: an ``image`` column and ``caption_0`` … ``caption_4``, splits train / validation / test); a
local folder of that shape works too, which is how the fetch is tested.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..utils import atomic

log = logging.getLogger(__name__)

HUB_ID = "jxie/flickr8k"
SPLITS = {"train": "train", "validation": "val", "test": "test"}  # the Hub's split → ours
CAPTIONS = tuple(f"caption_{k}" for k in range(5))


def datasets_home() -> Path:
    cache = os.environ.get("LATENTFUSE_CACHE")
    base = Path(cache).expanduser().parent if cache else Path.home() / ".cache" / "latentfuse"
    return base / "datasets"


def candidates() -> list[Path]:
    given = os.environ.get("LATENTFUSE_FLICKR8K")
    found = [Path(given).expanduser()] if given else []
    found.append(datasets_home() / "flickr8k")
    found += [Path.cwd() / "shared" / "data" / "flickr8k", Path.cwd().parent / "shared" / "data" / "flickr8k"]
    return found


def locate() -> Path:
    """A folder holding Flickr8k: the first local copy found, else one fetched from the Hub into the cache."""
    for folder in candidates():
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    hub = os.environ.get("LATENTFUSE_FLICKR8K_HUB", HUB_ID)
    target = datasets_home() / "flickr8k"
    if not Path(hub).expanduser().is_dir() and offline():
        looked = ", ".join(str(p) for p in candidates())
        raise DataError(f"flickr8k: no local copy (looked in {looked}) and this machine is offline, so the Hugging "
                        f"Face dataset {hub} cannot be fetched: put a copy in {target} or give flickr8k:DIR")
    return fetch(hub, target)


def offline() -> bool:
    """The user said this machine is offline (``HF_DATASETS_OFFLINE``, or ``HF_HUB_OFFLINE`` unless only the CLI
    set it, as it does so that encoders never download: ``OFFLINE_BY_DEFAULT`` marks that)."""
    hub = os.environ.get("HF_HUB_OFFLINE", "") if not os.environ.get(OFFLINE_BY_DEFAULT) else ""
    return any(value.lower() in ("1", "true", "yes") for value in (hub, os.environ.get("HF_DATASETS_OFFLINE", "")))


OFFLINE_BY_DEFAULT = "LATENTFUSE_HUB_OFFLINE_BY_DEFAULT"
# datasets reads HF_HUB_OFFLINE when it is imported: the download runs in a child process without the CLI's
# default, then this process reads the saved copy from disk.
DOWNLOAD = "import sys, datasets; datasets.load_dataset(sys.argv[1]).save_to_disk(sys.argv[2])"


def fetch(hub: str, target: Path) -> Path:
    """Write ``hub``'s splits into ``target`` in the latentfuse layout; the folder appears whole (a temporary
    sibling renamed into place), so a killed fetch leaves nothing half-written."""
    try:
        import datasets
    except ImportError:
        raise DataError("flickr8k: fetching the dataset needs Hugging Face datasets: pip install datasets") from None
    log.info("flickr8k: fetching %s through Hugging Face datasets into %s (once)", hub, target)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # what a killed fetch left
    env = dict(os.environ)
    if env.pop(OFFLINE_BY_DEFAULT, None):
        env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", DOWNLOAD, hub, str(staging / "hub")], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:  # offline, unknown id, no access: one line, not a hub traceback
        last = next((line for line in reversed(done.stderr.strip().splitlines()) if line.strip()), "failed")
        raise DataError(f"flickr8k: could not fetch {hub} ({last.strip()[:300]}); put a copy in {target} or "
                        "give flickr8k:DIR")
    loaded = datasets.load_from_disk(str(staging / "hub"))
    (staging / "images").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int, str]] = []
    splits: dict[str, list[str]] = {}
    for hub_split, split in SPLITS.items():
        if hub_split not in loaded:
            raise DataError(f"flickr8k: {hub} has no {hub_split!r} split (has {', '.join(loaded)})")
        splits[split] = []
        for number, record in enumerate(loaded[hub_split]):
            name = f"{split}-{number:05d}.jpg"
            _save_image(record["image"], staging / "images" / name)
            splits[split].append(name)
            rows += [(name, k, str(record[column]).strip()) for k, column in enumerate(CAPTIONS)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["image", "caption_index", "caption"])
    writer.writerows(rows)
    atomic.write_text(staging / "captions.tsv", buffer.getvalue())
    atomic.write_text(staging / "splits.json", json.dumps(splits))
    shutil.rmtree(staging / "hub")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    return target


def _save_image(image: Any, path: Path) -> None:
    image.convert("RGB").save(path, format="JPEG", quality=95)
