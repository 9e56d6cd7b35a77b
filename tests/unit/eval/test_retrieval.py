"""Chunked retrieval metrics against a plain full-matrix reference."""
from __future__ import annotations

import numpy as np
import torch

from hypothesis import given, settings
from hypothesis import strategies as st

from latentfuse.eval.retrieval import retrieval_metrics
from latentfuse.metrics import Retriever


def reference(emb_img: np.ndarray, emb_txt: np.ndarray, txt_to_img: np.ndarray) -> dict:
    """Textbook version: full similarity matrix, argsort, rank of the first correct item."""
    sims = emb_img @ emb_txt.T
    i2t_ranks = []
    for i in range(len(emb_img)):
        order = np.argsort(-sims[i])
        i2t_ranks.append(min(np.where(order == j)[0][0] for j in np.where(txt_to_img == i)[0]))
    t2i_ranks = [np.where(np.argsort(-sims[:, j]) == txt_to_img[j])[0][0] for j in range(len(emb_txt))]
    out = {}
    for name, ranks in (("i2t", np.array(i2t_ranks)), ("t2i", np.array(t2i_ranks))):
        out[name] = {f"R@{k}": 100 * np.mean(ranks < k) for k in (1, 5, 10)}
        out[name]["medr"] = np.median(ranks + 1)
    return out


def _normed(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_chunked_matches_full_matrix_reference_with_five_captions_per_image():
    rng = np.random.default_rng(0)
    n_img, per = 60, 5
    txt_to_img = np.repeat(np.arange(n_img), per)
    img = _normed(rng, n_img, 8)
    txt = _normed(rng, n_img * per, 8) + 0.7 * img[txt_to_img]  # some signal, so recalls are not ~0
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    pairs = np.stack([txt_to_img, np.arange(len(txt))], axis=1)
    got = retrieval_metrics(torch.from_numpy(img), torch.from_numpy(txt), pairs, chunk=7)
    want = reference(img, txt, txt_to_img)
    for ours, theirs in (("a2b", "i2t"), ("b2a", "t2i")):
        for key in ("R@1", "R@5", "R@10", "medr"):
            assert abs(got[ours][key] - want[theirs][key]) < 1e-9, (ours, key)
    assert 0 < got["b2a"]["R@1"] < 100  # the case is not degenerate


def test_perfect_and_hand_computed_cases():
    eye = torch.eye(4)
    perfect = retrieval_metrics(eye, eye, np.array([[i, i] for i in range(4)]))
    assert perfect["a2b"] == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "medr": 1.0}
    # b-query 0 scores a0 at .5 but a1 at .866: its match is ranked 2nd; every other query is right
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.5, 0.866], [0.0, 1.0]])
    m = retrieval_metrics(a, b, np.array([[0, 0], [1, 1]]))
    assert m["a2b"]["R@1"] == 100.0
    assert m["b2a"]["R@1"] == 50.0 and m["b2a"]["R@5"] == 100.0 and m["b2a"]["medr"] == 1.5


def test_tied_scores_rank_pessimistically():
    """20 identical photos with 20 different captions used to read R@1 = R@5 = R@10 = 100 (chance: 5 %)."""
    photos = torch.nn.functional.normalize(torch.ones(20, 8), dim=1)
    captions = torch.nn.functional.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    pairs = np.array([[i, i] for i in range(20)])
    got = retrieval_metrics(photos, captions, pairs)
    assert got["b2a"] == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "medr": 20.0}  # every photo ties with the right one
    # two relevant items tied at the top: neither pushes the other down; an irrelevant tie does
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0]])
    both = retrieval_metrics(a, b, np.array([[0, 0], [1, 0]]))
    assert both["b2a"]["R@1"] == 0.0 and both["b2a"]["medr"] == 2.0  # a2 ties with them: ranked above


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_shuffling_tied_scores_never_beats_the_pessimistic_recall(n, levels, seed):
    """Any order of tied scores gives a rank at least the pessimistic one: reported recall is a lower bound."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size=(n, n)).astype(np.float32)  # few distinct values: many ties
    got = Retriever(torch.eye(n)).best_ranks(torch.from_numpy(values), [[i] for i in range(n)])
    for _ in range(5):
        order = rng.permutation(n)
        for q in range(n):  # the textbook rank under one arbitrary order of the ties
            ranked = sorted(range(n), key=lambda j: (-values[q, j], order[j]))
            assert ranked.index(q) <= got[q]
        assert got[q] == int((values[q] > values[q, q]).sum() + (values[q] == values[q, q]).sum() - 1)
