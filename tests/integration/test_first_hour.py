"""A new user's first hour (issue 25, in part): a missing extra fails before any work in one line; saved
artifacts carry no path of this machine; a shown score is the score ranked by; the server refuses unknown
fields instead of dropping them."""
from __future__ import annotations

from click.testing import CliRunner

from helpers import fakes  # noqa: F401  (registers fake-text)
from helpers.tables import cipher_table
from latentfuse.cli import app
from latentfuse.utils import extras


def test_a_missing_extra_is_one_line_before_any_work(tmp_path, monkeypatch):
    table = cipher_table(tmp_path / "pairs.tsv", 40, 10, 10)
    args = ["train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8",
            "--out", str(tmp_path / "model"), "--store", str(tmp_path / "store")]
    monkeypatch.setattr(extras, "installed", lambda module: module != "tensorboard")
    result = CliRunner().invoke(app, [*args, "--set", "train.tensorboard=true"])
    assert result.exit_code != 0
    assert str(result.exception) == ("train.tensorboard needs the [tensorboard] extra: pip install "
                                     "'latentfuse[tensorboard]' (tensorboard not installed)")
    assert not (tmp_path / "model").exists() and not (tmp_path / "store").exists()  # nothing was started
    monkeypatch.setattr(extras, "installed", lambda module: module != "ray")
    result = CliRunner().invoke(app, ["extract", *args[1:7], "--store", str(tmp_path / "store"), "--engine", "ray"])
    assert "store.engine ray needs the [dist] extra: pip install 'latentfuse[dist]'" in str(result.exception)


def test_saved_artifacts_carry_no_path_of_this_machine(tmp_path):
    """config.json, the card and index.json name data by file name and the model relative to the index."""
    import json

    import numpy as np
    from PIL import Image

    from latentfuse.index import open_index

    folder = tmp_path / "photos"
    folder.mkdir()
    rows = ["image,text,split"]
    for i in range(24):
        Image.fromarray(np.full((16, 16, 3), (i * 10, 255 - i * 10, 90), np.uint8)).save(folder / f"{i}.png")
        rows.append(f"{folder / f'{i}.png'},colour {i % 6} square,{'test' if i % 4 == 0 else 'train'}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    store = ["--store", str(tmp_path / "store")]
    trained = CliRunner().invoke(app, ["train", "--data", f"pairs:{tmp_path / 'pairs.csv'}", "-e", "image=pixels:16",
                                       "-e", "text=fake-text:8", "--method", "procrustes", "--out",
                                       str(tmp_path / "model"), "--set", "data.val_split=", *store])
    assert trained.exit_code == 0, (trained.output, trained.exception)
    indexed = CliRunner().invoke(app, ["index", "-m", str(tmp_path / "model"), "--data", f"images:{folder}",
                                       "--out", str(tmp_path / "ix"), *store])
    assert indexed.exit_code == 0, (indexed.output, indexed.exception)
    saved_files = ["config.json", "README.md", "run.yaml", ".latentfuse-output.json"]
    for saved in [tmp_path / "model" / name for name in saved_files] + [tmp_path / "ix" / "index.json"]:
        text = saved.read_text()
        assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text, saved.name
    assert json.loads((tmp_path / "model" / "config.json").read_text())["trained_on"] == "pairs:pairs.csv"
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["model"]["path"] == "../model"
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (tmp_path / "model").rename(moved / "model")
    (tmp_path / "ix").rename(moved / "ix")  # an index and its model move together
    assert len(open_index(moved / "ix").search(text="colour 1 square", k=3)) == 3


def test_shown_scores_are_the_scores_ranked_by(shapes, tmp_path):
    """Under QB-Norm, search --json, /search and /knn-service give scores that never increase down the list,
    with the cosine beside each."""
    import json

    from fastapi.testclient import TestClient

    from helpers.shapes import saved_index
    from latentfuse.index import open_index
    from latentfuse.serve import ServeConfig, create_app

    folder = saved_index(shapes, tmp_path / "ix").directory
    cli = CliRunner().invoke(app, ["search", "-i", str(folder), "a red circle", "-k", "12", "--json",
                                   "--hubness", "dis"])
    assert cli.exit_code == 0, cli.output
    lists = [[(r["score"], r["cosine"]) for r in json.loads(cli.output)["results"]]]
    with TestClient(create_app(open_index(folder), ServeConfig(hubness="dis"))) as client:
        found = client.get("/search", params={"q": "a red circle", "k": 12}).json()["results"]
        lists.append([(r["score"], r["cosine"]) for r in found])
        knn = client.post("/knn-service", json={"text": "a red circle", "modality": "image", "num_images": 12,
                                                "indice_name": folder.name}).json()
        lists.append([(r["similarity"], r["cosine"]) for r in knn])
    for pairs in lists:
        scores = [s for s, _ in pairs]
        assert len(scores) == 12 and scores == sorted(scores, reverse=True), scores
        assert any(abs(s - c) > 1e-3 for s, c in pairs)  # ranked by the normalised score, not the cosine
    assert [round(s, 6) for s, _ in lists[0]] == [s for s, _ in lists[1]]  # the CLI and the server agree


def test_the_server_refuses_unknown_fields_instead_of_dropping_them(shapes, tmp_path):
    from fastapi.testclient import TestClient

    from helpers.shapes import saved_index
    from latentfuse.index import open_index
    from latentfuse.serve import create_app

    folder = saved_index(shapes, tmp_path / "ix").directory
    with TestClient(create_app(open_index(folder))) as client:
        sent = client.post("/search", json={"text": "a dog", "top_k": 2})
        assert sent.status_code == 422
        assert sent.json()["detail"].startswith("unknown field(s) top_k; accepted: text, k, image_base64, filter.")
        form = client.post("/search", data={"text": "a dog", "kk": "2"})
        assert form.status_code == 422 and "unknown field(s) kk; accepted: text, q, k, image, source, split, label" in form.json()["detail"]
        assert len(client.post("/search", json={"text": "a dog", "k": 2}).json()["results"]) == 2


def test_a_table_without_a_split_column_trains_first_time_on_held_out_images(tmp_path):
    """The newcomer's CSV has no split column: images (with all their captions) are cut 80/10/10 by digest, the
    report is on images never trained on, and the cut is the same on every run."""
    import json

    import numpy as np
    from PIL import Image

    from latentfuse.config import RunConfig, load_yaml
    from latentfuse.pipeline import training_source

    rng = np.random.default_rng(0)
    rows = ["image,text"]
    for i in range(60):
        colour = rng.integers(0, 256, 3)
        Image.fromarray(np.full((16, 16, 3), colour, np.uint8)).save(tmp_path / f"p{i}.png")
        words = " ".join(f"{c}{v // 64}" for c, v in zip("rgb", colour))
        rows += [f"p{i}.png,a square {words}", f"p{i}.png,{words} square"]  # two captions per photo
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    args = ["train", "--data", f"pairs:{tmp_path / 'captions.csv'}", "-e", "image=pixels:16", "-e",
            "text=fake-text:32", "--store", str(tmp_path / "store"), "--set", "train.batch_size=16",
            "--set", "method.options={dim: 16, hidden: 32}"]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "model")])
    assert first.exit_code == 0, (first.output, first.exception)
    (report,) = json.loads((tmp_path / "model" / "report.json").read_text())
    config = load_yaml(tmp_path / "model" / "run.yaml", RunConfig)
    assert config.data.source == "pairs:captions.csv"  # by name: no path of this machine
    config.data.source = f"pairs:{tmp_path / 'captions.csv'}"
    source = training_source(config)
    test, train = source.load("test"), source.load("train")
    test_images = {item.id for item in test.items["image"]}
    assert report["split"] == "test" and report["n_images"] == len(test_images) > 0
    assert not test_images & {item.id for item in train.items["image"]}  # no photo on both sides
    assert len(test.items["text"]) == 2 * len(test_images)  # each photo with both its captions
    assert config.data.split_shares == [80.0, 10.0, 10.0] and config.data.split_seed == 0  # recorded
    again = training_source(config)
    assert {item.id for item in again.load("test").items["image"]} == test_images  # the same cut every time


def test_testing_on_the_training_rows_is_refused_unless_asked(tmp_path):
    table = cipher_table(tmp_path / "pairs.tsv", 40, 10, 10)
    args = ["train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8",
            "--method", "procrustes", "--out", str(tmp_path / "model"), "--store", str(tmp_path / "store"),
            "--set", "data.test_split=train"]
    refused = CliRunner().invoke(app, args)
    assert "data.test_split 'train' is the training split" in str(refused.exception)
    assert not (tmp_path / "model").exists()
    allowed = CliRunner().invoke(app, [*args, "--set", "data.test_on_train=true"])
    assert allowed.exit_code == 0, (allowed.output, allowed.exception)


def test_a_task_that_needs_data_asks_for_it(tmp_path):
    """`eval --task zeroshot` on a user's model used to run Fashion-MNIST for minutes unasked."""
    result = CliRunner().invoke(app, ["eval", "--frozen", "fake-text:16", "--task", "zeroshot"])
    assert str(result.exception) == ("task 'zeroshot' needs a dataset: --task zeroshot=SPEC or --data SPEC (its usual "
                                     "one: --task zeroshot=fashion-mnist)")
    result = CliRunner().invoke(app, ["eval", "--frozen", "fake-text:16", "--task", "retrieval"])
    assert str(result.exception) == "task 'retrieval' needs a dataset: --task retrieval=SPEC or --data SPEC"


def test_quiet_hides_the_extraction_progress_bars(tmp_path):
    """`-q` promised "no progress bars", but the store's bars passed disable= and tqdm ignored TQDM_DISABLE."""
    import os

    table = cipher_table(tmp_path / "pairs.tsv", 40, 10, 10)
    args = ["extract", "--data", f"pairs:{table}", "-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8"]
    loud = CliRunner().invoke(app, [*args, "--store", str(tmp_path / "a")])
    assert loud.exit_code == 0 and "fake-text:8 train/text_a" in loud.output
    saved = os.environ.get("TQDM_DISABLE")
    try:
        quiet = CliRunner().invoke(app, ["-q", *args, "--store", str(tmp_path / "b")])
    finally:  # -q sets it for the process; other tests expect their bars
        os.environ.pop("TQDM_DISABLE", None) if saved is None else os.environ.__setitem__("TQDM_DISABLE", saved)
    assert quiet.exit_code == 0 and "fake-text:8" not in quiet.output and "it/s" not in quiet.output
