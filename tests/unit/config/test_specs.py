"""The one spec grammar (``latentfuse.specs``): each form, and the one-line errors that name what was expected."""
from __future__ import annotations

import pytest

from latentfuse import specs
from latentfuse.errors import ConfigError


def test_each_form_parses():
    assert specs.name_arg("flickr8k:/data/f8k:v2") == ("flickr8k", "/data/f8k:v2")  # only the first ':' splits
    assert specs.name_arg("minilm-l6") == ("minilm-l6", None)
    assert specs.members("efficientnet-lite0+efficientnet-lite2") == ["efficientnet-lite0", "efficientnet-lite2"]
    assert specs.part("fusion@stride16") == ("fusion", "stride16")
    assert specs.part("flickr8k:/a@b/dir@val", last=True) == ("flickr8k:/a@b/dir", "val")  # a path may hold '@'
    assert specs.part("text") == ("text", "")
    assert specs.key_value(" sts = wordsim353 ", "--task", "sts=x") == ("sts", "wordsim353")
    assert specs.key_value("data.val_split=", "--set", "k=v", empty=True) == ("data.val_split", "")
    assert specs.named("image=efficientnet-lite0") == ("image", "efficientnet-lite0")
    assert specs.named("hf:/m#max_length=128") == (None, "hf:/m#max_length=128")  # '=' of the value's own
    assert specs.mapping(["image=a", "text=b"], "--encoder", "text=x") == {"image": "a", "text": "b"}
    assert specs.listed(["val,test", " train ", ","]) == ["val", "test", "train"]
    assert specs.options("hf:/m#cls#max_length=128") == ("hf:/m", [("cls", ""), ("max_length", "128")])


@pytest.mark.parametrize("call, message", [
    (lambda: specs.members("a+"), "encoder ensemble 'a+': empty member; write e.g."),
    (lambda: specs.key_value("sts=", "--task", "sts=wordsim353", key="NAME"),
     "--task 'sts=': expected NAME=VALUE, e.g. sts=wordsim353"),
    (lambda: specs.mapping(["image=a", "image=b"], "--encoder", "text=x"), "--encoder: side 'image' is given twice"),
    (lambda: specs.mapping(["image"], "--encoder", "text=minilm-l6"),
     "--encoder 'image': expected SIDE=VALUE, e.g. text=minilm-l6"),
])
def test_errors_say_what_is_expected(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_did_you_mean():
    assert specs.did_you_mean("minilm-l7", ["minilm-l6", "e5-small"]) == " Did you mean 'minilm-l6'?"
    assert specs.did_you_mean("zzz", ["minilm-l6"]) == ""


def test_a_key_a_release_moved_says_where_it_went():
    """distill's dime options moved from `options` to `method.options` (as train's); the old key names the new."""
    import pytest

    from latentfuse.config import DistillConfig, apply_overrides
    from latentfuse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key\(s\) options; .*\(options is now method.options\)$"):
        apply_overrides(DistillConfig(), ["options.width=64"])
    assert apply_overrides(DistillConfig(), ["method.options.width=64"]).method.options == {"width": 64}
