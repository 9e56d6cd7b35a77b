"""A tiny real collection for the search tests: coloured shapes drawn with Pillow, captioned, and a FuseMix
model trained on them with the packaged encoders (efficientnet-lite0 + minilm-l6). Small enough to build
in seconds, real enough that "a red circle" must find the red circles."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw

from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.index import Index

COLORS = {"red": (215, 35, 35), "green": (40, 170, 60), "blue": (35, 70, 215), "yellow": (235, 205, 30)}
SHAPES = ("circle", "square")
VARIANTS = 5
TEMPLATES = ("a {c} {s}", "a {s} that is {c}", "one {c} {s} on white")


def draw(color: str, shape: str, variant: int) -> Image.Image:
    image = Image.new("RGB", (128, 128), (250, 250, 250))
    pen = ImageDraw.Draw(image)
    size = 56 + 10 * variant
    x0 = 10 + (variant * 7) % (118 - size) if size < 118 else 5
    y0 = 64 - size // 2
    box = (x0, y0, x0 + size, y0 + size)
    (pen.ellipse if shape == "circle" else pen.rectangle)(box, fill=COLORS[color])
    return image


def build(root: Path) -> dict[str, Path]:
    """Images under root/images/<color>/<shape>-<v>.png, a pairs table, and a trained model."""
    images = root / "images"
    rows = []
    for color in COLORS:
        (images / color).mkdir(parents=True, exist_ok=True)
        for shape in SHAPES:
            for v in range(VARIANTS):
                path = images / color / f"{shape}-{v}.png"
                draw(color, shape, v).save(path)
                rows += [(str(path), t.format(c=color, s=shape)) for t in TEMPLATES]
    table = root / "pairs.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "text"])
        writer.writerows(rows)
    import latentfuse

    latentfuse.fit(f"pairs:{table}", out=root / "model", encoders={"image": "efficientnet-lite0", "text": "minilm-l6"},
                   config={"store": {"root": str(root / "store")}, "data": {"train_split": "all", "val_split": "",
                                                                          "test_split": "all", "test_on_train": True},
                           "method": {"name": "fusemix", "options": {"dim": 64, "hidden": 128}},
                           "train": {"epochs": 60, "batch_size": 32, "lr": 3e-3, "threads": 1},
                           "hubness": {"norm": "none", "bank_size": 200, "min_bank": 16}},  # a bank, off unless asked for
                   progress=False)
    return {"root": root, "images": images, "pairs": table, "model": root / "model", "store": root / "store"}


def saved_index(shapes: dict[str, Path], out: Path, data: str | None = None, side: str | None = None,
                store: Path | None = None) -> Index:
    """An index of the shapes model over ``data`` (default: every shape image), saved to ``out``."""
    index = Index.create(out, shapes["model"], side=side)
    index.add_source(build_source(data or f"images:{shapes['images']}"),
                     store=StoreConfig(root=str(store or shapes["store"])), progress=False)
    index.save()
    return index


def is_match(item_id: str, color: str, shape: str) -> bool:
    """Ids are image paths relative to images/ (images: source) or absolute (pairs: source)."""
    return f"{color}/{shape}-" in item_id
