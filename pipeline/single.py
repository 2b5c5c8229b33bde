"""Single-digit images -> MNIST-normalised (28, 28) crops -> ``ImagePrediction`` (``digitform predict``).

An image holding one digit, as users of classic digit recognisers supply it: any size, dark
ink on light paper or the MNIST convention (light ink on dark), with or without a printed
box around the digit. ``normalise_digit_image`` turns it into the crop the classifier was
trained on; ``predict_images`` reads files and folders and classifies them in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .classify.checkpoint import LoadedModel, load_checkpoint
from .classify.predictor import Predictor, prediction_from_probs
from .errors import InputError
from .io import DEFAULT_MAX_PIXELS, find_scans, read_pages
from .segment import CROP_SIZE, DIGIT_BOX, to_mnist
from .types import ImagePrediction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SingleSettings:
    """Thresholds of ``normalise_digit_image`` (ratios of the image size unless said otherwise)."""

    border_band: float = 0.15  # outer band whose median grey is the paper level
    min_contrast: float = 40.0  # grey levels between paper and ink below which the image is blank, of 255
    ink_level: float = 0.35  # normalised ink darkness that counts as a stroke, in [0, 1]
    line_length: float = 0.6  # a frame line runs along at least this share of its side
    frame_band: float = 0.25  # frame lines lie within this share of the side from the image edge
    line_thickness: float = 0.12  # a frame line is at most this thick (share of the perpendicular side)
    min_inside: float = 0.4  # share of a component's pixels that must lie inside the frame
    min_speck: float = 0.02  # components smaller than this share of the largest one are noise
    blank_ink: float = 0.002  # below this share of the image covered by strokes: blank
    blank_extent: float = 0.08  # below this largest extent (of the image's longer side): blank
    stroke_width: float = 2.2  # target stroke width in MNIST's 20-pixel digit box, pixels
    max_skew: float = 10.0  # largest slant of a box that is straightened, degrees
    skew_step: float = 1.0  # angle step of the slant search, degrees


def _ink(grey: np.ndarray, s: SingleSettings) -> np.ndarray | None:
    """(H, W) ink darkness in [0, 1] (1 = ink) with the polarity detected; None when blank.

    The paper level is the median grey of the image's outer band (``border_band`` of each
    side): a digit lies mostly inside it, and a box line along the edges is thin beside the
    margin, whereas the whole image's median fails on a tight crop of a bold digit, where
    ink covers more than half the pixels. When the paper level lies above the middle of the
    image's grey range the ink is dark (paper, scans), else light (MNIST convention). The
    paper level is then refined to the median of the pixels on its side of the middle, and
    the ink level is the 0.5th percentile on the far side.
    """
    g = grey.astype(np.float32)
    lo, hi = float(np.percentile(g, 0.5)), float(np.percentile(g, 99.5))
    if hi - lo < s.min_contrast:
        return None
    h, w = g.shape
    by, bx = max(1, int(round(s.border_band * h))), max(1, int(round(s.border_band * w)))
    band = np.ones(g.shape, bool)
    band[by : h - by, bx : w - bx] = False
    mid = (lo + hi) / 2
    if float(np.median(g[band])) >= mid:  # dark ink on light paper
        paper = float(np.median(g[g >= mid]))
        ink = (paper - g) / max(paper - lo, 1.0)
    else:  # light ink on dark background
        paper = float(np.median(g[g < mid]))
        ink = (g - paper) / max(hi - paper, 1.0)
    return np.clip(ink, 0.0, 1.0)


def _frame_lines(mask: np.ndarray, s: SingleSettings) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
    """Find a printed box around the digit.

    A side of the frame is a straight run of strokes, found by a morphological opening with a
    line at least ``line_length`` of the side long, lying within ``frame_band`` of that image
    edge and at most ``line_thickness`` thick. A stroke of the digit can pass that test (the
    bar of a tightly cropped "7"), so the lines count as a frame only when two or more sides
    are found, or when a line is a component of its own (not touching any other ink).

    Returns:
        (line mask uint8 0/1 of the frame sides found, interior (x0, y0, x1, y1) between them
        (the image edges where no side was found), thickest side in pixels (0 without frame).
    """
    h, w = mask.shape
    kx, ky = max(3, int(s.line_length * w)), max(3, int(s.line_length * h))
    horiz = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, 1)))
    vert = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, ky)))
    sides: dict[str, np.ndarray] = {}
    thick = 0
    for name, lines, along, size in (("top", horiz, 0, h), ("bottom", horiz, 0, h), ("left", vert, 1, w), ("right", vert, 1, w)):
        prof = lines.sum(axis=1 - along)  # per row (horizontal lines) or per column (vertical)
        band = max(1, int(round(s.frame_band * size)))
        idx = np.arange(size)
        near = idx < band if name in ("top", "left") else idx >= size - band
        rows = np.nonzero(near & (prof > 0))[0]
        if rows.size == 0:
            continue
        # the run of line rows nearest the edge; a frame side is thin
        edge = rows.min() if name in ("top", "left") else rows.max()
        run = [edge]
        step = 1 if name in ("top", "left") else -1
        while 0 <= run[-1] + step < size and prof[run[-1] + step] > 0:
            run.append(run[-1] + step)
        if len(run) > max(2, s.line_thickness * size):
            continue
        sel = np.zeros_like(mask)
        lo, hi = min(run), max(run) + 1
        if along == 0:
            sel[lo:hi, :] = lines[lo:hi, :]
        else:
            sel[:, lo:hi] = lines[:, lo:hi]
        sides[name] = sel
        thick = max(thick, len(run))
    if not sides:
        return np.zeros_like(mask), (0, 0, w, h), 0
    if len(sides) == 1:
        # a lone line counts only when it is separate from the other ink
        (name, sel), = sides.items()
        n, labels = cv2.connectedComponents(mask, connectivity=8)
        labs = np.unique(labels[sel > 0])
        comp = np.isin(labels, labs[labs > 0])
        if (comp & (sel == 0) & (cv2.dilate(sel, np.ones((3, 3), np.uint8)) == 0)).sum() > 0.1 * sel.sum():
            return np.zeros_like(mask), (0, 0, w, h), 0
    x0, y0, x1, y1 = 0, 0, w, h
    for name, sel in sides.items():
        ys, xs = np.nonzero(sel)
        if name == "top":
            y0 = int(ys.max()) + 1
        elif name == "bottom":
            y1 = int(ys.min())
        elif name == "left":
            x0 = int(xs.max()) + 1
        else:
            x1 = int(xs.min())
    line = np.zeros_like(mask)
    for sel in sides.values():
        line |= sel
    return line, (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), thick


def _frame_angle(mask: np.ndarray, max_angle: float, step: float) -> float:
    """The rotation that best aligns long straight lines with the image axes, degrees.

    Projection-profile method (Baird 1987, as used for page deskew): the mask is rotated
    by each candidate angle and the angle whose row and column projections have the largest
    sum of squares wins (straight lines aligned with an axis make tall, narrow peaks). The
    mask is reduced to at most 128 pixels a side first.
    """
    h, w = mask.shape
    f = min(1.0, 128.0 / max(h, w))
    small = cv2.resize(mask.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    best, best_score = 0.0, -1.0
    for angle in np.arange(-max_angle, max_angle + 1e-9, step):
        m = cv2.getRotationMatrix2D((sw / 2, sh / 2), float(angle), 1.0)
        r = cv2.warpAffine(small, m, (sw, sh), flags=cv2.INTER_LINEAR, borderValue=0)
        score = float((r.sum(axis=0) ** 2).sum() + (r.sum(axis=1) ** 2).sum())
        if score > best_score + 1e-6 * abs(best_score) or (abs(score - best_score) <= 1e-6 * abs(best_score) and abs(angle) < abs(best)):
            best, best_score = float(angle), score
    return best


def _rotate(ink: np.ndarray, angle: float) -> np.ndarray:
    """Rotate an ink image by ``angle`` degrees (counter-clockwise) on a canvas large enough
    to hold all of it; new corners are paper (0)."""
    h, w = ink.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * c + h * s)), int(np.ceil(w * s + h * c))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    return cv2.warpAffine(ink, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask, pixels: 2 * area / perimeter (a stroke of width w
    and length L has area w L and perimeter about 2 L)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / perimeter if perimeter > 0 else 0.0


def normalise_digit_image(grey: np.ndarray, settings: SingleSettings | None = None) -> np.ndarray:
    """Turn an image of one handwritten digit into an MNIST-style crop.

    Steps: detect the polarity and scale grey levels to ink darkness (``_ink``); remove a
    printed box around the digit, restoring ink where the digit crosses a box line; drop
    marks outside the box and small specks; thicken strokes drawn with a thin pen to MNIST's
    stroke width (about 2 px in the 20 px digit box); crop to the ink and normalise as MNIST
    does (LeCun et al., 1998: bounding box scaled to fit 20x20, aspect kept, centre of mass at
    the centre of the 28x28 field; ``pipeline.segment.to_mnist``).

    Args:
        grey: (H, W) uint8 grey (0 = black), any size and either polarity (``Page.image``); a
            float array is taken as grey levels 0-255, or 0-1 when its maximum is at most 1.
        settings: thresholds.

    Returns:
        (28, 28) float32 in [0, 1], ink = 1.0 (``DigitCrop.pixels`` convention); all zeros
        when the image holds no mark (a uniform or near-empty image).

    >>> crop = normalise_digit_image(np.full((50, 40), 255, np.uint8))
    >>> crop.shape, float(crop.max())
    ((28, 28), 0.0)
    """
    s = settings or SingleSettings()
    grey = np.asarray(grey)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    if grey.ndim != 2 or min(grey.shape) < 2:
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    if grey.dtype != np.uint8:
        g = grey.astype(np.float32)
        grey = np.clip(g * 255.0 if g.size and float(g.max()) <= 1.0 else g, 0, 255).astype(np.uint8)
    ink = _ink(grey, s)
    if ink is None:
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    mask = (ink > s.ink_level).astype(np.uint8)
    angle = _frame_angle(mask, s.max_skew, s.skew_step) if s.max_skew > 0 else 0.0
    found = None
    if abs(angle) >= s.skew_step / 2:
        # a box scanned or photographed at a slant: straighten it, and the digit with it
        # (only when a box is found once straightened: a lone digit is never turned)
        turned = _rotate(ink, angle)
        tmask = (turned > s.ink_level).astype(np.uint8)
        tframe = _frame_lines(tmask, s)
        if tframe[2]:
            ink, mask, found = turned, tmask, tframe
    line, (x0, y0, x1, y1), thick = found or _frame_lines(mask, s)
    h, w = ink.shape
    line = cv2.dilate(line, np.ones((3, 3), np.uint8))
    strokes = mask & (1 - line)
    if thick:
        # give back line pixels with ink on both sides across the line (a digit crossing its
        # box), as ``pipeline.segment`` does on forms
        k = 2 * thick + 5
        across_h = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k)))
        across_v = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
        strokes = strokes | ((across_h | across_v) & line & mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    if n <= 1:
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    inside = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=n).astype(np.float64)
    keep = inside >= s.min_inside * area
    keep[0] = False
    if not keep.any():
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    keep &= area >= s.min_speck * area[keep].max()
    kept = keep[labels].astype(np.uint8)
    ys, xs = np.nonzero(kept)
    by0, by1, bx0, bx1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(by1 - by0, bx1 - bx0)
    if kept.sum() < s.blank_ink * h * w or side < s.blank_extent * max(h, w):
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    # keep the anti-aliased edges next to kept strokes, nothing else
    support = cv2.dilate(kept, np.ones((3, 3), np.uint8))
    patch = (ink * support)[by0:by1, bx0:bx1].astype(np.float32)
    # a thin pen: thicken to MNIST's stroke width, measured at the scale of the 20 px box
    scale = DIGIT_BOX / float(side)
    width = _stroke_width(kept[by0:by1, bx0:bx1]) * scale
    if 0 < width < 0.6 * s.stroke_width:
        grow = int(round((s.stroke_width - width) / scale))
        if grow >= 1:
            pad = grow
            patch = np.pad(patch, pad)
            patch = cv2.dilate(patch, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1)))
            ys2, xs2 = np.nonzero(patch > s.ink_level)
            patch = patch[ys2.min() : ys2.max() + 1, xs2.min() : xs2.max() + 1]
    # pen pressure: scale so that the stroke cores reach full ink, as in MNIST
    top = float(np.percentile(patch[patch > 0], 90))
    if top > 0:
        patch = np.clip(patch / top, 0.0, 1.0)
    return to_mnist(np.ascontiguousarray(patch))


def predict_images(
    paths: Sequence[Path],
    *,
    model: LoadedModel | Path | None = None,
    device: str = "auto",
    threshold: float | None = None,
    batch_size: int = 256,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ImagePrediction]:
    """Read single-digit images and classify them, one result per image page, in input order.

    Every page of every file found under ``paths`` (``pipeline.io.find_scans``: folders are
    searched recursively) is normalised with ``normalise_digit_image`` and classified in
    batches of ``batch_size``. A file that cannot be decoded gives a result with ``error`` set
    and the others go on. A blank image gives ``digit=None``, confidence 0 and ``flagged``.

    Args:
        paths: image files and/or folders.
        model: a loaded model, a checkpoint path, or None for the shipped weights.
        device: "auto" | "cpu" | "cuda".
        threshold: flag digits whose confidence is below this, in [0, 1]; None = the model's.
        batch_size: images per forward pass.
        max_pixels: largest accepted image, width * height.

    Yields:
        ``ImagePrediction`` per image page, in the order of ``find_scans``.

    Raises:
        NoInputError: no image under ``paths``. ModelError: bad checkpoint. ConfigError:
            ``device="cuda"`` without a GPU, or a threshold outside [0, 1].
    """
    from .config import RunSettings, build
    from .classify.predictor import resolve_device

    settings = build(RunSettings, None, device=device, min_confidence=threshold, batch_size=batch_size)
    files = find_scans([Path(p) for p in paths])
    dev = resolve_device(settings.device)
    loaded = model if isinstance(model, LoadedModel) else load_checkpoint(model, dev)
    predictor = Predictor(loaded, dev, settings.batch_size)
    thr = settings.min_confidence if settings.min_confidence is not None else loaded.threshold
    pending: list[tuple[Path, int, np.ndarray | None, str | None]] = []

    def flush() -> Iterator[ImagePrediction]:
        crops = [c for _, _, c, _ in pending if c is not None and c.any()]
        probs = predictor.probabilities(np.stack(crops)) if crops else np.zeros((0, len(loaded.classes)), np.float32)
        k = 0
        for path, page, crop, error in pending:
            if error is not None:
                yield ImagePrediction(path, page, None, 0.0, (), True, error=error)
            elif crop is None or not crop.any():
                yield ImagePrediction(path, page, None, 0.0, (), True, blank=True)
            else:
                p = prediction_from_probs(probs[k])
                k += 1
                yield ImagePrediction(path, page, p.digit, p.confidence, p.alternatives, p.confidence < thr, reject=p.reject)
        pending.clear()

    for path in files:
        try:
            for page in read_pages(path, max_pixels=max_pixels):
                try:
                    crop: np.ndarray | None = normalise_digit_image(page.image)
                    error = None
                except Exception as exc:  # a bug on one image must not stop the others
                    log.exception("%s page %d: internal error", path, page.number)
                    crop, error = None, f"internal error: {type(exc).__name__}: {exc}"
                pending.append((path, page.number, crop, error))
                if len(pending) >= settings.batch_size:
                    yield from flush()
        except InputError as exc:
            pending.append((path, exc.page_index + 1, None, exc.one_line()))
        if len(pending) >= settings.batch_size:
            yield from flush()
    yield from flush()


def prediction_to_dict(pred: ImagePrediction) -> dict[str, Any]:
    """One ``digitform predict`` output line as a JSON-ready dict.

    Returns:
        ``{"source", "page", "digit" ("0"-"9" or None), "confidence", "alternatives"
        ([[digit, p], ...]), "flagged", "blank"}``, plus ``"reject"`` for a model with a
        not-a-digit class and ``"error"`` for an unreadable file; probabilities rounded to 4
        decimals.
    """
    out: dict[str, Any] = {
        "source": str(pred.source),
        "page": pred.page,
        "digit": None if pred.digit is None else str(pred.digit),
        "confidence": round(float(pred.confidence), 4),
        "alternatives": [[d, round(float(p), 4)] for d, p in pred.alternatives],
        "flagged": bool(pred.flagged),
        "blank": bool(pred.blank),
    }
    if pred.reject:
        out["reject"] = round(float(pred.reject), 4)
    if pred.error is not None:
        out["error"] = pred.error
    return out
