"""Methods: a registry of names (``fusemix``, ``asif``, ``procrustes``, ``cca``) → Method class."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .base import Method, MethodConfig

METHODS: Registry[type[Method]] = Registry("method")


def method_class(name: str) -> type[Method]:
    _import_builtin_methods()
    return METHODS.get(name)


def make_config(name: str, values: dict[str, Any] | None = None) -> Any:
    """The method's config dataclass from a dict; unknown keys are an error naming the valid ones."""
    cls = method_class(name).config_cls
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"method {name!r}: unknown option(s) {unknown}; valid: {sorted(known)}")
    return cls(**values)


def build_method(name: str, dims: dict[str, int], config: Any = None) -> Method:
    cls = method_class(name)
    if config is None or isinstance(config, dict):
        config = make_config(name, config)
    return cls(dims, config)


def _import_builtin_methods() -> None:
    from . import asif, fusemix, identity, lightcrl, linear  # noqa: F401  (registration side effects)


__all__ = ["METHODS", "Method", "MethodConfig", "build_method", "make_config", "method_class"]
