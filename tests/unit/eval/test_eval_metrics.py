"""Each evaluation metric against a case small enough to check by hand, and against a library reference."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from latentfuse.eval.linear_probe import Labelled, cap, carve, probe
from latentfuse.eval.pair_classification import best_threshold, classification_metrics
from latentfuse.eval.sts import sts_metrics
from latentfuse.eval.tables import flatten, markdown, row_label
from latentfuse.eval.text_pairs import cosine
from latentfuse.eval.zeroshot import topk_accuracy


# ---------------------------------------------------------------- zero-shot top-k

def test_topk_by_hand():
    scores = np.array([
        [0.9, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0],  # true 0: rank 0
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # true 2: rank 2
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # true 6: rank 6 (outside top 5)
        [0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0],  # true 1: tied with class 0 → pessimistically rank 1
    ])
    got = topk_accuracy(scores, np.array([0, 2, 6, 1]))
    assert got == {"top1": 25.0, "top5": 75.0}


def test_tied_and_nan_class_scores_are_misses_not_hits():
    """A model that scores every class alike used to get top-1 = 100; ties now count against the image."""
    flat = np.full((10, 10), 0.3)
    assert topk_accuracy(flat, np.arange(10)) == {"top1": 0.0, "top5": 0.0}
    nan = np.array([[np.nan, 0.1, 0.2], [0.9, 0.1, 0.2]])
    assert topk_accuracy(nan, np.array([0, 0])) == {"top1": 50.0, "top5": 50.0}


def test_topk_caps_k_at_the_number_of_classes():
    scores = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    assert topk_accuracy(scores, np.array([0, 0])) == {"top1": 50.0, "top5": 100.0}


# ---------------------------------------------------------------- STS

def test_sts_equals_scipy_on_known_vectors():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 8)), rng.standard_normal((50, 8))
    gold = rng.uniform(0, 5, 50)
    cos = np.array([x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)])
    got = sts_metrics(a, b, gold)
    assert got["spearman"] == pytest.approx(100 * stats.spearmanr(cos, gold).statistic, abs=1e-9)
    assert got["pearson"] == pytest.approx(100 * stats.pearsonr(cos, gold).statistic, abs=1e-9)


def test_sts_by_hand():
    # cosines 1, 0, -1 (scaled vectors: cosine ignores length); gold ranks them the same way
    a = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    b = np.array([[3.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert np.allclose(cosine(a, b), [1, 0, -1])
    got = sts_metrics(a, b, np.array([5.0, 2.5, 0.0]))
    assert got == {"spearman": pytest.approx(100.0), "pearson": pytest.approx(100.0)}
    reverse = sts_metrics(a, b, np.array([0.0, 1.0, 4.0]))
    assert reverse["spearman"] == pytest.approx(-100.0)


def test_sts_constant_scores_give_none_not_nan():
    a = np.ones((4, 2))
    with pytest.warns(stats.ConstantInputWarning):
        got = sts_metrics(a, a, np.array([1.0, 2.0, 3.0, 4.0]))
    assert got == {"spearman": None, "pearson": None}


# ---------------------------------------------------------------- pair classification

def test_threshold_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0])
    threshold, accuracy = best_threshold(scores, labels)
    # cutting after 0.8 or after 0.6 both give 5/6; ties go to the higher threshold: midpoint of 0.8 and 0.7
    assert threshold == pytest.approx(0.75) and accuracy == pytest.approx(100 * 5 / 6)


def test_threshold_extremes_and_ties():
    assert best_threshold(np.array([0.3, 0.2]), np.array([0, 0])) == (pytest.approx(1.3), 100.0)
    assert best_threshold(np.array([0.3, 0.2]), np.array([1, 1])) == (pytest.approx(0.2), 100.0)
    # equal scores cannot be split: the best is all-positive (2/3), not a cut inside the tie
    threshold, accuracy = best_threshold(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1]))
    assert accuracy == pytest.approx(200 / 3) and threshold == 0.5


def test_threshold_matches_brute_force():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.3 + rng.normal(0, 0.3, 300), 2)  # rounding makes ties
    threshold, accuracy = best_threshold(scores, labels)
    brute = max(100 * np.mean((scores >= t) == labels) for t in np.concatenate([scores, [scores.max() + 1]]))
    assert accuracy == pytest.approx(brute)
    assert 100 * np.mean((scores >= threshold) == labels) == pytest.approx(accuracy)


def test_per_class_metrics_by_hand_and_against_sklearn():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    labels = np.array([1, 1, 0, 1, 0, 0, 1])
    got = classification_metrics(scores, labels, 0.65)  # predicts 1, 1, 1, 0, 0, 0, 0
    # class 1: tp 2 of 3 predicted, 2 of 4 true; class 0: tp 2 of 4 predicted, 2 of 3 true
    assert got["accuracy"] == pytest.approx(100 * 4 / 7)
    assert got["classes"]["1"]["precision"] == pytest.approx(100 * 2 / 3)
    assert got["classes"]["1"]["recall"] == pytest.approx(50.0)
    assert got["classes"]["0"]["precision"] == pytest.approx(50.0)
    assert got["classes"]["0"]["recall"] == pytest.approx(100 * 2 / 3)
    predicted = (scores >= 0.65).astype(int)
    p, r, f, support = precision_recall_fscore_support(labels, predicted, labels=[0, 1], zero_division=0)
    for c in (0, 1):
        m = got["classes"][str(c)]
        assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((100 * p[c], 100 * r[c], 100 * f[c]))
        assert m["support"] == support[c]
    assert got["accuracy"] == pytest.approx(100 * accuracy_score(labels, predicted))
    assert got["f1_macro"] == pytest.approx(100 * f.mean())


def test_per_class_metrics_with_an_empty_prediction_are_zero_not_nan():
    got = classification_metrics(np.array([0.1, 0.2]), np.array([0, 1]), 5.0)
    assert got["classes"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# ---------------------------------------------------------------- linear probe

def _blobs(n, seed, shift=4.0):
    rng = np.random.default_rng(seed)
    y = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, n)]
    centres = {"cat": [shift, 0, 0], "dog": [0, shift, 0], "eel": [0, 0, shift]}
    x = np.array([centres[c] for c in y]) + rng.normal(0, 0.5, (n, 3))
    return Labelled(x.astype(np.float32), y.astype(object))


def test_probe_separates_separable_data_and_reports_the_sweep():
    metrics, sweep = probe(_blobs(200, 0), _blobs(60, 1), _blobs(90, 2), [0.01, 1.0, 10.0])
    assert metrics["accuracy"] == 100.0 and metrics["val_accuracy"] == 100.0
    assert metrics["C"] == 0.01 or sweep["0.01"] < 100.0  # ties go to the smaller C
    assert set(sweep) == {"0.01", "1", "10"}


def test_probe_on_chance_data_is_near_chance():
    rng = np.random.default_rng(3)
    noise = lambda n: Labelled(rng.normal(size=(n, 5)).astype(np.float32),  # noqa: E731
                               np.array(["a", "b"], dtype=object)[rng.integers(0, 2, n)])
    metrics, _ = probe(noise(300), noise(100), noise(400), [1.0])
    assert 35 < metrics["accuracy"] < 65


def test_carve_and_cap_are_deterministic_partitions():
    data = _blobs(100, 0)
    rest, held = carve(data, 0.2, seed=7)
    assert len(held) == 20 and len(rest) == 80
    again_rest, again_held = carve(data, 0.2, seed=7)
    assert np.array_equal(held.x, again_held.x) and np.array_equal(rest.x, again_rest.x)
    all_rows = {tuple(r) for r in np.vstack([rest.x, held.x]).round(5)}
    assert all_rows == {tuple(r) for r in data.x.round(5)}
    assert len(cap(data, 30, 0)) == 30 and cap(data, 0, 0) is data and cap(data, 500, 0) is data


# ---------------------------------------------------------------- tables

def test_tables_flatten_nested_metrics_and_label_frozen_rows():
    report = {"task": "pair-classification", "dataset": "mrpc", "split": "test", "method": "identity",
              "encoders": {"text": "minilm-l6"}, "n_pairs": 3,
              "metrics": {"accuracy": 71.88, "threshold": 0.6874, "classes": {"0": {"f1": 49.3, "support": 578}}}}
    assert [k for k, _ in flatten(report["metrics"])] == ["acc", "thr", "class 0 F1"]  # counts stay in JSON
    assert row_label(report) == "frozen minilm-l6"
    text = markdown([report, {**report, "method": "fusemix"}])
    assert "| method | acc | thr | class 0 F1 |" in text
    assert "| frozen minilm-l6 | 71.9 | 0.687 | 49.3 |" in text
    assert "| fusemix |" in text and "pair-classification · mrpc · test (pairs=3)" in text
