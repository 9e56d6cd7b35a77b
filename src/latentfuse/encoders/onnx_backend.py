"""ONNX Runtime backend of the torch encoders: a graph exported once, validated, cached and reused.

Why: a frozen encoder's forward pass is most of what extraction waits for, and ONNX Runtime runs the same
network several times faster than eager torch on a CPU (graph-level fusion, its own NCHWc conv kernels).

* **Export**: ``torch.onnx.export`` of a small wrapper around the encoder's own forward code (``_pool``,
  ``_tap_forward``, ``_forward``, ``_hidden_states``), so the graph computes exactly what the torch path
  does; the TorchScript exporter first (fast to export, and its graphs ran as fast or faster here), the
  dynamo exporter when that one is unavailable or fails. Batch (and token) axes are dynamic.
* **Cache**: ``$LATENTFUSE_ONNX_CACHE`` (default ``~/.cache/latentfuse/onnx``), one ``.onnx`` per (encoder
  fingerprint, outputs, opset, exporter, torch version, quantisation) plus a ``.json`` sidecar holding the
  graph's content digest (SHA-256) and the validation result; both written atomically (temp + rename).
  Before a cached graph is used it is verified three ways, and rebuilt if any fails: its full SHA-256 (read
  once per process — size and mtime alone would pass a graph edited in place with its mtime restored), its
  sidecar's origin (the encoder's fingerprint, outputs and quantisation this key stands for), and the
  origin stamped inside the graph itself (``latentfuse.graph`` metadata; its outputs), so a graph of another
  tap, or an int8 graph copied over the fp32 name with its sidecar, is never used under the wrong key. Torch
  and ONNX share the feature cache, so a poisoned graph would otherwise poison torch runs too.
* **Validation**, before first use, on a fixed seeded random batch against the torch forward: float32
  graphs must agree to ``FP32_TOLERANCE`` × max(1, max |torch output|) (measured: ~1e-5 on the packaged
  encoders); int8 graphs must keep a mean cosine of at least ``INT8_MIN_COSINE`` with the torch output. A
  graph that fails is refused — the sidecar remembers why — and the encoder runs on torch, saying so once.
* **Threads**: ONNX Runtime's intra-op threads = torch's (all cores, or ``OMP_NUM_THREADS``), without
  spinning waits, which steal time from the image-decoding threads (``LATENTFUSE_ORT_SPINNING=1`` turns
  them back on; ``python -m bench.encoders`` measures both).
* **int8** (``onnx-int8``): transformers (more MatMul than Conv nodes) get ONNX Runtime's dynamic quantisation, per-channel
  int8 weights on MatMul only (embeddings and norms stay float); convnets get static QDQ quantisation
  calibrated on ``CALIBRATION_IMAGES`` seeded synthetic images (smooth colour fields: no dataset is needed,
  and the result is deterministic), because dynamic int8 convolutions ran slower than float in a probe.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import LatentfuseError
from ..utils.atomic import atomic_path, write_json
from ..utils.hashing import digest, file_digest
from ..utils.runtime import CPU, Runtime
from .base import default_threads, dist_version

log = logging.getLogger("latentfuse")

OPSET = 17
FP32_TOLERANCE = 1e-3
INT8_MIN_COSINE = 0.95
CALIBRATION_IMAGES = 32
GRAPH_FORMAT = 3  # bump when the export recipe or its sidecar changes: old graphs are then never reused
STAMP = "latentfuse.graph"  # metadata key inside each graph: the cache key it was exported for


def graph_dir() -> Path:
    """Where exported graphs live (override with ``$LATENTFUSE_ONNX_CACHE``)."""
    return Path(os.environ.get("LATENTFUSE_ONNX_CACHE") or Path.home() / ".cache" / "latentfuse" / "onnx")


@dataclass(frozen=True)
class GraphSpec:
    """What one exported graph computes: which encoder, which named inputs and outputs.

    ``module`` builds the torch wrapper to export (called only when exporting or validating);
    ``example(variant)`` gives seeded inputs as numpy: variant 0 is traced, variant 1 (other batch and token
    counts, so a shape baked into the graph shows) validates; ``dynamic`` names each input's dynamic axes."""

    encoder: str
    fingerprint: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    module: Callable[[], Any]
    example: Callable[[int], dict[str, np.ndarray]]

    def key(self, quantize: str) -> str:
        parts: list[Any] = [self.fingerprint, self.inputs, self.outputs, OPSET, GRAPH_FORMAT,
                            dist_version("torch"), quantize]
        if quantize:
            parts.append(dist_version("onnxruntime"))  # the quantiser's version decides the int8 graph
        return digest(*parts)

    def path(self, quantize: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.encoder)[:60]
        return graph_dir() / f"{safe}-{'int8-' if quantize else ''}{self.key(quantize)}.onnx"


class OnnxGraphError(LatentfuseError):
    """A graph could not be exported or did not match the torch forward closely enough."""


class OnnxSession:
    """An ONNX Runtime session over one validated graph: ``session(arrays) -> [outputs]`` (float32 numpy).
    ``expected``: (the key stamped in the graph, its outputs) — a graph of other origin is refused."""

    def __init__(self, path: Path, runtime: Runtime, expected: tuple[str, tuple[str, ...]] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = default_threads()
        options.inter_op_num_threads = 1
        # No busy-waiting between runs by default: decoding threads share these cores (bench/encoders.py).
        spinning = os.environ.get("LATENTFUSE_ORT_SPINNING", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning == "1" else "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=providers(runtime))
        self.path = path
        if expected is not None:
            stamped = self.session.get_modelmeta().custom_metadata_map.get(STAMP)
            outputs = tuple(o.name for o in self.session.get_outputs())
            if (stamped, outputs) != expected:
                raise OnnxGraphError(f"{path.name} is a graph of another origin (stamped {stamped}, outputs "
                                     f"{', '.join(outputs)}; expected {expected[0]}, {', '.join(expected[1])})")
        # An exporter drops inputs the forward never reads (a CLIP text tower's token types), and ONNX
        # Runtime refuses a feed it does not know: only these are fed.
        self.inputs = frozenset(i.name for i in self.session.get_inputs())

    def __call__(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {k: v for k, v in arrays.items() if k in self.inputs})


class Sessions:
    """An encoder's sessions, one per graph (pooled output, a set of taps), each built once on first use,
    even when several threads ask at once; None for a graph that was refused (the torch path runs)."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], OnnxSession | None] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], spec: Callable[[], GraphSpec], runtime: Runtime) -> OnnxSession | None:
        if key not in self._made:
            with self._lock:
                if key not in self._made:
                    self._made[key] = onnx_session(spec(), runtime)
        return self._made[key]


def wrap(model: Any, forward: Callable[..., Any]) -> Any:
    """A module around ``model`` whose forward is ``forward(model, *inputs)``: what gets exported."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return forward(self.model, *inputs)

    return Graph().eval()


def providers(runtime: Runtime) -> list[Any]:
    if runtime.is_cuda:
        index = runtime.torch_device.index or 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_session(spec: GraphSpec, runtime: Runtime) -> OnnxSession | None:
    """The session of ``spec``'s graph for ``runtime.backend``: reused from the cache, or exported and
    validated first. None — after one log line saying why — when the graph cannot be used; the caller then
    runs the encoder on torch."""
    quantize = "int8" if runtime.backend == "onnx-int8" else ""
    path = spec.path(quantize)
    expected = (spec.key(quantize), spec.outputs)
    try:
        record = _cached_record(path, spec, quantize)
        if record is None:
            record = _build(spec, quantize, path)
        if not record.get("ok"):
            _warn_once(f"{spec.encoder}: its {runtime.backend} graph was refused ({record.get('reason')}); "
                       f"running it on torch. Delete {path.with_suffix('.json')} to retry.")
            return None
        try:
            return OnnxSession(path, runtime, expected)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad graph
            log.info("%s: cached ONNX graph %s does not load or is of another origin (%s); rebuilding it",
                     spec.encoder, path, _first_line(exc))
            _build(spec, quantize, path)
            try:
                return OnnxSession(path, runtime, expected)
            except Exception as again:  # noqa: BLE001 - a fresh export that still does not load
                raise OnnxGraphError(f"ONNX Runtime cannot load it: {_first_line(again)}") from None
    except OnnxGraphError as exc:
        _warn_once(f"{spec.encoder}: no {runtime.backend} graph ({exc}); running it on torch")
        return None
    except OSError as exc:  # the graph cache cannot be written (read-only home, a file in the way, disk full)
        _warn_once(f"{spec.encoder}: cannot write its ONNX graph under {graph_dir()} ({exc.strerror or exc}); "
                   "running it on torch (set LATENTFUSE_ONNX_CACHE to a writable folder)")
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _cached_record(path: Path, spec: GraphSpec, quantize: str) -> dict[str, Any] | None:
    """The sidecar of a cached graph whose bytes still match it and whose origin is ``spec``'s, else None
    (missing, damaged, stale, or copied from another graph)."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        log.info("%s: unreadable; rebuilding the ONNX graph", sidecar)
        return None
    origin = (record.get("fingerprint"), record.get("outputs"), record.get("quantize"))
    if origin != (spec.fingerprint, list(spec.outputs), quantize or None):
        log.info("%s: the sidecar describes another graph (%s); rebuilding it", sidecar, origin)
        return None
    if not record.get("ok"):
        return record  # a refusal is remembered: no re-export on every run
    if not path.is_file() or verified_digest(path) != record.get("digest"):
        log.info("%s: the cached ONNX graph is missing or damaged (its SHA-256 differs); rebuilding it", path)
        return None
    return record


_VERIFIED: dict[tuple[str, int, int, int, int], str] = {}  # stat identity → digest read in this process


def verified_digest(path: Path) -> str:
    """The graph's SHA-256 from its bytes, read once per process per (inode, size, mtime, ctime): not the
    stat-keyed digest table, which a file edited in place with its mtime restored would pass (its ctime
    moves with any write and cannot be set back)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = file_digest(path)
    return _VERIFIED[key]


def _stamp(graph: Path, key: str) -> None:
    """Write the graph's origin into the graph itself (``STAMP`` metadata), checked whenever it is loaded."""
    import onnx

    model = onnx.load(str(graph))
    kept = [prop for prop in model.metadata_props if prop.key != STAMP]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=STAMP, value=key)
    onnx.save(model, str(graph))


def _build(spec: GraphSpec, quantize: str, path: Path) -> dict[str, Any]:
    """Export (and quantise), validate against torch, then publish the graph and its sidecar atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as work:
        module = spec.module()
        graph = Path(work) / "graph.onnx"
        exporter = _export(module, spec.example(0), spec, graph)
        if quantize:
            graph = _quantize(graph, spec, Path(work))
        _stamp(graph, spec.key(quantize))
        check = spec.example(1)
        record = _validate(graph, check, _torch_outputs(module, check), quantize)
        record.update(encoder=spec.encoder, fingerprint=spec.fingerprint, outputs=list(spec.outputs),
                      opset=OPSET, exporter=exporter, quantize=quantize or None)
        if record["ok"]:
            with atomic_path(path) as tmp:
                os.replace(graph, tmp)
            record["digest"] = verified_digest(path)
            log.info("%s: exported its %sONNX graph (%s) to %s", spec.encoder, "int8 " if quantize else "",
                     record["check"], path)
    write_json(path.with_suffix(".json"), record)
    return record


def _export(module: Any, example: dict[str, np.ndarray], spec: GraphSpec, out: Path) -> str:
    """Export with the TorchScript exporter, else the dynamo one; returns which one succeeded."""
    import warnings

    import torch

    args = tuple(torch.from_numpy(example[name]).to(_device_of(module)) for name in spec.inputs)
    errors = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter("ignore")
                if dynamo:
                    shapes = {name: {axis: torch.export.Dim.AUTO for axis in axes}
                              for name, axes in spec.dynamic.items()}
                    torch.onnx.export(module, args, str(out), input_names=list(spec.inputs),
                                      output_names=list(spec.outputs), dynamo=True, external_data=False,
                                      dynamic_shapes=tuple(shapes.get(n) for n in spec.inputs), verbose=False)
                else:
                    torch.onnx.export(module, args, str(out), input_names=list(spec.inputs),
                                      output_names=list(spec.outputs), dynamo=False, opset_version=OPSET,
                                      dynamic_axes=spec.dynamic)
            return "dynamo" if dynamo else "torchscript"
        except Exception as exc:  # noqa: BLE001 - exporters raise many types; both failing is reported
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {_first_line(exc)}")
    raise OnnxGraphError("; ".join(errors))


def _quantize(graph: Path, spec: GraphSpec, work: Path) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    out = work / "graph-int8.onnx"
    with _quiet_quantizer():
        if not _mostly_convolutions(graph):
            quantize_dynamic(str(graph), str(out), op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8)
        else:
            quantize_static(str(graph), str(out), _Calibration(spec), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return out


def _mostly_convolutions(graph: Path) -> bool:
    """A convnet (more Conv than MatMul nodes; a ViT's one patch-embedding conv does not count as one)."""
    import onnx

    ops = [node.op_type for node in onnx.load(str(graph), load_external_data=False).graph.node]
    return ops.count("Conv") > ops.count("MatMul") + ops.count("Gemm")


class _Calibration:
    """Seeded synthetic calibration batches for static int8 (the ``CalibrationDataReader`` protocol)."""

    def __init__(self, spec: GraphSpec) -> None:
        shape = spec.example(0)[spec.inputs[0]].shape[1:]
        images = calibration_images(CALIBRATION_IMAGES, shape)
        self._batches = iter([{spec.inputs[0]: images[i:i + 8]} for i in range(0, len(images), 8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_images(n: int, shape: Sequence[int]) -> np.ndarray:
    """``n`` smooth random colour fields, roughly unit-scaled like normalised photos (seeded)."""
    import torch
    import torch.nn.functional as F

    channels, height, width = shape
    generator = torch.Generator().manual_seed(0)
    fields = torch.zeros(n, channels, height, width)
    for cells in (2, 4, 8, 16, 32):  # coarse to fine, weaker as they get finer: a 1/f-like spectrum
        noise = torch.randn(n, channels, cells, cells, generator=generator)
        fields += F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False) * (4 / cells)
    fields = fields / fields.std(dim=(1, 2, 3), keepdim=True)
    return fields.numpy().astype(np.float32)


def _torch_outputs(module: Any, example: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    device = _device_of(module)
    with torch.inference_mode():
        outputs = module(*(torch.from_numpy(v).to(device) for v in example.values()))
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return [o.float().cpu().numpy() for o in outputs]


def _device_of(module: Any) -> Any:
    """Where the wrapped model's weights are (the torch fallback may have moved them to a GPU)."""
    return next(iter(module.parameters())).device


def _validate(graph: Path, example: dict[str, np.ndarray], reference: list[np.ndarray],
              quantize: str) -> dict[str, Any]:
    """The graph's outputs on the example batch against torch's: a record saying ok or why not."""
    outputs = OnnxSession(graph, CPU)(example)
    if quantize:
        cosine = min(_mean_cosine(o, r) for o, r in zip(outputs, reference))
        ok = cosine >= INT8_MIN_COSINE
        check = f"mean cosine to torch {cosine:.4f}, needs >= {INT8_MIN_COSINE}"
        return {"ok": bool(ok), "check": check, "mean_cosine": float(cosine),
                **({} if ok else {"reason": check})}
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference))
    scale = max(1.0, max(float(np.abs(r).max()) for r in reference))
    ok = diff <= FP32_TOLERANCE * scale
    check = f"max |onnx - torch| {diff:.1e} on a random batch, tolerance {FP32_TOLERANCE * scale:.1e}"
    return {"ok": bool(ok), "check": check, "max_abs_diff": diff, **({} if ok else {"reason": check})}


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(1) / np.maximum(norms, 1e-12)))


class _quiet_quantizer:
    """ONNX Runtime's quantiser logs advice through the root logger and its sessions' warnings through the
    C++ logger; keep both off the user's terminal."""

    def __enter__(self) -> None:
        import onnxruntime as ort

        self._level = logging.root.level
        logging.root.setLevel(logging.ERROR)
        ort.set_default_logger_severity(3)  # its calibration sessions warn about every unused constant

    def __exit__(self, *exc: Any) -> None:
        logging.root.setLevel(self._level)


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning(message)
