"""Single-digit test images made from MNIST test digits (rendered like user uploads), and IDX writing."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import cv2
import numpy as np

MNIST_DIR = Path(os.environ.get("DIGITFORM_MNIST", Path(__file__).resolve().parents[2] / "shared/data/mnist"))
HAVE_MNIST = any(MNIST_DIR.glob("t10k-images-idx3-ubyte*")) and any(MNIST_DIR.glob("t10k-labels-idx1-ubyte*"))


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped when ``path`` ends in .gz): magic 0 0 8 ndim,
    big-endian uint32 dimensions, then the bytes in C order."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_mnist_subset(folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "test") -> Path:
    """Write images (N, 28, 28) uint8 and labels (N,) as the two IDX files of an MNIST split."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "t10k" if split == "test" else "train"
    write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder


def render_digit(img28: np.ndarray, size: int, *, dark_on_light: bool = True, border: bool = False, pad: float = 0.2,
                 aspect: float = 1.0) -> np.ndarray:
    """An MNIST digit (28, 28) uint8, ink = 255, as a user's image: scaled to ``size`` pixels
    (width ``size * aspect``), a margin of ``pad`` * size around it, optionally a box drawn
    in the margin, dark ink on light paper (grey 245, ink ~20) or MNIST polarity."""
    w = max(8, int(round(size * aspect)))
    d = cv2.resize(img28, (w, size), interpolation=cv2.INTER_LINEAR)
    p = int(round(pad * size))
    canvas = np.zeros((size + 2 * p, w + 2 * p), np.uint8)
    canvas[p : p + size, p : p + w] = d
    if border:
        t = max(1, size // 25)
        m = max(0, p // 3)
        cv2.rectangle(canvas, (m, m), (canvas.shape[1] - 1 - m, canvas.shape[0] - 1 - m), 255, t)
    if dark_on_light:
        return (245 - canvas.astype(np.float32) * (225 / 255)).astype(np.uint8)
    return canvas


def pick(labels: np.ndarray, per_digit: int, skip: int = 0) -> np.ndarray:
    """Indices of the first ``per_digit`` images of each digit (after ``skip``), digit by digit."""
    return np.concatenate([np.nonzero(labels == d)[0][skip : skip + per_digit] for d in range(10)])
