"""`latentfuse eval` with several tasks: one table per task, one combined JSON; --frozen; --opt; errors."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from helpers import fakes  # noqa: F401  (registers fake-text, fake-rgb, fake-keywords)
from latentfuse.cli import app
from helpers.tables import colour_folder, write_pairs

runner = CliRunner()


@pytest.fixture
def datasets(tmp_path):
    folder = colour_folder(tmp_path / "colours", {
        split: {c: [c] * n for c in ("red", "green", "blue")} for split, n in (("train", 6), ("test", 3))})
    sts = write_pairs(tmp_path / "sts.tsv", [("w1 w2", "w1 w3", 4.0, "test"), ("w4 w5", "w6", 0.5, "test"),
                                             ("w7", "w7 w8", 3.0, "test"), ("w9", "w10", 1.0, "test")], "score")
    pairs = write_pairs(tmp_path / "pairs.tsv", [("w1 w2", "w1 w2", 1, "train"), ("w3", "w4", 0, "train"),
                                                 ("w5 w6", "w5", 1, "test"), ("w7", "w8", 0, "test")], "label")
    return folder, sts, pairs


def test_multi_task_eval_writes_one_combined_report(tmp_path, datasets):
    folder, _, _ = datasets
    out = tmp_path / "all.json"
    result = runner.invoke(app, [
        "eval", "--frozen", "image=fake-rgb", "--frozen", "text=fake-keywords:red,green,blue",
        "--task", f"zeroshot=imagefolder:{folder}", "--task", f"linear-probe=imagefolder:{folder}",
        "--task", f"retrieval=imagefolder:{folder}", "--set", "options.linear-probe.cs=[1, 10]",
        "--json", str(out), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    reports = json.loads(out.read_text())["reports"]
    assert [r["task"] for r in reports] == ["zeroshot", "linear-probe", "retrieval"]
    assert all(r["method"] == "identity" and r["split"] == "test" and "metrics" in r for r in reports)
    assert reports[0]["metrics"]["top1"] == 100.0
    assert set(reports[1]["val_accuracy_by_C"]) == {"1", "10"}
    assert reports[2]["i2t"]["R@1"] == 100.0 and reports[2]["n_images"] == 9
    text = " ".join(result.output.split())  # rich wraps titles and cells to the terminal width
    for title in ("zeroshot ·", "linear-probe ·", "retrieval ·"):
        assert title in text
    assert "frozen fake-rgb" in text


def test_data_fills_tasks_without_their_own_and_options_reach_the_task(tmp_path, datasets):
    _, sts, pairs = datasets
    out = tmp_path / "r.json"
    result = runner.invoke(app, [
        "eval", "--frozen", "fake-text:16", "--task", "sts", "--task", f"pair-classification=pair-labels:{pairs}",
        "--data", f"sts:{sts}", "--set", "options.sts.side=text", "--json", str(out), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    sts_report, pair_report = json.loads(out.read_text())["reports"]
    assert sts_report["dataset"] == f"sts:{sts}" and sts_report["sides"] == ["text", "text"]
    assert pair_report["fit_split"] == "train" and set(pair_report["metrics"]["classes"]) == {"0", "1"}


@pytest.mark.parametrize("args, message", [
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--task", "sts", "--set", "options.sts:side=cross"], "options.sts:side: expected a mapping"),
    (["--task", "sts", "--set", "options.nosuch.side=x"], "unknown task 'nosuch'"),
    (["--task", "retrieval"], "needs a dataset"),
    (["--task", "sts", "--set", "options.sts.sid=cross"], "unknown key(s) sid"),
    (["--task", "linear-probe", "--set", "options.linear-probe.max_train=many"], "max_train: expected an integer"),
])
def test_eval_errors_are_clear(tmp_path, args, message):
    result = runner.invoke(app, ["eval", "--frozen", "fake-text:16", "--store", str(tmp_path), *args])
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output


def test_eval_needs_exactly_one_model_and_something_to_do(tmp_path):
    result = runner.invoke(app, ["eval", "--task", "sts"])
    assert result.exit_code != 0 and "exactly one of --model" in str(result.exception)
    result = runner.invoke(app, ["eval", "--frozen", "fake-text:16"])
    assert result.exit_code != 0 and "--data SPEC" in str(result.exception)


def test_help_documents_every_task_and_option():
    from latentfuse.eval import TASKS, task

    result = runner.invoke(app, ["eval", "--help"], terminal_width=200)
    text = re.sub(r"\s+", " ", result.output)
    for name in TASKS.names():
        assert name in text
        for option, _, _ in task(name).describe_options():
            assert option in text, f"--help does not mention {name} option {option!r}"
