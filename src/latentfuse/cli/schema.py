"""Click commands generated from configuration schemas: no option is declared by hand.

Every field of a command's dataclass that carries a ``config.Flag`` becomes an option (or, for a name without
dashes, a positional argument). Its help is the field's docstring plus its accepted values and the value the command starts from; its
value goes through ``config.set_field``, the same checks as YAML and ``--set``. Every command also takes
``--config FILE`` (YAML of the whole schema) and ``--set key=value`` (any field, flagged or not), applied in
that order, then the flags: flags win.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from ..config import Flag, apply_overrides, field_checks, field_docs, overlay_yaml, set_field
from ..errors import ConfigError
from ..specs import listed, mapping

CONFIG_FLAG = Flag("-c", "--config")
SET_FLAG = Flag("--set")
RECIPE_FLAG = Flag("--recipe")


@dataclass(frozen=True)
class Bound:
    """A generated parameter: where its value goes (dotted key of schema number ``group``) and its flag."""

    dest: str
    group: int
    key: str
    flag: Flag
    hint: Any


def flagged_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, Flag, str]]:
    """(dotted key, base type, flag, doc) of every flagged field of ``cls``, nested sections included."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_docs(cls)
    instance = cls()
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out += flagged_fields(type(value), f"{prefix}{f.name}.")
            continue
        extras = typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()
        flag = next((e for e in extras if isinstance(e, Flag)), None)
        if flag is None:
            continue
        base, checks = field_checks(hint)
        accepted = " ".join(f"[{check.describe()}]" for check in checks)
        doc = " ".join(filter(None, (docs.get(f.name, ""), accepted)))
        out.append((prefix + f.name, base, flag, doc))
    return out


def params_for(schemas: Sequence[type]) -> tuple[list[click.Parameter], list[Bound]]:
    params: list[click.Parameter] = []
    bound: list[Bound] = []
    for group, cls in enumerate(schemas):
        for key, base, flag, doc in flagged_fields(cls):
            dest = f"g{group}__{key.replace('.', '__')}"
            params.append(_param(dest, base, flag, doc))
            bound.append(Bound(dest, group, key, flag, base))
    return params, bound


def _param(dest: str, base: Any, flag: Flag, doc: str) -> click.Parameter:
    origin = typing.get_origin(base)
    many = origin in (list, dict)
    if flag.positional:
        return click.Argument([dest], required=False, nargs=1,
                              metavar=flag.names[0] if flag.required else f"[{flag.names[0]}]")
    kind = {int: click.INT, float: click.FLOAT}.get(base, click.STRING)
    if base is bool:
        return click.Option([*flag.names, dest], is_flag=True, default=None, help=doc)
    metavar = "SIDE=SPEC" if origin is dict else None
    return click.Option([*flag.names, dest], type=kind, multiple=many, default=None, help=doc, metavar=metavar)


def _shown(value: Any) -> str:
    """`` (default: X)`` for a help text; nothing for empty values and flags."""
    if value in ("", [], {}, None, False, True):
        return ""
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):
        value = ",".join(map(str, value))
    return f" (default: {value})"


def common_params(recipes: bool) -> list[click.Parameter]:
    params = [click.Option([*CONFIG_FLAG.names, "config_file"], type=click.Path(dir_okay=False, path_type=Path),
                           help="YAML file of this command's settings (its keys: `latentfuse info --fields`)."),
              click.Option([*SET_FLAG.names, "overrides"], multiple=True, metavar="KEY=VALUE",
                           help="Set any field: dotted.key=value, the value read as YAML (repeatable; applied "
                                "after --config, before the flags).")]
    if recipes:
        params.append(click.Option([*RECIPE_FLAG.names, "recipe"], metavar="NAME",
                                   help="Start from a named recipe shipped with latentfuse (`latentfuse recipes`)."))
    return params


def build_configs(schemas: Sequence[type], bound: list[Bound], values: dict[str, Any],
                  start: Any = None, check: bool = True) -> list[Any]:
    """The configs a command runs with: ``start`` (or ``--config FILE``, or the defaults) → ``--set`` → flags."""
    config_file, overrides = values.pop("config_file", None), values.pop("overrides", ())
    main = start if start is not None else schemas[0]()
    if config_file:
        main = overlay_yaml(main, config_file)
    if overrides:
        main = apply_overrides(main, list(overrides))
    configs = [main, *(cls() for cls in schemas[1:])]
    for b in bound:
        value = values.pop(b.dest, None)
        if value is None or value == ():
            continue
        set_field(configs[b.group], b.key, _typed(value, b), label=b.flag.long)
    for b in bound:
        if check and b.flag.required and not _get(configs[b.group], b.key):
            raise ConfigError(f"missing {b.flag.long} (or `{b.key}:` in --config)")
    return configs


def _typed(value: Any, b: Bound) -> Any:
    origin = typing.get_origin(b.hint)
    if origin is dict:
        return mapping(value, b.flag.long, "text=minilm-l6")
    if origin is list:
        return listed(value) if b.flag.commas else list(value)
    return value


def _get(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def fill_registry_names(text: str) -> str:
    """``{methods}`` in a help text → the registered method names, read when the help is shown (plugins too)."""
    if "{methods}" not in text:
        return text
    from ..methods import METHODS

    return text.replace("{methods}", " | ".join(METHODS.names()))


class SchemaCommand(click.Command):
    """A generated command: option help naming registered things is filled in each time it is shown."""

    starting: Callable[[], list[Any]] | None = None  # the configs a bare command would run with
    bound: list[Bound] = []

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = [(p, getattr(p, "help", None)) for p in self.params]
        configs = self.starting() if self.starting else []
        defaults = {b.dest: _shown(_get(configs[b.group], b.key)) for b in self.bound} if configs else {}
        for param, text in saved:
            if text:  # the default shown is the value the command starts from (a recipe's, or the schema's)
                param.help = fill_registry_names(text) + defaults.get(param.name or "", "")  # type: ignore[attr-defined]
        try:
            super().format_options(ctx, formatter)
        finally:
            for param, text in saved:
                if text:
                    param.help = text  # type: ignore[attr-defined]


def schema_command(group: click.Group, name: str, schemas: Sequence[type], *, recipes: bool = False,
                   help: str | None = None, cls: type[click.Command] = SchemaCommand,
                   start: Callable[[dict[str, Any]], Any] | None = None,
                   extra: Sequence[click.Parameter] = ()) -> Callable[[Callable[..., Any]], Any]:
    """Register ``fn(*configs)`` as command ``name`` with options generated from ``schemas``; the first
    schema is the one ``--config`` / ``--set`` / ``--recipe`` fill, over ``start(values)`` (a recipe, or what
    an ``extra`` positional names) or the schema's defaults."""
    params, bound = params_for(schemas)

    def configs(values: dict[str, Any], check: bool = True) -> list[Any]:
        values = dict(values)
        first = start(values) if start else None
        recipe = values.pop("recipe", None)
        if recipe:
            from ..config.recipes import load_recipe

            first = load_recipe(recipe, schemas[0])
        return build_configs(schemas, bound, values, first, check)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        command = cls(name, callback=lambda **values: fn(*configs(values)),
                      params=[*extra, *params, *common_params(recipes)],
                      help=help if help is not None else fn.__doc__, no_args_is_help=False)
        command.configs = configs  # type: ignore[attr-defined]  (parse_configs: the configs, not the run)
        command.schemas = list(schemas)  # type: ignore[attr-defined]  (info --fields reads them)
        if isinstance(command, SchemaCommand):
            command.bound = bound
            command.starting = None if extra else (lambda: configs({}, check=False))
        group.add_command(command)
        return fn

    return decorate


def parse_configs(group: click.Group, name: str, args: Sequence[str]) -> list[Any]:
    """The configs ``latentfuse NAME ARGS`` would run with, without running it (tests, tools)."""
    command = group.commands[name]
    with command.make_context(name, list(args)) as ctx:
        return command.configs(ctx.params)  # type: ignore[attr-defined]
