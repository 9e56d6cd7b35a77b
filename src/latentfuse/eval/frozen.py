"""A frozen encoder (or two) as a JointModel, so "encoder alone" rows go through the same evaluators.

The model's method is ``identity`` (features L2-normalised, no parameters), its sides name the encoders'
modalities: ``frozen_model("minilm-l6")`` has one side ``text``; ``frozen_model(["efficientnet-lite0",
"minilm-l6"])`` has ``image`` and ``text``; two text encoders become ``text_a`` and ``text_b`` (the names
text–text data uses). Explicit names: ``frozen_model({"text_a": "minilm-l6", "text_b": "e5-small"})`` or
the CLI form ``"text_a=minilm-l6"``.
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from ..encoders import build_encoder
from ..errors import ConfigError
from ..specs import named as side_named
from ..methods import build_method
from ..model import JointModel, SideSpec



def frozen_model(encoders: str | Sequence[str] | Mapping[str, str]) -> JointModel:
    """An ``identity`` JointModel over frozen encoders (spec, list of specs / ``SIDE=SPEC``, or side → spec)."""
    named = dict(encoders) if isinstance(encoders, Mapping) else _name_sides(
        [encoders] if isinstance(encoders, str) else list(encoders))
    if not named:
        raise ConfigError("frozen_model needs at least one encoder spec, e.g. minilm-l6")
    built = {side: build_encoder(spec) for side, spec in named.items()}
    method = build_method("identity", {side: encoder.dim for side, encoder in built.items()})
    sides = [SideSpec(side, encoder.modality, encoder.name, encoder.fingerprint) for side, encoder in built.items()]
    return JointModel(method, sides, {"frozen": True})


def _name_sides(specs: list[str]) -> dict[str, str]:
    """``SIDE=SPEC`` keeps its name; a bare spec is named by its modality (``text``, or ``text_a``/``text_b``)."""
    explicit: dict[str, str] = {}
    bare: list[tuple[str, str]] = []  # (modality, spec)
    for item in specs:
        side, spec = side_named(item)
        if side is not None:
            if side in explicit:
                raise ConfigError(f"frozen encoder side {side!r} is given twice")
            explicit[side] = spec
        else:
            bare.append((build_encoder(spec).modality, spec))
    counts = Counter(modality for modality, _ in bare)
    seen: Counter[str] = Counter()
    named: dict[str, str] = {}
    for modality, spec in bare:
        side = modality if counts[modality] == 1 else f"{modality}_{chr(ord('a') + seen[modality])}"
        seen[modality] += 1
        if side in explicit or side in named:
            raise ConfigError(f"frozen encoder side {side!r} is named twice; name sides as SIDE=SPEC")
        named[side] = spec
    return {**named, **explicit}
