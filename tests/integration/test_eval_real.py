"""Real-data checks of the evaluation suite: skipped cleanly when the shared data is absent."""
from __future__ import annotations

import pytest

from latentfuse.config import StoreConfig
from latentfuse.eval import frozen_model, task

from conftest import SHARED


@pytest.mark.slow
def test_frozen_minilm_on_sts_b_test_is_in_the_published_band(tmp_path):
    """all-MiniLM-L6-v2 scores ~82 Spearman on STS-B test; anything below 75 means broken plumbing
    (wrong side, unnormalised cosine, misaligned gold scores). 1,379 pairs ≈ 2,758 sentences."""
    path = SHARED / "sts-b" / "stsb.tsv"
    if not path.exists():
        pytest.skip(f"shared STS-B not found at {path}")
    report = task("sts").run(frozen_model("minilm-l6"), f"sts-b:{path}", "test",
                             StoreConfig(root=str(tmp_path / "store")), progress=False)
    assert report["n_pairs"] == 1379 and report["split"] == "test"
    assert 75 < report["metrics"]["spearman"] < 90, report
    assert 75 < report["metrics"]["pearson"] < 90, report
