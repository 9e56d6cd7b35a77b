"""Nested metric dicts, walked once: the trainer's JSONL keys and the report tables both read them here."""
from __future__ import annotations

from typing import Any, Iterator


def flatten(tree: dict[str, Any], skip: frozenset[str] | set[str] = frozenset(),
            prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``{"a": {"b": 1}, "c": 2}`` → ``(("a", "b"), 1), (("c",), 2)`` in insertion order; keys in ``skip``
    (and everything under them) are left out."""
    for key, value in tree.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            yield from flatten(value, skip, prefix + (key,))
        else:
            yield prefix + (key,), value
