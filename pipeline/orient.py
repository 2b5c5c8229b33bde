"""Page orientation (0 or 180 degrees) from the printed text: ascenders outnumber descenders.

In Latin print the strokes that rise above the x-height (b d f h k l t, capitals, digits)
carry more ink than those that hang below the baseline (g j p q y). On a page read upside
down the two swap places, so the ink above and below the x-height band of each text line
tells up from down. This is the ascender/descender asymmetry of Caprari, "Algorithm for
text page up/down orientation determination", Pattern Recognition Letters 21(4), 2000.

The digit classifier's vote (``run.classify_pages``) needs asymmetric digits and clean
crops; the printed text of a form (title, labels, instructions) is usually plentiful and
clean, so it decides where it is clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .morph import ink_mask
from .types import PageLayout

# Evidence needed for the text to decide: text lines measured, and |log(above / below)|.
# On 460 synthetic development and held-out pages (seeds 100-15001; 62 of them stored upside
# down; every page holds some printed text) the sign was right on all of them, with 3-157
# lines and |score| at least 0.24; weaker evidence is left to the classifier's vote.
MIN_LINES = 3
MIN_SCORE = 0.2


@dataclass(frozen=True, slots=True)
class TextOrientation:
    """The text's verdict on a page in aligned pixels (before any 180-degree turn)."""

    score: float  # log((ink above the x-height band + 1) / (ink below it + 1)) over all text lines; > 0 upright
    lines: int  # text lines measured

    @property
    def decided(self) -> bool:
        """Whether the evidence is strong enough to decide the page's orientation."""
        return self.lines >= MIN_LINES and abs(self.score) >= MIN_SCORE

    @property
    def upside_down(self) -> bool:
        return self.score < 0


def text_orientation(layout: PageLayout) -> TextOrientation:
    """Measure the ascender/descender asymmetry of the printed text on an aligned page.

    Letters are the ink components of text size (at least 6 px high, at most 3% of the
    page's longer side, not much wider than high); the digit cells and their surroundings
    (0.4 cell heights) are left out, being handwriting. Letters are joined along the row
    (a dilation as wide as their median height) into text lines; a line at least 5 times
    wider than high gives its vertical ink profile, whose rows at half its peak or more are
    the x-height band. The ink above that band and below it is summed over all lines.

    Args:
        layout: the page after deskew and box finding (``layout.ink``: (H, W) float32).

    Returns:
        A ``TextOrientation``; ``lines`` is 0 where the page holds no text.
    """
    m = (ink_mask(layout.ink) > 0).astype(np.uint8)
    H, W = m.shape
    for f in layout.fields:
        for c in f.cells:
            x, y, w, h = c.aligned_box
            pad = int(0.4 * h)
            m[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    hs, ws, area = st[1:, cv2.CC_STAT_HEIGHT], st[1:, cv2.CC_STAT_WIDTH], st[1:, cv2.CC_STAT_AREA]
    ok = (hs >= 6) & (hs <= 0.03 * max(H, W)) & (ws <= 3 * hs + 4) & (area >= 12)
    if not ok.any():
        return TextOrientation(0.0, 0)
    keep = np.zeros(n, bool)
    keep[1:] = ok
    letters = keep[lab].astype(np.uint8)
    xh = max(3, int(np.median(hs[ok])))
    rows = cv2.dilate(letters, cv2.getStructuringElement(cv2.MORPH_RECT, (xh, 1)))
    nb, lb, sb, _ = cv2.connectedComponentsWithStats(rows, connectivity=8)
    above = below = 0.0
    lines = 0
    for i in range(1, nb):
        x, y, w, h = sb[i, :4]
        if w < 5 * h or h < 6:
            continue
        prof = (letters[y : y + h, x : x + w] & (lb[y : y + h, x : x + w] == i)).sum(axis=1).astype(np.float64)
        band = np.nonzero(prof >= 0.5 * prof.max())[0]
        top, bot = int(band.min()), int(band.max())
        if bot - top < 3:
            continue
        above += float(prof[:top].sum())
        below += float(prof[bot + 1 :].sum())
        lines += 1
    if lines == 0:
        return TextOrientation(0.0, 0)
    return TextOrientation(float(np.log((above + 1.0) / (below + 1.0))), lines)
