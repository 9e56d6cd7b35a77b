import os
import tempfile
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# file digests remembered by tests go to a throwaway table, not the user's ~/.cache one
os.environ.setdefault("LATENTFUSE_DIGESTS", os.path.join(tempfile.mkdtemp(prefix="latentfuse-digests-"), "d.sqlite3"))
# ONNX graphs exported by tests go to a throwaway folder (exported once per run), not ~/.cache/latentfuse/onnx
os.environ.setdefault("LATENTFUSE_ONNX_CACHE", tempfile.mkdtemp(prefix="latentfuse-onnx-"))
sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers is importable as `helpers` from every folder
pytest_plugins = ["helpers.fixtures"]  # fixtures several test modules share (small_pairs, browser)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def flickr8k_dir() -> Path:
    path = SHARED / "flickr8k"
    if not (path / "captions.tsv").exists():
        pytest.skip(f"shared Flickr8k not found at {path}")
    return path


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """The coloured-shapes collection and its trained model (tests/helpers/shapes.py), built once per run."""
    from helpers import shapes as shapes_module

    return shapes_module.build(tmp_path_factory.mktemp("shapes"))


LAYERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(config, items):
    """Mark each test by its folder: unit (one package, in process), integration (several packages or the
    CLI in process), system (subprocesses: the console, torchrun, Ray, Chromium, fuzzers); `-m unit` runs
    the fast ring alone."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(root).parts
        if parts and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
