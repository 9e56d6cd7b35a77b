"""How examples/photos and examples/captions.csv were made (kept so they can be remade): 36 small photos of a
coloured shape on a plain background, two captions each, and no split column — the shape of a user's own data
that the README's quick start trains on."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (240, 210, 30)}
BACKGROUNDS = {"white": (250, 250, 250), "grey": (128, 128, 128), "black": (15, 15, 15)}
SHAPES = ("circle", "square", "triangle")


def draw(shape: str, colour: tuple[int, int, int], background: tuple[int, int, int], size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    box = (size // 5, size // 5, size - size // 5, size - size // 5)
    if shape == "circle":
        pen.ellipse(box, fill=colour)
    elif shape == "square":
        pen.rectangle(box, fill=colour)
    else:
        pen.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
    return image


def main(root: Path = Path(__file__).parent) -> None:
    rows = []
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            for background, bg in BACKGROUNDS.items():
                name = f"{colour}-{shape}-{background}.png"
                draw(shape, rgb, bg).save(root / "photos" / name, optimize=True)
                rows += [(f"photos/{name}", f"a {colour} {shape} on a {background} background"),
                         (f"photos/{name}", f"{colour} {shape}")]
    with open(root / "captions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "text"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
