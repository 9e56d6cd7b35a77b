"""QB-Norm statistics of an index that are not per item: for each query of a side's bank, its best raw
similarity among the rows and that row's number (the activation set of dynamic inverted softmax is the rows
some bank query ranks first). The per-item hub penalties live in the item table (``table.penalty_column``).

Kept in ``INDEX/hubness.npz`` next to the table, tagged with the table version they describe: grown with each
append (only the new rows meet the bank), patched after a delete (only the bank queries whose best row went
are searched again), and recomputed from the rows — a chunked scan, never all of them in memory — when the
file is missing, damaged or of another version (a run killed between the table commit and this file).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hubness import gallery_norm
from ..utils import atomic
from .table import ItemTable, vectors_of

FILE = "hubness.npz"


@dataclass
class BankBest:
    best_score: np.ndarray  # (n_bank,) float32, -inf where the index is empty
    best_row: np.ndarray  # (n_bank,) int64 row numbers, -1 where the index is empty

    @classmethod
    def empty(cls, n_bank: int) -> "BankBest":
        return cls(np.full(n_bank, -np.inf, dtype=np.float32), np.full(n_bank, -1, dtype=np.int64))

    def grow(self, bank: torch.Tensor, vectors: np.ndarray, rows: np.ndarray, beta: float) -> np.ndarray:
        """Meet new rows with the bank: update the bests; → the new rows' penalties."""
        norm = gallery_norm(bank, torch.from_numpy(np.array(vectors, dtype=np.float32)), beta)
        score, where = norm.best_score.numpy(), norm.best_row.numpy()
        better = score > self.best_score
        self.best_score = np.where(better, score, self.best_score).astype(np.float32)
        self.best_row = np.where(better, np.asarray(rows)[np.clip(where, 0, None)], self.best_row)
        return norm.penalty.numpy()


def recompute(table: ItemTable, bank: torch.Tensor, beta: float, where: str | None = None,
              only: np.ndarray | None = None, start: BankBest | None = None) -> BankBest:
    """The bests from the stored rows, a batch at a time (``only``: just these bank queries, from ``start``)."""
    chosen = np.arange(len(bank)) if only is None else only
    best = BankBest.empty(len(chosen))
    for batch in table.scan(["row", "vector"], where):
        if batch.num_rows:
            best.grow(bank[torch.as_tensor(chosen)], vectors_of(batch), batch.column("row").to_numpy(), beta)
    if start is None:
        return best
    start.best_score[chosen], start.best_row[chosen] = best.best_score, best.best_row
    return start


def save(directory: Path, version: int, beta: float, bests: dict[str, BankBest]) -> None:
    with atomic.atomic_path(Path(directory) / FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, version=np.int64(version), beta=np.float64(beta),
                     **{f"{side}.{name}": getattr(b, name) for side, b in bests.items()
                        for name in ("best_score", "best_row")})


def load(directory: Path, version: int, beta: float, banks: dict[str, torch.Tensor]) -> dict[str, BankBest]:
    """The saved bests when they describe ``version`` under the same β and banks; else {} (recompute)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return {}
    if int(arrays.get("version", -1)) != version or float(arrays.get("beta", np.nan)) != beta:
        return {}
    bests = {}
    for side, bank in banks.items():
        score, row = arrays.get(f"{side}.best_score"), arrays.get(f"{side}.best_row")
        if score is None or row is None or len(score) != len(bank) or len(row) != len(bank) \
                or np.isnan(score).any() or ((row < 0) != np.isneginf(score)).any():
            return {}
        bests[side] = BankBest(score.astype(np.float32), row.astype(np.int64))
    return bests
