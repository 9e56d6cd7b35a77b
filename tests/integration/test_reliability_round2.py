"""Reliability, second round (issue 26): option values no check covered, files a model or an index carries, and
settings that were silently dropped — each a one-line error naming what to change, or the right result."""
from __future__ import annotations

import json

import numpy as np
import pytest

from latentfuse.errors import ConfigError, LatentfuseError, ModelError
from latentfuse.methods import make_config, method_class


@pytest.mark.parametrize("options, message", [
    ({"heads": 3}, "dime: heads=3 must divide width=256"),  # was torch's AssertionError deep in attention
    ({"image_student": "teacher", "text_student": "teacher"}, "the student would have nothing to train"),
    ({"w_vl": 0, "w_pvl": 0, "w_udist": 0, "w_cross": 0}, "every loss weight is 0"),  # trained nothing, saved
])
def test_dime_options_that_cannot_train_are_refused_before_any_work(options, message):
    with pytest.raises(ConfigError, match=message):
        make_config("dime", options)


def test_dynmm_sides_the_data_lacks_are_named_before_any_extraction():
    config = make_config("dynmm", {"cheap": "caption", "experts": ["text", "image"]})
    with pytest.raises(ConfigError, match="dynmm: cheap side 'caption' is not a side of the data \\(image, text\\)"):
        method_class("dynmm").wanted_taps(config, {"image": "image", "text": "text"})


@pytest.fixture(scope="module")
def index(shapes, tmp_path_factory):
    from helpers.shapes import saved_index

    return saved_index(shapes, tmp_path_factory.mktemp("round2") / "ix")


def test_search_k_must_be_a_whole_number(index):
    with pytest.raises(LatentfuseError, match="k must be a whole number of at least 1, got 2.5"):
        index.search(text="a red circle", k=2.5)  # was a TypeError from torch
    with pytest.raises(LatentfuseError, match="got True"):
        index.search(text="a red circle", k=True)


def test_an_explicit_hubness_without_a_bank_is_an_error_not_ignored(index):
    from latentfuse.index import open_index

    opened = open_index(index.directory)
    opened.model.query_bank = {}  # a model trained without a bank
    opened.hubness = "dis"
    with pytest.raises(ModelError, match="hubness dis needs a query bank of side 'text'"):
        opened.search(text="a red circle", k=3)
    opened.hubness = ""  # the model's own setting: no bank, cosine, as before
    assert len(opened.search(text="a red circle", k=3)) == 3


def test_damaged_hubness_statistics_are_recomputed_not_a_traceback(index):

    reference = _dis(index.directory)
    expected = [hit.row for hit in reference.search(text="a blue square", k=5)]
    stats = index.directory / "hubness.npz"
    original = stats.read_bytes()
    try:
        stats.write_bytes(original[: len(original) // 2])  # truncated: was zipfile.BadZipFile
        assert [hit.row for hit in _dis(index.directory).search(text="a blue square", k=5)] == expected
        with np.load(_copy(original, index.directory / "good.npz")) as saved:
            arrays = {key: saved[key].copy() for key in saved.files}
        for key in arrays:
            if key.endswith(".best_row"):
                arrays[key][:] = 10**6  # rows the index does not hold: used to be an IndexError
            if key.endswith(".best_score"):
                arrays[key][:] = np.nan
        np.savez(stats, **arrays)
        opened = _dis(index.directory)
        assert [hit.row for hit in opened.search(text="a blue square", k=5)] == expected
        assert opened.bank_bests()["text"].best_row.tolist() == reference.bank_bests()["text"].best_row.tolist()
    finally:
        stats.write_bytes(original)
        (index.directory / "good.npz").unlink(missing_ok=True)


def _copy(data: bytes, path):
    path.write_bytes(data)
    return path


def _dis(directory):
    from latentfuse.index import open_index

    fresh = open_index(directory)
    fresh.hubness = "dis"
    return fresh


def test_knn_service_with_an_integer_beyond_any_float_is_a_422(index):
    from fastapi.testclient import TestClient

    from latentfuse.serve import ServeConfig, create_app

    dim = index.model.dim
    body = ('{"embedding_input": [1' + "0" * 400 + ", " + ", ".join(["0"] * (dim - 1)) + '], "modality": "image", '
            '"num_images": 3, "indice_name": null}')
    with TestClient(create_app(index, ServeConfig())) as client:
        answer = client.post("/knn-service", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and "embedding_input must be finite" in answer.json()["detail"]


def test_growing_an_index_with_int8_encoders_is_refused_not_mixed(index, shapes):
    """Growth with another --backend used to add int8 rows beside fp32 ones and record nothing."""
    from latentfuse.data import build_source
    from latentfuse.index import open_index

    opened = open_index(index.directory)
    assert json.loads((index.directory / "index.json").read_text()).get("encoded_with", "") == ""
    opened.model.to("cpu", "fp32", "onnx-int8")
    with pytest.raises(LatentfuseError, match="its rows were embedded with fp32 encoders; adding rows embedded with "
                                              "onnx-int8 ones would mix the two"):
        opened.add_source(build_source(f"pairs:{shapes['pairs']}"), progress=False)


def test_a_run_configs_taps_are_checked_before_any_work(tmp_path):
    """`taps` in a run config were never checked: a tap that does not exist trained anyway."""
    from click.testing import CliRunner

    from helpers import fakes  # noqa: F401  (fake-text)
    from helpers.tables import cipher_table
    from latentfuse.cli import app

    table = cipher_table(tmp_path / "pairs.tsv", 40, 10, 10)
    args = ["train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8",
            "--store", str(tmp_path / "store"), "--out", str(tmp_path / "model")]
    typo = CliRunner().invoke(app, [*args, "--set", "taps={text_a: [word]}"])
    assert str(typo.exception) == "encoder 'fake-text:8' has no tap 'word'; its taps: words (T, 8)"
    assert not (tmp_path / "model").exists() and not (tmp_path / "store").exists()
    side = CliRunner().invoke(app, [*args, "--set", "taps={caption: [words]}"])
    assert f"taps name side 'caption', but pairs:{table} has sides text_a, text_b" in str(side.exception)


def test_frozen_encoders_of_different_widths_are_refused_by_cross_side_tasks(tmp_path):
    """`eval --frozen … --task robustness` over encoders of different widths was a torch shape error."""
    from PIL import Image

    from helpers import fakes  # noqa: F401  (fake-text)
    from latentfuse.config import StoreConfig
    from latentfuse.eval import TASKS
    from latentfuse.eval.frozen import frozen_model

    (tmp_path / "img").mkdir()
    rows = ["image,text,split"]
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), i * 30, np.uint8)).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,colour {i},test")
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    model = frozen_model({"image": "pixels:16", "text": "fake-text:16"})
    for task in ("robustness", "retrieval"):
        with pytest.raises(ConfigError, match=f"{task} compares embeddings across sides, but their widths differ "
                                              r"\(image 768, text 16\)"):
            TASKS.build(task).run(model, f"pairs:{tmp_path / 'p.csv'}", None, StoreConfig(str(tmp_path / "s")),
                                  progress=False)


def test_distill_with_heads_that_do_not_divide_the_width_is_one_line(shapes, tmp_path):
    """`distill --set method.options.heads=3` was torch's AssertionError from inside the attention layer."""
    from click.testing import CliRunner

    from latentfuse.cli import app

    result = CliRunner().invoke(app, ["distill", "-m", str(shapes["model"]), "--images", f"images:{shapes['images']}",
                                      "--texts", f"images:{shapes['images']}", "--out", str(tmp_path / "student"),
                                      "--set", "method.options.heads=3"])
    assert isinstance(result.exception, ConfigError), result.exception
    assert "dime: heads=3 must divide width=256" in str(result.exception)
    assert not (tmp_path / "student").exists()
