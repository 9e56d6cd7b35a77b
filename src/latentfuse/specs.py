"""The one grammar of latentfuse's short specs, parsed here and nowhere else.

| form            | means                                            | e.g.                                          |
|-----------------|--------------------------------------------------|-----------------------------------------------|
| ``NAME:ARG``    | a registered thing and its argument              | ``flickr8k:DIR``, ``pixels:96``, ``hf:ID``    |
| ``A+B``         | several at once: an ensemble, combined corruptions | ``efficientnet-lite0+efficientnet-lite2``   |
| ``BASE@PART``   | one part of what precedes it: a source's split, an encoder's tap, a model's weights file | ``flickr8k:DIR@val``, ``fusion@stride16``, ``timm:resnet50@r50.pth`` |
| ``KEY=VALUE``   | a name given to a value: a side's encoder, a task's dataset, a tower's kind, an option | ``image=efficientnet-lite0``, ``sts=wordsim353`` |
| ``A,B``         | a list in one flag value                         | ``--split val,test``, ``--layers stride8,head`` |
| ``BASE#OPT``    | options of a model named by id or path           | ``hf:ID#cls#max_length=128``                  |

Each parser raises a one-line ``ConfigError`` that names the flag or field, the value, and the form expected;
a name that is not known gets a did-you-mean.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable

from .errors import ConfigError

ENSEMBLE = "+"
PART = "@"
ARG = ":"
ASSIGN = "="
LIST = ","
OPTION = "#"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def name_arg(spec: str) -> tuple[str, str | None]:
    """``NAME:ARG`` → (name, arg); ``NAME`` → (name, None). Only the first ``:`` splits (paths keep theirs)."""
    name, sep, arg = spec.partition(ARG)
    return name.strip(), (arg if sep else None)


def members(spec: str, what: str = "encoder ensemble",
            example: str = "efficientnet-lite0+efficientnet-lite2") -> list[str]:
    """``A+B`` → [A, B]; a single spec → [spec]. An empty member (``A+``) is an error."""
    parts = [part.strip() for part in spec.split(ENSEMBLE)]
    if not all(parts):
        raise ConfigError(f"{what} {spec!r}: empty member; write e.g. {example}")
    return parts


def part(spec: str, *, last: bool = False) -> tuple[str, str]:
    """``BASE@PART`` → (base, part); no ``@`` → (spec, ""). ``last``: split at the last ``@`` (a source spec
    may hold one in its path; the part after the last is the split)."""
    if PART not in spec:
        return spec, ""
    base, _, rest = spec.rpartition(PART) if last else spec.partition(PART)
    return base, rest


def key_value(item: str, what: str, example: str, *, key: str = "KEY", value: str = "VALUE",
              empty: bool = False) -> tuple[str, str]:
    """``KEY=VALUE`` → (key, value), stripped; the key must be non-empty, the value too unless ``empty``."""
    name, sep, given = item.partition(ASSIGN)
    if not sep or not name.strip() or not (empty or given.strip()):
        raise ConfigError(f"{what} {item!r}: expected {key}={value}, e.g. {example}")
    return name.strip(), given if empty else given.strip()


def options(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``BASE#OPT#KEY=VALUE`` → (base, [(opt, ""), (key, value)])."""
    base, *parts = spec.split(OPTION)
    return base, [(name, value) for name, _, value in (part.partition(ASSIGN) for part in parts)]


def named(item: str) -> tuple[str | None, str]:
    """``NAME=VALUE`` → (name, value) when NAME is an identifier; otherwise (None, item): the ``=`` belongs to
    the value (``hf:model#max_length=128``)."""
    name, sep, value = item.partition(ASSIGN)
    if sep and _IDENTIFIER.match(name.strip()):
        return name.strip(), value.strip()
    return None, item.strip()


def mapping(items: Iterable[str], what: str, example: str, *, key: str = "SIDE") -> dict[str, str]:
    """``["SIDE=SPEC", ...]`` → {side: spec}; a side given twice is an error."""
    out: dict[str, str] = {}
    for item in items:
        name, value = key_value(item, what, example, key=key)
        if name in out:
            raise ConfigError(f"{what}: {key.lower()} {name!r} is given twice")
        out[name] = value
    return out


def listed(values: Iterable[str]) -> list[str]:
    """Flag values that may each hold a comma-separated list → one flat list, empty parts dropped."""
    return [piece.strip() for value in values for piece in value.split(LIST) if piece.strip()]


def public(spec: str) -> str:
    """``spec`` as a saved artifact may name it: a local path argument shortened to its last component
    (``pairs:/home/me/data/pairs.csv`` → ``pairs:pairs.csv``), so nothing of the machine it was made on is
    published; other arguments (``pixels:96``, a Hub id) are kept."""
    name, arg = name_arg(spec)
    if arg is None:
        return spec
    path = arg.split(PART)[0] if PART in arg else arg
    if _is_local(path, ("/", ".", "~", "\\")):
        return f"{name}:{_last_component(path)}{arg[len(path):]}"
    return spec


def public_value(text: str) -> str:
    """Any saved setting as an artifact may show it: a local path (``/data/teacher``, ``~/x``, ``../y``) by its
    last component, a spec by :func:`public`; anything else unchanged."""
    if _is_local(text, ("/", "~", "./", "../", "\\")):
        return _last_component(text)
    return public(text)


def _is_local(path: str, starts: tuple[str, ...]) -> bool:
    """A path of this machine: one of ``starts``, or a Windows drive (``C:\\``, ``C:/``)."""
    return path.startswith(starts) or (len(path) > 2 and path[1:3] in (":\\", ":/"))


def _last_component(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or path


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
