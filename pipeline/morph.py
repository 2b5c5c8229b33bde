"""Shared OpenCV primitives: grey page -> background-normalised ink, ruling-line masks, skew estimate."""

from __future__ import annotations

import math

import cv2
import numpy as np


def line_length(shape: tuple[int, ...]) -> int:
    """Minimum length, in pixels, of a run that counts as a ruling line.

    Scale comes from the page size, not the dpi tag (tags lie): 0.6% of the longer side,
    i.e. 26 px on a 400 dpi Letter page, 10 px on a 150 dpi one; never below 8 px.
    """
    return max(8, int(round(0.006 * max(shape[:2]))))


def normalise_ink(grey: np.ndarray) -> np.ndarray:
    """Flatten uneven lighting and turn a grey page into ink darkness.

    The paper level is estimated per pixel by a grey-level closing (dilation then erosion,
    removing dark marks thinner than the kernel), then ``ink = 1 - grey / paper``
    rescaled so that full-contrast ink is 1. This is the classic background-subtraction
    step of document binarisation (cf. Lu, Su & Tan, IJDAR 2010).

    Args:
        grey: (H, W) uint8, 0 = black.

    Returns:
        (H, W) float32 in [0, 1], 1 = darkest ink, 0 = paper.
    """
    h, w = grey.shape
    k = max(15, (int(0.01 * max(h, w)) | 1))
    small = cv2.resize(grey, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA) if min(h, w) > 400 else grey
    kk = max(5, (k // (4 if small is not grey else 1)) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kk, kk)))
    paper = cv2.GaussianBlur(paper, (0, 0), kk / 2)
    if small is not grey:
        paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    paper = np.maximum(paper.astype(np.float32), 1.0)
    ink = 1.0 - grey.astype(np.float32) / paper
    np.clip(ink, 0.0, 1.0, out=ink)
    # rescale so the darkest ink (99.9th percentile of inked pixels) maps to 1
    inked = ink[ink > 0.25]
    top = float(np.percentile(inked, 99)) if inked.size > 100 else 1.0
    if top > 0.3:
        ink = np.clip(ink / top, 0.0, 1.0)
    return ink


def ink_mask(ink: np.ndarray, level: float = 0.22) -> np.ndarray:
    """Binary ink mask (uint8 0/255) of ``normalise_ink`` output.

    The low default level (22% of full contrast) keeps light "dropout colour" box lines,
    which print at 20-40% of full contrast on a grey scan; noise is removed later by the
    morphological opening that extracts lines.
    """
    return (ink > level).astype(np.uint8) * 255


def noise_sigma(ink: np.ndarray) -> float:
    """Standard deviation of scanner noise on the paper, in ink units.

    Robust estimate: 1.4826 x the median absolute deviation of the ink values of pixels that
    are paper (ink < 0.2), sampled on a 4-pixel grid.
    """
    v = ink[::4, ::4]
    v = v[v < 0.2]
    if v.size < 100:
        return 0.0
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def open_runs(mask: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """Morphological opening of ``mask`` by a ``kx`` x ``ky`` rectangle that keeps its place.

    OpenCV's opening with an even-sized kernel comes back shifted by a pixel (erosion and
    dilation share the off-centre anchor), so the first pixel of every run is lost and one
    past its end is added. Here the dilation takes the reflected anchor: exactly the pixels on
    runs of at least ``kx`` (rows) / ``ky`` (columns) remain (outside the image is background).

    Args:
        mask: (H, W) uint8 0/255. kx, ky: rectangle width and height, pixels (>= 1).

    Returns:
        (H, W) uint8 0/255.
    """
    k = np.ones((ky, kx), np.uint8)
    eroded = cv2.erode(mask, k, anchor=(kx // 2, ky // 2), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.dilate(eroded, k, anchor=(kx - 1 - kx // 2, ky - 1 - ky // 2), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def ruling_lines(ink: np.ndarray, length: int, bridge: int = 0, level: float = 0.08, cross: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical ruling lines by directional smoothing and morphological opening.

    For horizontal lines the ink image is first averaged along rows over ``length // 3``
    pixels: a faint or broken (JPEG, dropout colour) line keeps its darkness while noise
    averages out. It is then thresholded at ``level``, dash gaps up to ``bridge`` pixels
    are closed, and an opening with a ``length`` x 1 structuring element keeps only runs at
    least ``length`` long. Vertical lines likewise, along columns.

    Args:
        ink: (H, W) float32 ink darkness in [0, 1] (``normalise_ink``).
        length: minimum run, pixels.
        bridge: largest dash gap to bridge, pixels (0 = none).
        level: ink darkness that counts after smoothing.
        cross: when > 0, ink on runs at least ``cross`` pixels long across the direction
            looked for (above ``ink_mask``'s level) is left out before smoothing, so that
            the walls of a dashed or tightly spaced row of boxes, or the stems of digits and
            letters, smoothed along the row, do not join into short horizontal bars (and
            likewise for vertical lines). Ink on a raw run of ``length`` along the direction
            is kept (a ruling that a stroke crosses). 0 = off.

    Returns:
        (horizontal, vertical) uint8 0/255 masks of the same shape.
    """
    k = max(3, length // 3)
    out = []
    raw = ink_mask(ink) if cross > 0 else None
    for kx, ky in ((length, 1), (1, length)):
        horizontal = kx > 1
        src = ink
        if raw is not None:
            across = open_runs(raw, 1, cross) if horizontal else open_runs(raw, cross, 1)
            # ink on a long run along the direction stays: where a stroke crosses a ruling
            along = cv2.morphologyEx(raw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, ky)))
            src = np.where((across > 0) & (along == 0), 0.0, ink).astype(np.float32)
        smooth = cv2.blur(src, (k, 1) if horizontal else (1, k))
        m = (smooth > level).astype(np.uint8) * 255
        if bridge > 0:
            bk = (bridge, 1) if horizontal else (1, bridge)
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, bk))
        out.append(cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, ky))))
    return out[0], out[1]


# Band along the top and bottom of the scan, as a share of its height, where a line running
# across the whole width is taken for a scanner-lid bar (``estimate_skew``).
EDGE_BAND = 0.05


def estimate_skew(horizontal: np.ndarray, min_length: int) -> tuple[float, float]:
    """Page skew from the long horizontal ruling lines.

    Each connected component of the horizontal-line mask that is at least ``4 *
    min_length`` long gets a least-squares line fit (``cv2.fitLine``); the skew is their
    length-weighted median angle. Components touching the top or bottom edge of the image
    are left out: a dark scanner-lid bar or the shadow of the paper's edge lies along the
    scan, not along the paper, and as the longest "line" it outweighed a skewed page's
    rulings (a 600 dpi page skewed 2.7 degrees was left unrotated and no cell of it was found).
    A thick bar's mask can stop short of the edge (lighting normalisation takes its inside
    for background), so a component running from the left edge to the right edge within
    ``EDGE_BAND`` of the top or bottom is left out too.

    Args:
        horizontal: (H, W) uint8 mask from ``ruling_lines``.
        min_length: the ``length`` used for it, pixels.

    Returns:
        (angle, support): angle in degrees, positive when lines rise to the right
        (counter-clockwise in image display), and the total length of the lines used, pixels
        (0 when no line was found; the angle is then 0).
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(horizontal, connectivity=8)
    H, W = horizontal.shape
    angles, weights = [], []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if w < 4 * min_length or h > w * 0.2 or y == 0 or y + h >= H:
            continue
        if x == 0 and x + w >= W and (y + h >= (1 - EDGE_BAND) * H or y <= EDGE_BAND * H):
            continue  # across the whole scan near its top or bottom: a thick bar whose mask stops short of the edge
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == i)
        if len(xs) < 10:
            continue
        vx, vy, _, _ = cv2.fitLine(np.column_stack([xs, ys]).astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        if vx < 0:
            vx, vy = -vx, -vy
        angles.append(-math.degrees(math.atan2(vy, vx)))
        weights.append(float(w))
    if not angles:
        return 0.0, 0.0
    order = np.argsort(angles)
    a, wts = np.asarray(angles)[order], np.asarray(weights)[order]
    cum = np.cumsum(wts)
    return float(a[np.searchsorted(cum, cum[-1] / 2)]), float(cum[-1])
