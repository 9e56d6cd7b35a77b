"""Flickr8k-Tags: the labels of a hand-checked example, the vocabulary rule (train split only), determinism,
and the per-pair labels reaching a method's batch."""
from __future__ import annotations


import numpy as np
import torch

from latentfuse.data import build_source
from latentfuse.data import flickr8k_tags
from latentfuse.data.flickr8k_tags import agreed, mentions, pair_tags, vocabulary
from latentfuse.store.feature_store import Features
from latentfuse.store.paired import PairedFeatures
from helpers.tables import write_flickr8k  # noqa: F401

SNOW_DOGS = ["A black dog is running after a white dog in the snow .",
             "Black dog chasing brown dog through snow",
             "Two dogs chase each other across the snowy ground .",
             "Two dogs play together in the snow .",
             "Two dogs running through a low lying body of water ."]


def test_a_pair_is_labelled_by_what_the_other_four_captions_agree_on():
    assert mentions(SNOW_DOGS[2]) == {"dog", "snow"}  # plural and adjective forms count
    assert mentions(SNOW_DOGS[4]) == {"dog", "water"}
    vocab = ("dog", "water", "snow")
    # caption 4 is the only one that says water: its own pair is not labelled water, nor is any other
    assert pair_tags(SNOW_DOGS, 4, vocab) == ("dog", "snow")
    assert pair_tags(SNOW_DOGS, 0, vocab) == ("dog", "snow")
    # a tag the caption in hand never names is still a label when two others do: only the image shows it
    captions = ["a man on a bike", "a man rides a bike on a street", "a cyclist on a street", "a man", "bikes"]
    assert pair_tags(captions, 0, ("man", "bike", "street")) == ("man", "bike", "street")
    assert pair_tags(captions, 1, ("man", "bike", "street")) == ("man", "bike")  # street: only 2 and 1 itself
    assert agreed(["a dog", "the dog", "a cat"]) == {"dog"}


def test_vocabulary_is_the_frequent_candidates_most_frequent_first():
    images = [["a dog", "dogs"]] * 3 + [["a man on grass", "men on the grass"]] * 2 + [["a boat", "a boat"]]
    assert vocabulary(images, min_images=2) == ("dog", "grass", "man")
    assert vocabulary(images, min_images=1) == ("dog", "grass", "man", "boat")




def test_the_source_chooses_its_vocabulary_on_train_and_labels_every_split(tmp_path, monkeypatch):
    monkeypatch.setattr(flickr8k_tags, "MIN_IMAGES", 2)
    dog, man = ["a dog runs"] * 4 + ["a dog on grass"], ["a man sits", "a man", "a man and a dog", "man", "men"]
    boats = ["a boat", "two boats", "a boat on a lake", "boat", "a dog"]  # frequent in test only
    root = write_flickr8k(tmp_path / "f8k", {"train": {"d1.jpg": dog, "d2.jpg": dog, "m1.jpg": man, "m2.jpg": man},
                                              "test": {"b1.jpg": boats, "b2.jpg": boats, "d3.jpg": dog}})
    source = build_source(f"flickr8k-tags:{root}")
    assert source.vocabulary() == ("dog", "man")  # boat is frequent only in test: not a tag
    test = source.load("test")
    assert test.tag_names == ("dog", "man")
    assert test.tags[("b1.jpg", "b1.jpg#0")] == () and test.tags[("d3.jpg", "d3.jpg#4")] == ("dog",)
    assert source.load("test").tags == test.tags  # deterministic
    train = source.load("train")
    assert train.tags[("m1.jpg", "m1.jpg#2")] == ("man",)  # its own dog mention does not count
    # a subset keeps its pairs' tags
    assert train.head(1).tags == {p: t for p, t in train.tags.items() if p[0] == "d1.jpg"}


def test_pair_labels_reach_the_batch_by_pair_position(tmp_path, monkeypatch):
    monkeypatch.setattr(flickr8k_tags, "MIN_IMAGES", 1)
    root = write_flickr8k(tmp_path / "f8k", {"train": {"a.jpg": ["a dog"] * 5, "b.jpg": ["a man"] * 5}})
    data = build_source(f"flickr8k-tags:{root}").load("train")
    features = {side: Features([item.id for item in data.items[side]],
                               np.arange(len(data.items[side]), dtype=np.float32)[:, None], {})
                for side in ("image", "text")}
    paired = PairedFeatures.build(data, features)
    assert paired.label_names == ("dog", "man") and paired.labels.shape == (10, 2)
    batch = paired.batch(torch.tensor([7, 0]))  # pair 7 = (b.jpg, b.jpg#2), pair 0 = (a.jpg, a.jpg#0)
    assert batch["image"].flatten().tolist() == [1.0, 0.0] and batch["text"].flatten().tolist() == [7.0, 0.0]
    assert batch["labels"].tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_flickr8k_tags_vocabulary_on_the_official_split(flickr8k_dir):
    source = build_source(f"flickr8k-tags:{flickr8k_dir}")
    assert source.vocabulary() == ("man", "dog", "person", "woman", "boy", "girl", "child", "water", "grass",
                                   "shirt", "snow", "ball", "field", "bike", "rock", "beach", "street", "hat",
                                   "skateboard", "mountain", "toy", "jacket", "pool", "tree", "sand")
    test = source.load("test")
    assert len(test.pairs) == 5000 and all(set(t) <= set(test.tag_names) for t in test.tags.values())


def test_a_pairs_table_with_a_labels_column_is_a_multi_label_task(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    table = tmp_path / "movies.csv"
    table.write_text("image,text,split,labels\n"
                     "a.jpg,a sad film,train,drama\n"
                     "b.jpg,a funny sad film,train,comedy| drama\n"
                     "a.jpg,another plot,test,\n"
                     "b.jpg,a thriller,test,thriller\n")
    source = build_source(f"pairs:{table}")
    train, test = source.load("train"), source.load("test")
    assert train.tag_names == test.tag_names == ("comedy", "drama", "thriller")  # every split's labels
    assert train.tags == {("a.jpg", "row1"): ("drama",), ("b.jpg", "row2"): ("comedy", "drama")}
    assert test.tags == {("a.jpg", "row3"): (), ("b.jpg", "row4"): ("thriller",)}
    single = tmp_path / "single.csv"
    single.write_text("image,text,label\na.jpg,x,cat\nb.jpg,y,dog\n")
    assert build_source(f"pairs:{single}").load("all").tags == {("a.jpg", "row1"): ("cat",), ("b.jpg", "row2"): ("dog",)}
