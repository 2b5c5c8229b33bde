"""Page -> AlignedPage: deskew by the ruling lines (orientation 0/180 is decided later, by the classifier)."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from .morph import estimate_skew, line_length, normalise_ink, ruling_lines
from .types import AlignedPage, Page

log = logging.getLogger(__name__)


def rotation_matrix(shape: tuple[int, int], angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine map rotating an image by ``angle`` degrees (counter-clockwise) about its centre
    onto a canvas large enough to hold all of it.

    Args:
        shape: (H, W) of the source image, pixels.
        angle: degrees, counter-clockwise positive (OpenCV convention).

    Returns:
        ((3, 3) float64 source -> rotated pixels, (W', H') of the new canvas).
    """
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * s + w * c)), int(math.ceil(h * c + w * s))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    return np.vstack([m, [0.0, 0.0, 1.0]]), (nw, nh)


def align_page(page: Page, *, max_skew: float = 10.0, min_skew: float = 0.15) -> AlignedPage:
    """Deskew a page so that its printed ruling lines are horizontal.

    The skew is the length-weighted median angle of the long horizontal ruling lines
    (``morph.estimate_skew``). Pages with no ruling lines, or a skew beyond ``max_skew``,
    are left as they are (score 0).

    Args:
        page: the decoded page, (H, W) uint8.
        max_skew: largest correction, degrees.
        min_skew: smaller skews are not corrected (resampling would only blur), degrees.

    Returns:
        The aligned page; ``to_source`` maps aligned pixels back to source pixels.
    """
    grey = page.image
    length = line_length(grey.shape)
    ink = normalise_ink(grey)
    horiz, _ = ruling_lines(ink, length)
    angle, support = estimate_skew(horiz, length)
    score = float(min(1.0, support / max(grey.shape[1], 1)))
    if abs(angle) < min_skew or abs(angle) > max_skew:
        if abs(angle) > max_skew:
            log.info("%s p%d: skew %.1f deg beyond %.1f, not corrected", page.source, page.number, angle, max_skew)
        return AlignedPage(page, grey, np.eye(3), 0, 0.0, score if abs(angle) <= max_skew else 0.0, ink=ink)
    # rotating by -angle (clockwise when angle > 0) levels lines that rise to the right
    fwd, (nw, nh) = rotation_matrix(grey.shape, -angle)
    img = cv2.warpAffine(grey, fwd[:2], (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return AlignedPage(page, img, np.linalg.inv(fwd), 0, float(angle), score)
