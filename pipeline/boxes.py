"""AlignedPage -> PageLayout: find printed digit cells with OpenCV (no template) and group them into fields.

Method: ruling lines are extracted by morphological opening (horizontal and vertical
structuring elements, as in table-structure recognition, e.g. Gatos et al., "Automatic
table detection in document images", ICAPR 2005); a digit cell is a hole of the
ruling-line mask that is rectangular, of digit-cell size and aspect, framed by thin lines,
and not filled by a solid block (QR finder patterns, filled logos). Handwriting is not part
of the line mask, so strokes inside or across a cell do not change its hole. Cells on one
row with matching heights and small gaps become one field (comb or row of boxes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .morph import ink_mask, line_length, noise_sigma, normalise_ink, ruling_lines
from .types import AlignedPage, DigitBox, FieldBoxes, PageLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BoxSettings:
    """Limits of what counts as a digit cell (units: pixels of the aligned page, or ratios)."""

    min_aspect: float = 0.45  # cell width / height
    max_aspect: float = 2.2  # wider boxes are free-text/number boxes or table cells
    min_rectangularity: float = 0.5  # hole area / bounding-box area
    min_frame: float = 0.9  # share of the bounding box's outline lying on ruling lines
    max_border_ratio: float = 0.16  # ruling-line thickness / cell side (QR finder rings are 0.2)
    max_solid_fill: float = 0.85  # largest ink blob's fill of its bounding box (solid squares ~1.0)
    max_side_fraction: float = 0.25  # of the page's longer side
    height_tolerance: float = 1.35  # max height ratio of neighbouring cells in one field
    max_gap: float = 0.9  # largest gap between boxes of one field, in cell widths


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


def _border_thickness(lines: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Median thickness of the ruling-line mask just outside a hole, sampled on its 4 sides."""
    H, W = lines.shape
    reach = max(3, min(w, h) // 2)
    samples = []
    for frac in (0.3, 0.5, 0.7):
        px, py = x + int(frac * w), y + int(frac * h)
        for line, start in (
            (lines[max(0, y - reach) : y, px][::-1], 0),  # up
            (lines[y + h : min(H, y + h + reach), px], 0),  # down
            (lines[py, max(0, x - reach) : x][::-1], 0),  # left
            (lines[py, x + w : min(W, x + w + reach)], 0),  # right
        ):
            run = start
            for val in line:
                if val == 0:
                    break
                run += 1
            if run:
                samples.append(run)
    return float(np.median(samples)) if samples else 0.0


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


def _frame_coverage(lines: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Share of the hole's bounding-box outline lying on ruling lines (looking 0-2 px outside it)."""
    H, W = lines.shape
    on = (lines > 0).astype(np.uint8)
    x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(W, x + w + 3), min(H, y + h + 3)
    top = on[y0 : y + 1, x : x + w].max(axis=0) if y > y0 else on[y, x : x + w]
    bottom = on[y + h - 1 : y1, x : x + w].max(axis=0)
    left = on[y : y + h, x0 : x + 1].max(axis=1) if x > x0 else on[y : y + h, x]
    right = on[y : y + h, x + w - 1 : x1].max(axis=1)
    ring = np.concatenate([top, bottom, left, right])
    return float(ring.mean()) if ring.size else 0.0


def _inked_corners(mask: np.ndarray, x: int, y: int, w: int, h: int, size: float = 0.12) -> int:
    """How many of the four corners of a box interior are mostly ink (rounded shapes, not boxes)."""
    cw, ch = max(1, int(size * w)), max(1, int(size * h))
    inner = mask[y : y + h, x : x + w] > 0
    return sum(
        int(inner[sy, sx].mean() > 0.5)
        for sy, sx in ((slice(0, ch), slice(0, cw)), (slice(0, ch), slice(w - cw, w)), (slice(h - ch, h), slice(0, cw)), (slice(h - ch, h), slice(w - cw, w)))
    )


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
            if w >= 0.15 * h and _frame_coverage(lines, x, y, w, h) >= s.min_frame - 0.1:
                halves.append(_Cell(x, y, w, h, _border_thickness(lines, x, y, w, h)))
            continue
        if w / h > s.max_aspect:
            continue
        if _frame_coverage(lines, x, y, w, h) < s.min_frame:
            continue
        border = _border_thickness(lines, x, y, w, h)
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
    return cells + _join_halves(halves, s) + _beside_sure_cells(doubtful, cells, s)


@dataclass(slots=True)
class _Seg:
    x0: int
    x1: int
    y: float  # centre row
    t: float  # thickness


def _segments(horiz: np.ndarray, min_len: int, max_thick: float, bridge: int) -> list[_Seg]:
    """Horizontal ruling segments (connected components of the line mask), collinear pieces joined."""
    n, labels, stats, cents = cv2.connectedComponentsWithStats(horiz, connectivity=8)
    segs = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if w < bridge:
            continue
        # median thickness over its columns: strokes that cross the line do not count
        t = float(np.median((labels[y : y + h, x : x + w] == i).sum(axis=0)))
        if t <= max_thick and w >= bridge:
            segs.append(_Seg(int(x), int(x + w), float(cents[i][1]), float(t)))
    segs.sort(key=lambda g: (round(g.y), g.x0))
    joined: list[_Seg] = []
    for g in sorted(segs, key=lambda g: g.x0):
        for j in joined:
            if abs(j.y - g.y) <= max(2.0, j.t) and g.x0 - j.x1 <= bridge and g.x1 > j.x1:
                j.x1, j.t = g.x1, max(j.t, g.t)
                break
        else:
            joined.append(_Seg(g.x0, g.x1, g.y, g.t))
    return [g for g in joined if g.x1 - g.x0 >= min_len]


def _walls(cov: np.ndarray, level: float, max_thick: float) -> list[tuple[int, int]]:
    """Runs of columns whose coverage reaches ``level``: (start, end) exclusive, thin runs only."""
    on = np.concatenate([[0], (cov >= level).astype(np.int8), [0]])
    d = np.diff(on)
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a <= max_thick]


def _comb_lattice(walls: list[tuple[int, int]], hb: float, s: BoxSettings) -> list[tuple[int, int]]:
    """Keep the walls of a comb: the largest set lying on one evenly spaced lattice.

    In a comb field the cell walls are printed at a constant pitch; handwriting that passes
    for a wall (the stem of a 1, the side of a 0 touching both rulings) falls between lattice
    points. Applied when at least 5 walls are found and the best lattice explains at least
    60% of them; otherwise the walls are returned unchanged (rows of separate boxes, whose
    walls come in pairs, are left to the split-cell merge).
    """
    if len(walls) < 5:
        return walls
    centres = np.array([(a + b) / 2 for a, b in walls])
    best = (0, 0.0, None, None)  # (count, -residual, pitch, origin)
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            p = centres[j] - centres[i]
            if not (s.min_aspect * hb <= p <= s.max_aspect * hb):
                continue
            tol = max(2.0, 0.08 * p)
            r = (centres - centres[i]) / p
            dev = np.abs(r - np.round(r)) * p
            on = dev <= tol
            key = (int(on.sum()), -float(dev[on].sum()))
            if key > best[:2]:
                best = (key[0], key[1], p, centres[i])
    count, _, p, origin = best
    if p is None or count < 0.6 * len(walls) or count < 4:
        return walls
    tol = max(2.0, 0.08 * p)
    r = (centres - origin) / p
    return [w for w, d in zip(walls, np.abs(r - np.round(r)) * p) if d <= tol]


def _band_cells(
    ink: np.ndarray, mask: np.ndarray, horiz: np.ndarray, horiz_raw: np.ndarray, vert: np.ndarray, length: int, max_thick: float, s: BoxSettings,
    level: float = 0.08,
) -> list[_Cell]:
    """Cells between pairs of horizontal ruling lines, split at the walls that cross the band.

    A band is the strip between a horizontal line and a line below it that overlaps it; a
    wall is a column inked over at least 85% of the band's middle 80% (vertical ruling;
    handwriting seldom covers that much of a cell in a straight column). This is the
    projection-profile reading of comb fields (cf. the comb-field extraction of forms
    readers, e.g. Casey & Ferguson, "Intelligent forms processing", IBM Systems J., 1990).
    """
    H, W = ink.shape
    min_side = max(8, 2 * length)
    max_side = min(s.max_side_fraction * max(H, W), 0.95 * min(H, W))
    k = max(3, length // 3)
    vsmooth = (cv2.blur(ink, (1, k)) > level) | (vert > 0)  # vertical lines, dashes bridged
    segs = _segments(horiz, min_side, max_thick, max(2, length // 2))
    segs.sort(key=lambda g: g.y)
    cells: list[_Cell] = []
    for i, a in enumerate(segs):
        for b in segs[i + 1 :]:
            dy = b.y - a.y
            if dy < min_side:
                continue
            if dy > max_side:
                break
            bx0, bx1 = max(a.x0, b.x0), min(a.x1, b.x1)
            if bx1 - bx0 < min_side * s.min_aspect:
                continue
            # a ruling line across the band in between makes it two bands (table rows)
            reach = min(2 * max_thick, 0.1 * (bx1 - bx0))
            t_rule = (a.t + b.t) / 2
            if any(
                a.y + a.t < m.y < b.y - b.t and m.x0 <= bx0 + reach and m.x1 >= bx1 - reach and abs(m.t - t_rule) <= max(2.0, 0.5 * t_rule)
                for m in segs
            ):
                continue
            ty, by = int(round(a.y + a.t / 2)) + 1, int(round(b.y - b.t / 2))
            hb = by - ty
            pad = int(max_thick) + 2
            c0, c1 = max(0, bx0 - pad), min(W, bx1 + pad)
            # a wall runs the band's full height, from ruling to ruling; handwriting seldom does
            cov = vsmooth[ty:by, c0:c1].mean(axis=0)
            walls = [(c0 + u, c0 + v) for u, v in _walls(cov, 0.9, max_thick)]
            # two walls closer than a quarter cell: one is a stroke beside the ruling; keep
            # the one inked over more of the band (the ruling reaches both lines)
            # (walls either side of the gap between two separate boxes are both real: no ruling
            # runs along that gap)
            kept: list[tuple[int, int]] = []
            for wall in walls:
                if kept and wall[0] - kept[-1][1] < 0.25 * hb:
                    g0, g1 = kept[-1][1], wall[0]
                    gap_ruled = g1 > g0 and horiz_raw[max(0, int(a.y) - 3) : int(a.y) + 4, g0:g1].max(axis=0).mean() > 0.5 * 255
                    if gap_ruled:
                        if cov[wall[0] - c0 : wall[1] - c0].mean() > cov[kept[-1][0] - c0 : kept[-1][1] - c0].mean():
                            kept[-1] = wall
                        continue
                kept.append(wall)
            def ruled(g0: int, g1: int) -> bool:
                return g1 <= g0 or horiz_raw[max(0, int(a.y) - 3) : int(a.y) + 4, g0:g1].max(axis=0).mean() > 0.5 * 255

            # a comb (every interval ruled, no gaps between boxes): keep its evenly spaced walls
            comb = all(ruled(u[1], v[0]) for u, v in zip(kept, kept[1:]))
            walls = _comb_lattice(kept, hb, s) if comb else kept
            found = []
            wide = 0  # framed boxes too wide for one digit: table cells, free-text boxes
            for (_, e0), (s1, e1) in zip(walls, walls[1:]):
                w = s1 - e0
                if w < 0.15 * hb:
                    continue
                top = horiz_raw[max(0, int(a.y) - 3) : int(a.y) + 4, e0:s1].max(axis=0).mean() if w > 0 else 0
                bot = horiz_raw[max(0, int(b.y) - 3) : int(b.y) + 4, e0:s1].max(axis=0).mean() if w > 0 else 0
                if min(top, bot) < 0.85 * 255:
                    continue
                if w / hb > s.max_aspect:
                    wide += 1
                    continue
                found.append(_Cell(e0, ty, w, hb, max(a.t, b.t)))
            log.debug("band y %.0f-%.0f walls %s cells %s", a.y, b.y, walls, [(c.x, c.w) for c in found])
            if found and wide >= len(found):
                break  # a table row, not a row of digit cells
            found = [
                c for c in _merge_split_cells(found, s)
                if c.border <= s.max_border_ratio * min(c.w, c.h)
                and _solid_blob(mask, c.x, c.y, c.w, c.h) <= s.max_solid_fill
                and _inked_corners(mask, c.x, c.y, c.w, c.h) < 2  # not a letter's bowl ("o" of bold print)
                and c.w / c.h >= s.min_aspect
            ]
            if found:
                cells.extend(found)
                break  # the nearest line below that frames cells closes this band
    return cells


def _union(first: list[_Cell], second: list[_Cell], overlap: float = 0.3) -> list[_Cell]:
    """Cells of ``first`` plus those of ``second`` that overlap none of them (IoU <= overlap)."""
    def iou(a: _Cell, b: _Cell) -> float:
        ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
        iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
        inter = ix * iy
        return inter / float(a.w * a.h + b.w * b.h - inter)

    import os
    mode = os.environ.get("DF_BOXES", "union")
    if mode == "holes":
        return second
    if mode == "band":
        return first
    return first + [c for c in second if all(iou(c, f) <= overlap for f in first)]


def _beside_sure_cells(doubtful: list[_Cell], sure: list[_Cell], s: BoxSettings) -> list[_Cell]:
    """Doubtful cells that sit on the row of a sure cell of the same size, close beside it."""
    out = []
    for d in doubtful:
        for c in sure:
            same = abs(c.y - d.y) <= 0.1 * c.h and abs(c.h - d.h) <= 0.1 * c.h and abs(c.w - d.w) <= 0.15 * c.w
            gap = max(c.x - (d.x + d.w), d.x - (c.x + c.w))
            if same and gap <= s.max_gap * c.w:
                out.append(d)
                break
    return out


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


def _group(cells: list[_Cell], s: BoxSettings) -> list[list[_Cell]]:
    """Union cells with their nearest right-hand neighbour on the same row into fields."""
    parent = list(range(len(cells)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(cells)), key=lambda i: cells[i].x)
    for a_pos, a in enumerate(order):
        ca = cells[a]
        best, best_gap = None, None
        for b in order[a_pos + 1 :]:
            cb = cells[b]
            gap = cb.x - (ca.x + ca.w)
            if gap > s.max_gap * max(ca.w, cb.w):
                break
            overlap = min(ca.y + ca.h, cb.y + cb.h) - max(ca.y, cb.y)
            if overlap < 0.6 * min(ca.h, cb.h) or max(ca.h, cb.h) > s.height_tolerance * min(ca.h, cb.h):
                continue
            if gap < -0.3 * min(ca.w, cb.w):
                continue
            if best_gap is None or gap < best_gap:
                best, best_gap = b, gap
        if best is not None:
            parent[find(best)] = find(a)
    groups: dict[int, list[_Cell]] = {}
    for i in range(len(cells)):
        groups.setdefault(find(i), []).append(cells[i])
    return [sorted(g, key=lambda c: c.x) for g in groups.values()]


def _merge_split_cells(group: list[_Cell], s: BoxSettings | None = None) -> list[_Cell]:
    """Merge two narrow neighbours that together make one cell.

    A handwritten stroke that runs from the top border to the bottom border (a long "1")
    is straight and long enough to pass for a wall and split its cell in two. Narrow
    means narrower than 3:5 (width:height), or under 75% of the row's median width (in rows
    of one or two cells: narrower than 3:4).
    """
    s = s or BoxSettings()
    if len(group) < 2:
        return group
    group = sorted(group, key=lambda c: c.x)
    med = float(np.median([c.w for c in group])) if len(group) >= 3 else None

    def narrow(c: _Cell) -> bool:
        return c.w / c.h < 0.6 or (c.w < 0.75 * med if med else c.w / c.h < 0.75)

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
            if narrow(c) and narrow(d) and fits and d.x - (c.x + c.w) <= 0.35 * (y1 - y0):
                out.append(_Cell(c.x, y0, span, y1 - y0, (c.border + d.border) / 2))
                i += 2
                continue
        out.append(c)
        i += 1
    return out


def _reading_order(groups: list[list[_Cell]]) -> list[list[_Cell]]:
    """Sort fields top to bottom by rows (vertical overlap >= 50%), then left to right."""
    def bbox(g: list[_Cell]) -> tuple[int, int, int, int]:
        return g[0].x, min(c.y for c in g), g[-1].x + g[-1].w, max(c.y + c.h for c in g)

    items = sorted(groups, key=lambda g: bbox(g)[1])
    rows: list[list[list[_Cell]]] = []
    for g in items:
        _, y0, _, y1 = bbox(g)
        for row in rows:
            _, ry0, _, ry1 = bbox(row[0])
            if min(y1, ry1) - max(y0, ry0) >= 0.5 * min(y1 - y0, ry1 - ry0):
                row.append(g)
                break
        else:
            rows.append([g])
    return [g for row in rows for g in sorted(row, key=lambda g: g[0].x)]


def _typical_thickness(horiz: np.ndarray) -> float:
    """Median vertical run length of a horizontal-line mask: the usual ruling-line thickness, pixels."""
    b = (horiz > 0).astype(np.int8)
    if not b.any():
        return 1.0
    d = np.diff(np.pad(b, ((1, 1), (0, 0))), axis=0)
    starts = np.nonzero(d.T == 1)
    ends = np.nonzero(d.T == -1)
    runs = ends[1] - starts[1]
    return float(np.median(runs)) if runs.size else 1.0


@dataclass(frozen=True, slots=True)
class _Lines:
    both: np.ndarray  # (H, W) uint8 0/255 union, corners closed
    horiz: np.ndarray  # (H, W) uint8 0/255 horizontal lines
    horiz_raw: np.ndarray  # (H, W) uint8 0/255 horizontal runs before thick handwriting was removed
    vert: np.ndarray  # (H, W) uint8 0/255 vertical lines
    max_thick: float  # thickest run still counted as a line, pixels
    level: float  # smoothed ink darkness that counted as line


def page_lines(ink: np.ndarray, length: int) -> _Lines:
    """Ruling-line mask of a page: horizontal and vertical lines, dashes bridged, ends extended.

    Args:
        ink: (H, W) float32 ink darkness (``morph.normalise_ink``). length: minimum line run, pixels (``morph.line_length``).

    Returns:
        The line masks, (H, W) uint8 0/255 each, and the thickness limit used.
    """
    bridge = max(2, length // 2)
    # the smoothed-ink level that counts as line: 0.08 (faint dropout rulings), raised to
    # 5 sigma of the paper noise left after smoothing over length // 3 pixels
    k = max(3, length // 3)
    level = max(0.08, 5.0 * noise_sigma(ink) / np.sqrt(k))
    horiz, vert = ruling_lines(ink, length, bridge=bridge, level=level)
    horiz_raw = horiz.copy()
    # drop blobs: handwriting closed into a solid patch is thick, ruling lines are thin;
    # pixels on a run across the line longer than ``max_thick`` are not line
    max_thick = int(max(6.0, 2.5 * _typical_thickness(horiz) + 2))
    horiz = cv2.subtract(horiz, cv2.morphologyEx(horiz, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max_thick + 1))))
    vert = cv2.subtract(vert, cv2.morphologyEx(vert, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max_thick + 1, 1))))
    # extend every line along itself so that ends stopping short of a corner (dashed or
    # broken lines, faint scans) meet the crossing line
    horiz = cv2.dilate(horiz, cv2.getStructuringElement(cv2.MORPH_RECT, (bridge + 1, 1)))
    vert = cv2.dilate(vert, cv2.getStructuringElement(cv2.MORPH_RECT, (1, bridge + 1)))
    lines = cv2.morphologyEx(cv2.bitwise_or(horiz, vert), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return _Lines(lines, horiz, horiz_raw, vert, float(max_thick), level)


def find_fields(aligned: AlignedPage, settings: BoxSettings | None = None) -> PageLayout:
    """Find the digit cells of an aligned page and group them into fields in reading order.

    Args:
        aligned: the deskewed page; its image is (H', W') uint8.
        settings: cell limits; defaults suit comb fields and digit boxes of 4-12 mm.

    Returns:
        A ``PageLayout`` with the fields (boxes in both aligned and source pixels), the
        lighting-flattened ink image and the ruling-line mask that segmentation needs.
        A page with no cells gives an empty ``fields`` tuple (not an error).
    """
    s = settings or BoxSettings()
    ink = normalise_ink(aligned.image)
    mask = ink_mask(ink)
    length = line_length(mask.shape)
    pl = page_lines(ink, length)
    lines = pl.both
    cells = _union(_band_cells(ink, mask, pl.horiz, pl.horiz_raw, pl.vert, length, pl.max_thick, s, pl.level), _candidate_cells(lines, mask, length, s))
    groups = [_merge_split_cells(g, s) for g in _group(cells, s)]
    fields: list[FieldBoxes] = []
    for fi, g in enumerate(_reading_order(groups)):
        digit_boxes = tuple(
            DigitBox(field_index=fi, position=pi, box=aligned.box_to_source((c.x, c.y, c.w, c.h)), aligned_box=(c.x, c.y, c.w, c.h))
            for pi, c in enumerate(g)
        )
        x0, y0 = min(c.x for c in g), min(c.y for c in g)
        x1, y1 = max(c.x + c.w for c in g), max(c.y + c.h for c in g)
        gaps = [b.x - (a.x + a.w) for a, b in zip(g, g[1:])]
        border = max(c.border for c in g)
        kind = "single" if len(g) == 1 else ("comb" if max(gaps) <= 3 * border + 2 else "boxes")
        fields.append(
            FieldBoxes(index=fi, name=f"field_{fi + 1}", box=aligned.box_to_source((x0, y0, x1 - x0, y1 - y0)), cells=digit_boxes, kind=kind)
        )
    line_width = float(np.median([c.border for c in cells])) if cells else 1.0
    log.debug("%s p%d: %d cells in %d fields", aligned.page.source, aligned.page.number, len(cells), len(fields))
    return PageLayout(aligned=aligned, fields=tuple(fields), ink=ink, lines=lines, line_width=line_width)
