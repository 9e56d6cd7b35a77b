"""The real console entry point in a fresh process."""
from __future__ import annotations

from pathlib import Path

from helpers import fakes  # noqa: F401  (registers fake-text)

TESTS = Path(__file__).resolve().parents[1]  # the folder that holds helpers/


def run_cli(*args: str, extra_path: str = "", timeout: int = 300):
    """The real console entry point in a fresh process, with the tests' fake encoders registered."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(TESTS)) if p)}
    code = "import helpers.fakes; from latentfuse.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
