"""Cell finder 3: a box whose two walls stand whole while a digit breaks its rulings.

A digit written over the top or bottom ruling of a separate box (a "0" sitting on the bottom
line, a heavy "8" through it) merges with the ruling: the stroke is too thick for the line
mask there, so the ruling has a gap, the box's hole in the line mask is open (finder 1) and
the band between the rulings is not ruled across (finder 2). A lone box has no row to put it
back from (``box_gaps``). Its walls, though, run whole from ruling to ruling in the vertical
line mask, and ink at the ruling level still covers its top and bottom edges (ruling or digit).

``walled_boxes`` pairs vertical wall segments of one extent (one pair of ends within ``tol``,
the other within 15% of the height), a cell's width apart, with no full-height wall between
them, and keeps the box when ink covers its top and its bottom edge within one row, its
height suits the page's other cells, it is not a ticked checkbox and it overlaps no cell
already found. It is the rectangle-from-line-segments reading of table and form cells
(cf. Gatos et al., ICAPR 2005, cited in ``boxes``), restricted to boxes a finder missed.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .box_cells import BoxSettings, _Cell, _iou, _overlap, _ruled_share, _solid_blob
from .box_holes import FAR_GAP, _beside_sure_cells

log = logging.getLogger(__name__)

# A box's height must lie within these multiples of the median height of the cells the other
# finders returned on the page (at least MIN_FOUND of them): digit boxes of one form differ
# less (0.57-1.7 on the synthetic seeds 23001, 24000 and 24001), table cells and frames more.
SIZE = (0.5, 2.0)
MIN_FOUND = 3
# A box with ink along both its diagonals over this share is a ticked checkbox, not a digit
# box (the X breaks the box's hole, so only this finder sees it: 48 flagged "4"/"8" on 4
# development sets before this test).
CROSSED = 0.8
# Least share of a box's interior (a tenth of its sides in) that ink must cover: the finder is
# for boxes a digit breaks; empty checkboxes and the bowl of a large printed "O", which the
# hole finder refuses, came back through it (held-out seed 25001: 9 checkboxes, one "O").
MIN_INK = 0.02

# Least share of the top and of the bottom edge of a box (between its walls, inset by a
# tenth of the width) that ink at the ruling level must cover within 1 px of one row.
MIN_EDGE_INK = 0.95


def _ruling_row(dark: np.ndarray, ys: range, x0: int, x1: int, half: int) -> tuple[float, int]:
    """(share, row): the row of ``ys`` around which (within ``half`` px) the boolean image
    ``dark`` covers most of columns x0..x1, and that share; of the first run of rows (in
    the order of ``ys``) that share it, the middle one."""
    shares = [_ruled_share(dark, y - half, y + half + 1, x0, x1) for y in ys]
    if not shares:
        return 0.0, ys.start
    best = max(shares)
    i = shares.index(best)
    j = i
    while j + 1 < len(shares) and shares[j + 1] == best:
        j += 1
    return best, ys[(i + j) // 2]


def _inner_edge(dark: np.ndarray, y: int, step: int, x0: int, x1: int, limit: int) -> int:
    """The first row from ruling row ``y`` towards the box's inside (``step`` +1 down, -1 up)
    where ``dark`` covers under half of columns x0..x1; at most ``limit`` rows on."""
    H = dark.shape[0]
    for _ in range(limit):
        if not 0 <= y < H or dark[y, x0:x1].mean() < 0.5:
            return y
        y += step
    return y


def _crossed(mask: np.ndarray, c: _Cell, min_share: float = CROSSED) -> bool:
    """Whether ink runs along both diagonals of box ``c`` (an X ticking a checkbox): at least
    ``min_share`` of 21 points from 10% to 90% of each diagonal inked within 1 px, with the
    two diagonals shifted together by up to a tenth of the box's shorter side (the box found
    may sit a little off the printed one; a shift per point would let a heavy digit pass)."""
    H, W = mask.shape
    t = np.linspace(0.1, 0.9, 21)
    reach = max(1, int(round(0.1 * min(c.w, c.h))))
    step = max(1, reach // 3)
    # "within 1 px": the ink dilated by a 3 x 3 square, over the box and its reach only
    wx0, wy0 = max(0, c.x - reach - 1), max(0, c.y - reach - 1)
    wx1, wy1 = min(W, c.x + c.w + reach + 2), min(H, c.y + c.h + reach + 2)
    ink = cv2.dilate((mask[wy0:wy1, wx0:wx1] > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    diagonals = [
        (np.round(x0 + t * (x1 - x0)).astype(int), np.round(c.y + t * c.h).astype(int))
        for x0, x1 in ((c.x, c.x + c.w), (c.x + c.w, c.x))
    ]
    for dy in range(-reach, reach + 1, step):
        for dx in range(-reach, reach + 1, step):
            shares = []
            for xs, ys in diagonals:
                xs2, ys2 = np.clip(xs + dx, 0, W - 1) - wx0, np.clip(ys + dy, 0, H - 1) - wy0
                shares.append(float(ink[ys2, xs2].mean()))
            if min(shares) >= min_share:
                return True
    return False


def _holds_ink(mask: np.ndarray, c: _Cell, min_share: float = MIN_INK) -> bool:
    """Whether ink covers at least ``min_share`` of box ``c``'s interior, a tenth of its
    sides in from its edges (a digit is written there; an empty box was the other finders' to take)."""
    dx, dy = max(1, c.w // 10), max(1, c.h // 10)
    inner = mask[c.y + dy : c.y + c.h - dy, c.x + dx : c.x + c.w - dx]
    return inner.size > 0 and float((inner > 0).mean()) >= min_share


def walled_boxes(
    vert: np.ndarray, ink: np.ndarray, level: float, mask: np.ndarray, found: list[_Cell], s: BoxSettings, max_thick: float,
) -> list[_Cell]:
    """Separate boxes found from their two walls where their rulings are broken.

    Args:
        vert: (H, W) uint8 0/255 vertical-line mask (``boxes.page_lines``).
        ink: (H, W) float32 ink darkness in [0, 1] (lighting flattened). level: the darkness
            that counts as a ruling (``page_lines``; faint dropout rulings stay under the ink
            mask's threshold).
        mask: (H, W) uint8 0/255 ink mask.
        found: cells of the other finders (aligned-page pixels); a box overlapping one
            (IoU over 0.1) or holding one is not returned, and their median height sets
            the box heights looked for (``SIZE``; none with fewer than ``MIN_FOUND``).
        s: cell limits (aspect, size, solid fill, border ratio: a wall's width in the line
            mask includes its blur, so a box ruled over ``max_border_ratio`` of its side,
            up to ``max_border_ratio_comb``, is kept where a found cell of its size stands on
            its row within ``FAR_GAP`` widths, as the hole finder keeps its doubtful holes).
        max_thick: thickest run still counted as a line, pixels.

    Returns:
        New cells (interior between the walls and the rulings, aligned-page pixels).
    """
    H, W = mask.shape
    if len(found) < MIN_FOUND:
        return []
    ref = float(np.median([c.h for c in found]))
    dark = ink >= level
    _, _, stats, _ = cv2.connectedComponentsWithStats(vert, connectivity=8)
    walls = [
        (int(x), int(y), int(w), int(h))
        for x, y, w, h, _a in stats[1:]
        if h >= 12 and w <= max(3.0, max_thick) + 2 and h >= 3 * w
    ]
    walls.sort()
    max_side = min(s.max_side_fraction * max(H, W), 0.95 * min(H, W))
    out: list[_Cell] = []
    for i, (lx, ly, lw, lh) in enumerate(walls):
        tol = max(3, int(0.08 * lh))
        for rx, ry, rw, rh in walls[i + 1 :]:
            if rx - (lx + lw) > s.max_aspect * lh:
                break
            dt, db = abs(ry - ly), abs((ry + rh) - (ly + lh))
            if min(dt, db) > tol or max(dt, db) > 0.15 * max(lh, rh):
                continue  # one end may be blurred by a digit over that corner; the other must agree
            x0, x1 = lx + lw, rx  # interior columns
            mid = (max(ly, ry) + min(ly + lh, ry + rh)) / 2
            if any(x0 < q[0] and q[0] + q[2] < x1 and q[3] >= 0.85 * min(lh, rh) and q[1] < mid < q[1] + q[3] for q in walls):
                break  # a wall between: two cells, not one (the nearer pair was tried first)
            if x1 - x0 < 8:
                continue  # too narrow for a cell (and for the rows' ink shares below)
            border = float(max(lw, rw))
            inset = max(1, int(0.1 * (x1 - x0)))
            hh = max(lh, rh)
            # the rulings: the rows near the walls' ends that the ink covers most, within 1 px
            # (rulings are straight; a curve, the bowl of a loop, covers the width over more rows)
            t, top = _ruling_row(dark, range(min(ly, ry) - 2, min(ly, ry) + int(0.2 * hh)), x0 + inset, x1 - inset, 1)
            end = max(ly + lh, ry + rh)
            b, bot = _ruling_row(dark, range(end + 2, end - int(0.2 * hh), -1), x0 + inset, x1 - inset, 1)
            cy0 = _inner_edge(dark, top, 1, x0 + inset, x1 - inset, int(border / 2) + 2)
            cy1 = _inner_edge(dark, bot, -1, x0 + inset, x1 - inset, int(border / 2) + 2) + 1
            w, h = x1 - x0, cy1 - cy0
            if not SIZE[0] * ref <= h <= SIZE[1] * ref or max(w, h) > max_side or not s.min_aspect <= w / h <= s.max_aspect:
                continue
            if border > s.max_border_ratio_comb * min(w, h) or min(t, b) < MIN_EDGE_INK:
                continue
            c = _Cell(x0, cy0, w, h, border)
            if border > s.max_border_ratio * min(w, h) and not _beside_sure_cells([c], found, FAR_GAP):
                continue  # ruled as heavy as a bold letter's bowl: only beside a box of its size
            # it overlaps a cell already found, or holds one (80% of it inside)
            if any(_iou(c, d) > 0.1 or _overlap(d, c) >= 0.8 * d.w * d.h for d in found + out):
                break
            if _solid_blob(mask, c.x, c.y, c.w, c.h) > s.max_solid_fill or _crossed(mask, c) or not _holds_ink(mask, c):
                continue
            log.debug("walled box %s (top %.2f bottom %.2f)", (c.x, c.y, c.w, c.h), t, b)
            out.append(c)
            break
    return out
