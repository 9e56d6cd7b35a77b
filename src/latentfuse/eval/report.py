"""Retrieval reports: JSON for machines, a table for people (terminal via rich, README via markdown)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..store.paired import PairedFeatures
from .retrieval import retrieval_metrics

DIRECTION_NAMES = {("image", "text"): ("i2t", "t2i")}


def retrieval_report(embed_a: Any, embed_b: Any, data: PairedFeatures, *, dataset: str, split: str,
                     method: str, train_seconds: float | None = None) -> dict[str, Any]:
    """The retrieval JSON of ``latentfuse eval``: recalls in percent, both directions, median rank."""
    import torch

    a, b = data.sides
    metrics = retrieval_metrics(torch.as_tensor(embed_a), torch.as_tensor(embed_b), data.pairs)
    forward, backward = DIRECTION_NAMES.get((a, b), (f"{a}2{b}", f"{b}2{a}"))
    report: dict[str, Any] = {"task": "retrieval", "dataset": dataset, "split": split,
                              f"n_{a}s": int(len(np.unique(data.pairs[:, 0]))),
                              f"n_{b}s": int(len(np.unique(data.pairs[:, 1]))),
                              "method": method}
    # the direction a text query retrieves images first, as papers list it
    report[backward] = metrics["b2a"]
    report[forward] = metrics["a2b"]
    report["train_seconds"] = None if train_seconds is None else round(float(train_seconds), 2)
    report["metrics"] = {backward: metrics["b2a"], forward: metrics["a2b"]}
    return report


def _directions(report: dict[str, Any]) -> list[str]:
    return list(report["metrics"])


def table_rows(reports: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    directions = _directions(reports[0])
    header = ["method"] + [f"{d} {k}" for d in directions for k in ("R@1", "R@5", "R@10", "medr")] + ["train s"]
    rows = []
    for r in reports:
        cells = [r["method"]]
        for d in directions:
            m = r["metrics"][d]
            cells += [f"{m['R@1']:.1f}", f"{m['R@5']:.1f}", f"{m['R@10']:.1f}", f"{m['medr']:.0f}"]
        cells.append("-" if r.get("train_seconds") is None else f"{r['train_seconds']:.1f}")
        rows.append(cells)
    return header, rows


def markdown_table(reports: list[dict[str, Any]]) -> str:
    header, rows = table_rows(reports)
    first = reports[0]
    counts = ", ".join(f"{k[2:]}={v}" for k, v in first.items() if k.startswith("n_"))
    lines = [f"Retrieval on `{first['dataset']}` split `{first['split']}` ({counts}); recalls in %.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(reports: list[dict[str, Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(reports)
    first = reports[0]
    counts = ", ".join(f"{k[2:]}={v}" for k, v in first.items() if k.startswith("n_"))
    table = Table(title=title or f"retrieval · {first['dataset']} · {first['split']} ({counts})")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped / logged output: don't squeeze the columns to 80
        console = Console(width=160)
    console.print(table)
