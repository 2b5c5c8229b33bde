"""(N, 28, 28) crops -> calibrated class probabilities -> DigitPrediction, in batches (PyTorch or ONNX Runtime)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..errors import ConfigError
from ..types import DigitCrop, DigitPrediction
from .checkpoint import LoadedModel
from .model import DigitNet

log = logging.getLogger(__name__)

N_ALTERNATIVES = 2  # runner-up digits reported per cell



def resolve_device(name: str) -> torch.device:
    """Map "auto" | "cpu" | "cuda" to a torch device.

    Raises:
        ConfigError: "cuda" asked for on a machine without a usable GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch", hint="use --device cpu or auto")
    return torch.device(name)


class CalibratedNet(nn.Module):
    """The network with its input normalisation and temperature-scaled softmax built in.

    This is what both inference engines run: ``Predictor`` calls it directly and
    ``pipeline.export`` traces it to ONNX / TorchScript, so an exported model needs no
    preprocessing code beyond MNIST-style segmentation.

    Args:
        net: the digit CNN (its mode is not changed here; call ``.eval()``).
        mean, std: input normalisation (the checkpoint's ``preprocess``; MNIST statistics).
        temperature: logits are divided by it before the softmax (Guo et al., ICML 2017).

    Input: (N, 1, 28, 28) float32 in [0, 1], ink = 1 (``DigitCrop.pixels`` stacked).
    Output: (N, C) float32 calibrated probabilities, rows sum to 1.
    """

    def __init__(self, net: DigitNet, mean: float, std: float, temperature: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))

    @classmethod
    def from_model(cls, model: LoadedModel) -> CalibratedNet:
        """Wrap a loaded checkpoint's network (shared, not copied) with its metadata."""
        return cls(model.net, float(model.preprocess["mean"]), float(model.preprocess["std"]), model.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net((x - self.mean) / self.std).float()
        return torch.softmax(logits / self.temperature, dim=1)


class BasePredictor:
    """What every inference engine shares: batching, blank cells, ``DigitPrediction``s.

    A subclass sets ``classes``, ``threshold`` and ``batch_size`` and implements
    ``_forward`` (one batch through its engine) and ``describe``.
    """

    engine = "none"  # short engine name, written to the JSON output's model block
    classes: tuple[str, ...]  # class names, "0".."9" (+ "reject")
    threshold: float  # the model's default --min-confidence
    batch_size: int  # crops per forward pass

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """(n, 1, 28, 28) C-contiguous float32 crops -> (n, C) float32 probabilities."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The model block of the JSON output (name, file, temperature, threshold, engine)."""
        raise NotImplementedError

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities for a stack of crops.

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], ink = 1 (``DigitCrop.pixels`` stacked).

        Returns:
            (N, C) float32 calibrated probabilities (softmax of logits / temperature), rows sum to 1.
        """
        if len(pixels) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = []
        for i in range(0, len(pixels), self.batch_size):
            x = np.ascontiguousarray(pixels[i : i + self.batch_size], np.float32)[:, None]
            out.append(self._forward(x))
        return np.concatenate(out).astype(np.float32, copy=False)

    def predict(self, crops: Sequence[DigitCrop]) -> list[DigitPrediction]:
        """Predictions for crops; blank crops are not sent to the network.

        A blank cell's confidence is 1 when it holds no ink at all and falls towards 0.5
        as stray ink approaches the blank limit, so faint marks get reviewed.

        Returns:
            One ``DigitPrediction`` per crop, in order.
        """
        idx = [i for i, c in enumerate(crops) if not c.blank]
        probs = self.probabilities(np.stack([crops[i].pixels for i in idx])) if idx else np.zeros((0, 10), np.float32)
        return prediction_list(crops, idx, probs)


class Predictor(BasePredictor):
    """Batched PyTorch inference with temperature-scaled softmax (``CalibratedNet``).

    Args:
        model: a loaded checkpoint (network + preprocessing + temperature).
        device: torch device the network is on.
        batch_size: crops per forward pass.
    """

    engine = "torch"

    def __init__(self, model: LoadedModel, device: torch.device, batch_size: int = 256) -> None:
        self.model = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.classes = tuple(model.classes)
        self.threshold = float(model.threshold)
        self.model.net.to(device).eval()
        self.calibrated = CalibratedNet.from_model(model).to(device).eval()

    def _forward(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.calibrated(torch.from_numpy(x).to(self.device, non_blocking=True)).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {**self.model.describe(), "engine": self.engine}


class OnnxPredictor(BasePredictor):
    """Batched inference with ONNX Runtime on the CPU, from a model made by ``pipeline.export``.

    The ONNX graph already holds the normalisation and the temperature-scaled softmax
    (``CalibratedNet``), so ``probabilities`` equals ``Predictor.probabilities`` to within
    float32 rounding (max abs difference about 1e-6).

    Args:
        onnx_model: the serialised ONNX model (bytes) or a path to a ``.onnx`` file.
        metadata: the export metadata (``pipeline.export.export_metadata``): ``classes``,
            ``threshold``, ``temperature``, ``name``, ``arch``, ``input_name``, ``output_name``.
        batch_size: crops per ``InferenceSession.run``.
        threads: intra-op threads; ``None`` = ``torch.get_num_threads()``, so that both
            engines use the same number of cores.
        file: where the model came from, for ``describe``.

    Raises:
        ImportError: onnxruntime is not installed.
        ModelError: ONNX Runtime cannot load the model or its input/output names differ
            from the metadata.
    """

    engine = "onnxruntime"

    def __init__(
        self,
        onnx_model: bytes | str,
        metadata: dict[str, Any],
        batch_size: int = 256,
        threads: int | None = None,
        file: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.metadata = dict(metadata)
        self.batch_size = max(1, int(batch_size))
        self.classes = tuple(str(c) for c in metadata["classes"])
        self.threshold = float(metadata["threshold"])
        self.file = file
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only
        # no busy-waiting between runs: the pipeline segments pages on the same cores in between
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(onnx_model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            where = file or "exported model"
            raise ModelError(f"{where}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:200]})") from exc
        names_in = [i.name for i in self.session.get_inputs()]
        names_out = [o.name for o in self.session.get_outputs()]
        self.input_name, self.output_name = str(metadata["input_name"]), str(metadata["output_name"])
        if names_in != [self.input_name] or self.output_name not in names_out:
            raise ModelError(
                f"{file or 'exported model'}: graph inputs {names_in} / outputs {names_out} do not match its metadata "
                f"({self.input_name} -> {self.output_name})"
            )

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def describe(self) -> dict[str, Any]:
        m = self.metadata
        return {
            "name": m.get("name", "digitnet"),
            "arch": m.get("arch"),
            "file": self.file,
            "temperature": round(float(m["temperature"]), 4),
            "threshold": self.threshold,
            "engine": self.engine,
        }


def prediction_from_probs(p: np.ndarray) -> DigitPrediction:
    """DigitPrediction from one (C,) probability vector.

    The digit is the argmax over the ten digit classes; with an 11th "not a digit" class
    its probability is ``reject`` and it lowers every digit's confidence, so non-digit
    marks come out with low confidence and are flagged.
    """
    pd = p[:10]
    order = np.argsort(-pd)
    top = int(order[0])
    second = float(pd[order[1]])
    alts = tuple((str(int(k)), round(float(pd[k]), 4)) for k in order[1 : 1 + N_ALTERNATIVES])
    reject = float(p[10]) if len(p) > 10 else 0.0
    return DigitPrediction(digit=top, confidence=float(pd[top]), margin=float(pd[top]) - second, alternatives=alts, reject=reject)


def blank_prediction(crop: DigitCrop, blank_ink: float = 0.006) -> DigitPrediction:
    """The prediction for a blank cell (digit None); see ``Predictor.predict``."""
    conf = 1.0 - 0.5 * min(1.0, crop.ink / blank_ink)
    return DigitPrediction(digit=None, confidence=conf, margin=conf, alternatives=())


def prediction_list(crops: Sequence[DigitCrop], idx: Sequence[int], probs: np.ndarray) -> list[DigitPrediction]:
    """Merge network outputs for the non-blank crops ``idx`` with blank predictions for the rest."""
    out: list[DigitPrediction] = [blank_prediction(c) if c.blank else None for c in crops]  # type: ignore[misc]
    for j, i in enumerate(idx):
        out[i] = prediction_from_probs(probs[j])
    return out
