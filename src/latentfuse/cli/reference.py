"""The generated reference pages of the documentation site (``docs/hooks.py`` fills them at build time): every
registered encoder, source, method and task, and every command's ``--help``. Generated, never hand-kept, so a
new registration appears without anyone editing a list."""
from __future__ import annotations

import click

from . import app

REGISTRIES = ("encoders", "data sources", "methods", "evaluation tasks")


def registries() -> dict[str, dict[str, str]]:
    """Title → {registered name: its help line}."""
    from ..data import SOURCES
    from ..encoders import ENCODERS
    from ..eval import TASKS
    from ..methods import METHODS

    return {title: registry.describe() for title, registry in zip(REGISTRIES, (ENCODERS, SOURCES, METHODS, TASKS))}


def registries_markdown() -> str:
    out = []
    for title, entries in registries().items():
        out += [f"## {title.capitalize()}", "", "| name | what |", "|---|---|"]
        out += [f"| `{name}` | {_cell(doc)} |" for name, doc in entries.items()]
        out.append("")
    return "\n".join(out)


def cli_markdown() -> str:
    """Each command's ``--help`` as the terminal shows it, in a code block under a heading of its name."""
    out = []
    with click.Context(app, info_name="latentfuse", terminal_width=100, max_content_width=100) as root:
        out += ["## latentfuse", "", "```text", app.get_help(root), "```", ""]
        for name in sorted(app.commands):
            command = app.commands[name]
            with click.Context(command, info_name=name, parent=root, terminal_width=100,
                               max_content_width=100) as context:
                out += [f"## latentfuse {name}", "", "```text", command.get_help(context), "```", ""]
    return "\n".join(out)


def _cell(text: str) -> str:
    """One table cell: on one line, its pipes and brackets escaped (``[#cls|#mean]`` is not a link)."""
    return " ".join(text.split()).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
