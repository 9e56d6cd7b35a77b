"""Methods: a registry of names → Method class; every module of this package (and every ``latentfuse.methods``
entry point) registers itself (see ``registry``)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..config import from_dict
from ..errors import ConfigError
from ..registry import Registry
from .base import Method, MethodConfig

METHODS: Registry[type[Method]] = Registry("method", __name__, "latentfuse.methods")


def method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def make_config(name: str, values: dict[str, Any] | None = None) -> Any:
    """The method's config dataclass from a dict; unknown keys are an error naming the valid ones."""
    cls = method_class(name).config_cls
    values = dict(values or {})
    preset = values.pop("preset", None)
    if preset is not None:
        if preset not in cls.presets:
            raise ConfigError(f"method {name!r}: unknown preset {preset!r}; "
                              f"presets: {', '.join(cls.presets) or 'none'}")
        values = {**cls.presets[preset], **values}  # options given beside the preset win
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"method {name!r}: unknown option(s) {unknown}; valid: {sorted(known)}")
    return from_dict(cls, values, where=f"method {name!r} options")


def build_method(name: str, dims: dict[str, int], config: Any = None) -> Method:
    cls = method_class(name)
    if config is None or isinstance(config, dict):
        config = make_config(name, config)
    try:
        return cls(dims, config)
    except (MemoryError, RuntimeError) as exc:  # sizes no check bounds (dim: 1e9): not an allocator traceback
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        raise ConfigError(f"method {name!r}: its options ask for more memory than this machine has "
                          f"({str(exc).splitlines()[0][:160]}); use smaller sizes (dim, width, hidden)") from None


__all__ = ["METHODS", "Method", "MethodConfig", "build_method", "make_config", "method_class"]
