"""Cell finder 1: digit cells as holes of the ruling-line mask (rectangular, framed, thin-lined, not solid)."""

from __future__ import annotations

import cv2
import numpy as np

from .box_cells import BoxSettings, _Cell, _overlap, _solid_blob


# Narrow cells. A hole narrower than two line lengths (``min_side``: 1.2% of the page's
# longer side, 3.4 mm on a Letter page) is taken for half of a cell split by a stroke. Small
# cells are printed that narrow too (3.4 mm x 5 mm boxes, seed-20001 holdout_007); such a
# hole is a cell when it is at least NARROW_WIDTH of ``min_side`` wide, passes every test of
# a cell, is not joined to another half, and a cell of its size stands on its row within
# FAR_GAP widths. (Without the last test, a lone narrow hole in the table of the real MarkUs
# exam cover became a cell.)
NARROW_WIDTH = 0.7
# A hole with rounded corners (a digit pressed into a corner, or a letter's bowl) is a cell
# when a sure cell of its size stands on its row within FAR_GAP widths: separate boxes printed
# two or three widths apart ("Q1 [ ] Q2 [ ]", seed-20001 holdout_038) are not within the
# 0.9 widths that join boxes into one field.
FAR_GAP = 4.0


def _border_thickness(lines: np.ndarray, x: int, y: int, w: int, h: int, edge: bool = False) -> float:
    """Median thickness of the ruling-line mask just outside a hole, sampled on its 4 sides.

    A hole's contour runs on the line pixels that border it, so its bounding box includes
    them and the runs counted outward from it leave that row out. With ``edge`` the row is
    counted and every sample kept, even where the ruling is that one row (a 1 px ruling
    gives 1, not a sample skipped).
    """
    H, W = lines.shape
    reach = max(3, min(w, h) // 2)
    e = 1 if edge else 0
    samples = []
    for frac in (0.3, 0.5, 0.7):
        px, py = x + int(frac * w), y + int(frac * h)
        for line in (
            lines[max(0, y - reach) : y + e, px][::-1],  # up
            lines[y + h - e : min(H, y + h + reach), px],  # down
            lines[py, max(0, x - reach) : x + e][::-1],  # left
            lines[py, x + w - e : min(W, x + w + reach)],  # right
        ):
            run = 0
            for val in line:
                if val == 0:
                    break
                run += 1
            if run or edge:
                samples.append(run)
    return float(np.median(samples)) if samples else 0.0


def _frame_coverage(lines: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Share of the hole's bounding-box outline lying on ruling lines (looking 0-2 px outside it)."""
    H, W = lines.shape
    x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(W, x + w + 3), min(H, y + h + 3)
    on = (lines[y0:y1, x0:x1] > 0).astype(np.uint8)  # the hole's window only (a whole-page copy per hole was slow)
    x, y = x - x0, y - y0
    top = on[: y + 1, x : x + w].max(axis=0) if y > 0 else on[y, x : x + w]
    bottom = on[y + h - 1 :, x : x + w].max(axis=0)
    left = on[y : y + h, : x + 1].max(axis=1) if x > 0 else on[y : y + h, x]
    right = on[y : y + h, x + w - 1 :].max(axis=1)
    ring = np.concatenate([top, bottom, left, right])
    return float(ring.mean()) if ring.size else 0.0


def _square_corners(contour: np.ndarray, x: int, y: int, w: int, h: int, size: float = 0.12, fill: float = 0.7) -> bool:
    """True when the hole fills all four corners of its bounding box (a box, not a letter bowl).

    A stroke hanging into the cell from its border only notches a side, so it passes.
    """
    hole = np.zeros((h, w), np.uint8)
    cv2.drawContours(hole, [contour - np.array([x, y])], -1, 1, thickness=-1)
    # the contour runs along the hole's edge pixels, so look one pixel inside the bounding box
    cw, ch = max(1, int(size * w)), max(1, int(size * h))
    for sy, sx in ((slice(1, ch + 1), slice(1, cw + 1)), (slice(1, ch + 1), slice(w - cw - 1, w - 1)),
                   (slice(h - ch - 1, h - 1), slice(1, cw + 1)), (slice(h - ch - 1, h - 1), slice(w - cw - 1, w - 1))):
        if hole[sy, sx].mean() < fill:
            return False
    return True


def _candidate_cells(lines: np.ndarray, mask: np.ndarray, length: int, s: BoxSettings) -> list[_Cell]:
    H, W = lines.shape
    contours, hierarchy = cv2.findContours(lines, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    cells: list[_Cell] = []
    halves: list[_Cell] = []  # holes that may be a cell split by a stroke from border to border
    doubtful: list[_Cell] = []
    narrow: list[_Cell] = []  # holes narrower than min_side that pass every test of a cell
    if hierarchy is None:
        return cells
    max_side = min(s.max_side_fraction * max(H, W), 0.95 * min(H, W))
    min_side = max(8, 2 * length)
    for i, c in enumerate(contours):
        if hierarchy[0][i][3] < 0:  # outer contour of a line blob, not a hole
            continue
        x, y, w, h = cv2.boundingRect(c)
        if h < min_side or max(w, h) > max_side:
            continue
        if cv2.contourArea(c) < s.min_rectangularity * w * h:
            continue  # strokes that join the border only notch the hole; letters' bowls are far from boxes
        corners = _square_corners(c, x, y, w, h)
        if w < min_side or w / h < s.min_aspect:
            # half a cell (or a letter's counter)
            frame = _frame_coverage(lines, x, y, w, h) if w >= 0.15 * h else 0.0
            if frame >= s.min_frame - 0.1:
                half = _Cell(x, y, w, h, _border_thickness(lines, x, y, w, h))
                halves.append(half)
                if (w >= NARROW_WIDTH * min_side and w / h >= s.min_aspect and corners and w / h <= s.max_aspect
                        and frame >= s.min_frame
                        and 0 < half.border <= s.max_border_ratio * min(w, h)
                        and _solid_blob(mask, x, y, w, h) <= s.max_solid_fill):
                    narrow.append(half)
            continue
        if w / h > s.max_aspect:
            continue
        if _frame_coverage(lines, x, y, w, h) < s.min_frame:
            continue
        border = _border_thickness(lines, x, y, w, h)
        if border <= 0 or border > s.max_border_ratio * min(w, h):
            # measured again with the contour's own row and every sample counted: a 1 px
            # ruling gave no sample at all (border 0), or only the samples where a digit's
            # stroke joins it (seed-21000 sample_052, a comb of faint 1 px rulings: 1 of 6
            # cells found). On the 10 development sets nothing changed.
            border = _border_thickness(lines, x, y, w, h, edge=True)
        if border <= 0 or border > s.max_border_ratio * min(w, h):
            continue
        if _solid_blob(mask, x, y, w, h) > s.max_solid_fill:
            continue
        if corners:
            cells.append(_Cell(x, y, w, h, border))
        else:
            # rounded corners: a letter's bowl ("o", "D" of large print), or a cell whose corner
            # a stroke touches; kept only beside a sure cell of the same size (below)
            doubtful.append(_Cell(x, y, w, h, border))
    joined = _join_halves(halves, s)
    # narrow cells (NARROW_WIDTH): not half of a split cell, and beside a cell of their size
    narrow = [c for c in narrow if all(_overlap(c, j) == 0 for j in joined)]
    narrow = _beside_sure_cells(narrow, cells, FAR_GAP, among=True)
    return cells + joined + narrow + _beside_sure_cells(doubtful, cells + narrow, FAR_GAP)


def _join_halves(halves: list[_Cell], s: BoxSettings) -> list[_Cell]:
    """Join side-by-side holes split by a handwritten stroke that runs from border to border
    (after dash bridging, a digit touching both borders walls its cell in two)."""
    out = []
    halves = sorted(halves, key=lambda c: c.x)
    used = set()
    for i, a in enumerate(halves):
        for j in range(i + 1, len(halves)):
            b = halves[j]
            if i in used or j in used:
                continue
            gap = b.x - (a.x + a.w)
            if gap > max(a.h, b.h) * 0.25:
                break
            if gap < -0.3 * a.h or abs(a.y - b.y) > 0.15 * a.h or abs(a.h - b.h) > 0.15 * a.h:
                continue
            w, h = b.x + b.w - a.x, max(a.y + a.h, b.y + b.h) - min(a.y, b.y)
            if s.min_aspect <= w / h <= s.max_aspect:
                out.append(_Cell(a.x, min(a.y, b.y), w, h, max(a.border, b.border)))
                used.update((i, j))
    return out


def _beside_sure_cells(doubtful: list[_Cell], sure: list[_Cell], max_gap: float, among: bool = False) -> list[_Cell]:
    """Doubtful cells that sit on the row of a sure cell of the same size (height within 10%,
    width within 15%, top within 10% of the height), at most ``max_gap`` of its widths away;
    with ``among``, the other doubtful cells count as sure ones too."""
    out = []
    for d in doubtful:
        for c in sure + ([e for e in doubtful if e is not d] if among else []):
            same = abs(c.y - d.y) <= 0.1 * c.h and abs(c.h - d.h) <= 0.1 * c.h and abs(c.w - d.w) <= 0.15 * c.w
            gap = max(c.x - (d.x + d.w), d.x - (c.x + c.w))
            if same and gap <= max_gap * c.w:
                out.append(d)
                break
    return out

