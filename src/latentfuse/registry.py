"""Name → constructor registries, so a new encoder / dataset / method is a new file, not an edit elsewhere.

A *spec* is ``name`` or ``name:argument`` (``flickr8k:/data/f8k``, ``hf:bert-base-uncased``). The part
after the first colon is handed to the constructor as its first positional argument.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import LatentfuseError

T = TypeVar("T")


class UnknownNameError(LatentfuseError, KeyError):
    """Raised for a name no constructor is registered under; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"flickr8k:DIR"`` → ``("flickr8k", "DIR")``; ``"minilm-l6"`` → ``("minilm-l6", None)``."""
    name, sep, arg = spec.partition(":")
    return name.strip(), (arg if sep else None)


class Registry(Generic[T]):
    """Maps names to constructors. ``build(spec)`` splits the spec and calls the constructor."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._constructors: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

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
        return sorted(self._constructors)

    def describe(self) -> dict[str, str]:
        return {name: self._help[name] for name in self.names()}

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._constructors:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}"
            )
        return self._constructors[name]

    def build(self, spec: str, **kwargs) -> T:
        name, arg = split_spec(spec)
        constructor = self.get(name)
        return constructor(arg, **kwargs) if arg is not None else constructor(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._constructors
