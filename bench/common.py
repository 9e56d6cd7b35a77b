"""Shared helpers for benchmarks: where the shared data lives, skipping cleanly when it is absent, and the
markdown tables and trade-off plots every benchmark writes."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from latentfuse.config import RunConfig, public_values
from latentfuse.config.recipes import load_recipe
from latentfuse.utils import atomic

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "runs" / "bench"
PUBLISHED = ROOT / "docs" / "benchmarks"  # result files the documentation renders (committed)
MACHINE = "2-core CPU, no GPU"


def peak_rss_gb() -> float:
    """This process's peak resident memory, GB. Linux's ``VmHWM``, which starts afresh when a process is exec'd:
    ``getrusage``'s ``ru_maxrss`` carries the parent's peak over fork and exec, so a child started by a bench that had
    trained a model reported that model's 2.8 GB as its own. Elsewhere, ``ru_maxrss`` (bytes on macOS, KiB else)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


def publish(name: str, command: str, columns: list[str], table: list[list[str]], **data) -> Path:
    """Write ``docs/benchmarks/NAME.json``: the table the docs render (``<!-- benchmark: NAME -->``), the command
    that measured it, and the raw numbers behind it — data, not prose. Committed, so no path of this machine."""
    path = PUBLISHED / f"{name}.json"
    atomic.write_json(path, public_values({"command": command, "machine": MACHINE, "columns": columns,
                                           "table": table, **data}))
    return path


def republish(name: str, plot: Callable[[list[dict[str, Any]], Path], None],
              note: Callable[[dict[str, Any]], str]) -> None:
    """The PNG and the note of ``docs/benchmarks/NAME.json`` again from its rows, by the code as it is now (a
    target added later is judged without measuring again)."""
    path = PUBLISHED / f"{name}.json"
    result = json.loads(path.read_text())
    plot(result["rows"], PUBLISHED / f"{name}.png")
    atomic.write_json(path, {**result, "note": note(result)})


def slope(rows: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float:
    """The log–log slope of ``value`` against each row's ``n`` (1 = linear); NaN for fewer than two rows."""
    if len(rows) < 2:
        return float("nan")
    return float(np.polyfit(np.log([r["n"] for r in rows]), np.log([value(r) for r in rows]), 1)[0])


def bench_config(**fields) -> RunConfig:
    """The ``bench-classic`` recipe (lite0 + MiniLM, no query-bank normalisation: what the benchmarks that
    predate the ensemble default measured for their tables in docs/results.md), with ``fields`` replaced. The shipped
    default moved on; ``bench/quality.py`` measures it."""
    return dataclasses.replace(load_recipe("bench-classic", RunConfig), **fields)


def saved_run_on(config: RunConfig, split: str) -> tuple[Any, Any, Any]:
    """(the run's saved model, the features of ``split`` of its data through its encoders and the taps its method
    reads, the source): how a benchmark scores a finished run on a split the run did not report (val, where
    its choices are made)."""
    from latentfuse.data import build_source
    from latentfuse.model import JointModel
    from latentfuse.pipeline import side_encoders, split_features

    model = JointModel.load(config.out)
    source = build_source(config.data.source)
    taps = {side: model.method.side_taps(side) for side in model.sides if model.method.side_taps(side)}
    features = split_features(source, split, side_encoders(source, config.encoders), config.store, progress=False,
                              taps=taps or None)
    return model, features, source


def candidates_on_val(candidates: dict[str, dict[str, Any]], config_of: Callable[[str, dict[str, Any]], RunConfig],
                      val_of: Callable[[RunConfig], dict[str, Any]],
                      test_of: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Train (or reuse) one run per candidate (label → method options) and read each on val — where a choice is
    made — and on test from its own report, once: rows of label, options, val, test, train_seconds."""
    from .flickr8k import cached_run  # bench.flickr8k imports this module

    rows = []
    for label, options in candidates.items():
        config = config_of(label, options)
        report = cached_run(config)[0]
        rows.append({"label": label, "options": options, "val": val_of(config), "test": test_of(report),
                     "train_seconds": report.get("train_seconds")})
        print(f"{label}: done", flush=True)
    return rows


def flickr8k_dir() -> Path | None:
    path = SHARED_DATA / "flickr8k"
    if not (path / "captions.tsv").exists():
        print(f"skip: Flickr8k not found at {path}", file=sys.stderr)
        return None
    return path


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def recalls(metrics: dict[str, float]) -> str:
    """``R@1 / R@5 / R@10`` of one retrieval direction."""
    return " / ".join(fmt(metrics[k]) for k in ("R@1", "R@5", "R@10"))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def scatter_plot(points: Sequence[tuple[float, float, str, str]], path: Path, xlabel: str, ylabel: str,
                 title: str) -> None:
    """A labelled scatter plot of (x, y, label, marker) points, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for x, y, label, marker in points:
        ax.scatter(x, y, marker=marker)
        ax.annotate(label, (x, y), fontsize=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)


def gate_plot(curves: Sequence[tuple[str, list[dict[str, Any]]]], path: Path, title: str) -> None:
    """MMFuser's γ gates epoch by epoch — mean |γ1| (cross-attention, solid) and |γ2| (self-attention, dashed) —
    one colour per (label, metrics.jsonl records) curve, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, records in curves:
        epochs = [r["epoch"] for r in records]
        line, = ax.plot(epochs, [r["gamma1"] for r in records], marker="o", label=f"{label}: γ1")
        ax.plot(epochs, [r["gamma2"] for r in records], linestyle="--", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean |γ| (solid: γ1 cross-attention, dashed: γ2 self-attention)")
    ax.set_title(title)
    ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
