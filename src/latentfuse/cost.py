"""What a model costs to run, per side and per item: FLOPs (counted by torch's own ``FlopCounterMode``, never
by hand) and measured CPU latency at batch 1 and batch 64. Used by ``latentfuse info --cost`` and the
distillation benchmark, and by anything that trades accuracy for compute (DynMM's resource loss).

FLOPs are split into the frozen encoder's part (only the stages the side's inputs need: a student on a
shallow tap runs a truncated backbone) and the trainable head's part. Operations torch has no FLOP
formula for — embedding lookups, GloVe's numpy mean, pixel preprocessing — count as 0; they are cheap
next to the matmuls and convolutions that are counted, and the latency columns include them.

FLOPs are counted on the torch backend (they are the network's, whatever runs it; torch's counter cannot see
inside ONNX Runtime); latency is measured on the model's own backend.

Latency is wall-clock ``JointModel.encode`` on in-memory inputs (decoded images, strings): decoding a
JPEG file is excluded, since it costs the same whatever model runs next. The sample image is a fixed
256×256 RGB array; the sample text a typical 12-word caption.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

SAMPLE_TEXT = "a brown dog runs across the green grass with a red ball in its mouth"


@dataclass
class SideCost:
    side: str
    modality: str
    encoder: str
    encoder_flops: float  # per item
    head_flops: float  # per item
    ms_per_item: dict[int, float]  # batch size → median wall-clock ms per item

    @property
    def flops(self) -> float:
        return self.encoder_flops + self.head_flops

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flops": self.flops}


def count_flops(run: Callable[[], Any], modules: tuple[Any, ...] = ()) -> int:
    """FLOPs of everything torch runs inside ``run()`` (one multiply-add = 2 FLOPs).

    ``modules``: trainable modules ``run`` calls; their parameters stop requiring grad while counting
    (the counter's module tracker hooks autograd, which fails on tensors made under inference mode)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            run()
    finally:
        for param in params:
            param.requires_grad_(True)
    return int(counter.get_total_flops())


def sample_inputs(modality: str, n: int) -> list[Any]:
    """``n`` fixed inputs of a modality: a deterministic 256×256 RGB image, or a typical caption."""
    if modality == "image":
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        return [image] * n
    return [SAMPLE_TEXT] * n


def encoder_flops(encoder: Any, tap: str = "") -> float:
    """FLOPs per item of a frozen encoder on one sample input: its pooled feature, or only the stages up to
    ``tap`` (what a model that reads that tap really runs)."""
    one = sample_inputs(encoder.modality, 1)
    if encoder.uses_runtime and encoder.runtime.backend != "torch":
        from .encoders import build_encoder

        encoder = build_encoder(encoder.name, dataclasses.replace(encoder.runtime, backend="torch"))
    if tap:
        encoder.encode_taps(one, [tap])  # build and load outside the count
        return float(count_flops(lambda: encoder.encode_taps(one, [tap])))
    encoder.encode(one)
    return float(count_flops(lambda: encoder.encode(one)))


def side_cost(model: Any, side: str, repeats: int = 10, batches: tuple[int, ...] = (1, 64)) -> SideCost:
    """FLOPs per item (encoder, head) and ms per item at each batch size for one side of a JointModel."""
    spec = model.sides[side]
    one = sample_inputs(spec.modality, 1)
    with model.on_torch():
        model.encode(side, one)  # build the encoder and load its weights outside every measurement
        encoder_flops = count_flops(lambda: model.frozen_inputs(side, one))
        total_flops = count_flops(lambda: model.encode(side, one), (model.method,))
    latency = {batch: latency_ms(model, side, batch, repeats if batch == 1 else max(2, repeats // 5))
               for batch in batches}
    return SideCost(side, spec.modality, spec.encoder, float(encoder_flops), float(total_flops - encoder_flops),
                    latency)


def latency_ms(model: Any, side: str, batch: int, repeats: int) -> float:
    """Median wall-clock ms per item of ``model.encode`` on a batch (after one warm-up call)."""
    items = sample_inputs(model.sides[side].modality, batch)
    model.encode(side, items, batch_size=batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.encode(side, items, batch_size=batch)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times) / batch


def model_cost(model: Any, repeats: int = 10, batches: tuple[int, ...] = (1, 64)) -> list[SideCost]:
    return [side_cost(model, side, repeats, batches) for side in model.sides]


def cost_table(costs: list[SideCost]) -> str:
    """Plain-text table: one row per side."""
    batches = sorted({b for c in costs for b in c.ms_per_item})
    header = f"{'side':<8} {'encoder':<28} {'encoder MFLOPs':>15} {'head MFLOPs':>12} {'total MFLOPs':>13} " + \
        " ".join(f"{f'ms/item b={b}':>13}" for b in batches)
    rows = [f"{c.side:<8} {c.encoder:<28} {c.encoder_flops / 1e6:>15.1f} {c.head_flops / 1e6:>12.2f} "
            f"{c.flops / 1e6:>13.1f} " + " ".join(f"{c.ms_per_item.get(b, float('nan')):>13.3f}" for b in batches)
            for c in costs]
    return "\n".join([header, *rows])
