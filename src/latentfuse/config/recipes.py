"""Named recipes: YAML configurations shipped inside the package (``src/latentfuse/recipes/*.yaml``).

A recipe is a command's configuration as data: ``command:`` says which schema it fills (train or distill),
``description:`` is its one line in ``latentfuse recipes``, every other key is a field of that schema. The
shipped default, the demo, the ``paper`` reproductions and the benchmarks' configurations are recipes, so
moving the default is an edit of ``default.yaml`` alone, and the wheel carries them all.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from ..errors import ConfigError
from ..specs import did_you_mean
from . import DistillConfig, RunConfig, overlay

SCHEMAS: dict[str, type] = {"train": RunConfig, "distill": DistillConfig}
DEFAULT_RECIPE = "default"


def _folder() -> Any:
    return resources.files("latentfuse") / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    path = _folder() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}.{did_you_mean(name, recipe_names())} "
                          f"Recipes: {', '.join(recipe_names())}")
    return path.read_text(encoding="utf-8")


def recipe_data(name: str) -> dict[str, Any]:
    data = yaml.safe_load(recipe_text(name)) or {}
    if not isinstance(data, dict) or data.get("command") not in SCHEMAS:
        raise ConfigError(f"recipe {name}: expected a mapping with command: {' | '.join(SCHEMAS)}")
    return data


def recipe_command(name: str) -> str:
    return recipe_data(name)["command"]


def describe_recipes() -> list[tuple[str, str, str]]:
    """(name, command, description) of every shipped recipe."""
    return [(name, data["command"], str(data.get("description", ""))) for name, data in
            ((name, recipe_data(name)) for name in recipe_names())]


def load_recipe(name: str, cls: type | None = None, seen: tuple[str, ...] = ()) -> Any:
    """Recipe ``name`` as its schema's dataclass, laid over the recipe it ``extends`` (sections merged key by
    key) or over the schema's defaults; ``cls`` (when given) must be that schema."""
    data = dict(recipe_data(name))
    command = data.pop("command")
    data.pop("description", None)
    base = data.pop("extends", None)
    if cls is not None and SCHEMAS[command] is not cls:
        wanted = next((c for c, s in SCHEMAS.items() if s is cls), cls.__name__)
        raise ConfigError(f"recipe {name!r} is a {command} recipe, not a {wanted} one; "
                          f"{wanted} recipes: {', '.join(n for n, c, _ in describe_recipes() if c == wanted)}")
    if base in seen + (name,):
        raise ConfigError(f"recipe {name}: extends {base!r} in a loop")
    start = load_recipe(base, SCHEMAS[command], seen + (name,)) if base else SCHEMAS[command]()
    return overlay(start, data, where=f"recipe {name}")


