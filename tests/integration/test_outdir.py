"""The output-directory rule: no command replaces a user's files unless told to, and --overwrite swaps the
new result in only once it is complete. A property test over folder states and flags, then each command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from click.testing import CliRunner

from helpers import fakes  # noqa: F401  (registers the fake-text encoder)
from latentfuse.cli import app
from latentfuse.errors import LatentfuseError
from latentfuse.utils.outdir import MARKER, OutputExistsError, check_new_file, output_dir

from helpers.tables import cipher_table, write_config

runner = CliRunner()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- the rule, as a property

STATES = st.sampled_from(["absent", "empty", "foreign", "same", "other-identity", "other-kind"])
NAMES = st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="-_."), min_size=1,
                max_size=12).filter(lambda n: n not in (".", "..", MARKER))


def make_state(folder: Path, state: str, names: list[str]) -> None:
    if state == "absent":
        return
    folder.mkdir()
    if state == "foreign":
        for name in names:
            (folder / name).write_text(f"user file {name}")
    elif state in ("same", "other-identity", "other-kind"):
        identity = {"lr": 0.1} if state == "same" else {"lr": 0.2}
        kind = "other" if state == "other-kind" else "model-run"
        (folder / MARKER).write_text(json.dumps({"kind": kind, "identity": identity}))
        (folder / "model.safetensors").write_bytes(b"old weights")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=STATES, names=st.lists(NAMES, min_size=1, max_size=4, unique=True), overwrite=st.booleans(),
       resume=st.booleans(), fail=st.booleans())
def test_a_folder_is_written_only_when_the_rule_allows(tmp_path_factory, state, names, overwrite, resume, fail):
    folder = tmp_path_factory.mktemp("rule") / "out"
    make_state(folder, state, names)
    before = snapshot(folder) if folder.exists() else None
    allowed = state in ("absent", "empty") or (state == "same" and not overwrite) or (overwrite and not resume)
    if resume and overwrite:
        allowed = False
    try:
        with output_dir(folder, "model-run", {"lr": 0.1}, overwrite=overwrite, resume=resume) as target:
            (target / "model.safetensors").write_bytes(b"new weights")
            if fail:
                raise RuntimeError("the run failed part-way")
    except OutputExistsError as exc:
        assert not allowed, exc
        assert str(folder) in str(exc) or "give one" in str(exc)  # names the folder (or the flag clash)
        assert (snapshot(folder) if folder.exists() else None) == before  # nothing touched
        return
    except RuntimeError:
        assert allowed
        if overwrite and state not in ("absent", "empty", "same"):
            assert snapshot(folder) == before  # a failed overwrite leaves the old folder whole
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(".out.")]  # no staging litter
        return
    assert allowed
    after = snapshot(folder)
    assert after["model.safetensors"] == b"new weights"
    assert json.loads(after[MARKER]) == {"kind": "model-run", "identity": {"lr": 0.1}}
    if overwrite and state in ("foreign", "other-identity", "other-kind"):
        assert set(after) == {MARKER, "model.safetensors"}  # replaced whole: no stale file of the old run
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".out.")]


def test_a_run_that_fails_before_writing_leaves_no_claim(tmp_path):
    with pytest.raises(RuntimeError):
        with output_dir(tmp_path / "new", "model-run", {"a": 1}):
            raise RuntimeError("bad data")
    assert not (tmp_path / "new").exists()
    with output_dir(tmp_path / "new", "model-run", {"a": 2}) as target:  # a corrected run is not refused
        (target / "x").write_text("ok")


def test_report_files_are_not_replaced_silently(tmp_path):
    report = tmp_path / "report.json"
    check_new_file(report, False, "--json")
    report.write_text("{}")
    with pytest.raises(OutputExistsError, match=r"--json .*report.json already exists; pass --overwrite"):
        check_new_file(report, False, "--json")
    check_new_file(report, True, "--json")
    with pytest.raises(OutputExistsError, match="is a folder"):
        check_new_file(tmp_path, True, "--json")


# ---------------------------------------------------------------- each command

def invoke(*args: str):
    result = runner.invoke(app, list(args))
    error = result.exception if isinstance(result.exception, LatentfuseError) else None
    if result.exception is not None and error is None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, error


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return cipher_table(tmp_path_factory.mktemp("outdir") / "pairs.tsv", n_train=300, n_val=60, n_test=60)


def test_train_refuses_a_folder_it_did_not_write_and_overwrite_replaces_it_whole(table, tmp_path):
    config = write_config(tmp_path, table, epochs=1)
    out = tmp_path / "model"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    _, error = invoke("train", "-c", str(config))
    assert error is not None and "already holds files not written by a latentfuse model-run (thesis.tex)" in str(error)
    assert "--overwrite" in str(error) and (out / "thesis.tex").read_text() == "three years of work"

    result, error = invoke("train", "-c", str(config), "--overwrite")
    assert error is None and result.exit_code == 0, result.output
    assert not (out / "thesis.tex").exists() and (out / "model.safetensors").exists()
    first = (out / "model.safetensors").read_bytes()

    result, error = invoke("train", "-c", str(config))  # the same run again: allowed, same (seeded) weights
    assert error is None and same_weights(load(out / "model.safetensors"), safetensors_load(first))

    _, error = invoke("train", "-c", str(config), "--set", "train.lr=0.01")  # another run into it: refused
    assert error is not None and "a model-run with other settings (differs in train.lr)" in str(error)
    assert same_weights(load(out / "model.safetensors"), safetensors_load(first))
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # nothing appended by the refused run


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def safetensors_load(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_method_is_refused_with_a_message(table, tmp_path):
    config = write_config(tmp_path, table, epochs=1)
    assert invoke("train", "-c", str(config))[0].exit_code == 0
    _, error = invoke("train", "-c", str(config), "--resume", "--method", "lightcrl")
    assert error is not None and "cannot --resume in" in str(error) and "method.name" in str(error)
    _, error = invoke("train", "-c", str(config), "--resume", "--overwrite")
    assert error is not None and "give one" in str(error)


def test_resume_compares_what_the_data_is_not_where_it_lies(table, tmp_path):
    """`--resume` after the table's pairs changed in place used to be accepted (one model, two datasets); a moved
    copy of the same table resumes."""
    import shutil

    mine = tmp_path / "data" / "pairs.tsv"
    mine.parent.mkdir()
    shutil.copy(table, mine)
    config = write_config(tmp_path, mine, epochs=1)
    assert invoke("train", "-c", str(config))[0].exit_code == 0
    lines = mine.read_text().splitlines()
    lines[1] = lines[1].replace("\t", " changed\t", 1)
    mine.write_text("\n".join(lines) + "\n")
    _, error = invoke("train", "-c", str(config), "--resume")
    assert error is not None and "cannot --resume in" in str(error) and "data_fingerprint" in str(error)
    moved = tmp_path / "elsewhere" / "pairs.tsv"
    moved.parent.mkdir()
    shutil.copy(table, moved)  # the original content, at another path
    result, error = invoke("train", "-c", str(config), "--resume", "--set", f"data.source=pairs:{moved}")
    assert error is None and result.exit_code == 0, result.output


def test_a_failed_overwrite_keeps_the_old_model(table, tmp_path, monkeypatch):
    config = write_config(tmp_path, table, epochs=1)
    assert invoke("train", "-c", str(config))[0].exit_code == 0
    before = snapshot(tmp_path / "model")
    from latentfuse import pipeline, runner

    monkeypatch.setattr(runner, "split_report", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run(pipeline.RunConfig(**_loaded(config, lr=0.005)), overwrite=True, progress=False)
    assert snapshot(tmp_path / "model") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model")) == []


def _loaded(config: Path, lr: float) -> dict:
    from latentfuse.config import apply_overrides, load_yaml

    cfg = apply_overrides(load_yaml(config), [f"train.lr={lr}"])
    return {f: getattr(cfg, f) for f in ("data", "encoders", "store", "method", "train", "baselines", "out")}


def test_index_refuses_a_foreign_folder_and_deletes_nothing(shapes, tmp_path):
    out = tmp_path / "ix"
    out.mkdir()
    for name in ("embeddings-000001.npy", "items-mine.jsonl", "notes.txt"):  # names that look like its own
        (out / name).write_text("mine")
    before = snapshot(out)
    args = ["index", "--model", str(shapes["model"]), "--data", f"images:{shapes['images']}", "--out", str(out),
            "--store", str(tmp_path / "store")]
    _, error = invoke(*args)
    assert error is not None and "refusing to replace it" in str(error) and snapshot(out) == before
    result, error = invoke(*args, "--overwrite")
    assert error is None and result.exit_code == 0, result.output
    assert not (out / "notes.txt").exists() and (out / "index.json").exists()
    grown, error = invoke(*args)  # an index is grown in place: allowed, nothing new to add
    assert error is None and "(0 added)" in grown.output


def test_eval_json_is_not_overwritten(table, tmp_path):
    config = write_config(tmp_path, table, epochs=1)
    assert invoke("train", "-c", str(config))[0].exit_code == 0
    report = tmp_path / "report.json"
    report.write_text('{"earlier": "result"}')
    args = ["eval", "-m", str(tmp_path / "model"), "--data", f"pairs:{table}", "--json", str(report),
            "--store", str(tmp_path / "store")]
    _, error = invoke(*args)
    assert error is not None and "already exists; pass --overwrite" in str(error)
    assert json.loads(report.read_text()) == {"earlier": "result"}
    assert invoke(*args, "--overwrite")[0].exit_code == 0 and "metrics" in json.loads(report.read_text())


def test_a_run_saved_before_markers_is_recognised_by_its_run_yaml(tmp_path):
    from latentfuse.config import RunConfig, dump_yaml
    from latentfuse.pipeline import _saved_identity, run_identity

    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"weights")
    (old / "run.yaml").write_text(dump_yaml(RunConfig(out=str(old))))
    same = RunConfig(out="elsewhere")  # where it is saved is not part of a run's identity
    with output_dir(old, "model-run", run_identity(same), known_files=("run.yaml", "model.safetensors"),
                    legacy_identity=_saved_identity) as target:
        assert target == old
    (old / MARKER).unlink()
    other = RunConfig()
    other.train.epochs = 3
    with pytest.raises(OutputExistsError, match=r"a model-run with other settings \(differs in train.epochs\)"):
        with output_dir(old, "model-run", run_identity(other), known_files=("run.yaml", "model.safetensors"),
                        legacy_identity=_saved_identity):
            pass


def test_written_files_and_swapped_folders_get_ordinary_permissions(tmp_path):
    """mkstemp / mkdtemp create private (0600 / 0700) files: a saved model or index must instead be as
    readable as any file the user writes (umask applies)."""
    import stat

    from latentfuse.utils import atomic

    atomic.write_text(tmp_path / "report.json", "{}")
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == atomic.FILE_MODE
    import torch

    from latentfuse.methods import build_method
    from latentfuse.model import JointModel, SideSpec

    model = JointModel(build_method("procrustes", {"a": 3, "b": 3}), [SideSpec("a", "text", "x", "1"),
                                                                         SideSpec("b", "text", "x", "2")])
    model.method.register_buffer("wa", torch.eye(3))
    model.save_pretrained(tmp_path / "model")  # safetensors writes its file itself
    assert stat.S_IMODE((tmp_path / "model" / "model.safetensors").stat().st_mode) == atomic.FILE_MODE
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "user.txt").write_text("x")
    with output_dir(tmp_path / "out", "model-run", {"a": 1}, overwrite=True) as target:
        (target / "model.safetensors").write_bytes(b"w")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == atomic.DIR_MODE
