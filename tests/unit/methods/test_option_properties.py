"""Property: any option values a user can write, through any pooled method's config, construction and one
training step (or fit), end in success or a LatentfuseError with a message — never a traceback from torch,
numpy or scikit-learn (`distill --set options.heads=3` was an AssertionError; a width torch cannot split, a
KeyError, a NaN that trained silently)."""
from __future__ import annotations

import dataclasses
import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.pairs import synthetic_pairs
from latentfuse.errors import LatentfuseError
from latentfuse.methods import build_method, make_config, method_class

POOLED = ("fusemix", "lightcrl", "procrustes", "cca", "asif", "identity")
NUMBERS = st.one_of(st.integers(-3, 70), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e9, math.nan, math.inf]))
VALUES = st.one_of(NUMBERS, st.booleans(), st.text(max_size=12), st.none(), st.lists(st.integers(0, 4), max_size=3))
DATA = synthetic_pairs(24, seed=0)


@st.composite
def options(draw):
    name = draw(st.sampled_from(POOLED))
    fields = [f.name for f in dataclasses.fields(method_class(name).config_cls)]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=4)) if fields else []
    return name, {field: draw(VALUES) for field in chosen}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options())
def test_any_option_values_give_a_model_or_a_latentfuse_error(drawn):
    name, values = drawn
    try:
        config = make_config(name, values)
        method = build_method(name, DATA.dims(), config)
        if method.trainable:
            batch = DATA.batch(torch.arange(16))
            loss, _ = method.loss(batch)
            if not bool(torch.isfinite(loss)):
                return  # the trainer stops a run on a non-finite loss with a message (tests/unit/train)
            loss.backward()
        else:
            method.fit(DATA)
        method.encode("image", DATA.x["image"][:4])
    except LatentfuseError:
        pass


TOKENS = ("mmfuser", "dime", "dynmm", "lightcrl")
NAMES = st.sampled_from(["image", "text", "stride16", "words", "head", "x", ""])


@st.composite
def token_options(draw):
    name = draw(st.sampled_from(TOKENS))
    fields = [f.name for f in dataclasses.fields(method_class(name).config_cls)]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=4))
    values = {field: draw(st.one_of(VALUES, NAMES, st.lists(NAMES, max_size=3))) for field in chosen}
    if name == "dynmm" and "labels" not in values:
        values["labels"] = ["a", "b"]
    return name, values


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_options())
def test_token_methods_and_students_build_or_give_a_latentfuse_error(drawn):
    """The same for the methods that read token taps (and DIME's students): whatever the options, the taps they
    ask for (``wanted_taps``) get matching inputs, and construction succeeds or says why not."""
    name, values = drawn
    try:
        config = make_config(name, values)
        taps = method_class(name).wanted_taps(config, {"image": "image", "text": "text"})
        dims = {side: ({tap: 8 for tap in taps[side]} if taps.get(side) else 24) for side in ("image", "text")}
        build_method(name, dims, config)
    except LatentfuseError:
        pass
