"""`JointModel.save_pretrained` follows the CLI's output rule: saving a student over its teacher's folder used to
replace the weights, delete its query bank and leave the old run.yaml / report describing another model, and
saving into a user's folder overwrote their README.md."""
from __future__ import annotations

import json

import pytest
import torch

from latentfuse.errors import ModelError
from latentfuse.methods import build_method
from latentfuse.model import JointModel, SideSpec


def model(seed: int) -> JointModel:
    torch.manual_seed(seed)
    method = build_method("fusemix", {"image": 6, "text": 5}, {"dim": 4, "hidden": 8})
    return JointModel(method, [SideSpec("image", "image", "fake-image", "f1"), SideSpec("text", "text", "t", "f2")])


def test_the_same_model_again_is_fine_another_is_refused_unless_overwrite(tmp_path):
    first, second = model(0), model(1)
    first.save_pretrained(tmp_path / "m")
    first.save_pretrained(tmp_path / "m")  # the same model again
    (tmp_path / "m" / "run.yaml").write_text("settings of the run that made the first model\n")
    with pytest.raises(ModelError, match=r"save_pretrained: folder .*m already holds a model with other settings "
                                         r"\(differs in fingerprint\).*overwrite=True"):
        second.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["fingerprint"] == first.fingerprint
    second.save_pretrained(tmp_path / "m", overwrite=True)
    assert JointModel.load(tmp_path / "m").fingerprint == second.fingerprint
    assert not (tmp_path / "m" / "run.yaml").exists()  # nothing of the other model stays beside these weights


def test_a_users_folder_and_a_file_are_never_overwritten(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    with pytest.raises(ModelError, match=r"holds files not written by a latentfuse model \(README.md\)"):
        model(0).save_pretrained(mine)
    assert (mine / "README.md").read_text() == "my notes"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ModelError, match="a-file: is a file, not a folder"):
        model(0).save_pretrained(tmp_path / "a-file")
    with pytest.raises(ModelError, match="save_pretrained: folder /dev/null/model: /dev/null is a file, not a folder"):
        model(0).save_pretrained("/dev/null/model")


def test_a_training_runs_folder_is_not_replaced_by_a_python_save(shapes, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shapes["model"], run)
    with pytest.raises(ModelError, match="already holds a latentfuse 'model-run' output"):
        model(0).save_pretrained(run)
    assert JointModel.load(run).fingerprint == JointModel.load(shapes["model"]).fingerprint
