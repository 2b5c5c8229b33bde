"""What the two cell finders share: cell limits (``BoxSettings``), the candidate cell, content tests, split-cell merge, cut-cell widening."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class BoxSettings:
    """Limits of what counts as a digit cell (units: pixels of the aligned page, or ratios)."""

    min_aspect: float = 0.45  # cell width / height
    max_aspect: float = 2.2  # wider boxes are free-text/number boxes or table cells
    min_rectangularity: float = 0.5  # hole area / bounding-box area
    min_frame: float = 0.9  # share of the bounding box's outline lying on ruling lines
    max_border_ratio: float = 0.16  # ruling-line thickness / cell side (QR finder rings are 0.2)
    # the same in a row of at least ``comb_min_cells`` cells of one size between two rulings:
    # small cells ruled heavy (3 mm cells, 0.6 mm lines) are combs; a letter's bowl or a
    # bold digit's stroke under a ruling makes one cell, not a row
    max_border_ratio_comb: float = 0.25
    comb_min_cells: int = 3
    max_solid_fill: float = 0.85  # largest ink blob's fill of its bounding box (solid squares ~1.0)
    max_side_fraction: float = 0.25  # of the page's longer side
    height_tolerance: float = 1.35  # max height ratio of neighbouring cells in one field
    max_gap: float = 0.9  # largest gap between boxes of one field, in cell widths
    ignore_qr: bool = True  # drop cells inside QR codes found by OpenCV's QRCodeDetector
    fill_gaps: bool = True  # put back cells missing inside a regular row (box_gaps.fill_gaps)
    walled_boxes: bool = True  # boxes whose walls stand whole where a digit breaks a ruling (box_walls)


@dataclass(slots=True)
class _Cell:
    x: int
    y: int
    w: int
    h: int
    border: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _overlap(a: _Cell, b: _Cell) -> float:
    """Area of the intersection of two cells' boxes, pixels."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return float(ix * iy)


def _iou(a: _Cell, b: _Cell) -> float:
    """Intersection over union of two cells' boxes."""
    inter = _overlap(a, b)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def _ruling_rows(c: _Cell, top: bool) -> tuple[int, int]:
    """Rows (y0, y1 exclusive) where cell ``c``'s top (or bottom) ruling lies: from 3 px inside
    its interior to its border plus 3 px outside."""
    reach = int(c.border) + 3
    return (c.y - reach, c.y + 3) if top else (c.y + c.h - 3, c.y + c.h + reach)


# A dashed ruling printed thin and scanned 1-bit can lose whole dashes: a 3 x 10 grid of 1 px
# dashes (13 px on, 9 px off at 310 dpi) showed breaks of 16-30 px in its line mask, one or
# two per 73 px cell, most cells ruled over only 52-85% of their width (seed 27001
# ``holdout_007``: 2 of 30 cells found). Breaks of a thin ruling of up to DASH_LOST cell
# heights count as ruled, between two ruled columns, or between one and a wall where the
# break runs on past the wall (``_ruled_share(walls=...)``): at the end of a separate box's
# ruling the ruling stops at its wall.
DASH_LOST = 0.35
DASH_THIN = 0.05  # thickest ruling so bridged, in cell heights: the modules of a QR code are thicker (0.1)


def dash_bridge(thickness: float, height: float) -> int:
    """Longest break, pixels, of a ruling ``thickness`` px thick over a cell ``height`` px
    tall that still counts as ruled (a lost dash): ``DASH_LOST * height`` for a thin ruling,
    0 for one thicker than ``DASH_THIN * height``."""
    return int(DASH_LOST * height) if thickness <= DASH_THIN * height else 0


def _ruled_share(
    horiz: np.ndarray, y0: int, y1: int, x0: int, x1: int, bridge: int = 0, lost: int = 0,
    walls: tuple[int, int] | None = None, ends: bool = False,
) -> float:
    """Share of columns x0..x1 (exclusive) that the horizontal-line mask ``horiz`` ((H, W) uint8
    0/255) inks somewhere in rows y0..y1 (exclusive); both ranges are clipped to the page.

    Breaks of up to ``bridge`` columns between two ruled columns (the gaps of a dashed line)
    count as ruled. Where that leaves at least half of the stretch ruled, so do breaks of up
    to ``lost`` columns (dashes lost: ``dash_bridge``) and, with ``walls`` = (first column of
    the left wall, column after the right wall), walls standing at [walls[0], x0) and
    [x1, walls[1]), breaks of up to ``lost`` columns between a wall and a ruled column where
    the column beyond that wall is not ruled either (a dash lost across a corner of a comb or
    grid; a separate box's ruling runs up to its wall). With ``ends``, breaks of up to
    ``lost`` columns at either end of the stretch count whatever lies beyond (a cell placed
    by the row's pitch, not found between walls). 0 for an empty range.
    """
    H, W = horiz.shape
    y0, y1, x0, x1 = max(0, y0), min(H, y1), max(0, x0), min(W, x1)
    if y1 <= y0 or x1 <= x0:
        return 0.0
    prof = (horiz[y0:y1, x0:x1] > 0).any(axis=0)

    def close(limit: int) -> None:
        on = np.nonzero(prof)[0]
        if on.size >= 2:
            d = np.diff(on)
            for i in np.nonzero((d > 1) & (d <= limit + 1))[0]:
                prof[on[i] + 1 : on[i + 1]] = True

    if bridge > 0:
        close(bridge)
    if lost > bridge and prof.mean() >= 0.5:
        close(lost)
        on = np.nonzero(prof)[0]
        if on.size:
            def open_beyond(col: int | None) -> bool:  # the column beyond a wall is not ruled either
                return col is not None and not (0 <= col < W and bool((horiz[y0:y1, col] > 0).any()))

            if 0 < on[0] <= lost and (ends or open_beyond(walls[0] - 1 if walls else None)):
                prof[: on[0]] = True
            if 0 < len(prof) - 1 - on[-1] <= lost and (ends or open_beyond(walls[1] if walls else None)):
                prof[on[-1] + 1 :] = True
    return float(prof.mean())


def _solid_blob(mask: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Fill ratio (area / bbox area) of the largest ink blob inside a hole, 0 if the blob is small."""
    inner = mask[y : y + h, x : x + w]
    n, _, stats, _ = cv2.connectedComponentsWithStats(inner, connectivity=8)
    if n <= 1:
        return 0.0
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    bw, bh, area = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, cv2.CC_STAT_AREA]
    if bw < 0.3 * w or bh < 0.3 * h:
        return 0.0
    return float(area) / float(bw * bh)


def _inked_corners(mask: np.ndarray, x: int, y: int, w: int, h: int, size: float = 0.12) -> int:
    """How many of the four corners of a box interior are mostly ink (rounded shapes, not boxes)."""
    cw, ch = max(1, int(size * w)), max(1, int(size * h))
    inner = mask[y : y + h, x : x + w] > 0
    return sum(
        int(inner[sy, sx].mean() > 0.5)
        for sy, sx in ((slice(0, ch), slice(0, cw)), (slice(0, ch), slice(w - cw, w)), (slice(h - ch, h), slice(0, cw)), (slice(h - ch, h), slice(w - cw, w)))
    )


def _printed_wall(mask: np.ndarray, a: _Cell, b: _Cell) -> bool:
    """Whether the ink between two neighbouring cells is a printed wall, not a stroke.

    A printed wall runs the whole height between the rulings, dead straight (after deskew)
    and as thick as the cells' other box lines. A handwritten "1" that splits a box is
    slanted or wobbles, stops short of a ruling, or is thicker than the box lines. Every row
    from ruling to ruling must hold ink in the gap (+-2 px; 98% of them), at least 75% of
    the run centres must lie within 1.5 px of their median (digits touching the wall move
    the others), the line through them may drift by at most max(1 px, 1% of the height:
    about 0.6 degrees) from top to bottom (after deskew a printed wall is upright), and the
    median run is at most 1.6 times the border thickness + 2 px.

    Args:
        mask: (H, W) uint8 0/255 raw ink mask. a, b: the left and right cell.
    """
    y0, y1 = max(a.y, b.y), min(a.y + a.h, b.y + b.h)
    return _printed_band(mask, a.x + a.w - 2, b.x + 2, y0, y1, (a.border + b.border) / 2)


def _dash_runs(band: np.ndarray) -> tuple[float, int]:
    """(share of rows inked, number of separate inked runs down the rows) of a (rows, cols) bool band."""
    inked = band.any(axis=1)
    return float(inked.mean()) if inked.size else 0.0, int(np.count_nonzero(np.diff(inked.astype(np.int8)) == 1) + int(inked[:1].any()))


def _dashed_wall(mask: np.ndarray, a: _Cell, b: _Cell) -> bool:
    """Whether the ink between two neighbouring cells is a dashed printed wall like their outer walls.

    In a comb printed in dashes every wall is dashed, the middle one too, so ``_printed_wall``
    (ink in 98% of the rows) takes it for a stroke and a two-cell comb of narrow cells came
    out as one box split by a "1" (seed 24001 ``holdout_018``). Its middle wall is printed
    when both outer walls are dashed (ink in 30-95% of the rows, in at least 3 runs), the
    middle holds at least 3 runs, inked over at least 80% of the smaller outer share, and it
    is straight and thin (``_printed_band`` over its inked rows). A handwritten "1" is one
    run, or two where a dash gap crosses it.

    Args:
        mask: (H, W) uint8 0/255 raw ink mask. a, b: the left and right cell.
    """
    H = mask.shape[0]
    y0, y1 = max(a.y, b.y, 0), min(a.y + a.h, b.y + b.h, H)
    t = int(round((a.border + b.border) / 2)) + 2
    if y1 - y0 < 8:
        return False
    bands = [(a.x - t, a.x + 2), (a.x + a.w - 2, b.x + 2), (b.x + b.w - 2, b.x + b.w + t)]
    stats = [_dash_runs(mask[y0:y1, max(0, x0) : max(0, x1)] > 0) for x0, x1 in bands]
    (ls, lr), (ms, mr), (rs, rr) = stats
    if not (0.3 <= ls <= 0.95 and 0.3 <= rs <= 0.95 and lr >= 3 and rr >= 3 and mr >= 3 and ms >= 0.8 * min(ls, rs)):
        return False
    return _printed_band(mask, a.x + a.w - 2, b.x + 2, y0, y1, (a.border + b.border) / 2, min_rows=ms - 0.01)


def _printed_band(mask: np.ndarray, x0: int, x1: int, y0: int, y1: int, border: float, min_rows: float = 0.98) -> bool:
    """Whether columns x0..x1 (exclusive) over rows y0..y1 hold a printed wall (``_printed_wall``'s test).

    Args:
        mask: (H, W) uint8 0/255 raw ink mask. border: the box lines' thickness, pixels.
        min_rows: share of the rows that must hold ink (0.98 for a solid line; less admits a dashed one).
    """
    H, W = mask.shape
    x0, x1 = max(0, x0), min(W, x1)
    if x1 - x0 < 1 or y1 - y0 < 4:
        return False
    band = mask[y0:y1, x0:x1] > 0
    inked = band.any(axis=1)
    if inked.mean() < min_rows:
        return False
    cols = np.arange(band.shape[1])
    centres = (band * cols).sum(axis=1)[inked] / band.sum(axis=1)[inked]
    runs = band.sum(axis=1)[inked]
    near = np.abs(centres - np.median(centres)) <= 1.5
    straight = float(near.mean())
    rows = np.nonzero(inked)[0]
    # slant: the slope of the near-median centres over the rows, times the height
    drift = abs(float(np.polyfit(rows[near], centres[near], 1)[0])) * (y1 - y0) if near.sum() >= 3 else 0.0
    return straight >= 0.75 and drift <= max(1.0, 0.01 * (y1 - y0)) and float(np.median(runs)) <= 1.6 * border + 2


def _merge_split_cells(group: list[_Cell], s: BoxSettings | None = None, mask: np.ndarray | None = None) -> list[_Cell]:
    """Merge two narrow neighbours that together make one cell.

    A handwritten stroke that runs from the top border to the bottom border (a long "1")
    is straight and long enough to pass for a wall and split its cell in two. Narrow
    means narrower than 3:5 (width:height), or under 75% of the row's median width (in rows
    of one or two cells: narrower than 3:4). Given the ink ``mask``, two cells parted by a
    printed wall (``_printed_wall``, or in a dashed comb ``_dashed_wall``) are never merged: a
    two-cell comb of narrow boxes.
    """
    s = s or BoxSettings()
    if len(group) < 2:
        return group
    group = sorted(group, key=lambda c: c.x)
    # the row's usual width, from the cells that are not themselves halves (aspect >= 0.6)
    whole = [c.w for c in group if c.w / c.h >= 0.6] or [c.w for c in group]
    med = float(np.median(whole)) if len(group) >= 3 else None
    # a pair standing apart from the rest of its row (a separate box in halves) may also fit
    # the width of the row's widest cells: one half of aspect 0.67 beside a whole box had
    # made the usual width a half's (seed 22001 holdout_042). In a comb, whose cells touch,
    # that width is a pair of cells the band finder did not split (seed 19001 holdout_017).
    box_w = float(np.median([w for w in whole if w >= 0.75 * max(whole)])) if med else None

    def narrow(c: _Cell) -> bool:
        return c.w / c.h < 0.6 or (c.w < 0.75 * med if med else c.w / c.h < 0.75)

    def apart(i: int, span: float) -> bool:
        left = group[i].x - (group[i - 1].x + group[i - 1].w) if i > 0 else np.inf
        right = group[i + 2].x - (group[i + 1].x + group[i + 1].w) if i + 2 < len(group) else np.inf
        return min(left, right) > 0.15 * span

    out: list[_Cell] = []
    i = 0
    while i < len(group):
        c = group[i]
        if i + 1 < len(group):
            d = group[i + 1]
            span = d.x + d.w - c.x
            y0, y1 = min(c.y, d.y), max(c.y + c.h, d.y + d.h)
            by_aspect = 0.6 <= span / (y1 - y0) <= 1.4 and max(c.w / c.h, d.w / d.h) < 0.6
            fits = by_aspect or (0.8 * med <= span <= 1.25 * med if med else s.min_aspect <= span / (y1 - y0) <= 1.6)
            fits = fits or bool(box_w and 0.8 * box_w <= span <= 1.25 * box_w and apart(i, span))
            if (
                narrow(c) and narrow(d) and fits and d.x - (c.x + c.w) <= 0.35 * (y1 - y0)
                and not (mask is not None and (_printed_wall(mask, c, d) or _dashed_wall(mask, c, d)))
            ):
                out.append(_Cell(c.x, y0, span, y1 - y0, (c.border + d.border) / 2))
                i += 2
                continue
        out.append(c)
        i += 1
    return out


def _inked_column(mask: np.ndarray, x0: int, x1: int, y0: int, y1: int, share: float = 0.4) -> bool:
    """Whether some column of x0..x1 (exclusive) holds ink in ``share`` of the rows y0..y1
    (a wall, solid or dashed, that the digit's strokes may touch)."""
    band = mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] > 0
    return band.size > 0 and float(band.mean(axis=0).max()) >= share


def _widen_cut_cells(group: list[_Cell], mask: np.ndarray) -> list[_Cell]:
    """Give a cell back the part that a handwritten stroke walled off.

    A digit stroke running from the top ruling to the bottom one (the stem of a "7" or a
    "1") passes for a wall, and the part of the box beyond it, filled with the digit's other
    strokes, is no cell: the box is found narrower than its row, cut at the stroke.

    A cell at least 15% narrower than the widest cell of its row that has printed walls on
    both sides is widened by the difference on one side, when its wall on that side is no
    printed wall (``_printed_band``, dashed walls admitted: 40% of the rows inked), a wall
    stands at the widened edge (``_inked_column``), and no other cell of the row is
    entered. Development forms (10 sets, seeds 100-13001, 5,900 written digits): 7 more
    digits read right, none lost.

    Args:
        group: the cells of one row (a field), any order. mask: (H, W) uint8 0/255 raw ink mask.

    Returns:
        The cells sorted left to right, cut cells widened.
    """
    group = sorted(group, key=lambda c: c.x)
    if len(group) < 2:
        return group

    def printed(c: _Cell, x: int) -> bool:  # a printed wall (dashed admitted) at column x
        tol = int(round(c.border)) + 2
        return _printed_band(mask, x - tol, x + tol + 1, c.y, c.y + c.h, c.border, 0.4)

    sides = [(printed(c, c.x - 1), printed(c, c.x + c.w)) for c in group]  # (left, right)
    # the row's width: its widest cell with printed walls on both sides (a row found badly,
    # cells of every width, has none to trust)
    wide = max((c.w for c, (lp, rp) in zip(group, sides) if lp and rp), default=0)
    out = []
    for i, c in enumerate(group):
        d = wide - c.w
        if d < max(4, 0.15 * wide):
            out.append(c)
            continue
        tol, b = int(round(c.border)) + 2, int(round(c.border))
        left_end = group[i - 1].x + group[i - 1].w if i else -(10**9)
        right_end = group[i + 1].x if i + 1 < len(group) else 10**9
        y0, y1 = c.y, c.y + c.h
        left_printed, right_printed = sides[i]
        if c.x - d >= left_end - tol and not left_printed and _inked_column(mask, c.x - d - b - 2, c.x - d + 2, y0, y1):
            c = _Cell(c.x - d, c.y, c.w + d, c.h, c.border)
        elif c.x + c.w + d <= right_end + tol and not right_printed and _inked_column(mask, c.x + c.w + d - 2, c.x + c.w + d + b + 2, y0, y1):
            c = _Cell(c.x, c.y, c.w + d, c.h, c.border)
        out.append(c)
    return out


def _trim_walled_cells(group: list[_Cell], mask: np.ndarray, reach: float = 0.35, min_cover: float = 0.95) -> list[_Cell]:
    """Cut a cell back to a printed wall that stands inside it near one side.

    Two separate boxes with a narrow gap can be found as one cell and a second one that
    spans the gap and the next box: that cell holds the next box's wall, which reads as a
    confident "1" when the box is blank. A cell at least 12% wider than the median of the
    other cells of its row is cut at a column inked over ``min_cover`` of its height (a
    printed line from ruling to ruling; a handwritten stroke seldom touches both) within
    ``reach`` of its width from one side, when what is left is within 15% of that median.

    Args:
        group: the cells of one row (a field), any order. mask: (H, W) uint8 0/255 raw ink mask.

    Returns:
        The cells sorted left to right, such cells cut back to their wall.
    """
    group = sorted(group, key=lambda c: c.x)
    if len(group) < 2:
        return group
    out = []
    for i, c in enumerate(group):
        ref = float(np.median([d.w for j, d in enumerate(group) if j != i]))
        band = mask[max(0, c.y) : c.y + c.h, max(0, c.x) : c.x + c.w] > 0
        if c.w < 1.12 * ref or band.shape[1] != c.w or band.shape[0] < 0.9 * c.h:
            out.append(c)
            continue
        wall = band.mean(axis=0) >= min_cover
        span = int(reach * c.w)
        left = np.nonzero(wall[2:span])[0]
        right = np.nonzero(wall[c.w - span : c.w - 2])[0]
        cut = None
        if left.size:  # keep what lies right of the wall
            x = c.x + 2 + int(left.max()) + 1
            cut = _Cell(x, c.y, c.x + c.w - x, c.h, c.border)
        elif right.size:  # keep what lies left of it
            cut = _Cell(c.x, c.y, c.w - span + int(right.min()), c.h, c.border)
        out.append(cut if cut is not None and abs(cut.w - ref) <= 0.15 * ref else c)
    return out
