"""MkDocs hooks: the pages whose content is generated when the site is built.

``<!-- registries -->`` and ``<!-- cli -->`` become the registry tables and every command's help
(``latentfuse.cli.reference``); ``<!-- benchmark: NAME -->`` becomes the table of ``docs/benchmarks/NAME.json``,
the result file ``make bench`` writes (its ``columns`` and ``table``, and the command that measured it) — so no
figure in the docs is retyped by hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

DOCS = Path(__file__).parent
BENCHMARK = re.compile(r"<!-- benchmark: ([\w.-]+) -->")


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (mkdocs' hook signature)
    if "<!-- registries -->" in markdown or "<!-- cli -->" in markdown:
        from latentfuse.cli.reference import cli_markdown, registries_markdown

        markdown = markdown.replace("<!-- registries -->", registries_markdown())
        markdown = markdown.replace("<!-- cli -->", cli_markdown())
    return BENCHMARK.sub(lambda match: benchmark_table(match.group(1)), markdown)


def benchmark_table(name: str) -> str:
    path = DOCS / "benchmarks" / f"{name}.json"
    if not path.is_file():
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{path} not found: the benchmark writes it (`make bench`, or its own command)")
    result = json.loads(path.read_text())
    lines = ["| " + " | ".join(result["columns"]) + " |", "|" + "---|" * len(result["columns"])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in result["table"]]
    note = f" {result['note'][0].upper()}{result['note'][1:].rstrip('.')}." if result.get("note") else ""
    return "\n".join(lines + ["", f"Measured by `{result['command']}` ({result.get('machine', 'see the page')}).{note}"])
