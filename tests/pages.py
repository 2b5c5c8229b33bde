"""Small synthetic pages with exact truth, drawn with OpenCV for stage tests (no MNIST needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]


@dataclass
class Drawn:
    image: np.ndarray  # (H, W) uint8
    fields: list[list[Box]]  # truth cell interiors, source pixels, reading order
    digits: list[list[str | None]]  # what was written in each cell


def _line(img, p0, p1, colour, t, dashed):
    if not dashed:
        cv2.line(img, p0, p1, colour, t)
        return
    (x0, y0), (x1, y1) = p0, p1
    n = max(1, int(math.hypot(x1 - x0, y1 - y0) // (3 * t + 6)))
    for i in range(n):
        a, b = i / n, (i + 0.6) / n
        cv2.line(img, (int(x0 + a * (x1 - x0)), int(y0 + a * (y1 - y0))), (int(x0 + b * (x1 - x0)), int(y0 + b * (y1 - y0))), colour, t)


def draw_page(scale: float = 1.0, *, dashed: bool = False, line_grey: int = 0, seed: int = 0) -> Drawn:
    """A Letter-ish page at ``scale`` x 200 dpi with a comb, separate boxes, a single cell,
    a wide-cell table, a QR-like block and printed text. Digits are written with a Hershey
    script font (handwriting-like), one of them across its cell border."""
    rng = np.random.default_rng(seed)
    W, H = int(1700 * scale), int(2200 * scale)
    img = np.full((H, W), 255, np.uint8)
    s = lambda v: int(round(v * scale))  # noqa: E731
    t = max(1, s(2))
    cell = s(44)
    fields: list[list[Box]] = []
    digits: list[list[str | None]] = []
    font = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX

    def write(x, y, w, h, d):
        cv2.putText(img, d, (x + int(0.22 * w), y + int(0.8 * h)), font, h / 36, 0, max(1, s(3)), cv2.LINE_AA)

    # 1. comb field of 8 cells sharing borders
    x0, y0, n = s(300), s(300), 8
    for k in range(n + 1):
        _line(img, (x0 + k * cell, y0), (x0 + k * cell, y0 + cell), line_grey, t, dashed)
    _line(img, (x0, y0), (x0 + n * cell, y0), line_grey, t, dashed)
    _line(img, (x0, y0 + cell), (x0 + n * cell, y0 + cell), line_grey, t, dashed)
    boxes, ds = [], []
    for k in range(n):
        bx, by = x0 + k * cell + t // 2 + 1, y0 + t // 2 + 1
        boxes.append((bx, by, cell - t - 1, cell - t - 1))
        d = None if k >= 6 else str(rng.integers(0, 10))
        ds.append(d)
        if d:
            write(x0 + k * cell, y0, cell, cell, d)
    fields.append(boxes), digits.append(ds)
    cv2.putText(img, "Account number:", (s(40), y0 + s(32)), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, max(1, s(2)))
    # 2. separate boxes with gaps
    x0, y0, gap = s(300), s(500), s(18)
    boxes, ds = [], []
    for k in range(5):
        bx = x0 + k * (cell + gap)
        for p0, p1 in (((bx, y0), (bx + cell, y0)), ((bx, y0 + cell), (bx + cell, y0 + cell)), ((bx, y0), (bx, y0 + cell)), ((bx + cell, y0), (bx + cell, y0 + cell))):
            _line(img, p0, p1, line_grey, t, dashed)
        boxes.append((bx + t // 2 + 1, y0 + t // 2 + 1, cell - t - 1, cell - t - 1))
        d = str(rng.integers(0, 10))
        ds.append(d)
        write(bx, y0, cell, cell, d)
    fields.append(boxes), digits.append(ds)
    # a digit straying across the top border of the 2nd box
    cv2.line(img, (x0 + cell + gap + s(22), y0 - s(8)), (x0 + cell + gap + s(22), y0 + s(20)), 0, max(1, s(3)))
    # 3. a single cell
    x0, y0 = s(1200), s(500)
    cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), line_grey, t)
    fields.append([(x0 + t // 2 + 1, y0 + t // 2 + 1, cell - t - 1, cell - t - 1)]), digits.append([None])
    # distractors: a table of wide cells, a QR-like block, text, a logo
    tx, ty = s(300), s(900)
    for r in range(4):
        for c in range(3):
            cv2.rectangle(img, (tx + c * s(260), ty + r * s(60)), (tx + (c + 1) * s(260), ty + (r + 1) * s(60)), 0, t)
    qx, qy, m = s(1300), s(900), s(12)
    mod = rng.random((21, 21)) < 0.5
    for fx, fy in ((0, 0), (14, 0), (0, 14)):
        mod[fy : fy + 7, fx : fx + 7] = True
        mod[fy + 1 : fy + 6, fx + 1 : fx + 6] = False
        mod[fy + 2 : fy + 5, fx + 2 : fx + 5] = True
    for yy in range(21):
        for xx in range(21):
            if mod[yy, xx]:
                img[qy + yy * m : qy + (yy + 1) * m, qx + xx * m : qx + (xx + 1) * m] = 0
    for i in range(6):
        cv2.putText(img, "The quick brown fox jumps over the lazy dog 0123456789", (s(100), s(1300 + 50 * i)), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, max(1, s(2)))
    cv2.circle(img, (s(200), s(1900)), s(70), 0, -1)
    return Drawn(img, fields, digits)


def rotate(img: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre (counter-clockwise degrees) on the same canvas; returns (image, 2x3 matrix)."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=255), m


def map_box(box: Box, m: np.ndarray) -> Box:
    x, y, w, h = box
    pts = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], float) @ m.T
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return x0, y0, x1 - x0, y1 - y0


def iou(a: Box, b: Box) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)
