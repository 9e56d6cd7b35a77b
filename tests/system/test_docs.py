"""The documentation: the site builds with --strict (offline), its generated reference lists every registered
encoder, source, method and task, the README stays a front door (≤ 250 lines), and the README's quick starts
run verbatim on the tiny table bundled in examples/ — the commands a newcomer copies are the ones tested."""
from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    out = tmp_path_factory.mktemp("site")
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True))
    return out


def test_the_site_builds_strict_and_its_registry_reference_lists_everything(site):
    from latentfuse.cli.reference import registries

    page = html.unescape((site / "reference" / "registries" / "index.html").read_text())
    for title, entries in registries().items():
        assert entries, title
        missing = [name for name in entries if f"<code>{name}</code>" not in page]
        assert not missing, f"registered {title} missing from the generated reference: {missing}"
    cli = html.unescape((site / "reference" / "cli" / "index.html").read_text())
    from latentfuse.cli import app

    assert all(f"latentfuse {name}" in cli for name in app.commands)
    assert "fonts.googleapis" not in (site / "index.html").read_text()  # builds and reads offline


def test_the_methods_page_renders_each_papers_docstring_and_every_method_has_a_paper_preset(site):
    """The deviation lists live in the modules' docstrings; the docs render them, so the two cannot disagree."""
    import re

    from latentfuse.methods import METHODS, method_class

    page = re.sub(r"<[^>]+>", "", html.unescape((site / "reference" / "methods" / "index.html").read_text()))
    for name in ("fusemix", "lightcrl", "mmfuser", "dime", "dynmm"):
        module = __import__(method_class(name).__module__, fromlist=["_"])
        first_line = module.__doc__.strip().splitlines()[0]
        assert first_line in page, name
        assert "paper" in method_class(name).config_cls.presets, name
        assert "Deviations" in module.__doc__ and "preset: paper" in module.__doc__, name
    assert set(METHODS.names()) >= {"fusemix", "lightcrl", "mmfuser", "dime", "dynmm"}


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    assert lines[3:5] == ["make demo   # fresh machine: builds .venv, installs, trains FuseMix vs baselines offline, prints the table",
                          "make test   # fresh machine: builds .venv with dev extras, runs the test suite (a few minutes on 2 cores)"]


def test_the_readme_headline_is_the_benchmarks_result_file():
    """The README's one table is not retyped prose: its row must be the shipped-default row `make bench` wrote."""
    import json

    result = json.loads((ROOT / "docs" / "benchmarks" / "quality-test.json").read_text())
    shipped = next(row for row in result["table"] if row[0].startswith("shipped default"))
    line = next(line for line in README.read_text().splitlines() if line.startswith("| **shipped default**"))
    assert [cell.strip().strip("*") for cell in line.strip("|").split("|")][1:] == shipped[1:]


def block(marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->`` in the README."""
    found = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```", README.read_text(), re.S)
    assert found, marker
    return found.group(1)


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder holding a copy of examples/, and an environment whose PATH finds this latentfuse."""
    home = tmp_path_factory.mktemp("newcomer")
    shutil.copytree(ROOT / "examples", home / "examples")
    env = dict(os.environ, LATENTFUSE_CACHE=str(home / "cache"), HF_HUB_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return home, env


def run_lines(text: str, home: Path, env: dict[str, str]) -> list[str]:
    outputs = []
    for line in (raw.split("#")[0].strip() for raw in text.splitlines()):
        if line:
            done = subprocess.run(line, shell=True, cwd=home, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (line, done.stderr[-3000:])
            outputs.append(done.stdout)
    return outputs


def test_the_shell_quick_start_runs_verbatim(newcomer):
    home, env = newcomer
    *_, searched = run_lines(block("quickstart:shell"), home, env)
    top = re.findall(r"(\w+-\w+-\w+)\.png", searched)[:3]
    assert top and all(name.startswith("blue-square") for name in top), searched  # it learned the captions
    (report,) = __import__("json").loads((home / "runs" / "shapes" / "report.json").read_text())
    assert report["split"] == "test" and report["n_images"] > 0


def test_the_python_quick_start_runs_verbatim(newcomer):
    home, env = newcomer
    if not (home / "runs" / "shapes").exists():
        run_lines(block("quickstart:shell"), home, env)
    done = subprocess.run([sys.executable, "-c", block("quickstart:python")], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    matrix = [[float(x) for x in re.findall(r"-?\d+\.\d+", row)] for row in done.stdout.strip().splitlines()]
    assert matrix[0][0] > matrix[0][1] and matrix[1][1] > matrix[1][0], done.stdout  # each photo, its caption
    assert (home / "runs" / "fit-demo" / "model.safetensors").exists()


def test_the_server_quick_start_runs_verbatim(newcomer):
    home, env = newcomer
    if not (home / "runs" / "shapes").exists():
        run_lines(block("quickstart:shell"), home, env)
    index, serve, curl = [line.split("#")[0].strip() for line in block("quickstart:server").splitlines()
                          if line.strip()]
    run_lines(index, home, env)
    server = subprocess.Popen(serve, shell=True, cwd=home, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        (answer,) = run_lines(curl, home, env)
        hits = __import__("json").loads(answer)["results"]
        assert len(hits) == 3 and hits[0]["id"].startswith("red-circle")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
