"""Commands that describe: info | recipes | completion."""
from __future__ import annotations

import json
from typing import Any

import click

from ..config import describe
from ..config.commands import CacheConfig, CompletionConfig, InfoConfig, RecipesConfig
from ..errors import LatentfuseError
from ..version import __version__
from . import app
from .schema import fill_registry_names, schema_command

@schema_command(app, "info", [InfoConfig])
def info(cfg: InfoConfig) -> None:
    """Registered encoders, data sources, methods and tasks; or a saved model (-m), its cost (-m --cost);
    or every configuration key (--fields)."""
    if cfg.cost:
        if not cfg.model:
            raise click.UsageError("--cost needs -m/--model MODEL")
        from ..cost import cost_table, model_cost
        from ..model import load

        click.echo(cost_table(model_cost(load(cfg.model))))
        return
    if cfg.model:
        from pathlib import Path

        from ..model import read_config

        click.echo(json.dumps(read_config(Path(cfg.model) / "config.json"), indent=2))
        return
    if cfg.fields:
        _fields()
        return
    _registries()


def _fields() -> None:
    from ..methods import METHODS, method_class

    shown: set[type] = set()
    for command, schemas in ((name, getattr(cmd, "schemas", [])) for name, cmd in sorted(app.commands.items())):
        if not schemas:
            continue
        if schemas[0] in shown:
            click.echo(f"\nlatentfuse {command}: as above ({schemas[0].__name__})")
            continue
        shown.add(schemas[0])
        click.echo(f"\nlatentfuse {command} ({schemas[0].__name__}):")
        for key, default, doc in describe(schemas[0]):
            click.echo(f"  {key:<24} {default:<36} {fill_registry_names(doc)}")
    for name in METHODS.names():
        click.echo(f"\nmethod.options when method.name={name}:")
        for key, default, doc in describe(method_class(name).config_cls):
            click.echo(f"  {key:<22} {default:<12} {doc}")


def _registries() -> None:
    from ..data import SOURCES
    from ..encoders import ENCODERS
    from ..eval import TASKS
    from ..methods import METHODS

    click.echo(f"latentfuse {__version__}")
    for title, registry in (("encoders", ENCODERS), ("data sources", SOURCES), ("methods", METHODS),
                            ("evaluation tasks (latentfuse eval --task)", TASKS)):
        click.echo(f"\n{title}:")
        for name, doc in registry.describe().items():
            click.echo(f"  {name:<22} {doc}")
    click.echo("\ntoken taps (extract --layers; shape = tokens × channels, T = one per word piece):")
    for name, taps in _encoder_taps(ENCODERS).items():
        for tap in taps:
            click.echo(f"  {name:<22} {tap.name:<10} {tap.shape:<12} {tap.doc}")
    click.echo(f"  {'hf:MODEL':<22} {'layerN':<10} {'per model':<12} a ViT's patch tokens (pooled to 7×7) or a "
               "text model's hidden states")


def _encoder_taps(registry: Any) -> dict[str, list[Any]]:
    """Taps of every registered encoder that builds without an argument and whose weights are installed."""
    out = {}
    for name in registry.names():
        try:
            taps = registry.build(name).taps()
        except (LatentfuseError, TypeError):  # needs an argument (hf:, timm:), or weights not installed
            continue
        if taps:
            out[name] = list(taps.values())
    return out


@schema_command(app, "recipes", [RecipesConfig])
def recipes(cfg: RecipesConfig) -> None:
    """The named recipes shipped with latentfuse: `latentfuse run NAME`, or `--recipe NAME` on train/distill."""
    from ..config.recipes import describe_recipes, recipe_text

    if cfg.show:
        click.echo(recipe_text(cfg.show), nl=False)
        return
    for name, command, description in describe_recipes():
        click.echo(f"{name:<16} {command:<8} {description}")


@schema_command(app, "completion", [CompletionConfig])
def completion(cfg: CompletionConfig) -> None:
    """Print the shell completion script: eval "$(latentfuse completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(cfg.shell)
    assert cls is not None  # click knows all three
    click.echo(cls(app, {}, "latentfuse", "_LATENTFUSE_COMPLETE").source())


@schema_command(app, "cache", [CacheConfig])
def cache(cfg: CacheConfig) -> None:
    """What the feature cache holds (`latentfuse cache`), or remove what nothing references (`cache gc`)."""
    from pathlib import Path

    from ..store.maintenance import collect, stats

    root = Path(cfg.root)
    if cfg.action == "gc":
        done = collect(root, dry_run=cfg.dry_run)
        verb = "would remove" if cfg.dry_run else "removed"
        click.echo(f"{root}: {verb} {done.rows_removed} unreferenced rows ({done.shards_removed} shards whole, "
                   f"{done.shards_rewritten} rewritten), {done.old_folders} folders of the older layout; "
                   f"{_bytes(done.bytes_freed)} freed")
        return
    got = stats(root)
    click.echo(f"{root}")
    click.echo(f"  {'encoder / tap':<52} {'items':>9} {'referenced':>11} {'bytes':>10}")
    for shelf in got.shelves:
        click.echo(f"  {shelf.name:<52} {shelf.items:>9} {shelf.referenced:>11} {_bytes(shelf.bytes):>10}")
    if not got.shelves:
        click.echo("  (empty)")
    click.echo(f"read by {len(got.usages)} data splits and sides:")
    for usage in got.usages:
        click.echo(f"  {usage['data']} {usage['split']}/{usage['side']} → {usage['encoder']}: {usage['items']} items")
    if got.old_bytes:
        click.echo(f"{_bytes(got.old_bytes)} in folders of the older per-dataset layout, which this version does "
                   "not read: `latentfuse cache gc` removes them")


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
