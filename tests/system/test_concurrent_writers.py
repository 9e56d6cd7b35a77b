"""Two writers on one folder: a second `train` into the same --out, or a second growth of one index, while the
first runs, is refused in one line (exit 2) and the first finishes whole — before the run lock, both exited 0
and left one run's marker, another's run.yaml and a mixed metrics.jsonl, or lost one growth's items. A writer
killed with SIGKILL leaves no stale lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.cli import TESTS, run_cli
from helpers.tables import cipher_table

CODE = "import helpers.fakes; from latentfuse.cli import main; main()"


def start(*args: str, delay: str = "0.05") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "FAKE_ENCODER_DELAY": delay}
    return subprocess.Popen([sys.executable, "-c", CODE, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lock(lock: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{lock} was never taken by pid {process.pid}")


def train_args(table: Path, tmp_path: Path, out: Path) -> list[str]:
    return ["train", "--data", f"pairs:{table}", "-e", "text_a=fake-text:16", "-e", "text_b=fake-text:16",
            "--store", str(tmp_path / "store"), "--out", str(out), "--epochs", "2", "--method", "procrustes",
            "--set", "store.batch_size=4"]


def test_a_second_train_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    table = cipher_table(tmp_path / "pairs.tsv", 60, 10, 10)
    out = tmp_path / "model"
    first = start(*train_args(table, tmp_path, out), delay="0.4")  # ~8 s of encoding: time for a second writer
    wait_for_lock(tmp_path / ".model.lock", first)
    second = run_cli(*train_args(table, tmp_path, out), "--overwrite")
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"--out {out} is being written by another latentfuse process (pid {first.pid})" in second.stderr
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert json.loads((out / ".latentfuse-output.json").read_text())["kind"] == "model-run"
    assert (out / "model.safetensors").exists() and (out / "report.json").exists()


def test_a_killed_writer_leaves_no_stale_lock_and_a_second_index_growth_waits_its_turn(tmp_path):
    table = cipher_table(tmp_path / "pairs.tsv", 60, 10, 10)
    model = tmp_path / "model"
    assert run_cli(*train_args(table, tmp_path, model)).returncode == 0
    index = tmp_path / "ix"
    grow = ["index", "-m", str(model), "--data", f"pairs:{table}", "--split", "train", "--side", "text_a",
            "--store", str(tmp_path / "other-store"), "--out", str(index), "--set", "store.batch_size=2"]
    killed = start(*grow, delay="0.5")
    wait_for_lock(tmp_path / ".ix.lock", killed)
    refused = run_cli(*grow)
    assert refused.returncode == 2 and "is being written by another latentfuse process" in refused.stderr
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done = run_cli(*grow)  # the kernel released the dead writer's lock: this one proceeds
    assert done.returncode == 0, done.stderr[-2000:]
    more = run_cli(*[("test" if arg == "train" else arg) for arg in grow])  # the next growth: the test split
    assert more.returncode == 0, more.stderr[-2000:]
    from latentfuse.index import open_index

    assert len(open_index(index)) == 60 + 10  # both growths' items, nothing lost
