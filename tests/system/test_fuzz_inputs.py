"""Property-based tests (hypothesis): whatever a user feeds the table readers, the image decoders or the
config overrides, the answer is a result or one error of ours that names the file / field — never another
exception type, never a hang."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import yaml
from fastapi import HTTPException
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from latentfuse.config import RunConfig, apply_overrides, check_fields, describe
from latentfuse.data import build_source
from latentfuse.encoders.base import BadItemError
from latentfuse.encoders.images import load_image
from latentfuse.errors import ConfigError, DataError
from latentfuse.methods import METHODS, build_method
from latentfuse.serve.inputs import decode_image

FUZZ = settings(max_examples=int(os.environ.get("LATENTFUSE_FUZZ_EXAMPLES", "150")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---------------------------------------------------------------- table readers

COLUMNS = ["image", "text", "text_a", "text_b", "id", "split", "label", "sentence1", "sentence2", "score",
           "extra", ""]
CELLS = st.one_of(
    st.sampled_from(["", " ", "train", "val", "test", "a.png", "missing.jpg", "0", "1", "2.5", "nan", "-1",
                     "yes", "a dog", '"quoted"', "x,y", "tab\there", "new\nline", "ü ñ 日本", "\x00"]),
    st.text(max_size=12),
)


@st.composite
def tables(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["tsv", "csv", "jsonl", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from(["tsv", "csv", "jsonl"])), draw(st.binary(max_size=200))
    columns = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), max_size=6))
    if kind == "jsonl":
        lines = [json.dumps(dict(zip(columns, row))) for row in rows]
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["{", "[1, 2]", "null", '{"text": 5}', "not json"])))
        return kind, ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    delimiter = "\t" if kind == "tsv" else ","
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(columns)
    writer.writerows(rows)
    return kind, buffer.getvalue().encode("utf-8", "surrogatepass")


@FUZZ
@given(table=tables(), source=st.sampled_from(["pairs", "sts", "pair-labels"]))
def test_table_readers_load_or_name_the_file(tmp_path_factory, table, source):
    kind, content = table
    folder = tmp_path_factory.mktemp("table")
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    path = folder / f"data.{kind}"
    path.write_bytes(content)
    for skip_bad in (False, True):
        try:
            built = build_source(f"{source}:{path}", skip_bad=skip_bad)
            for split in built.splits():
                data = built.load(split)
                assert all(isinstance(item.id, str) for items in data.items.values() for item in items)
        except DataError as exc:
            assert "data." in str(exc), str(exc)  # names the file (and the row, where one is at fault)
            assert "\n" not in str(exc).strip() or "Traceback" not in str(exc)


# ---------------------------------------------------------------- image decoding

def _valid_image(fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


@st.composite
def image_bytes(draw) -> bytes:
    base = _valid_image(draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])), draw(st.integers(0, 3)))
    how = draw(st.sampled_from(["whole", "cut", "flip", "splice", "random"]))
    if how == "cut":
        return base[:draw(st.integers(0, len(base) - 1))]
    if how == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "splice":
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.binary(max_size=64)) + base[at:]
    if how == "random":
        return draw(st.binary(max_size=300))
    return base


@FUZZ
@given(data=image_bytes())
def test_image_decoders_return_rgb_or_a_message(data):
    try:
        image = load_image(data)
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
    except BadItemError as exc:
        assert str(exc.reason).startswith("cannot decode image"), exc.reason
    try:
        image = decode_image(data)
        assert image.mode == "RGB"
    except HTTPException as exc:
        assert 400 <= exc.status_code < 500 and exc.detail


# ---------------------------------------------------------------- config overrides

KEYS = [key for key, _, _ in describe(RunConfig)]
VALUES = st.one_of(
    st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=10), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                              max_size=2),
    st.sampled_from(["1e400", "-.inf", ".nan", "0x10", "~", "[1, 2", "{a: 1}", "2.0", "1_000"]),
)


@FUZZ
@given(key=st.one_of(st.sampled_from(KEYS), st.text(max_size=12)), value=VALUES, raw=st.booleans())
def test_overrides_apply_or_name_the_field(key, value, raw):
    text = value if raw and isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    text = text.removesuffix("...").strip()
    try:
        config = apply_overrides(RunConfig(), [f"{key}={text}"])
    except ConfigError as exc:
        assert "--set" in str(exc), str(exc)
        return
    check_fields(config, "fuzzed")  # whatever was accepted is inside every declared range
    json.dumps(dataclass_dict(config))


@FUZZ
@given(name=st.sampled_from(METHODS.names()), options=st.dictionaries(
    st.sampled_from(["dim", "hidden", "n_blocks", "dropout", "input_dropout", "top_k", "power", "ridge", "width",
                     "n_tokens", "fusion", "mixup_alpha", "temperature_init", "nope"]), VALUES, max_size=3))
def test_method_options_build_or_name_the_option(name, options):
    try:
        build_method(name, {"a": 6, "b": 5}, options)
    except ConfigError as exc:
        assert str(exc).startswith((f"method {name!r}", f"{name}:")), str(exc)


def dataclass_dict(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)
