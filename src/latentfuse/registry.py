"""Name → constructor registries, so a new encoder / dataset / method / task is a new file, not an edit elsewhere.

A *spec* is ``name`` or ``name:argument`` (``flickr8k:/data/f8k``, ``hf:bert-base-uncased``). The part
after the first colon is handed to the constructor as its first positional argument.

Registries fill themselves on first use: every module of their built-in package is imported (its
decorators register), then every entry point of their group — so a third-party package adds a method with

    [project.entry-points."latentfuse.methods"]
    mymethod = "my_package.my_method"        # a module whose decorator registers, or a class/function

No list of names is kept by hand anywhere; help texts are read back from the registries.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from .specs import did_you_mean, name_arg
from .errors import LatentfuseError

T = TypeVar("T")
log = logging.getLogger(__name__)


class UnknownNameError(LatentfuseError, KeyError):
    """Raised for a name no constructor is registered under; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"flickr8k:DIR"`` → ``("flickr8k", "DIR")``; ``"minilm-l6"`` → ``("minilm-l6", None)``."""
    return name_arg(spec)


class Registry(Generic[T]):
    """Maps names to constructors. ``build(spec)`` splits the spec and calls the constructor."""

    def __init__(self, kind: str, package: str | None = None, group: str | None = None) -> None:
        self.kind = kind
        self.package, self.group = package, group  # built-in modules to import; entry-point group
        self._constructors: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}
        self._discovered = package is None and group is None

    def discover(self) -> None:
        """Import the built-in package's modules and the entry points' targets, once."""
        if self._discovered:
            return
        self._discovered = True  # first: the modules imported below register through this registry
        if self.package:
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{module.name}")
        for point in entry_points(group=self.group) if self.group else ():
            self._load_plugin(point)

    def _load_plugin(self, point) -> None:
        try:
            target = point.load()
        except Exception as exc:  # a broken plugin must not take the built-ins down with it
            log.warning("%s plugin %r (%s) failed to load: %s", self.kind, point.name, point.value, exc)
            return
        if callable(target) and point.name not in self._constructors:
            self.register(point.name)(target)  # the entry point names a constructor, not a module

    def register(self, name: str, help: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(constructor: Callable[..., T]) -> Callable[..., T]:
            if name in self._constructors:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._constructors[name] = constructor
            doc = (constructor.__doc__ or "").strip().splitlines()
            self._help[name] = help or (doc[0] if doc else "")
            return constructor

        return decorator

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._constructors)

    def describe(self) -> dict[str, str]:
        return {name: self._help[name] for name in self.names()}

    def get(self, name: str) -> Callable[..., T]:
        self.discover()
        if name not in self._constructors:
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{did_you_mean(name, self.names())} "
                                   f"Known: {', '.join(self.names())}")
        return self._constructors[name]

    def build(self, spec: str, **kwargs) -> T:
        name, arg = split_spec(spec)
        constructor = self.get(name)
        return constructor(arg, **kwargs) if arg is not None else constructor(**kwargs)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._constructors
