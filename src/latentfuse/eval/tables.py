"""The one renderer: tables for any list of task reports — one per (task, dataset, split) — for terminals,
READMEs and model cards (with the Hub's model-index metrics).

Columns come from the reports themselves (``metrics`` flattened: ``{"t2i": {"R@1": ..}}`` → ``t2i R@1``,
``{"classes": {"1": {"f1": ..}}}`` → ``class 1 F1``; common names shortened, counts left to the JSON), so a
new task needs no table code. Rows are labelled by
method; an ``identity`` model reads as ``frozen <encoder>``, the "encoder alone" baseline.
"""
from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING, Any, Iterable

from ..specs import public
from ..utils import nested

if TYPE_CHECKING:
    from ..model import JointModel

RAW_KEYS = {"threshold": "{:.3f}", "C": "{:g}", "medr": "{:.0f}", "seconds": "{:.1f}"}  # not percentages
HIDDEN = {"support"}  # counts stay in the JSON; tables show scores
SHORT = {"classes": "class", "accuracy": "acc", "val_accuracy": "val acc", "fit_accuracy": "fit acc",
         "f1_macro": "macro F1", "precision": "P", "recall": "R", "f1": "F1", "threshold": "thr",
         "spearman": "Spearman", "pearson": "Pearson"}


def row_label(report: dict[str, Any]) -> str:
    """``fusemix``, or ``frozen minilm-l6`` for an identity model over one encoder."""
    if report.get("method") == "identity":
        encoders = list(dict.fromkeys((report.get("encoders") or {}).values()))
        return "frozen " + " + ".join(encoders) if encoders else "frozen"
    return str(report.get("method", "?"))


def flatten(metrics: dict[str, Any]) -> list[tuple[str, tuple[str, Any]]]:
    """Nested metrics → (column, (metric key, value)) in insertion order; short names, counts left out."""
    return [(" ".join(SHORT.get(key, key) for key in path), (path[-1], value))
            for path, value in nested.flatten(metrics, HIDDEN)]


def cell(value: tuple[str, Any] | None) -> str:
    """``(metric key, value)`` → text: percentages with one decimal, raw numbers (thresholds, C) as such."""
    if value is None or value[1] is None:
        return "-"
    key, number = value
    if key in RAW_KEYS and isinstance(number, (int, float)):
        return RAW_KEYS[key].format(number)
    if isinstance(number, float):
        return f"{number:.1f}"
    return str(number)


def title(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{k[2:]}={v}" for k, v in report.items() if k.startswith("n_") and isinstance(v, int))
    return f"{report['task']} · {report['dataset']} · {report['split']}" + (f" ({counts})" if counts else "")


def groups(reports: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive reports of the same task, dataset and split share one table."""
    key = lambda r: (r["task"], r["dataset"], r["split"])  # noqa: E731
    return [list(g) for _, g in groupby(reports, key=key)]


def table(reports: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one group; columns are the union of the rows' metrics, in first-seen order."""
    columns = list(dict.fromkeys(name for r in reports for name, _ in flatten(r["metrics"])))
    timed = any(r.get("train_seconds") is not None for r in reports)
    rows = []
    for r in reports:
        values = dict(flatten(r["metrics"]))
        seconds = [cell(("seconds", r.get("train_seconds")))] if timed else []
        rows.append([row_label(r)] + [cell(values.get(c)) for c in columns] + seconds)
    return ["method"] + columns + (["train s"] if timed else []), rows


def markdown(reports: list[dict[str, Any]]) -> str:
    """Markdown tables, one per group, each under a line naming task, dataset and split."""
    parts = []
    for group in groups(reports):
        header, rows = table(group)
        lines = [f"**{title(group[0])}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def print_reports(reports: list[dict[str, Any]], heading: str | None = None) -> None:
    """One rich table per group on the terminal (``heading`` replaces the first table's title)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs and pipes: no wrapping at rich's default 80 columns
        console = Console(width=160)
    for number, group in enumerate(groups(reports)):
        header, rows = table(group)
        out = Table(title=heading if heading and number == 0 else title(group[0]))
        for i, name in enumerate(header):
            out.add_column(name, justify="left" if i == 0 else "right")
        for row in rows:
            out.add_row(*row)
        console.print(out)


def model_index(reports: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    """The Hub's model-index entries (``huggingface_hub.EvalResult`` fields) for ``method``'s own reports."""
    entries = []
    for r in reports:
        if r.get("method") != method:
            continue
        dataset = str(r["dataset"]).split(":")[0]  # the source's name; a local path means nothing on the Hub
        for column, (_, value) in flatten(r["metrics"]):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                entries.append({"task_type": r["task"], "dataset_type": dataset, "dataset_name": dataset,
                                 "dataset_split": r["split"], "metric_type": column, "metric_name": column,
                                 "metric_value": float(value)})
    return entries


def model_card(model: "JointModel", reports: list[dict[str, Any]]) -> str:
    """The model's card with its evaluation tables (and any side-by-side rows) and model-index metrics."""
    if not reports:
        return model.card()
    reports = [{**r, "dataset": public(str(r["dataset"]))} for r in reports]  # no local path is published
    return model.card(markdown(reports), model_index(reports, model.method.name))
