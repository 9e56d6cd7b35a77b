"""The API conventions users expect, and the seams behind them: sentence-transformers-style ``encode_*``,
``similarity`` across any two groups, Hugging Face ``save_pretrained`` / ``from_pretrained`` with a model card
whose front matter the Hub reads, typed CLI options, one side rule, one feature path, logging levels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from click.testing import CliRunner

from helpers import fakes  # noqa: F401  (registers fake-text)
from helpers.fakes import SyntheticSource, encoder_calls, fake_embed
from latentfuse.cli import app
from latentfuse.cli.schema import parse_configs
from latentfuse.config import StoreConfig, TrainConfig
from latentfuse.errors import ConfigError, ModelError
from latentfuse.eval import frozen_model
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec
from latentfuse.store import get_features
from latentfuse.train import Trainer
from helpers.cli import TESTS, run_cli  # noqa: F401

runner = CliRunner()




def unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x).astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- encode_* and similarity

@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory):
    from helpers import shapes as shapes_module

    built = shapes_module.build(tmp_path_factory.mktemp("shapes-api"))
    return JointModel.from_pretrained(built["model"]), sorted(built["images"].rglob("*.png"))


def test_numpy_batch_of_images_is_n_images(shapes_model):
    model, paths = shapes_model
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[:3]])  # (3, H, W, 3)
    from_batch = model.encode_image(arrays)
    from_list = model.encode_image(list(arrays))
    assert from_batch.shape == (3, model.dim)
    np.testing.assert_allclose(from_batch, from_list, atol=1e-6)
    np.testing.assert_allclose(from_batch, model.encode_image([str(p) for p in paths[:3]]), atol=1e-5)


def test_single_inputs_give_1d_vectors_and_options_work(shapes_model):
    model, paths = shapes_model
    one_image = model.encode_image(str(paths[0]))
    one_array = model.encode_image(np.asarray(Image.open(paths[0]).convert("RGB")))
    assert one_image.shape == (model.dim,) and one_array.shape == (model.dim,)
    np.testing.assert_allclose(one_image, one_array, atol=1e-5)
    text = model.encode_text("a red circle")
    assert text.shape == (model.dim,)
    assert np.isclose(np.linalg.norm(text), 1.0, atol=1e-5)
    raw = model.encode_text(["a red circle"], normalize=False)
    assert raw.shape == (1, model.dim) and not np.isclose(np.linalg.norm(raw), 1.0, atol=1e-3)
    np.testing.assert_allclose(unit(raw)[0], text, atol=1e-5)  # normalize=False is the same direction
    as_tensor = model.encode_text(["a", "b", "c"], convert_to_tensor=True, batch_size=2)
    assert isinstance(as_tensor, torch.Tensor) and tuple(as_tensor.shape) == (3, model.dim)


def test_image_image_similarity(shapes_model):
    model, paths = shapes_model
    sims = model.similarity(images=[str(p) for p in paths[:2]], images_b=[str(p) for p in paths[:3]])
    assert sims.shape == (2, 3)
    np.testing.assert_allclose(np.diag(sims[:, :2]), 1.0, atol=1e-5)  # an image is itself
    x = model.encode_image([str(p) for p in paths[:3]])
    np.testing.assert_allclose(sims, x[:2] @ x.T, atol=1e-5)


def test_text_text_similarity_goes_across_the_two_text_sides():
    model = frozen_model({"text_a": "fake-text:16", "text_b": "fake-text:16"})
    texts, others = ["w1 w2", "w3 w4"], ["w1 w2", "w5 w6", "w3 w9"]
    sims = model.similarity(texts=texts, texts_b=others)
    expected = unit(np.stack([fake_embed(t) for t in texts])) @ unit(np.stack([fake_embed(t) for t in others])).T
    np.testing.assert_allclose(sims, expected, atol=1e-5)
    assert model.side_for("text") == "text_a" and model.side_for("text", other_than="text_a") == "text_b"
    with pytest.raises(ModelError, match="two groups"):
        model.similarity(texts=texts)


def test_side_rule_errors_name_the_sides():
    model = frozen_model({"text_a": "fake-text:16", "text_b": "fake-text:16"})
    with pytest.raises(ModelError, match=r"needs a side of modality 'image', but the model's sides are "
                                         r"text_a \(text\), text_b \(text\)"):
        model.encode_image(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ModelError, match="no side 'text_c'; its sides are text_a"):
        model.encode_text("x", side="text_c")
    np.testing.assert_allclose(model.encode_text("w1", side="text_b"), unit(fake_embed("w1"))[0], atol=1e-6)


# ---------------------------------------------------------------- save_pretrained / from_pretrained / card

def _small_model(tmp_path) -> JointModel:
    method = build_method("fusemix", {"a": 8, "b": 8}, {"dim": 4, "hidden": 8, "n_blocks": 1})
    sides = [SideSpec("a", "text", "fake-text:8", "fake-text-8"), SideSpec("b", "text", "fake-text:8", "fake-text-8")]
    return JointModel(method, sides, {"trained_on": "pairs:/somewhere/table.tsv"})


def test_from_pretrained_round_trip_and_card_front_matter(tmp_path):
    from huggingface_hub import ModelCard

    from latentfuse.eval.tables import model_card

    model = _small_model(tmp_path)
    report = {"task": "retrieval", "dataset": "pairs:/somewhere/table.tsv", "split": "test", "method": "fusemix",
              "train_seconds": 1.5, "metrics": {"b2a": {"R@1": 40.0, "R@5": 80.0}, "a2b": {"R@1": 42.0, "R@5": 81.0}}}
    baseline = dict(report, method="procrustes", metrics={"b2a": {"R@1": 10.0, "R@5": 30.0}})
    model.save_pretrained(tmp_path / "m", card=model_card(model, [report, baseline]))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]

    loaded = JointModel.from_pretrained(tmp_path / "m")
    assert loaded.fingerprint == model.fingerprint
    import latentfuse

    assert latentfuse.load(tmp_path / "m").fingerprint == model.fingerprint

    card = ModelCard.load(tmp_path / "m" / "README.md")
    assert card.data.library_name == "latentfuse"
    assert {"latentfuse", "fusemix", "text"} <= set(card.data.tags)
    assert card.data.datasets is None  # a source name is not a Hub dataset id: no entry rather than a wrong one
    results = {(r.metric_type, r.metric_value) for r in card.data.eval_results}
    assert results == {("b2a R@1", 40.0), ("b2a R@5", 80.0), ("a2b R@1", 42.0), ("a2b R@5", 81.0)}  # own rows only
    assert "| procrustes |" in card.text and "| fusemix |" in card.text  # the comparison table stays in the text


def test_from_pretrained_on_a_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not a latentfuse model"):
        JointModel.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="no such model folder, and the Hugging Face Hub could not provide it"):
        JointModel.from_pretrained("nobody-here/no-such-model")  # offline in tests: HF_HUB_OFFLINE=1


# ---------------------------------------------------------------- typed CLI options

def test_typed_cli_options_stay_typed():
    def train(*args):
        return parse_configs(app, "train", args)[0]

    cfg = train("-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8", "--set", "train.lr=0.5", "--set", "out=first",
                "--out", "on", "--epochs", "3", "--method", "cca")
    assert cfg.out == "on"  # was the directory "True" when options were re-parsed as YAML
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.5 and cfg.method.name == "cca"
    assert cfg.encoders == {"text_a": "fake-text:8", "text_b": "fake-text:8"}
    assert train("--data", "null").data.source == "null"
    with pytest.raises(ConfigError, match="encoders.text_a: expected a string"):
        train("--set", "encoders={text_a: [1, 2]}")
    with pytest.raises(ConfigError, match=r"method 'fusemix' options: dim: expected an integer, got 'big'"):
        build_method("fusemix", {"a": 4, "b": 4}, {"dim": "big"})


def test_train_out_on_writes_the_folder_named_on(tmp_path, monkeypatch):
    from helpers.tables import cipher_table

    table = cipher_table(tmp_path / "pairs.tsv", n_train=200, n_val=0, n_test=60)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:16",
                                 "-e", "text_b=fake-text:16", "--method", "procrustes", "--out", "on",
                                 "--set", "data.val_split=", "--set", f"store.root={tmp_path / 'store'}"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "on" / "model.safetensors").exists() and not (tmp_path / "True").exists()


# ---------------------------------------------------------------- logging levels

def test_quiet_hides_diagnostics_and_verbose_shows_tracebacks(tmp_path):
    from helpers.tables import cipher_table, write_config

    config = write_config(tmp_path, cipher_table(tmp_path / "pairs.tsv", 200, 60, 60), epochs=1)
    loud = run_cli("run", str(config))
    quiet = run_cli("--quiet", "run", str(config))
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "epoch   1/1" in loud.stderr and "epoch" not in quiet.stderr + quiet.stdout
    assert "procrustes" in quiet.stdout  # results stay on stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: nosuch:thing\n")
    verbose = run_cli("-v", "run", str(bad))
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr and "unknown data source" in verbose.stderr


# ---------------------------------------------------------------- trainer hook, feature store

def test_validation_without_a_hook_is_a_clear_error(tmp_path):
    from latentfuse.store import paired_features

    source = SyntheticSource(20)
    store = StoreConfig(str(tmp_path / "store"))
    encoders = {"text_a": fakes.FakeTextEncoder(), "text_b": fakes.FakeTextEncoder()}
    train = paired_features(source, source.load("train"), encoders, store, progress=False)
    method = build_method("fusemix", train.dims(), {"dim": 4, "hidden": 8, "n_blocks": 1})
    with pytest.raises(ValueError, match="validation split needs a validate hook"):
        Trainer(method, TrainConfig(epochs=1), tmp_path / "run").fit(train, train, progress=False)


def test_a_subset_reads_its_rows_from_the_whole_splits_cache(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    source, store, encoder = SyntheticSource(50), StoreConfig(str(tmp_path / "store")), fakes.FakeTextEncoder()
    full = source.load("train")
    whole = get_features(source, full, "text_a", encoder, store, progress=False)
    calls = len(encoder_calls(log))
    head = full.head(7)
    part = get_features(source, head, "text_a", encoder, store, progress=False)
    assert len(encoder_calls(log)) == calls  # nothing encoded: the same contents are already filed
    assert part.ids == whole.ids[:7]
    np.testing.assert_array_equal(np.asarray(part.array), np.asarray(whole.array[:7]))
    fresh = get_features(SyntheticSource(50), head, "text_a", encoder, StoreConfig(str(tmp_path / "other")),
                         progress=False)  # another store: only the 7 are encoded
    assert sum(encoder_calls(log)[calls:]) == 7 and fresh.ids == part.ids


# ---------------------------------------------------------------- plugins through entry points

PLUGIN = '''
from latentfuse.methods import METHODS
from latentfuse.methods.identity import Identity


@METHODS.register("plugged", help="an identity method shipped by another package")
class Plugged(Identity):
    name = "plugged"
'''


def test_an_entry_point_plugin_method_is_registered_listed_and_trained(tmp_path):
    """A tiny third-party package, installed into a folder with pip, adds a method without touching latentfuse."""
    import subprocess
    import sys

    from helpers.tables import cipher_table

    package = tmp_path / "src"
    (package / "lf_plugin").mkdir(parents=True)
    (package / "lf_plugin" / "__init__.py").write_text(PLUGIN)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "lf-plugin"\nversion = "0.0.1"\n\n'
        '[project.entry-points."latentfuse.methods"]\nplugged = "lf_plugin"\n')
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(package)], capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stderr
    info = run_cli("info", extra_path=str(site))
    assert "plugged" in info.stdout and "shipped by another package" in info.stdout
    assert "plugged" in run_cli("train", "--help", extra_path=str(site)).stdout  # help comes from the registry
    table = cipher_table(tmp_path / "pairs.tsv", n_train=100, n_val=0, n_test=40)
    trained = run_cli("train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:16", "-e", "text_b=fake-text:16",
                      "--method", "plugged", "--out", str(tmp_path / "model"), "--set", "data.val_split=",
                      "--set", f"store.root={tmp_path / 'store'}", extra_path=str(site))
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "model" / "config.json").read_text())["method"] == "plugged"


def test_help_lists_registered_methods_and_tasks_every_time():
    for _ in range(2):  # the help is filled from the registries each time it is shown, not once
        shown = runner.invoke(app, ["eval", "--help"])
        assert shown.exit_code == 0, shown.output
        assert all(name in shown.output for name in ("zeroshot", "linear-probe", "pair-classification", "max_train"))
        trained = runner.invoke(app, ["train", "--help"])
        assert trained.exit_code == 0 and "lightcrl" in trained.output and "fusemix" in trained.output
