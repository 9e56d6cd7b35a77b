"""The `latentfuse` CLI end to end on a small learnable text–text set (fake bag-of-words encoder):
extract → run (train + baselines + eval) → eval --json → load() in Python; and config errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import fakes  # noqa: F401  (registers the fake-text encoder)
import latentfuse
from latentfuse.cli import app
from helpers.tables import VOCAB, cipher_table, write_config  # noqa: F401

runner = CliRunner()






@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    table = cipher_table(tmp_path / "pairs.tsv")
    config = write_config(tmp_path, table)
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return tmp_path, table, result.output


def test_run_trains_far_above_chance_and_beats_nothing_by_luck(trained):
    tmp_path, _, output = trained
    reports = json.loads((tmp_path / "model" / "report.json").read_text())
    assert [r["method"] for r in reports] == ["fusemix", "procrustes"]
    fusemix = reports[0]
    assert fusemix["n_text_as"] == 200 and fusemix["split"] == "test"
    assert fusemix["text_b2text_a"]["R@5"] > 50, fusemix  # chance is 2.5%
    assert "fusemix" in output and "procrustes" in output
    for name in ("model.safetensors", "config.json", "README.md", "metrics.jsonl", "run.yaml"):
        assert (tmp_path / "model" / name).exists(), name
    assert "| fusemix |" in (tmp_path / "model" / "README.md").read_text()


def test_eval_writes_the_report_json(trained):
    tmp_path, table, _ = trained
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "model"), "--data", f"pairs:{table}",
                                 "--split", "test", "--json", str(out), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["task"] == "retrieval" and report["method"] == "fusemix" and report["split"] == "test"
    saved = json.loads((tmp_path / "model" / "report.json").read_text())[0]
    assert report["text_a2text_b"] == saved["text_a2text_b"]  # same model, same features, same numbers
    assert set(report["text_a2text_b"]) == {"R@1", "R@5", "R@10", "medr"}


def test_load_encodes_raw_inputs_end_to_end(trained):
    tmp_path, _, _ = trained
    model = latentfuse.load(tmp_path / "model")
    a = model.encode("text_a", ["w1 w2 w3 w4", "w10 w11 w12 w13"])
    b = model.encode("text_b", ["z1 z2 z3 z4", "z10 z11 z12 z13"])
    assert a.shape == (2, 32) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    sims = a @ b.T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0]


def test_second_run_uses_the_cache(trained, monkeypatch):
    tmp_path, table, _ = trained
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    result = runner.invoke(app, ["extract", "--data", f"pairs:{table}", "-e", "text_a=fake-text:64",
                                 "-e", "text_b=fake-text:64", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert not log.exists(), "features were re-encoded although cached"
    assert "train: text_a=800, text_b=800 features" in result.output


def test_unknown_config_key_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code != 0
    assert "bad.yaml: unknown key(s) train.epoch" in str(result.exception) + result.output


def test_wrong_type_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: fast\n")
    result = runner.invoke(app, ["run", str(path)])
    assert "train.lr: expected a number, got 'fast'" in str(result.exception) + result.output


def test_info_lists_registries():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    for name in ("efficientnet-lite0", "minilm-l6", "e5-small", "flickr8k", "pairs", "fusemix", "asif", "cca",
                 "zeroshot", "linear-probe", "sts", "pair-classification"):
        assert name in result.output


def test_console_errors_are_one_line_without_traceback(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  source: nosuch:thing\n")
    proc = subprocess.run([sys.executable, "-m", "latentfuse.cli", "run", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: unknown data source 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr
