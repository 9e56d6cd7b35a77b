"""Training under torch.distributed with 2 local gloo processes equals the single-process run on the same
global batch: one step's loss and gradients (contrastive loss over gathered embeddings, mixup of the global
batch), two epochs' weights, resume; and `latentfuse train --nproc 2` end to end."""
from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import pytest
import torch
import yaml

from helpers import dist_workers
from latentfuse.config import TrainConfig
from latentfuse.errors import ConfigError
from latentfuse.utils import distributed
from helpers.pairs import TOKEN_OPTIONS, token_pairs
from helpers.pairs import MMFUSER_SMALL, shallow_signal_pairs
from helpers.pairs import synthetic_pairs

QUIET = {"dim": 32, "hidden": 64, "n_blocks": 1, "dropout": 0.0, "input_dropout": 0.0}  # no dropout: comparable


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(256, seed=1), synthetic_pairs(64, seed=2)


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("method, options, inputs", [
    ("fusemix", QUIET, "pooled"),
    ("fusemix", {**QUIET, "mixup_pairs": "halves"}, "pooled"),
    ("fusemix", {**QUIET, "mixup_alpha": 0.0}, "pooled"),
    ("lightcrl", {"dim": 32, "width": 64, "dropout": 0.0, "input_dropout": 0.0, "fusion": "concat",
                  "mixup_alpha": 1.0}, "pooled"),
    ("lightcrl", {**TOKEN_OPTIONS, "fusion": "scaled-dot-attention", "mixup_alpha": 1.0}, "ragged tokens"),
    ("mmfuser", {**MMFUSER_SMALL, "mixup_alpha": 1.0}, "taps"),
], ids=["mixup-shuffle", "mixup-halves", "no-mixup", "lightcrl", "lightcrl-ragged-tokens", "mmfuser-taps"])
def test_one_step_equals_the_single_process_step(method, options, inputs, data, tmp_path):
    """Ragged token batches are padded to each rank's longest sequence; mixup pads them to the global one."""
    train = {"pooled": data[0], "ragged tokens": token_pairs(128, 1), "taps": shallow_signal_pairs(128, 1)}[inputs]
    positions = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[:64]
    job = {"name": "step", "kind": "step", "train": train, "method": method, "options": options,
           "positions": positions}
    reference = dist_workers.single(job)
    for result in dist_workers.run(2, job, tmp_path):
        assert result["loss"] == pytest.approx(reference["loss"], abs=1e-5)  # the global batch's loss
        close(result["grads"], reference["grads"], atol=1e-5)
    assert max(float(g.abs().max()) for g in reference["grads"].values()) > 1e-3  # gradients that matter


def test_two_epochs_give_the_single_process_weights(data, tmp_path):
    """Equal up to float summation order: gathered matmuls add in another order, and AdamW's first steps
    turn a ~1e-9 gradient's rounding into up to ~lr of a few weights (measured: 1 of 8192 off by 1.3e-4);
    every other weight agrees to 1e-5."""
    train, val = data
    config = TrainConfig(epochs=2, batch_size=64, seed=5, threads=1)
    job = {"name": "fit", "kind": "fit", "train": train, "val": val, "method": "fusemix", "options": QUIET,
           "config": config, "out": str(tmp_path / "ddp")}
    ranks = dist_workers.run(2, job, tmp_path)
    reference = dist_workers.single({**job, "out": str(tmp_path / "single")})
    assert ranks[0]["best_epoch"] == reference["best_epoch"]
    close(ranks[0]["state"], reference["state"], atol=1e-3)
    differ = sum(int(((ranks[0]["state"][k] - v).abs() > 1e-5).sum()) for k, v in reference["state"].items())
    assert differ <= 1e-3 * sum(v.numel() for v in reference["state"].values())
    assert (tmp_path / "ddp" / "metrics.jsonl").read_text().count("\n") == 2  # rank 0 logged each epoch once


def test_resume_under_two_processes_continues_exactly(data, tmp_path):
    train, val = data
    config = TrainConfig(epochs=4, batch_size=64, seed=5, threads=1)
    base = {"kind": "fit", "train": train, "val": val, "method": "fusemix",
            "options": {**QUIET, "dropout": 0.2}, "config": config}  # dropout on: its per-rank seeds resume too
    full = dist_workers.run(2, {**base, "name": "full", "out": str(tmp_path / "full")}, tmp_path)
    part = dist_workers.run(2, {**base, "name": "part", "out": str(tmp_path / "part"), "stop_after": 2}, tmp_path)
    assert all(r == {"interrupted": True} for r in part)
    resumed = dist_workers.run(2, {**base, "name": "resumed", "out": str(tmp_path / "part"), "resume": True},
                               tmp_path)
    close(resumed[0]["state"], full[0]["state"], atol=1e-6)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_a_batch_that_does_not_split_evenly_is_refused(data, tmp_path):
    train, _ = data
    job = {"name": "odd", "kind": "fit", "train": train, "method": "fusemix", "options": QUIET,
           "config": TrainConfig(epochs=1, batch_size=63, threads=1), "out": str(tmp_path / "odd")}
    with pytest.raises(Exception, match="batch_size 63 must be divisible by the number of processes"):
        dist_workers.run(2, job, tmp_path)


def test_one_process_helpers_are_the_identity():
    x = torch.randn(6, 3)
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.gather_with_grad(x) is x and distributed.local_part(x) is x
    assert distributed.local_part(torch.arange(6)).tolist() == list(range(6))
    distributed.check_batch(7)  # any batch size works in one process


WORDS = ("dog cat bird horse water beach snow grass ball child woman man street city park river mountain "
         "car bike boat red blue green white black running jumping sitting playing walking swimming").split()


def test_cli_train_with_nproc_2_learns_and_saves_one_model(tmp_path):
    """`latentfuse train --nproc 2` launches torchrun: two gloo processes train one model, rank 0 saves it."""
    rng = random.Random(0)
    table = tmp_path / "pairs.tsv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text_a", "text_b", "split"])
        for split, n in (("train", 512), ("val", 64), ("test", 100)):
            for _ in range(n):
                words = rng.sample(WORDS, 4)
                writer.writerow([" ".join(words), " ".join(reversed(words)), split])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": f"pairs:{table}"},
        "encoders": {"text_a": "glove-6b-50d", "text_b": "glove-6b-50d"},
        "store": {"root": str(tmp_path / "store")},
        "method": {"name": "fusemix", "options": QUIET},
        "train": {"epochs": 3, "batch_size": 64, "threads": 1},
        "runtime": {"device": "cpu"}, "out": str(tmp_path / "model")}))
    done = subprocess.run([sys.executable, "-m", "latentfuse", "-q", "train", "--config", str(config), "--nproc", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "model" / "report.json").read_text())[0]
    assert report["metrics"]["text_a2text_b"]["R@1"] > 10 * 100 / 100  # 10× chance on 100 test items
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]  # one log, written by rank 0 alone


def test_device_and_precision_errors_are_one_line():
    from latentfuse.utils.runtime import runtime

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU on this machine; use --device cpu"):
            runtime("cuda")
    with pytest.raises(ConfigError, match="precision fp16 needs a CUDA device"):
        runtime("cpu", "fp16")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N or mps"):
        runtime("tpu")
    with pytest.raises(ConfigError, match="precision 'fp8': expected one of fp32, bf16, fp16"):
        runtime("cpu", "fp8")


def test_cli_distill_with_nproc_2_trains_and_saves_one_student(tmp_path, shapes):
    """`latentfuse distill --nproc 2`: rank 0 caches the pools' teacher embeddings, both ranks train the
    student on their slices of each global batch (DIME-FM's similarities over the gathered batch), rank 0
    saves it."""
    import csv

    import latentfuse

    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(row["text"] for row in csv.DictReader(open(shapes["pairs"]))) + "\n")
    out = tmp_path / "student"
    done = subprocess.run([
        sys.executable, "-m", "latentfuse", "-q", "distill", "--teacher", str(shapes["model"]),
        "--images", f"images:{shapes['images']}", "--texts", f"lines:{captions}",
        "--student", "image=truncated:stride16,text=glove-transformer", "--out", str(out), "--epochs", "4",
        "--store", str(tmp_path / "store"), "--set", "train.batch_size=32", "--set", "train.threads=1",
        "--set", "method.options.width=64", "--device", "cpu", "--nproc", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]  # one log, rank 0's
    assert records[-1]["loss"] < records[0]["loss"]
    student = latentfuse.load(out, device="cpu")
    assert student.method.side_taps("image") == ["stride16"] and student.sides["text"].encoder == "glove-6b-50d"


def test_nproc_refuses_what_every_process_would_refuse_before_launching(tmp_path):
    from click.testing import CliRunner

    from latentfuse.cli import app

    result = CliRunner().invoke(app, ["train", "--data", f"pairs:{tmp_path / 'none.tsv'}", "--nproc", "2",
                                      "--set", "train.batch_size=63", "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and not (tmp_path / "m").exists()
    assert "batch_size 63 must be divisible by the number of processes (2)" in str(result.exception)


def test_an_error_inside_nproc_workers_is_one_line_not_torchruns_report(tmp_path):
    """A worker's error (here: the data file is missing, which only the workers read) used to surface as torchrun's
    ChildFailedError traceback with exit 1; it is the one line a single process prints, exit 2."""
    done = subprocess.run([sys.executable, "-m", "latentfuse", "train", "--data", f"pairs:{tmp_path / 'gone.tsv'}",
                           "-e", "text_a=glove-6b-50d", "-e", "text_b=glove-6b-50d", "--device", "cpu",
                           "--out", str(tmp_path / "model"), "--nproc", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: pairs: file {tmp_path / 'gone.tsv'} not found"], done.stderr[-3000:]
