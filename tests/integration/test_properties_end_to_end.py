"""Properties over whole runs, in-process: whatever rows a user trains on, whatever options a task is given and
whatever pools a distillation reads, the outcome is a result with finite numbers or a ``LatentfuseError`` whose
message is one line — never a traceback from torch, numpy, scikit-learn or PIL, never a NaN reported as a score.

Fake encoders with known answers (``fake-rgb``: an image's mean colour; ``fake-text:8``: a sum of fixed word
vectors) keep each example to a fraction of a second; ``LATENTFUSE_FUZZ_EXAMPLES`` scales every test up.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import fakes  # noqa: F401  (registers fake-rgb, fake-text, fake-keywords)
from helpers.tables import COLOURS, colour_folder, write_pairs

import latentfuse
from latentfuse.config import StoreConfig
from latentfuse.errors import LatentfuseError
from latentfuse.eval import TASKS, frozen_model, task
from latentfuse.job import source_spec

SCALE = int(os.environ.get("LATENTFUSE_FUZZ_EXAMPLES", "150")) / 150


def fuzz(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def one_line(error: LatentfuseError) -> str:
    message = str(error)
    assert message and "\n" not in message.strip(), f"{type(error).__name__} is not one line: {message!r}"
    return message


def finite_numbers(tree) -> list[float]:
    """Every number in a report (recursively), so a NaN or inf shown as a score fails the property."""
    if isinstance(tree, dict):
        return [x for value in tree.values() for x in finite_numbers(value)]
    if isinstance(tree, (list, tuple)):
        return [x for value in tree for x in finite_numbers(value)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        assert math.isfinite(tree), f"a non-finite number in a report: {tree}"
        return [float(tree)]
    return []


# ---------------------------------------------------------------- rows → fit → eval

WORDS = ["red", "green", "blue", "a", "photo", "ü", "日本", "x" * 40]
TEXTS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
SPLITS = st.sampled_from(["train", "train", "train", "test", "val", "other"])
MESS = st.sampled_from(["", "", "", "empty caption", "blank caption", "unreadable caption", "float pixels",
                        "no test rows", "a row without a split"])


@st.composite
def images(draw) -> np.ndarray:
    """Pixel arrays a user may hold: any size down to 1×1, grey, RGB or RGBA, uint8 or int64."""
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    channels = draw(st.sampled_from([None, 3, 4]))
    colour = np.array(COLOURS[draw(st.sampled_from(sorted(COLOURS)))], dtype=np.uint8)
    shape = (height, width) if channels is None else (height, width, channels)
    pixels = np.broadcast_to(colour[0] if channels is None else np.resize(colour, channels), shape).copy()
    return pixels if draw(st.booleans()) else pixels.astype(np.int64)


@st.composite
def rows(draw) -> list[tuple]:
    """1 to 24 rows over 1 to 6 photos (photos repeat, as with several captions each), with or without a split
    column, and one kind of mess a careless user makes (or none)."""
    n = draw(st.integers(1, 24))
    with_split = draw(st.booleans())
    pool = draw(st.lists(images(), min_size=1, max_size=6))
    out = []
    for _ in range(n):
        row = (pool[draw(st.integers(0, len(pool) - 1))], draw(TEXTS))
        out.append(row + (draw(SPLITS),) if with_split else row)
    mess, k = draw(MESS), draw(st.integers(0, n - 1))
    spoilt = {"empty caption": "", "blank caption": " \t", "unreadable caption": "BAD caption"}
    if mess in spoilt:
        out[k] = (out[k][0], spoilt[mess], *out[k][2:])
    elif mess == "float pixels":  # refused with a message: 0..1 or 0..255 would be a guess
        out[k] = (out[k][0].astype(np.float32) / 255, *out[k][1:])
    elif mess == "no test rows" and with_split:
        out = [(*row[:2], "train") for row in out]
    elif mess == "a row without a split" and with_split:
        out[k] = (*out[k][:2], "")
    return out


RUN_OPTIONS = st.fixed_dictionaries({
    "method": st.sampled_from(["fusemix", "lightcrl", "procrustes", "cca", "asif"]),
    "epochs": st.integers(1, 2),
    "batch_size": st.sampled_from([2, 7, 64]),
})


@fuzz(25)
@given(data=rows(), run=RUN_OPTIONS)
def test_any_rows_train_and_evaluate_or_give_one_line_error(tmp_path_factory, data, run):
    root = tmp_path_factory.mktemp("fit")
    store = StoreConfig(root=str(root / "store"))
    try:
        model = latentfuse.fit(data, out=root / "model", encoders={"image": "fake-rgb", "text": "fake-text:8"},
                               method=run["method"], epochs=run["epochs"], progress=False,
                               config={"store": {"root": store.root}},
                               set=[f"train.batch_size={run['batch_size']}", "train.threads=1"])
    except LatentfuseError as error:
        one_line(error)
        return
    assert model.method.name == run["method"] and (root / "model" / "report.json").is_file()
    spec, _ = source_spec(data, Path(store.root).parent / "tables")
    try:
        report = task("retrieval").run(model, spec, None, store, progress=False)
    except LatentfuseError as error:
        one_line(error)
        return
    assert finite_numbers(report["metrics"]), report
    assert all(0 <= value <= 100 for key, value in report["metrics"].get("t2i", {}).items() if key.startswith("R@"))


# ---------------------------------------------------------------- task options

NUMBERS = st.one_of(st.integers(-3, 40), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e9, math.nan, math.inf]))
NAMES = st.sampled_from(["image", "text", "sentence1", "sentence2", "train", "val", "test", "all", "none", "is",
                         "dis", "gaussian-noise", "blur", "jpeg", "low-resolution", "feature-noise", "a {}",
                         "a photo of a {}.", "{} {}", ""])
VALUES = st.one_of(NUMBERS, NAMES, st.booleans(), st.none(), st.lists(st.one_of(NUMBERS, NAMES), max_size=3))


@pytest.fixture(scope="module")
def task_data(tmp_path_factory) -> dict[str, str]:
    """One small dataset of each kind the tasks read: labelled colour photos in three splits, and sentence pairs
    with a score and a binary label."""
    root = tmp_path_factory.mktemp("tasks")
    layout = {split: {c: [c] * n for c in COLOURS} for split, n in (("train", 6), ("val", 2), ("test", 3))}
    folder = colour_folder(root / "colours", layout)
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "w1", "w2"]
    pairs = [(" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, 3)), label, split)
             for split, n in (("train", 12), ("test", 8)) for label in (0, 1) for _ in range(n // 2)]
    scored = [(a, b, float(rng.uniform(0, 5)), split) for a, b, _, split in pairs]
    return {"images": f"imagefolder:{folder}",
            "labels": f"mrpc:{write_pairs(root / 'mrpc.tsv', pairs, 'label')}",
            "scores": f"sts-b:{write_pairs(root / 'sts.tsv', scored, 'score')}"}


DATA_OF = {"classification": "images", "linear-probe": "images", "retrieval": "images", "robustness": "images",
           "zeroshot": "images", "pair-classification": "labels", "sts": "scores"}


@st.composite
def task_options(draw):
    name = draw(st.sampled_from(TASKS.names()))
    options_cls = TASKS.get(name).options_cls
    fields = [f.name for f in dataclasses.fields(options_cls)]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=3)) if fields else []
    defaults = options_cls()  # a valid value half the time, so the checks past the first one are reached too
    values = {field: draw(st.one_of(st.just(getattr(defaults, field)), VALUES)) for field in chosen}
    if draw(st.integers(0, 4)) == 0:
        values[draw(st.sampled_from(["nope", "side ", "Hubness"]))] = draw(VALUES)  # an option that is no option
    return name, values, draw(st.sampled_from([None, None, None, "train", "test", "val", "nope"]))


@fuzz(120)
@given(drawn=task_options())
def test_any_task_options_give_a_report_or_one_line_error(tmp_path_factory, task_data, drawn):
    name, values, split = drawn
    store = StoreConfig(root=str(tmp_path_factory.getbasetemp() / "task-store"))
    model = frozen_model({"image": "fake-rgb", "text": "fake-keywords:red,green,blue"})
    if DATA_OF[name] != "images":
        model = frozen_model("fake-text:8")
    try:
        report = task(name).run(model, task_data[DATA_OF[name]], split, store, values, progress=False)
    except LatentfuseError as error:
        one_line(error)
        return
    assert report["task"] == name and finite_numbers(report["metrics"]), report


# ---------------------------------------------------------------- pools → distill

@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    photos = [(np.full((4, 4, 3), COLOURS[c], np.uint8), f"a {c} photo {k}") for c in COLOURS for k in range(8)]
    latentfuse.fit(photos, out=root / "model", encoders={"image": "fake-rgb", "text": "fake-text:8"},
                   method="fusemix", epochs=2, progress=False, config={"store": {"root": str(root / "store")}},
                   set=["train.batch_size=8", "train.threads=1", "method.options.dim=4"])
    return root / "model"


STUDENTS = st.sampled_from(["image=pixels:16,text=teacher", "image=teacher,text=glove-bag",
                            "image=pixels:16,text=glove-transformer:1", "image=teacher", "image=teacher,text=teacher",
                            "image=pixels:0,text=teacher", "image=teacher,text=glove-transformer:x"])
DISTILL_OPTIONS = st.dictionaries(st.sampled_from(["width", "heads", "layers", "dropout", "logit_scale",
                                                   "w_vl", "w_pvl", "w_cross", "t_vl", "max_tokens", "nope"]),
                                  NUMBERS, max_size=2)


@fuzz(20)
@given(n_images=st.integers(0, 9), lines=st.lists(TEXTS, min_size=1, max_size=12), student=STUDENTS, options=DISTILL_OPTIONS,
       batch=st.sampled_from([32, 3, 2, 1]))
def test_any_pools_and_student_options_distill_or_give_one_line_error(tmp_path_factory, teacher, n_images, lines,
                                                                      student, options, batch):
    from latentfuse.config import DistillConfig, StudentMethod, TrainConfig
    from latentfuse.distill import distill

    root = tmp_path_factory.mktemp("distill")
    folder = root / "images"
    folder.mkdir()
    for k in range(n_images):
        Image.new("RGB", (1 + k, 3), COLOURS[sorted(COLOURS)[k % 3]]).save(folder / f"{k}.png")
    texts = root / "captions.txt"
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = DistillConfig(teacher=str(teacher), images=[f"images:{folder}"], texts=[f"lines:{texts}"],
                           student=student, out=str(root / "student"), method=StudentMethod(options),
                           store=StoreConfig(root=str(root / "store")),
                           train=TrainConfig(epochs=1, batch_size=batch, threads=1))
    try:
        distill(config, progress=False)
    except LatentfuseError as error:
        one_line(error)
        return
    student_model = latentfuse.load(root / "student")
    embedded = student_model.encode_text(["a red photo"])
    assert embedded.shape == (1, student_model.dim) and np.isfinite(embedded).all()
