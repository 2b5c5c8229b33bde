"""Model weights + metadata on disk <-> ``LoadedModel`` (the only classifier module that touches the disk)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .model import ARCH_NAME, DigitNet

log = logging.getLogger(__name__)

FORMAT = "digitform-checkpoint"
FORMAT_VERSION = 1

# MNIST-style preprocessing the network expects (LeCun et al., 1998: the digit's bounding
# box scaled to fit 20x20 with its aspect ratio kept, centred by centre of mass in 28x28).
# mean/std are the MNIST training-set statistics used by the PyTorch MNIST example.
DEFAULT_PREPROCESS: dict[str, Any] = {
    "size": 28,
    "box": 20,
    "centre": "mass",
    "ink": "1.0",
    "mean": 0.1307,
    "std": 0.3081,
}


@dataclass
class LoadedModel:
    """A network in eval mode with the metadata it was saved with."""

    net: DigitNet
    preprocess: dict[str, Any]
    temperature: float = 1.0  # logits are divided by this before softmax (Guo et al., 2017)
    threshold: float = 0.9  # default --min-confidence chosen from held-out measurements
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = "digitnet"
    path: Path | None = None

    def describe(self) -> dict[str, Any]:
        """The model block of the JSON output (name, file, temperature, threshold)."""
        return {
            "name": self.name,
            "arch": ARCH_NAME,
            "file": str(self.path) if self.path else None,
            "temperature": round(self.temperature, 4),
            "threshold": self.threshold,
        }


def default_checkpoint_path() -> Path:
    """The weights shipped inside the package (``pipeline/classify/weights/digitnet.pt``)."""
    return Path(str(resources.files("pipeline.classify").joinpath("weights/digitnet.pt")))


def save_checkpoint(path: Path, model: LoadedModel, extra: dict[str, Any] | None = None) -> None:
    """Write weights and metadata to ``path`` (parent folders are created).

    The file holds only tensors and plain Python values, so it loads with
    ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.net
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": {"name": ARCH_NAME, "num_classes": len(model.classes), "width": net.features[0][0].out_channels},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "preprocess": dict(model.preprocess),
        "temperature": float(model.temperature),
        "threshold": float(model.threshold),
        "classes": list(model.classes),
        "metrics": dict(model.metrics),
        "name": model.name,
    }
    if extra:
        blob.update(extra)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint written by ``save_checkpoint``.

    Args:
        path: checkpoint file; ``None`` means the shipped weights.
        device: where to put the network.

    Returns:
        The model in eval mode.

    Raises:
        ModelError: missing, corrupt or incompatible file.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ModelError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{path}: not a digitform checkpoint")
    if blob.get("format_version") != FORMAT_VERSION or blob.get("arch", {}).get("name") != ARCH_NAME:
        raise ModelError(
            f"{path}: checkpoint format {blob.get('format_version')} / arch {blob.get('arch', {}).get('name')} "
            f"is not supported by this digitform (expects {FORMAT_VERSION} / {ARCH_NAME})"
        )
    arch = blob["arch"]
    net = DigitNet(num_classes=int(arch["num_classes"]), width=int(arch["width"]))
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the network ({' '.join(str(exc).split())[:200]})") from exc
    net.eval().to(device)
    return LoadedModel(
        net=net,
        preprocess=dict(blob.get("preprocess", DEFAULT_PREPROCESS)),
        temperature=float(blob.get("temperature", 1.0)),
        threshold=float(blob.get("threshold", 0.9)),
        classes=tuple(blob.get("classes", [str(d) for d in range(10)])),
        metrics=dict(blob.get("metrics", {})),
        name=str(blob.get("name", "digitnet")),
        path=path,
    )


def store_threshold(path: Path, threshold: float, note: dict[str, Any] | None = None) -> None:
    """Rewrite a checkpoint with a new default threshold, keeping everything else.

    The weights, preprocessing, temperature, classes, metrics and any other keys of the file
    are written back unchanged (through ``save_checkpoint``); ``note`` (how the threshold was
    chosen: data, target error, flag rate) is stored under ``metrics["threshold_choice"]``.

    Args:
        path: a checkpoint file written by ``save_checkpoint``.
        threshold: the new ``--min-confidence`` default, in [0, 1].
        note: provenance of the threshold (plain JSON-like values).

    Raises:
        ModelError: the file is missing or not a loadable checkpoint.
        OutputError: the file cannot be rewritten.
    """
    from ..errors import OutputError

    path = Path(path)
    model = load_checkpoint(path, "cpu")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    own = {"format", "format_version", "arch", "state_dict", "preprocess", "temperature", "threshold", "classes", "metrics", "name"}
    extra = {k: v for k, v in blob.items() if k not in own}
    model.threshold = float(threshold)
    if note is not None:
        model.metrics = {**model.metrics, "threshold_choice": dict(note)}
    try:
        save_checkpoint(path, model, extra or None)
    except OSError as exc:
        raise OutputError(f"{path}: cannot rewrite the checkpoint: {exc.strerror or exc}", hint="pass a writable --model file") from exc
