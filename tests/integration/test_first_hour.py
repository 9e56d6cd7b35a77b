"""A new user's first hour (issue 25, in part): a setting whose extra is not installed fails before any work,
in one line naming the extra."""
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
