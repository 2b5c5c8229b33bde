"""LoadedModel -> a self-contained ONNX or TorchScript file (+ ``OUT.json`` metadata), parity-checked; and back to a predictor.

The exported model is ``pipeline.classify.predictor.CalibratedNet``: the CNN with the input
normalisation and the temperature-scaled softmax built in, so that it maps MNIST-style crops
straight to calibrated probabilities:

* input ``crops``: (N, 1, 28, 28) float32, ink in [0, 1] (ink = 1.0, paper = 0.0), the digit
  scaled into a 20x20 box and centred by centre of mass in 28x28 (``pipeline.segment.to_mnist``);
  N is a dynamic axis (``"N"``) in ONNX.
* output ``probabilities``: (N, C) float32, softmax(logits / temperature), rows sum to 1;
  C = 10 (digits "0".."9") or 11 (the 11th class, "reject", means "not a digit").

Beside the model, ``OUT.json`` (the model path plus ``.json``, e.g. ``digitnet.onnx.json``)
holds the metadata: preprocessing, classes, temperature, threshold, architecture, the
source checkpoint's SHA-256, the digitform version and the input/output names. The same
JSON is embedded in the model: ONNX ``metadata_props["digitform"]``, TorchScript extra file
``digitform.json``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from . import __version__
from .classify.checkpoint import LoadedModel
from .classify.model import ARCH_NAME
from .classify.predictor import CalibratedNet, OnnxPredictor, Predictor
from .errors import ModelError, OutputError
from .segment import CROP_SIZE, to_mnist

log = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript"]
FORMAT = "digitform-export"
FORMAT_VERSION = 1
ONNX_OPSET = 17  # ONNX Runtime >= 1.14 runs it; every op used here is in opset 17
INPUT_NAME = "crops"
OUTPUT_NAME = "probabilities"
METADATA_KEY = "digitform"  # ONNX metadata_props key / TorchScript extra file stem
PARITY_TOLERANCE = 1e-5  # max abs difference of probabilities, exported vs PyTorch


@dataclass(frozen=True, slots=True)
class ParityReport:
    """Exported model vs ``Predictor`` (PyTorch) on the same crops."""

    engine: str  # "onnxruntime" | "torchscript"
    n: int  # crops compared
    max_abs_diff: float  # max |p_exported - p_torch| over all crops and classes
    argmax_agree: float  # share of crops whose top class is the same, in [0, 1]
    tolerance: float  # the bar ``ok`` is measured against

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What ``export_model`` wrote."""

    path: Path  # the model file
    metadata_path: Path  # OUT.json beside it
    metadata: dict[str, Any]
    parity: ParityReport


def metadata_path_for(path: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (the metadata file beside an exported model)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _sha256(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_metadata(model: LoadedModel, fmt: ExportFormat) -> dict[str, Any]:
    """The metadata written beside (and into) an exported model.

    Keys: ``format``, ``format_version``, ``model_format`` ("onnx" | "torchscript"),
    ``digitform_version``, ``name``, ``arch``, ``classes``, ``temperature``, ``threshold``,
    ``preprocess`` (size 28, box 20, centre "mass", ink "1.0", mean, std),
    ``normalisation_included`` and ``softmax_included`` (both true: feed raw [0, 1] crops),
    ``input_name``, ``output_name``, ``input`` / ``output`` (name, shape, dtype),
    ``opset`` (ONNX only), ``source_checkpoint`` and ``source_sha256`` (None for a model
    that was never saved), ``metrics`` (as stored in the checkpoint).
    """
    n_classes = len(model.classes)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_format": fmt,
        "digitform_version": __version__,
        "name": model.name,
        "arch": ARCH_NAME,
        "classes": list(model.classes),
        "temperature": float(model.temperature),
        "threshold": float(model.threshold),
        "preprocess": dict(model.preprocess),
        "normalisation_included": True,
        "softmax_included": True,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input": {"name": INPUT_NAME, "shape": ["N", 1, CROP_SIZE, CROP_SIZE], "dtype": "float32",
                  "range": [0.0, 1.0], "ink": 1.0},
        "output": {"name": OUTPUT_NAME, "shape": ["N", n_classes], "dtype": "float32",
                   "meaning": "softmax(logits / temperature); rows sum to 1"},
        "source_checkpoint": str(model.path) if model.path else None,
        "source_sha256": _sha256(model.path),
        "metrics": dict(model.metrics),
    }
    if fmt == "onnx":
        meta["opset"] = ONNX_OPSET
    return meta


def _calibrated_cpu(model: LoadedModel) -> CalibratedNet:
    """A CPU copy of the calibrated network in eval mode (the caller's model is not moved)."""
    net = copy.deepcopy(model.net).cpu().eval()
    return CalibratedNet(net, float(model.preprocess["mean"]), float(model.preprocess["std"]), model.temperature).eval()


def onnx_bytes(model: LoadedModel, metadata: dict[str, Any] | None = None) -> bytes:
    """Export to ONNX in memory (legacy TorchScript-based exporter, opset ``ONNX_OPSET``).

    Args:
        model: the checkpoint to export.
        metadata: embedded as JSON in ``metadata_props["digitform"]``; default
            ``export_metadata(model, "onnx")``.

    Returns:
        The serialised ``onnx.ModelProto``: input ``crops`` (N, 1, 28, 28) float32 -> output
        ``probabilities`` (N, C) float32, N dynamic.
    """
    import onnx

    meta = metadata if metadata is not None else export_metadata(model, "onnx")
    wrapper = _calibrated_cpu(model)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter; onnxscript is not a dependency
        torch.onnx.export(
            wrapper,
            (torch.zeros(2, 1, CROP_SIZE, CROP_SIZE),),
            buf,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "digitform"
    proto.producer_version = __version__
    proto.doc_string = (
        f"digitform {ARCH_NAME}: {INPUT_NAME} (N,1,28,28) float32 ink-in-[0,1] MNIST-style crops -> "
        f"{OUTPUT_NAME} (N,{len(model.classes)}) float32 calibrated probabilities; metadata in metadata_props['{METADATA_KEY}']"
    )
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def torchscript_module(model: LoadedModel) -> torch.jit.ScriptModule:
    """The calibrated network traced with ``torch.jit.trace`` on the CPU (same input/output as ONNX)."""
    wrapper = _calibrated_cpu(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream but still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(wrapper, torch.zeros(2, 1, CROP_SIZE, CROP_SIZE))


def parity_crops(n: int = 64, seed: int = 0) -> np.ndarray:
    """A test batch: half uniform noise, half digits drawn in Hershey fonts and MNIST-normalised.

    Returns:
        (n, 28, 28) float32 in [0, 1], ink = 1.
    """
    rng = np.random.default_rng(seed)
    n_noise = n // 2
    out = [rng.random((n_noise, CROP_SIZE, CROP_SIZE), dtype=np.float32)]
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX)
    drawn = []
    for k in range(n - n_noise):
        canvas = np.zeros((96, 96), np.uint8)
        cv2.putText(canvas, str(k % 10), (18, 78), fonts[k % len(fonts)], float(rng.uniform(2.0, 2.8)), 255,
                    int(rng.integers(3, 9)), cv2.LINE_AA)
        ink = canvas.astype(np.float32) / 255.0
        ys, xs = np.nonzero(ink > 0.1)
        drawn.append(to_mnist(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]))
    out.append(np.stack(drawn) if drawn else np.zeros((0, CROP_SIZE, CROP_SIZE), np.float32))
    return np.concatenate(out).astype(np.float32)


def check_parity(
    model: LoadedModel,
    exported: bytes | torch.jit.ScriptModule | Path,
    pixels: np.ndarray | None = None,
    *,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Compare an exported model's probabilities with PyTorch's (``Predictor`` on the CPU).

    Args:
        model: the source checkpoint.
        exported: ONNX bytes, a TorchScript module, or a ``.onnx`` / TorchScript file.
        pixels: (N, 28, 28) float32 crops in [0, 1]; default ``parity_crops(64)``.
        tolerance: max abs difference that counts as equal.

    Returns:
        The comparison (``ok`` when ``max_abs_diff <= tolerance``).
    """
    x = parity_crops() if pixels is None else np.asarray(pixels, np.float32)
    cpu = copy.copy(model)
    cpu.net = copy.deepcopy(model.net).cpu().eval()
    ref = Predictor(cpu, torch.device("cpu"), batch_size=len(x) or 1).probabilities(x)
    if isinstance(exported, Path) and exported.suffix.lower() != ".onnx":
        exported = _load_torchscript(exported)
    if isinstance(exported, torch.jit.ScriptModule):
        engine = "torchscript"
        with torch.inference_mode():
            got = exported(torch.from_numpy(np.ascontiguousarray(x)[:, None])).numpy()
    else:
        engine = "onnxruntime"
        blob = exported.read_bytes() if isinstance(exported, Path) else exported
        got = OnnxPredictor(blob, export_metadata(model, "onnx"), batch_size=len(x) or 1).probabilities(x)
    diff = float(np.abs(got - ref).max()) if len(x) else 0.0
    agree = float((got.argmax(1) == ref.argmax(1)).mean()) if len(x) else 1.0
    return ParityReport(engine=engine, n=len(x), max_abs_diff=diff, argmax_agree=agree, tolerance=tolerance)


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def export_model(model: LoadedModel, out: Path, fmt: ExportFormat = "onnx") -> ExportResult:
    """Export a checkpoint to ``out`` and write its metadata to ``out`` + ``.json``.

    The exported model is checked against PyTorch on ``parity_crops(64)`` before anything
    is written.

    Args:
        model: the checkpoint (``checkpoint.load_checkpoint``).
        out: the model file to write (``.onnx`` for ONNX by convention, ``.pt`` for TorchScript).
        fmt: "onnx" (opset ``ONNX_OPSET``, dynamic batch axis) or "torchscript" (``torch.jit.trace``).

    Returns:
        The paths written, the metadata and the parity report.

    Raises:
        ModelError: the exported model's probabilities differ from PyTorch's by more than
            ``PARITY_TOLERANCE``. OutputError: the files cannot be written.

    >>> from pipeline.classify.checkpoint import load_checkpoint
    >>> r = export_model(load_checkpoint(), Path("/tmp/digitnet.onnx"))  # doctest: +SKIP
    >>> r.parity.ok, r.metadata_path.name  # doctest: +SKIP
    (True, 'digitnet.onnx.json')
    """
    out = Path(out)
    meta = export_metadata(model, fmt)
    if fmt == "onnx":
        artefact: bytes | torch.jit.ScriptModule = onnx_bytes(model, meta)
    elif fmt == "torchscript":
        artefact = torchscript_module(model)
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    parity = check_parity(model, artefact)
    if not parity.ok:
        raise ModelError(
            f"exported {fmt} model differs from PyTorch by {parity.max_abs_diff:.2e} (> {parity.tolerance:.0e})",
            hint="please report it; use --engine torch meanwhile",
        )
    meta_path = metadata_path_for(out)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(artefact, bytes):
            out.write_bytes(artefact)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(artefact, str(out), _extra_files={METADATA_KEY + ".json": text})
        meta_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the exported model: {exc.strerror}", hint="choose a writable folder") from exc
    log.info("exported %s to %s (parity max abs diff %.2e on %d crops)", fmt, out, parity.max_abs_diff, parity.n)
    return ExportResult(out, meta_path, meta, parity)


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """The metadata of an exported ``.onnx`` file: ``path.json`` beside it, else the embedded copy.

    Raises:
        ModelError: the file is missing or unreadable, has no digitform metadata, or its
            metadata is of another format or version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    side = metadata_path_for(path)
    try:
        if side.is_file():
            meta = json.loads(side.read_text(encoding="utf-8"))
        else:
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            props = {p.key: p.value for p in proto.metadata_props}
            if METADATA_KEY not in props:
                raise ModelError(f"{path}: no {side.name} beside it and no digitform metadata inside",
                                 hint="export it with 'digitform export --format onnx'")
            meta = json.loads(props[METADATA_KEY])
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read its metadata ({type(exc).__name__}: {exc})",
                         hint="export it again with 'digitform export --format onnx'") from exc
    except ModelError:
        raise
    except Exception as exc:  # onnx raises DecodeError etc. for corrupt files
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: metadata is not digitform export format {FORMAT_VERSION}",
                         hint="export it again with this digitform ('digitform export --format onnx')")
    missing = {"classes", "temperature", "threshold", "preprocess", "input_name", "output_name"} - set(meta)
    if missing:
        raise ModelError(f"{path}: metadata lacks {', '.join(sorted(missing))}")
    pre = meta["preprocess"]
    if int(pre.get("size", 0)) != CROP_SIZE:
        raise ModelError(f"{path}: expects {pre.get('size')}px crops; digitform segments {CROP_SIZE}px crops")
    return meta


def load_onnx_predictor(path: Path, batch_size: int = 256, threads: int | None = None) -> OnnxPredictor:
    """An ``OnnxPredictor`` for an exported ``.onnx`` file (metadata from ``read_onnx_metadata``).

    Raises:
        ModelError: missing/corrupt file or metadata.
    """
    path = Path(path)
    meta = read_onnx_metadata(path)
    return OnnxPredictor(path.read_bytes(), meta, batch_size=batch_size, threads=threads, file=str(path))


def onnx_predictor_for(model: LoadedModel, batch_size: int = 256, threads: int | None = None) -> OnnxPredictor:
    """Export ``model`` to ONNX in memory (once) and wrap it in an ``OnnxPredictor``.

    This is the ``--engine onnx`` path for a PyTorch checkpoint; nothing is written to disk.
    """
    meta = export_metadata(model, "onnx")
    pred = OnnxPredictor(onnx_bytes(model, meta), meta, batch_size=batch_size, threads=threads,
                         file=str(model.path) if model.path else None)
    return pred
