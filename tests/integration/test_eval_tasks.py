"""Every evaluation task end to end on tiny data with fake encoders whose answers are known.

``fake-rgb`` embeds an image as its mean colour (r, g, b); ``fake-keywords:red,green,blue`` embeds a text as
the counts of those words. A frozen model over the two is a joint space by construction: a red image and
"a photo of a red." both point along the first axis — so zero-shot answers are known image by image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from helpers import fakes
from helpers.fakes import FakeRGBEncoder, recorded_bad
from latentfuse.config import StoreConfig
from latentfuse.errors import ConfigError, DataError
from latentfuse.eval import frozen_model, task
from latentfuse.eval.zeroshot import TEMPLATES
from latentfuse.eval.report import split_report
from latentfuse.pipeline import split_features
from helpers.tables import colour_folder, write_pairs  # noqa: F401
from helpers.tables import COLOURS



def rgb_model():
    return frozen_model({"image": "fake-rgb", "text": "fake-keywords:red,green,blue"})


@pytest.fixture
def store(tmp_path) -> StoreConfig:
    return StoreConfig(root=str(tmp_path / "store"))


# ---------------------------------------------------------------- zero-shot

def test_zeroshot_answers_are_the_known_ones(tmp_path, store):
    # 7 test images, one green image filed under "red": exactly 6 are classified right
    folder = colour_folder(tmp_path / "colours", {"test": {"red": ["red", "red", "green"],
                                                           "green": ["green", "green"], "blue": ["blue", "blue"]},
                                                  "train": {"red": ["red"], "green": ["green"], "blue": ["blue"]}})
    report = task("zeroshot").run(rgb_model(), f"imagefolder:{folder}", None, store, progress=False)
    assert report["task"] == "zeroshot" and report["split"] == "test" and report["method"] == "identity"
    assert report["dataset"] == f"imagefolder:{folder.resolve()}"
    assert report["n_images"] == 7 and report["n_classes"] == 3 and report["n_templates"] == len(TEMPLATES)
    assert report["metrics"] == {"top1": pytest.approx(100 * 6 / 7), "top5": 100.0}
    assert report["encoders"] == {"image": "fake-rgb", "text": "fake-keywords:red,green,blue"}


def test_zeroshot_prompts_use_the_templates_and_folder_names(tmp_path, store):
    # one custom template, no split folders: the class folder names fill the template, split is "all"
    folder = colour_folder(tmp_path / "c", {"": {"red": ["red"], "blue": ["blue"]}})
    report = task("zeroshot").run(rgb_model(), f"imagefolder:{folder}", None, store,
                                  {"templates": ["a photo of a {}."]}, progress=False)
    assert report["split"] == "all" and report["metrics"]["top1"] == 100.0
    with pytest.raises(ConfigError, match="exactly one"):
        task("zeroshot").run(rgb_model(), f"imagefolder:{folder}", None, store, {"templates": ["no slot"]},
                             progress=False)


def test_zeroshot_on_a_frozen_model_with_two_widths_says_there_is_no_joint_space(tmp_path, store):
    folder = colour_folder(tmp_path / "c", {"": {"red": ["red"], "blue": ["blue"]}})
    model = frozen_model(["fake-rgb", "fake-text:16"])
    assert model.dim == 0 and set(model.sides) == {"image", "text"}
    with pytest.raises(ConfigError, match="widths differ"):
        task("zeroshot").run(model, f"imagefolder:{folder}", None, store, progress=False)


def test_unreadable_image_is_named_at_encode_time_or_skipped(tmp_path, store):
    folder = colour_folder(tmp_path / "c", {"": {"red": ["red", "red"], "blue": ["blue"]}})
    (folder / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg.*--skip-bad"):
        task("zeroshot").run(rgb_model(), f"imagefolder:{folder}", None, store, progress=False)
    report = task("zeroshot").run(rgb_model(), f"imagefolder:{folder}", None, store, skip_bad=True,
                                  progress=False)
    assert report["n_images"] == 3 and report["metrics"]["top1"] == 100.0
    assert len(recorded_bad(Path(store.root))) == 1


# ---------------------------------------------------------------- linear probe

def _probe_folder(tmp_path: Path, splits=("train", "val", "test"), per_class=(12, 4, 5)) -> Path:
    layout = {split: {c: [c] * n for c in COLOURS} for split, n in zip(splits, per_class)}
    return colour_folder(tmp_path / "probe", layout)


def test_linear_probe_separates_colours(tmp_path, store):
    folder = _probe_folder(tmp_path)
    report = task("linear-probe").run(rgb_model(), f"imagefolder:{folder}", None, store,
                                      {"cs": [1.0, 100.0]}, progress=False)
    assert report["metrics"]["accuracy"] == 100.0 and report["metrics"]["val_accuracy"] == 100.0
    assert (report["n_train"], report["n_val"], report["n_test"], report["n_classes"]) == (36, 12, 15, 3)
    assert report["protocol"] == "train / val / test splits" and set(report["val_accuracy_by_C"]) == {"1", "100"}


def test_linear_probe_carves_missing_splits_deterministically(tmp_path, store):
    no_val = _probe_folder(tmp_path / "a", ("train", "test"), (10, 5))
    report = task("linear-probe").run(rgb_model(), f"imagefolder:{no_val}", None, store, progress=False)
    assert (report["n_train"], report["n_val"]) == (24, 6) and "val = 0.2 of the train sample" in report["protocol"]
    flat = colour_folder(tmp_path / "b", {"": {c: [c] * 10 for c in COLOURS}})
    first = task("linear-probe").run(rgb_model(), f"imagefolder:{flat}", None, store, progress=False)
    again = task("linear-probe").run(rgb_model(), f"imagefolder:{flat}", None, store, progress=False)
    assert (first["n_train"], first["n_val"], first["n_test"]) == (19, 5, 6) and first["split"] == "all"
    assert first["metrics"] == again["metrics"] and "carved from split 'all'" in first["protocol"]


def test_linear_probe_sample_reuses_the_full_splits_cache(tmp_path, store):
    folder = _probe_folder(tmp_path)
    model = rgb_model()
    task("linear-probe").run(model, f"imagefolder:{folder}", None, store, progress=False)  # caches all splits
    FakeRGBEncoder.calls.clear()
    report = task("linear-probe").run(model, f"imagefolder:{folder}", None, store,
                                      {"max_train": 9, "max_val": 6}, progress=False)
    assert FakeRGBEncoder.calls == [], "the sample was re-encoded although the full split is cached"
    assert (report["n_train"], report["n_val"]) == (9, 6)


def test_linear_probe_needs_labels(tmp_path, store):
    table = tmp_path / "pairs.tsv"
    Image.new("RGB", (4, 4), COLOURS["red"]).save(tmp_path / "r.png")
    table.write_text("image\ttext\tsplit\nr.png\ta red thing\ttrain\nr.png\tred\ttest\n")
    with pytest.raises(DataError, match="without a label"):
        task("linear-probe").run(rgb_model(), f"pairs:{table}", None, store, progress=False)


# ---------------------------------------------------------------- STS and pair classification



def _sentences(rng, n):
    vocab = [f"w{i}" for i in range(12)]
    return [" ".join(rng.choice(vocab, 3)) for _ in range(n)]


def stored_cosine(a: str, b: str) -> float:
    """Cosine of the fake encoder's vectors as the feature store keeps them (float32 → float16)."""
    x, y = (fakes.fake_embed(t).astype(np.float32).astype(np.float16).astype(np.float64) for t in (a, b))
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_sts_equals_scipy_on_the_fake_encoders_vectors(tmp_path, store, monkeypatch):
    rng = np.random.default_rng(0)
    first, second = _sentences(rng, 40), _sentences(rng, 40)
    gold = rng.uniform(0, 5, 40).round(2)
    table = write_pairs(tmp_path / "sts.tsv", [(a, b, g, "test") for a, b, g in zip(first, second, gold)], "score")
    model = frozen_model("fake-text:16")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    report = task("sts").run(model, f"sts:{table}", None, store, progress=False)
    cos = [stored_cosine(a, b) for a, b in zip(first, second)]
    assert report["metrics"]["spearman"] == pytest.approx(100 * stats.spearmanr(cos, gold).statistic, abs=1e-4)
    assert report["metrics"]["pearson"] == pytest.approx(100 * stats.pearsonr(cos, gold).statistic, abs=1e-4)
    assert report["n_pairs"] == 40 and report["sides"] == ["text", "text"]
    calls = fakes.encoder_calls(log)
    task("sts").run(model, f"sts:{table}", None, store, progress=False)
    assert fakes.encoder_calls(log) == calls, "second STS run re-encoded cached sentences"


def test_sts_side_option(tmp_path, store):
    table = write_pairs(tmp_path / "s.tsv", [("w1 w2", "w1 w3", 4, "test"), ("w4", "w5", 0, "test"),
                                             ("w6 w7", "w6", 3, "test")], "score")
    with pytest.raises(ConfigError, match="cross needs a model with two text sides"):
        task("sts").run(frozen_model("fake-text:16"), f"sts:{table}", None, store, {"side": "cross"},
                        progress=False)
    two = frozen_model(["fake-text:16", "fake-text:8"])
    assert list(two.sides) == ["text_a", "text_b"]
    with pytest.raises(ConfigError, match="widths differ"):
        task("sts").run(two, f"sts:{table}", None, store, {"side": "cross"}, progress=False)
    report = task("sts").run(two, f"sts:{table}", None, store, {"side": "text_b"}, progress=False)
    assert report["sides"] == ["text_b", "text_b"]
    with pytest.raises(ConfigError, match="unknown key"):
        task("sts").run(two, f"sts:{table}", None, store, {"sid": "x"}, progress=False)


def test_pair_classification_matches_a_brute_force_reference(tmp_path, store):
    rng = np.random.default_rng(2)
    rows = []
    for split, n in (("train", 60), ("test", 40)):
        for a, b in zip(_sentences(rng, n), _sentences(rng, n)):
            label = int(len(set(a.split()) & set(b.split())) > 0)  # word overlap ≈ paraphrase for the fake
            rows.append((a, b, label if rng.random() > 0.15 else 1 - label, split))
    table = write_pairs(tmp_path / "pairs.tsv", rows, "label")
    report = task("pair-classification").run(frozen_model("fake-text:16"), f"pair-labels:{table}", None, store,
                                             progress=False)
    assert report["fit_split"] == "train" and report["n_pairs"] == 40 and report["n_fit_pairs"] == 60
    cos = stored_cosine
    fit = [(cos(a, b), lab) for a, b, lab, s in rows if s == "train"]
    test = [(cos(a, b), lab) for a, b, lab, s in rows if s == "test"]
    best = max(np.mean([(s >= t) == lab for s, lab in fit]) for t, _ in fit + [(2.0, 0)])
    m = report["metrics"]
    assert m["fit_accuracy"] == pytest.approx(100 * best, abs=1e-6)
    predicted = np.array([s >= m["threshold"] for s, _ in test])
    truth = np.array([lab for _, lab in test])
    assert m["accuracy"] == pytest.approx(100 * np.mean(predicted == truth))
    from sklearn.metrics import precision_recall_fscore_support
    p, _, f, _ = precision_recall_fscore_support(truth, predicted.astype(int), labels=[0, 1], zero_division=0)
    for c in (0, 1):
        assert m["classes"][str(c)]["f1"] == pytest.approx(100 * f[c])
        assert m["classes"][str(c)]["precision"] == pytest.approx(100 * p[c])


def test_pair_classification_needs_a_fit_split(tmp_path, store):
    table = write_pairs(tmp_path / "p.tsv", [("w1", "w1", 1, "test"), ("w2", "w3", 0, "test")], "label")
    with pytest.raises(ConfigError, match="fit the threshold"):
        task("pair-classification").run(frozen_model("fake-text:16"), f"pair-labels:{table}", None, store,
                                        progress=False)


# ---------------------------------------------------------------- retrieval and the registry

def test_retrieval_task_equals_the_runs_test_report(store):
    source = fakes.SyntheticSource(30)
    model = frozen_model({"text_a": "fake-text:16", "text_b": "fake-text:16"})
    feats = split_features(source, "test", {s: model.encoder(s) for s in model.sides}, store, progress=False)
    want = split_report(model, feats, source.spec, "test")
    from latentfuse.eval.retrieval_task import Retrieval
    from latentfuse.eval.tasks import Context
    got = Retrieval().evaluate(model, source, "test", None, Context(store, progress=False))
    assert got["metrics"] == want["metrics"] and got["text_a2text_b"] == want["text_a2text_b"]
    assert got["n_text_as"] == 30 and got["encoders"] == {"text_a": "fake-text:16", "text_b": "fake-text:16"}


def test_retrieval_needs_a_dataset(store):
    with pytest.raises(ConfigError, match="needs a dataset"):
        task("retrieval").run(frozen_model("fake-text:16"), None, None, store)


def test_every_task_has_a_documented_default_or_says_it_needs_data():
    from latentfuse.eval import TASKS
    assert TASKS.names() == ["classification", "linear-probe", "pair-classification", "retrieval", "robustness",
                            "sts", "zeroshot"]
    for name in TASKS.names():
        evaluator = task(name)
        assert evaluator.summary and evaluator.name == name
        for option, _, doc in evaluator.describe_options():
            assert doc, f"{name}.{option} has no docstring"


def test_identity_model_saves_and_loads(tmp_path):
    model = frozen_model("fake-text:16")
    model.save(tmp_path / "m")
    from latentfuse import load
    again = load(tmp_path / "m")
    x = again.encode("text", ["w1 w2"])
    assert again.method.name == "identity" and np.allclose(np.linalg.norm(x), 1.0, atol=1e-5)
    assert np.allclose(x, model.encode("text", ["w1 w2"]))


def test_split_default_is_test_or_the_only_split(tmp_path, store):
    table = write_pairs(tmp_path / "s.tsv", [("w1 w2", "w1", 1, "train"), ("w3", "w4", 0, "train"),
                                             ("w5", "w5 w6", 2, "train")], "score")
    two_splits = write_pairs(tmp_path / "t.tsv", [("a", "b", 1, "x"), ("c", "d", 2, "y")], "score")
    with pytest.raises(DataError, match="no 'test' split"):
        task("sts").run(frozen_model("fake-text:16"), f"sts:{two_splits}", None, store, progress=False)
    assert task("sts").run(frozen_model("fake-text:16"), f"sts:{table}", None, store,
                           progress=False)["split"] == "train"
