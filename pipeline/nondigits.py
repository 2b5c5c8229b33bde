"""Synthetic non-digit marks -> MNIST-normalised (N, 28, 28) crops for the reject class.

Real forms put marks in digit cells that are not digits: a letter before an exam number,
a cross or tick in the wrong box, a crossed-out digit, a scribble, a smudge, a stray
stroke. The classifier learns them as an eleventh class ("not a digit") so that they come
out with low digit confidence and get flagged. Marks that look like digits are left out:
letters O/o/Q/D (0), I/l/i/j/T (1, 7), Z/z (2), S/s (5), G/b (6), B (8), g/q/a/e (9),
and single straight strokes (1, 7).
"""

from __future__ import annotations

import cv2
import numpy as np

from .segment import to_mnist

LETTERS = "ACEFHKLMNPRUVWXYcfhkmnprtuvwxy#%&@?+=<>"
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)
KINDS = ("letter", "cross", "tick", "scribble", "crossed_out", "smudge", "hatch", "dots", "circle_cross")


def _canvas(size: int = 96) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


def _pts(rng: np.random.Generator, n: int, size: int = 96, margin: int = 12) -> np.ndarray:
    return rng.integers(margin, size - margin, (n, 2)).astype(np.int32)


def _draw(kind: str, rng: np.random.Generator, digits: np.ndarray | None) -> np.ndarray:
    img = _canvas()
    t = int(rng.integers(3, 9))
    if kind == "letter":
        ch = LETTERS[int(rng.integers(len(LETTERS)))]
        font = FONTS[int(rng.integers(len(FONTS)))]
        scale = float(rng.uniform(1.8, 2.8))
        cv2.putText(img, ch, (18, 74), font, scale, 255, max(2, t // 2), cv2.LINE_AA)
    elif kind == "cross":
        a, b = rng.integers(10, 40, 2), rng.integers(56, 86, 2)
        j = rng.integers(-8, 9, 4)
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 255, t)
        cv2.line(img, (int(b[0] + j[0]), int(a[1] + j[1])), (int(a[0] + j[2]), int(b[1] + j[3])), 255, t)
    elif kind == "tick":
        p = np.array([[20, 50], [40, 75], [80, 20]]) + rng.integers(-8, 9, (3, 2))
        cv2.polylines(img, [p.astype(np.int32)], False, 255, t)
    elif kind == "scribble":
        cv2.polylines(img, [_pts(rng, int(rng.integers(6, 14)))], False, 255, t)
    elif kind == "crossed_out":
        if digits is not None and len(digits):
            d = cv2.resize(digits[int(rng.integers(len(digits)))], (80, 80))
            img[8:88, 8:88] = d
        for _ in range(int(rng.integers(2, 5))):
            y0, y1 = rng.integers(15, 80, 2)
            cv2.line(img, (5, int(y0)), (90, int(y1)), 255, t)
    elif kind == "smudge":
        c = tuple(int(v) for v in rng.integers(30, 66, 2))
        ax = tuple(int(v) for v in rng.integers(12, 34, 2))
        cv2.ellipse(img, c, ax, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(2, 6)))
    elif kind == "hatch":
        step = int(rng.integers(8, 16))
        for k in range(-96, 96, step):
            cv2.line(img, (k, 90), (k + 70, 8), 255, max(2, t // 2))
        mask = _canvas()
        cv2.circle(mask, (48, 48), int(rng.integers(25, 40)), 255, -1)
        img = cv2.bitwise_and(img, mask)
    elif kind == "dots":
        for p in _pts(rng, int(rng.integers(3, 9))):
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(3, 7)), 255, -1)
    elif kind == "circle_cross":
        cv2.circle(img, (48, 48), int(rng.integers(25, 38)), 255, t)
        cv2.line(img, (20, 20), (76, 76), 255, t)
    return img


def make_nondigits(n: int, seed: int = 0, digits: np.ndarray | None = None) -> np.ndarray:
    """Draw ``n`` non-digit marks, normalised like segmentation output.

    Args:
        n: how many.
        seed: random seed (same seed, same marks).
        digits: optional (M, 28, 28) uint8 training digits (ink = 255) to cross out.

    Returns:
        (n, 28, 28) float32 in [0, 1], ink = 1, each mark's bounding box scaled into
        20x20 and centred by centre of mass, like ``segment.to_mnist``.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        img = _draw(KINDS[i % len(KINDS)], rng, digits).astype(np.float32) / 255.0
        ys, xs = np.nonzero(img > 0.1)
        if len(ys) == 0:
            continue
        out[i] = to_mnist(img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    return out
