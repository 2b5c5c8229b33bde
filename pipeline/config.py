"""Run and training settings (pydantic v2 models); the only module that reads YAML.

Precedence: defaults < YAML file < CLI flags. Unknown keys fail with their path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentConfig(_Strict):
    """Augmentation ranges and probabilities (see ``pipeline.augment.augment_batch``)."""

    rotate: float = Field(12.0, ge=0, le=45, description="max rotation, degrees")
    shear: float = Field(0.25, ge=0, le=1, description="max slant, tan(angle)")
    scale: float = Field(0.12, ge=0, le=0.5, description="max relative size change")
    aspect: float = Field(0.1, ge=0, le=0.5, description="max relative width change")
    shift: float = Field(2.0, ge=0, le=6, description="max shift, pixels of the 28x28 crop")
    elastic_p: float = Field(0.5, ge=0, le=1)
    elastic_alpha: float = Field(1.2, ge=0, le=5, description="elastic displacement std, pixels")
    thicken_p: float = Field(0.2, ge=0, le=1)
    thin_p: float = Field(0.1, ge=0, le=1)
    pressure_p: float = Field(0.2, ge=0, le=1)
    binarize_p: float = Field(0.3, ge=0, le=1)
    blur_p: float = Field(0.15, ge=0, le=1)
    line_p: float = Field(0.08, ge=0, le=1)
    cut_p: float = Field(0.03, ge=0, le=1)
    noise_p: float = Field(0.15, ge=0, le=1)
    speckle_p: float = Field(0.05, ge=0, le=1)


class TrainConfig(_Strict):
    """Settings of ``digitform train`` (``configs/train.yaml``)."""

    data: Path = Field(Path("../shared/data/mnist"), description="folder of the MNIST IDX files")
    out: Path = Field(Path("pipeline/classify/weights/digitnet.pt"), description="checkpoint written at the end")
    work_dir: Path = Field(Path("runs/train"), description="per-epoch checkpoints, curves")
    epochs: int = Field(30, ge=1, le=500)
    batch_size: int = Field(128, ge=1, le=8192)
    lr: float = Field(3e-3, gt=0, le=1, description="peak learning rate of the one-cycle schedule")
    weight_decay: float = Field(5e-4, ge=0, le=1)
    width: int = Field(32, ge=4, le=256)
    dropout: float = Field(0.3, ge=0, le=0.9)
    val_size: int = Field(5000, ge=100, le=30000, description="training images held out for validation")
    seed: int = Field(0, description="seeds initialisation, batch order, augmentation and non-digit marks")
    split_seed: int | None = Field(
        None,
        description="seeds which training images are held out for validation; None = seed. Keep 0 (the shipped "
        "model's split, which training forms, fine-tuning and scripts/choose_threshold.py also leave alone) when "
        "training a variant with another seed",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_batches: int | None = Field(None, ge=1, description="stop each epoch after this many batches (smoke tests)")
    reject_class: bool = Field(True, description="learn an 11th class, 'not a digit', from synthetic marks (pipeline.nondigits)")
    nondigits: int = Field(12000, ge=100, le=200000, description="synthetic non-digit marks drawn for training")
    nondigit_fraction: float = Field(0.1, ge=0, le=0.5, description="share of each batch that is non-digit marks")
    augment: AugmentConfig = AugmentConfig()

    @property
    def val_seed(self) -> int:
        """The seed of the validation split: ``split_seed``, or ``seed`` when it is None."""
        return self.seed if self.split_seed is None else self.split_seed


# Lighter augmentation for fine-tuning: about half the ranges and probabilities of training,
# so the writer's own style (the point of fine-tuning) is kept while a few crops still vary.
FINETUNE_AUGMENT = AugmentConfig(
    rotate=6.0, shear=0.12, scale=0.06, aspect=0.05, shift=1.0, elastic_p=0.25, elastic_alpha=0.8,
    thicken_p=0.1, thin_p=0.05, pressure_p=0.1, binarize_p=0.15, blur_p=0.08, line_p=0.04, cut_p=0.0,
    noise_p=0.08, speckle_p=0.02,
)


class FinetuneConfig(_Strict):
    """Settings of ``digitform train --finetune DIR`` (``pipeline.finetune.finetune``).

    Built from command-line flags (and ``--config`` when given); no settings file is read by default.
    """

    crops: Path = Field(..., description="folder of labelled crops laid out as DIR/<digit>/*.png")
    model: Path | None = Field(None, description="checkpoint to start from; null = the shipped weights")
    out: Path = Field(Path("runs/finetune/finetuned.pt"), description="fine-tuned checkpoint written at the end")
    data: Path | None = Field(None, description="folder of the MNIST IDX files; MNIST training digits are mixed in when set")
    epochs: int = Field(5, ge=1, le=200)
    batch_size: int = Field(32, ge=1, le=4096, description="own crops per batch (MNIST digits and non-digit marks come on top)")
    lr: float = Field(3e-4, gt=0, le=0.1, description="peak learning rate (cosine decay to 0)")
    weight_decay: float = Field(5e-4, ge=0, le=1)
    held_out: float = Field(0.2, gt=0, lt=1, description="share of each class held out to measure before/after and fit the temperature")
    mnist_share: float = Field(0.5, ge=0, le=0.9, description="share of each batch that is MNIST training digits (with data set)")
    nondigit_share: float = Field(0.1, ge=0, le=0.5, description="share of each batch that is synthetic non-digit marks (11-class models)")
    temperature_prior: float = Field(
        0.5, gt=0, le=10, description="std of log(T) around the start model's temperature when refitting it on few crops"
    )
    freeze_batchnorm: bool = Field(True, description="keep batch-norm statistics of the start model (few crops)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    augment: AugmentConfig = FINETUNE_AUGMENT


class RunSettings(_Strict):
    """Settings of ``digitform process`` (``configs/run.yaml``; CLI flags override)."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the CNN runs; auto = cuda when present")
    engine: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="inference engine; auto = torch on cuda, onnx (ONNX Runtime, faster) on the CPU"
    )
    batch_size: int = Field(256, ge=1, le=65536, description="crops per forward pass")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="digits below this confidence are flagged; null = the model's stored threshold"
    )
    max_megapixels: float = Field(200.0, gt=0, le=10000, description="larger images are refused (decompression bombs)")
    model: Path | None = Field(None, description="checkpoint file, or a .onnx file from 'digitform export'; null = the shipped weights")
    pages_per_batch: int = Field(8, ge=1, le=1024, description="pages whose crops are classified together")
    orientation: bool = Field(True, description="detect pages scanned upside down (by classifier confidence)")


def _format_error(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def load_yaml(path: Path) -> dict:
    """Read a YAML mapping.

    Raises:
        ConfigError: missing file, bad YAML, or not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def build(schema: type[_Strict], path: Path | None = None, **overrides: object) -> _Strict:
    """Build settings: defaults < YAML file < overrides (CLI flags; ``None`` means not given).

    Raises:
        ConfigError: unknown key or bad value, naming its path (``augment.rotate``).
    """
    data = load_yaml(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{_format_error(exc)}") from exc
