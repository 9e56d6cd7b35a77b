"""One surface (issue 24): every command is generated from its schema and speaks one vocabulary; recipes are
data; the runtime default is one; robustness scores like retrieval; ``latentfuse.fit`` trains from Python."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.cli.schema import CONFIG_FLAG, SET_FLAG, parse_configs

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src" / "latentfuse"


def commands() -> dict[str, click.Command]:
    return dict(app.commands)


# ---------------------------------------------------------------- one vocabulary

def test_every_command_has_help_set_and_config():
    for name, command in commands().items():
        shown = runner.invoke(app, [name, "--help"])
        assert shown.exit_code == 0, (name, shown.output)
        flags = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {*SET_FLAG.names, *CONFIG_FLAG.names} <= flags, name
        assert "--set" in shown.output and "--config" in shown.output, name


def test_a_flag_means_the_same_in_every_command():
    """Each spelling (-m, --model, --backend, ...) names one canonical option everywhere, never two in a command."""
    canonical: dict[str, tuple[str, str]] = {}
    for name, command in commands().items():
        seen: set[str] = set()
        for param in command.params:
            opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
            if not opts:
                continue
            long = next((o for o in opts if o.startswith("--")), opts[0])
            for spelling in opts:
                assert spelling not in seen, f"{name}: {spelling} declared twice"
                seen.add(spelling)
                first = canonical.setdefault(spelling, (long, name))
                assert first[0] == long, f"{spelling} is {first[0]} in {first[1]} but {long} in {name}"
    assert canonical["-m"][0] == "--model" and canonical["-k"][0] == "--top-k" and canonical["-t"][0] == "--task"
    assert "--encoder-backend" not in canonical and "--opt" not in canonical
    assert canonical["--index-kind"][0] == "--index-kind"


def test_split_is_a_list_that_accepts_all_everywhere():
    for name in ("extract", "eval", "index"):
        option = next(p for p in commands()[name].params if "--split" in getattr(p, "opts", []))
        assert option.multiple, name
    cfg = parse_configs(app, "eval", ["-m", "x", "--split", "val,test", "--split", "train"])[0]
    assert cfg.split == ["val", "test", "train"]
    assert parse_configs(app, "extract", [])[0].split == ["all"]


def test_version_and_cli_import_without_torch():
    version = subprocess.run([sys.executable, "-m", "latentfuse", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"latentfuse \d+\.\d+\.\d+\s*", version.stdout)
    probe = subprocess.run([sys.executable, "-c", "import latentfuse.cli, sys; assert 'torch' not in sys.modules"],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    helped = subprocess.run([sys.executable, "-c", "import sys; from latentfuse.cli import main; "
                             "sys.argv = ['latentfuse', '--help']\ntry: main()\nexcept SystemExit: pass\n"
                             "assert 'torch' not in sys.modules"], capture_output=True, text=True)
    assert helped.returncode == 0 and "Commands:" in helped.stdout, helped.stderr


def test_completion_script_is_printed():
    result = runner.invoke(app, ["completion", "bash"])
    assert result.exit_code == 0 and "_LATENTFUSE_COMPLETE" in result.output


def test_flags_set_and_config_file_layer_in_order(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"modle": "x"}))
    with pytest.raises(Exception, match=r"search.yaml: unknown key\(s\) modle; valid keys: .*model"):
        parse_configs(app, "search", ["--config", str(config)])
    config.write_text(yaml.safe_dump({"model": "from-file", "top_k": 3, "index": "ix"}))
    cfg = parse_configs(app, "search", ["--config", str(config), "--set", "top_k=4"])[0]
    assert (cfg.model, cfg.top_k, cfg.index) == ("from-file", 4, "ix")
    cfg = parse_configs(app, "search", ["--config", str(config), "--set", "top_k=4", "-k", "5", "-m", "flag"])[0]
    assert (cfg.model, cfg.top_k) == ("flag", 5)  # flags win over --set, which wins over the file
    with pytest.raises(Exception, match="--top-k: expected a number >= 1 and <= 10000, got 0"):
        parse_configs(app, "search", ["-i", "ix", "-k", "0"])
    with pytest.raises(Exception, match="missing --index"):
        parse_configs(app, "search", ["a query"])


def test_no_config_field_is_declared_in_the_cli_and_choices_are_written_once():
    declared = [f"{p.name}:{n}" for p in (SRC / "cli").glob("*.py") if p.name != "schema.py"
                for n, line in enumerate(p.read_text().splitlines(), 1)
                if "click.Option(" in line or ("@click.option(" in line and "--verbose" not in line
                                               and "--quiet" not in line)]
    assert declared == []  # every option comes from a schema field (global -v/-q aside)
    spelled = [p for p in SRC.rglob("*.py") if re.search(r"\(\s*\"auto\",\s*\"torch\",\s*\"onnx\"", p.read_text())
               or re.search(r"\(\s*\"fp32\",\s*\"bf16\",\s*\"fp16\"\s*\)", p.read_text())
               or re.search(r"\(\s*\"none\",\s*\"is\",\s*\"dis\"\s*\)", p.read_text())]
    assert [p.name for p in spelled] == ["choices.py"]
    offenders = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if "methods" not in p.parts
                 for n, line in enumerate(p.read_text().splitlines(), 1) if 'task == "classification"' in line]
    assert offenders == []


# ---------------------------------------------------------------- recipes

def test_every_shipped_recipe_loads_and_is_listed():
    from latentfuse.config import RunConfig
    from latentfuse.config.recipes import describe_recipes, load_recipe, recipe_names

    names = recipe_names()
    assert {"default", "demo", "flickr8k", "bench-classic", "fusemix-paper", "distill", "dime-paper"} <= set(names)
    for name, command, description in describe_recipes():
        assert description, name
        load_recipe(name)
    listed = runner.invoke(app, ["recipes"])
    assert listed.exit_code == 0 and all(name in listed.output for name in names)
    default = load_recipe("default", RunConfig)
    assert parse_configs(app, "train", [])[0] == default  # `latentfuse train` starts from the default recipe
    demo = load_recipe("demo", RunConfig)
    assert demo.encoders == default.encoders and demo.hubness == default.hubness  # extends the default
    assert load_recipe("bench-classic", RunConfig).encoders == {"image": "efficientnet-lite0", "text": "minilm-l6"}
    assert parse_configs(app, "train", ["--recipe", "fusemix-paper"])[0].method.options == {"preset": "paper"}


def test_the_wheel_carries_every_recipe():
    import fnmatch
    import tomllib

    data = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    recipes = sorted(p.relative_to(SRC).as_posix() for p in (SRC / "recipes").iterdir())
    assert recipes and all(any(fnmatch.fnmatch(r, g) for g in data["latentfuse"]) for r in recipes), recipes


def test_a_recipe_typo_and_a_recipe_of_another_command_are_clear():
    from latentfuse.config import RunConfig
    from latentfuse.config.recipes import load_recipe
    from latentfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown recipe 'defualt'. Did you mean 'default'"):
        load_recipe("defualt")
    with pytest.raises(ConfigError, match="recipe 'distill' is a distill recipe, not a train one"):
        load_recipe("distill", RunConfig)


def test_run_takes_a_recipe_name_or_a_file_laid_over_the_default(tmp_path):
    from latentfuse.config import RunConfig
    from latentfuse.config.recipes import load_recipe

    file = tmp_path / "mine.yaml"
    file.write_text(yaml.safe_dump({"train": {"epochs": 3}, "encoders": {"text_a": "x", "text_b": "y"}}))
    cfg = parse_configs(app, "run", [str(file)])[0]
    default = load_recipe("default", RunConfig)
    assert cfg.train.epochs == 3 and cfg.train.lr == default.train.lr and cfg.hubness == default.hubness
    assert cfg.encoders == {"text_a": "x", "text_b": "y"}  # a mapping is replaced whole, not merged
    assert parse_configs(app, "run", ["flickr8k"])[0].out == "runs/flickr8k"


# ---------------------------------------------------------------- one runtime default, one retrieval score

def test_load_from_pretrained_and_open_index_pick_the_same_backend(shapes, tmp_path):
    from helpers.shapes import saved_index

    import latentfuse
    from latentfuse.model import JointModel

    index = saved_index(shapes, tmp_path / "ix")
    picked = {latentfuse.load(shapes["model"]).runtime, JointModel.from_pretrained(shapes["model"]).runtime,
              JointModel.load(shapes["model"]).runtime, latentfuse.open_index(index.directory).model.runtime}
    assert len(picked) == 1, picked
    from latentfuse.utils.runtime import runtime

    assert picked == {runtime()}  # the default of every entry point: auto device, fp32, auto backend


def test_robustness_clean_row_equals_retrieval_under_the_models_qb_norm(shapes, tmp_path):
    from latentfuse.config import HubnessConfig, StoreConfig
    from latentfuse.eval.tasks import task
    from latentfuse.model import JointModel

    model = JointModel.load(shapes["model"], backend="torch")
    model.hubness = HubnessConfig(norm="dis", beta=14.0, bank_size=200, min_bank=16)  # the shipped default's norm
    store, spec = StoreConfig(root=str(shapes["store"])), f"pairs:{shapes['pairs']}"
    retrieval = task("retrieval").run(model, spec, None, store, progress=False)
    assert retrieval["hubness"]["norm"] == "dis"
    robust = task("robustness").run(model, spec, None, store, {"corruptions": ["feature-noise"], "severities": [1],
                                                                  "seeds": [0]}, progress=False)
    clean = robust["metrics"]["clean"]
    assert clean == {f"{d} {k}": retrieval["metrics"][d][k] for d in ("t2i", "i2t") for k in ("R@1", "R@5")}
    assert robust["hubness"] == retrieval["hubness"]
    plain = task("robustness").run(model, spec, None, store, {"corruptions": ["feature-noise"], "severities": [1],
                                                                  "seeds": [0], "hubness": "none"}, progress=False)
    off = task("retrieval").run(model, spec, None, store, {"hubness": "none"}, progress=False)
    assert plain["metrics"]["clean"] == {f"{d} {k}": off["metrics"][d][k] for d in ("t2i", "i2t") for k in ("R@1", "R@5")}


def test_eval_and_the_index_rank_with_one_retriever(shapes, tmp_path):
    """The model's Retriever (its query bank's QB-Norm) ranks the index's items as evaluation ranks them."""
    from helpers.shapes import saved_index

    from latentfuse.config import RuntimeConfig
    from latentfuse.index import open_index
    from latentfuse.metrics import best_ranks

    opened = open_index(saved_index(shapes, tmp_path / "ix").directory, runtime=RuntimeConfig(backend="torch"))
    opened.hubness = "dis"
    queries = opened.model.encode_text(["a red circle", "a blue square", "one green circle on white"])
    retriever = opened.model.retriever("text", opened.embeddings, "dis")
    hits = opened.search_vectors(queries, 6, "text")
    _, _, rows = retriever.top_k(queries, 6)
    assert [[h.row for h in per_query] for per_query in hits] == rows.tolist()
    ranked = retriever.ranked(queries)
    assert not np.allclose(ranked.numpy(), queries @ opened.embeddings.T)  # the norm really rescored
    first = [[int(r[0])] for r in rows]  # each query's top hit is rank 0 in the metrics' eyes too
    assert best_ranks(queries, opened.embeddings, first, norm=retriever.norm).tolist() == [0, 0, 0]


# ---------------------------------------------------------------- latentfuse.fit

def _pictures(n: int = 160):
    """Solid-colour images (arrays) captioned by the level of each channel ("red2 green0 blue3"): every image is
    its own colour, the words are shared, so a test image's caption is learnable from the training ones."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(n, 3))
    rows = []
    for colour in colours:
        image = np.full((32, 32, 3), colour, dtype=np.uint8)
        words = " ".join(f"{name}{level // 64}" for name, level in zip(("red", "green", "blue"), colour))
        rows.append((image, f"a square of {words}"))
    return rows


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    import latentfuse

    root = tmp_path_factory.mktemp("fit")
    store = str(root / "store")
    common = {"encoders": {"image": "pixels:16", "text": "fake-text:64"},
              "config": {"store": {"root": store}, "hubness": {"bank_size": 50, "min_bank": 16},
                         "method": {"options": {"dim": 32, "hidden": 64, "n_blocks": 1, "dropout": 0.0,
                                                "input_dropout": 0.0}},
                         "train": {"batch_size": 16, "lr": 3e-3, "threads": 1}},
              "epochs": 40, "progress": False}
    from helpers import fakes  # noqa: F401  (fake-text: a bag of hashed words)

    rows = _pictures()
    from_list = latentfuse.fit(rows, out=root / "from-list", **common)
    import pandas as pd

    frame = pd.DataFrame([{"image": image, "text": text} for image, text in rows])
    from_frame = latentfuse.fit(frame, out=root / "from-frame", **common)
    return root, from_list, from_frame


def test_fit_trains_from_a_python_list(fitted):
    root, model, _ = fitted
    (report,) = json.loads((root / "from-list" / "report.json").read_text())
    assert report["split"] == "test" and report["method"] == "fusemix"
    assert report["n_images"] >= 10 and report["t2i"]["R@1"] > 3 * 100 / report["n_images"]  # 3× chance
    assert model.query_bank and (root / "from-list" / "README.md").exists()
    texts = model.encode_text(["a square of red1 green2 blue3"])
    assert texts.shape == (1, 32)


def test_fit_from_a_dataframe_is_the_same_table_and_the_same_run(fitted):
    root, from_list, from_frame = fitted
    from latentfuse.job import source_spec

    tables = Path(root / "store").parent / "tables"
    spec = source_spec(_pictures(), tables)[0]
    assert from_list.config()["trained_on"] == from_frame.config()["trained_on"] == "pairs:pairs.csv"
    assert len(list(tables.iterdir())) == 1 and spec.startswith(f"pairs:{tables}")  # one table, by content
    a = json.loads((root / "from-list" / "report.json").read_text())[0]
    b = json.loads((root / "from-frame" / "report.json").read_text())[0]
    assert a["t2i"] == b["t2i"] and a["i2t"] == b["i2t"]


def test_fit_from_a_hugging_face_dataset_is_the_same_table(fitted, tmp_path):
    """A ``datasets.Dataset`` (what ``load_dataset`` returns) with image and text columns: the same rows give
    the same content-named table as the list did, so the same run."""
    import datasets
    from PIL import Image

    from latentfuse.job import source_spec

    root, from_list, _ = fitted
    rows = _pictures()
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    table = datasets.Dataset.from_dict({"image": [Image.fromarray(image) for image, _ in rows],
                                        "text": [text for _, text in rows]}, features=features)
    spec, splits = source_spec(table, Path(root / "store").parent / "tables")
    assert spec == source_spec(rows, Path(root / "store").parent / "tables")[0]
    assert splits == {""}  # no split named: training cuts the images (data.heldout)
    nested = [{"image": image.tolist(), "text": text} for image, text in rows]  # a table's int lists
    assert source_spec(nested, Path(root / "store").parent / "tables")[0] == spec


def test_fit_refuses_rows_it_cannot_use(tmp_path):
    import latentfuse
    from latentfuse.errors import DataError

    with pytest.raises(DataError, match="row 1: expected \\(image, text\\)"):
        latentfuse.fit([("only one",)], out=tmp_path / "m")
    with pytest.raises(DataError, match="row 1: image file nowhere.jpg not found"):
        latentfuse.fit([("nowhere.jpg", "a caption")], out=tmp_path / "m")
    with pytest.raises(DataError, match="no 'test' rows"):
        latentfuse.fit([(np.zeros((8, 8, 3), np.uint8), "x", "train")], out=tmp_path / "m",
                       config={"store": {"root": str(tmp_path / "s")}})
    with pytest.raises(DataError, match="some rows name a split and some do not"):
        latentfuse.fit([(np.zeros((8, 8, 3), np.uint8), "x", "train"), (np.ones((8, 8, 3), np.uint8), "y")],
                       out=tmp_path / "m", config={"store": {"root": str(tmp_path / "s")}})
    with pytest.raises(DataError, match=r"row 1: .*expected a uint8 array, got float32 \(scale floats to 0..255"):
        latentfuse.fit([(np.full((8, 8, 3), 0.5, np.float32), "x")], out=tmp_path / "m")  # 0..1 or 0..255: no guess
    rows = [(np.full((4, 4), k, np.uint8), f"a {k}", "train") for k in range(1)] + [
        (np.full((4, 4), 9, np.int64), "nine", "test"), (np.full((4, 4), 8, np.uint8), "eight", "test")]
    with pytest.raises(DataError, match="^training needs at least 2 rows; the training data has 1$"):
        latentfuse.fit(rows, out=tmp_path / "m", encoders={"image": "pixels:16", "text": "fake-text:8"},
                       config={"store": {"root": str(tmp_path / "s")}}, method="fusemix")
    one = [(np.full((8, 8, 3), i, np.uint8), f"grey {i}") for i in range(3)]  # too few images to cut
    with pytest.raises(DataError, match=r"cutting its 3 images 80/10/10 % left no (val|test) image"):
        latentfuse.fit(one, out=tmp_path / "m", encoders={"image": "pixels:16", "text": "fake-text:8"},
                       config={"store": {"root": str(tmp_path / "s")}})
