"""Optional dependencies, checked before any work starts: a setting that needs an extra that is not installed
is one line naming the extra, not an ImportError after minutes of extraction."""
from __future__ import annotations

import importlib.util
from typing import Any

from ..errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {"tensorboard": ("tensorboard",), "dist": ("ray",),
                                      "serve": ("fastapi", "uvicorn"), "data": ("pyarrow", "datasets")}
"""Extra (as in ``pip install 'latentfuse[EXTRA]'``) → the modules it provides."""


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(extra: str, purpose: str) -> None:
    """Raise a one-line ConfigError when a module of ``extra`` is missing; ``purpose`` says what needs it."""
    missing = [module for module in EXTRAS[extra] if not installed(module)]
    if missing:
        raise ConfigError(f"{purpose} needs the [{extra}] extra: pip install 'latentfuse[{extra}]' "
                          f"({', '.join(missing)} not installed)")


def check_extras(config: Any) -> None:
    """The extras a job's settings need (TensorBoard scalars, Ray extraction), checked up front."""
    train, store = getattr(config, "train", None), getattr(config, "store", None)
    if train is not None and train.tensorboard:
        require("tensorboard", "train.tensorboard")
    if store is not None and store.engine == "ray":
        require("dist", "store.engine ray")
