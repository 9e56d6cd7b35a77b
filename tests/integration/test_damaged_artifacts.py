"""Damaged saved artifacts — a model folder or an index — are refused with one line naming the file and what
is wrong, never a traceback from safetensors / numpy / json, and never loaded as if whole."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.errors import LatentfuseError
from latentfuse.index import open_index
from latentfuse.model import JointModel

runner = CliRunner()


def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(change(data)))
    return damage


def _weights(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / "model.safetensors"
        save_file(change(load_file(str(path))), str(path), metadata={"format": "latentfuse-joint/1"})
    return damage


def _first_to_nan(weights: dict) -> dict:
    name = next(k for k, v in weights.items() if v.is_floating_point())
    return {**weights, name: torch.full_like(weights[name], float("nan"))}


def _shrink_first(weights: dict) -> dict:
    name = next(k for k, v in weights.items() if v.ndim == 2)
    return {**weights, name: weights[name][:-1]}


def _bank(banks: dict) -> Callable[[Path], None]:
    """A valid safetensors file in the query bank's place, holding ``banks`` (another model's, an empty one…)."""
    return lambda folder: save_file({side: bank.contiguous() for side, bank in banks.items()},
                                    str(folder / "query_bank.safetensors"))


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:int(len(data) * keep)])
    return damage


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


MODEL_CASES = {
    "empty weights": (_write("model.safetensors", b""), "model.safetensors: not a readable safetensors file"),
    "truncated weights": (_truncate("model.safetensors", 0.5), "model.safetensors: not a readable safetensors"),
    "garbage weights": (_write("model.safetensors", b"\x00" * 64), "not a readable safetensors file"),
    "NaN weights": (_weights(_first_to_nan), "hold NaN/inf .* diverged run"),
    "weights of other shape": (_weights(_shrink_first), "weights do not fit fusemix with these options"),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
    "config not JSON": (_write("config.json", b'{"format": "latentfuse'), "config.json: not valid JSON"),
    "config a list": (_write("config.json", b"[1, 2]"), "config.json: expected a JSON object, got list"),
    "config empty": (_write("config.json", b""), "config.json: not valid JSON"),
    "config not UTF-8": (_write("config.json", b"\xff\xfe{"), "config.json: not valid JSON"),
    "config other format": (_edit_json("config.json", lambda c: {**c, "format": "x/9"}), "format 'x/9', expected"),
    "config without dims": (_edit_json("config.json", lambda c: {k: v for k, v in c.items() if k != "dims"}),
                            "field 'dims' must be a dict"),
    "config unknown method": (_edit_json("config.json", lambda c: {**c, "method": "nosuch"}),
                              "config.json: .*unknown method 'nosuch'"),
    "config bad option": (_edit_json("config.json", lambda c: {**c, "method_config": {**c["method_config"],
                                                                                      "dim": -3}}),
                          "config.json: .*dim: expected a number >= 1, got -3"),
    "config sides not objects": (_edit_json("config.json", lambda c: {**c, "sides": [1, 2]}),
                                 "field 'sides' must be a list of objects"),
    "config side fields": (_edit_json("config.json", lambda c: {**c, "sides": [{"nope": 1}]}),
                           "damaged model config"),
    "query bank truncated": (_truncate("query_bank.safetensors", 0.5),
                             "query_bank.safetensors: not a readable safetensors file"),
    "query bank empty": (_bank({"text": torch.zeros(0, 64)}), r"must be finite \(n > 0, .*got \(0, 64\)"),
    "query bank of another model": (_bank({"text": torch.zeros(300, 7)}), r"must be finite .* got \(300, 7\)"),
    "query bank of a side it lacks": (_bank({"audio": torch.zeros(300, 64)}), "banks of sides \['audio'\]"),
    "query bank NaN": (_bank({"text": torch.full((300, 64), float("nan"))}), "bank of side 'text' must be finite"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_damaged_model_folders_are_refused_by_name(shapes, tmp_path, case):
    damage, message = MODEL_CASES[case]
    folder = tmp_path / "model"
    shutil.copytree(shapes["model"], folder)
    damage(folder)
    with pytest.raises(LatentfuseError, match=message):
        JointModel.load(folder)


def test_a_model_path_that_is_a_file_is_named(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(LatentfuseError, match="not a model folder \\(a file\\)"):
        JointModel.load(tmp_path / "weights.bin")


def _table(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: damage(folder / "items.lance")


def _data_files(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(table: Path) -> None:
        for path in (table / "data").glob("*.lance"):
            path.write_bytes(change(path.read_bytes()))
    return _table(damage)


INDEX_CASES = {
    "index.json not JSON": (_write("index.json", b"{\"format\""), "index.json: not valid JSON"),
    "index.json a list": (_write("index.json", b"[]"), "index.json: format 'list', expected"),
    "index.json empty": (_write("index.json", b""), "index.json: not valid JSON"),
    "index.json no side": (_edit_json("index.json", lambda m: {k: v for k, v in m.items() if k != "side"}),
                           "field 'side' must be str"),
    "index.json bad backend": (_edit_json("index.json", lambda m: {**m, "backend": {"kind": "magic"}}),
                               "damaged index settings"),
    "index.json says float16": (_edit_json("index.json", lambda m: {**m, "backend": {**m["backend"],
                                                                                   "dtype": "float16"}}),
                                "says float16 embeddings, the table holds float32"),
    "table missing": (_table(shutil.rmtree), "its item table items.lance is missing"),
    "table versions gone": (_table(lambda t: shutil.rmtree(t / "_versions")), "cannot open its item table"),
    "table data truncated": (_data_files(lambda b: b[:len(b) // 2]), "cannot read the index's item table"),
    "table data garbage": (_data_files(lambda b: b"garbage" * 10), "cannot read the index's item table"),
    "table data gone": (_table(lambda t: [p.unlink() for p in (t / "data").glob("*.lance")]),
                        "cannot read the index's item table"),
}


@pytest.mark.parametrize("case", sorted(INDEX_CASES))
def test_damaged_indexes_are_refused_by_name(shapes, tmp_path, case):
    folder = _index_copy(shapes, tmp_path)
    damage, message = INDEX_CASES[case]
    damage(folder)
    with pytest.raises(LatentfuseError, match=message):
        open_index(folder).search(text="a red circle", k=3)


def test_the_cli_prints_one_line_for_a_damaged_index(shapes, tmp_path):
    from helpers.cli import run_cli

    folder = _index_copy(shapes, tmp_path)
    for path in (folder / "items.lance" / "data").glob("*.lance"):
        path.write_bytes(b"")
    done = run_cli("search", "a red circle", "--index", str(folder))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "cannot read the index's item table" in done.stderr and "Traceback" not in done.stderr


_INDEX: dict[str, Path] = {}


def _index_copy(shapes, tmp_path: Path) -> Path:
    if "built" not in _INDEX:
        built = Path(shapes["model"]).parent / "damage-index"
        if not built.exists():
            result = runner.invoke(app, ["index", "--model", str(shapes["model"]), "--data",
                                         f"images:{shapes['images']}", "--out", str(built), "--store",
                                         str(shapes["store"])])
            assert result.exit_code == 0, result.output
        _INDEX["built"] = built
    folder = tmp_path / "ix"
    shutil.copytree(_INDEX["built"], folder)
    (tmp_path / "model").symlink_to(shapes["model"])  # index.json names its model relative to the index
    return folder
