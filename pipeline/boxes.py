"""AlignedPage -> PageLayout: find printed digit cells with OpenCV (no template) and group them into fields.

Method: ruling lines are extracted by morphological opening (horizontal and vertical
structuring elements, as in table-structure recognition, e.g. Gatos et al., "Automatic
table detection in document images", ICAPR 2005); a digit cell is a hole of the
ruling-line mask that is rectangular, of digit-cell size and aspect, framed by thin lines,
and not filled by a solid block (QR finder patterns, filled logos). Handwriting is not part
of the line mask, so strokes inside or across a cell do not change its hole. Bands between
two rulings split at their walls give comb cells (``box_bands``), and a separate box whose
ruling a heavy digit breaks is found from its two walls (``box_walls``). Cells on one
row with matching heights and small gaps become one field (comb or row of boxes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .box_bands import _band_cells
from .box_cells import BoxSettings, _Cell, _iou, _merge_split_cells, _overlap, _ruled_share, _ruling_rows, _trim_walled_cells, _widen_cut_cells
from .box_gaps import _wall, fill_gaps, fill_rows, loose, regularise, restore_heights, split_stacked
from .box_holes import _candidate_cells
from .box_walls import walled_boxes
from .morph import ink_mask, line_length, noise_sigma, normalise_ink, ruling_lines
from .types import AlignedPage, DigitBox, FieldBoxes, PageLayout

log = logging.getLogger(__name__)

__all__ = ["BoxSettings", "find_fields", "page_lines"]


def _union(first: list[_Cell], second: list[_Cell], overlap: float = 0.3) -> list[_Cell]:
    """Cells of ``first`` plus those of ``second`` that overlap none of them (IoU <= overlap)."""
    return first + [c for c in second if all(_iou(c, f) <= overlap for f in first)]


# Longest page side, pixels, at which QR codes are looked for (the page is shrunk to it): 200
# dpi on a Letter page, so a code with 0.5 mm modules still has 4 px per module. On the
# development forms (seeds 100, 200, 300, 8000, 11000, 11001; 120 pages) the cells found are
# the same as at full size, and 20 holdout pages read in 25 s instead of 32 s.
QR_MAX_SIDE = 2200


def _qr_codes(image: np.ndarray) -> list[np.ndarray]:
    """Corner quadrilaterals of the QR codes on a page, found with OpenCV's ``QRCodeDetector``.

    A QR code's modules form small square holes framed by dark modules, which pass every
    geometric test of a digit cell; the detector finds the code from its three finder
    patterns (ISO/IEC 18004), so cells inside it can be dropped. Both the classic detector
    and the ArUco-based one are run; a code both find is listed once.

    Args:
        image: (H, W) uint8 grey page, 0 = black.

    Returns:
        One (4, 2) float32 array of corner points (x, y pixels of ``image``) per code, each
        pushed out by 10% of its size from the centre as a margin; empty when none is found or the
        detector fails.

    The detectors run on the page shrunk to ``QR_MAX_SIDE`` pixels on its longer side when it
    is larger: their cost grows with the area, and they were a third of the time of reading
    a page at 300-600 dpi.
    """
    out = []
    scale = min(1.0, QR_MAX_SIDE / max(image.shape))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # both of OpenCV's detectors: each finds codes the other misses on skewed or noisy scans
    # (the ArUco-based one, OpenCV >= 4.8, found a code at 1.6 degrees skew that the classic one did not)
    detectors = [cv2.QRCodeDetector] + ([cv2.QRCodeDetectorAruco] if hasattr(cv2, "QRCodeDetectorAruco") else [])
    for make in detectors:
        try:
            ok, pts = make().detectMulti(image)
        except cv2.error:
            continue
        if not ok or pts is None:
            continue
        for quad in np.asarray(pts, np.float32).reshape(-1, 4, 2) / scale:
            centre = quad.mean(axis=0)
            if any(cv2.pointPolygonTest(q, (float(centre[0]), float(centre[1])), False) >= 0 for q in out):
                continue  # the same code, found by both detectors
            out.append(centre + 1.1 * (quad - centre))
    return out


def _outside(cells: list[_Cell], quads: list[np.ndarray]) -> list[_Cell]:
    """The cells whose centre lies in none of the quadrilaterals."""
    return [c for c in cells if all(cv2.pointPolygonTest(q, (float(c.cx), float(c.cy)), False) < 0 for q in quads)]


def _drop_containers(cells: list[_Cell]) -> list[_Cell]:
    """Drop cells that hold two or more other found cells.

    Walls or a ruling hidden under heavy digits can make one finder return a block of
    2 x 1 or 2 x 2 grid cells as one cell while the other finder, or another band, finds
    the cells themselves; both are then reported. A cell that holds two smaller cells (each
    at least 80% inside it and under 60% of its area) is such a block and is dropped.
    """
    return [
        c for c in cells
        if sum(1 for d in cells if d is not c and d.w * d.h < 0.6 * c.w * c.h and _overlap(d, c) >= 0.8 * d.w * d.h) < 2
    ]


# A one-cell field whose cell overlaps a cell of a field of several cells by at least this
# IoU is dropped (_drop_shadow_singles; twenty-seventh session, README).
SHADOW_IOU = 0.3


def _drop_shadow_singles(groups: list[list[_Cell]]) -> list[list[_Cell]]:
    """Drop one-cell fields that overlap a cell of a field of several cells.

    Printed cells do not overlap, so where a lone cell lies over a cell of a comb, row of
    boxes or grid (IoU at least ``SHADOW_IOU``), one of the two is a second finding of the
    same printed cell, shifted or misshapen (a band or completion found it again beside the
    row's own cell), and its digit is reported twice. On the 18 development sets (seeds
    20000-28001) 41 such pairs were found and in every one the field of several cells held
    the cell matching the printed one (IoU >= 0.5 with the truth); the lone cell matched
    none. Two lone cells overlapping each other are both kept: nothing says which is right.

    Args:
        groups: the fields' cells (aligned px), each a list in reading order.

    Returns:
        ``groups`` without the shadowed one-cell fields.
    """
    rows = [c for g in groups if len(g) > 1 for c in g]
    return [g for g in groups if len(g) > 1 or not any(_iou(g[0], c) >= SHADOW_IOU for c in rows)]


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


# Despeckle. A 1-bit scan of a dark patch (uneven lighting, a grey background) is a dense
# field of isolated specks; 9% of the pixels at the foot of one synthetic page (seed 18001
# holdout_004), which smoothed along the rows is above the 0.08 line level everywhere, and
# the hole finder then takes the speckle's holes for cells (92 spurious digits on the page).
# Specks (ink components of at most SPECK_PX pixels) are dropped where they cover more
# than SPECK_DENSITY of the area around them (a square of 4 line lengths); a dithered faint
# ruling is specks too, but on a line, far below that density over the square.
SPECK_PX = 3
SPECK_DENSITY = 0.02


def despeckle(ink: np.ndarray, length: int) -> np.ndarray:
    """``ink`` less the specks of dense speckle (see SPECK_PX, SPECK_DENSITY).

    Args:
        ink: (H, W) float32 ink darkness. length: line length, pixels (sets the area).

    Returns:
        (H, W) float32, ``ink`` itself when nothing is dropped.
    """
    mask = ink_mask(ink)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    tiny = stats[:, cv2.CC_STAT_AREA] <= SPECK_PX
    tiny[0] = False
    if not tiny.any():
        return ink
    speck = tiny[labels]
    win = 4 * length + 1
    density = cv2.blur(speck.astype(np.float32), (win, win))
    drop = speck & (density > SPECK_DENSITY)
    if not drop.any():
        return ink
    out = ink.copy()
    out[drop] = 0.0
    return out


def page_lines(ink: np.ndarray, length: int, cross: bool = True) -> _Lines:
    """Ruling-line mask of a page: horizontal and vertical lines, dashes bridged, ends extended.

    Args:
        ink: (H, W) float32 ink darkness (``morph.normalise_ink``). length: minimum line run, pixels (``morph.line_length``).
        cross: also take the lines with the ink of strokes across them left out and keep
            only what both find (``morph.ruling_lines(cross=...)``).

    Returns:
        The line masks, (H, W) uint8 0/255 each, and the thickness limit used.
    """
    bridge = max(2, length // 2)
    ink = despeckle(ink, length)
    # the smoothed-ink level that counts as line: 0.08 (faint dropout rulings), raised to
    # 5 sigma of the paper noise left after smoothing over length // 3 pixels
    k = max(3, length // 3)
    level = max(0.08, 5.0 * noise_sigma(ink) / np.sqrt(k))
    horiz, vert = ruling_lines(ink, length, bridge=bridge, level=level)
    # the same without the ink of strokes across each direction: the facing dashed walls of
    # close boxes, smoothed along the rows, no longer join into short horizontal bars
    horiz_x, vert_x = ruling_lines(ink, length, bridge=bridge, level=level, cross=max(6, length // 2)) if cross else (horiz, vert)
    horiz_raw = horiz_x.copy()
    # drop blobs: handwriting closed into a solid patch is thick, ruling lines are thin;
    # pixels on a run across the line longer than ``max_thick`` are not line. The runs are
    # measured with the strokes across kept: lines of text, smoothed along the row, are thick
    # bands then, but only their thin tops and feet remain without the letters' stems.
    max_thick = int(max(6.0, 2.5 * _typical_thickness(horiz) + 2))
    horiz = cv2.subtract(horiz, cv2.morphologyEx(horiz, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max_thick + 1)))) & horiz_x
    vert = cv2.subtract(vert, cv2.morphologyEx(vert, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max_thick + 1, 1)))) & vert_x
    # extend every line along itself so that ends stopping short of a corner (dashed or
    # broken lines, faint scans) meet the crossing line
    horiz = cv2.dilate(horiz, cv2.getStructuringElement(cv2.MORPH_RECT, (bridge + 1, 1)))
    vert = cv2.dilate(vert, cv2.getStructuringElement(cv2.MORPH_RECT, (1, bridge + 1)))
    lines = cv2.morphologyEx(cv2.bitwise_or(horiz, vert), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return _Lines(lines, horiz, horiz_raw, vert, float(max_thick), level)


def _cells_of(ink: np.ndarray, mask: np.ndarray, pl: _Lines, length: int, s: BoxSettings) -> list[_Cell]:
    """Cells of both finders (bands of rulings, holes of the line mask), the first's kept where
    both find one, except where a hole measures the cell better (``_prefer_holes``)."""
    band = _band_cells(ink, mask, pl.horiz, pl.horiz_raw, pl.vert, length, pl.max_thick, s, pl.level)
    holes = _candidate_cells(pl.both, mask, length, s)
    return _union(_prefer_holes(band, holes, mask, pl.horiz_raw), holes)


# A band cell's split is kept against the hole around it when a printed wall runs down the
# split (``box_gaps._wall``) over this share of the hole's middle 80% of height: a heavy
# comb wall lost from the line mask as too thick. A handwritten stroke taken for a wall
# rarely covers that much.
SPLIT_WALL_COVER = 0.9
# A band cell wider than a hole inside it is kept when the strip beside the hole is ruled above
# and below over this share of its width (``_prefer_holes``): a comb or grid cell, not the gap
# between separate boxes.
STRIP_RULED = 0.9


def _prefer_holes(band: list[_Cell], holes: list[_Cell], mask: np.ndarray, horiz_raw: np.ndarray | None = None) -> list[_Cell]:
    """The band cells that no hole of the line mask measures better.

    The band finder (walls between two rulings) is kept where both finders find a cell: a
    digit stroke that bridges a ruling cuts a hole short, not a band. It goes wrong in three
    ways that a hole of the same height (within 10%) shows:

    * it spans a whole hole and more (the hole under 60% of its width): a wall missed
      between two cells (seed-20001 holdout_031, separate boxes 12 px apart);
    * it is more than 10% wider than a hole lying (90%) inside it: it runs from one box's
      wall to its neighbour's facing wall, into the gap between separate boxes;
    * it is one of two or more band cells inside one hole, split where no wall is printed
      (``SPLIT_WALL_COVER``): a heavy stroke taken for a wall (seed-20001 holdout_010, a faint
      dashed comb whose every cell came out in halves); a lone band cell inside a hole
      counts when a side of it stops more than 15% of the hole's width short of the hole's
      wall, and that side is then a split to test (eighteenth session).

    Such band cells are dropped, so the holes take their place in ``_union``. On the
    development forms (10 sets, 660 pages) the three rules with ``box_holes``'s narrow and
    far-beside cells found 33 more of 9,151 `holdout`-style cells and none fewer.

    The second case does not apply where the band cell is as wide as its row's other band
    cells (within 10%), the holes measure most of those as the band finder does, and the
    strip of it beside the hole is ruled above and below (``horiz_raw``, ``STRIP_RULED``):
    then the hole's side is a stroke taken into the line mask, not a box wall (a thick "1"
    beside the first wall of a grid, seed 26001 ``holdout_056``, read blank; twenty-second
    session). Between separate boxes the strip is the gap, and the holes are narrower than
    every band cell of the row.

    Args:
        band, holes: the two finders' cells, aligned-page pixels. mask: (H, W) uint8 0/255 ink mask.
        horiz_raw: (H, W) uint8 0/255 horizontal rulings (``page_lines``); None skips the exception.

    Returns:
        The band cells kept, in their order.
    """
    def same_h(a: _Cell, b: _Cell) -> bool:
        return abs(a.h - b.h) <= 0.1 * max(a.h, b.h)

    def row_agrees(c: _Cell) -> bool:
        # c is as wide as its row's other band cells (same height, centre within half a
        # height; median, within 10%), and the holes measure most of those as the band does
        row = [e for e in band if e is not c and same_h(c, e) and abs(e.cy - c.cy) < 0.5 * c.h]
        if not row or abs(c.w - float(np.median([e.w for e in row]))) > 0.1 * c.w:
            return False
        return 2 * sum(any(_iou(e, d) >= 0.9 for d in holes) for e in row) > len(row)

    def stroke_side(c: _Cell, d: _Cell) -> bool:
        # c agrees with its row, and every strip of c beside the hole d is ruled top and bottom
        if horiz_raw is None or d.w < 0.6 * c.w or not row_agrees(c):
            return False
        strips = [(c.x, d.x - int(d.border)), (d.x + d.w + int(d.border), c.x + c.w)]
        strips = [(a, b) for a, b in strips if b - a >= 4]
        return bool(strips) and all(_ruled_share(horiz_raw, *_ruling_rows(c, t), a, b) >= STRIP_RULED for a, b in strips for t in (True, False))

    out = []
    for c in band:
        # the first two cases: a hole inside c (90%; 80% when under 60% of c's width), c wider by 10%
        if any(
            same_h(c, d) and c.w > 1.1 * d.w and _overlap(d, c) >= (0.8 if d.w < 0.6 * c.w else 0.9) * d.w * d.h and not stroke_side(c, d)
            for d in holes
        ):
            continue
        holder = [d for d in holes if same_h(c, d) and c.w < 0.6 * d.w and _overlap(c, d) >= 0.8 * c.w * c.h]
        if holder:
            h = holder[0]
            inside = sorted((e for e in band if _overlap(e, h) >= 0.8 * e.w * e.h), key=lambda e: e.x)
            splits = [(a.x + a.w + b.x) / 2 for a, b in zip(inside, inside[1:])]
            # the outer sides of the band cells inside, where they stop well short of the hole's
            # walls, are splits too: part of a box cut at a stroke, its other part found by no
            # band (seed 21001 holdout_028: the box beside it was lost with it)
            if inside[0].x - h.x > 0.15 * h.w:
                splits.append(inside[0].x - inside[0].border / 2)
            if h.x + h.w - (inside[-1].x + inside[-1].w) > 0.15 * h.w:
                splits.append(inside[-1].x + inside[-1].w + inside[-1].border / 2)
            if splits and not any(_wall(mask, x, h, SPLIT_WALL_COVER) for x in splits):
                continue
        out.append(c)
    return out


# Faint-ruling pass. The line level of ``page_lines`` never drops below 0.08 of full contrast,
# which keeps paper texture and JPEG noise out of the line masks; dropout-colour grids printed
# fainter than that (0.03-0.06 on the synthetic holdout scans) are then not seen at all. Where
# the paper noise allows a lower level (5 sigma after smoothing below FAINT_MAX_LEVEL), the ink
# is scaled up so that the lowest level the noise allows maps to 0.08, and the hole finder runs
# again; cells it finds that overlap none found at full contrast and whose outline is faint are added.
FAINT_MAX_LEVEL = 0.06
FAINT_MIN_LEVEL = 0.02


def _faint_cells(ink: np.ndarray, length: int, s: BoxSettings, found: list[_Cell]) -> _Faint:
    """Cells on rulings too faint for the normal line level, overlapping none of ``found``.

    Args:
        ink: (H, W) float32 ink darkness. length: line length, pixels. found: cells already found.

    Returns:
        The new cells (aligned-page pixels; none when the paper noise does not allow a lower
        level) and, when faint cells show (new or not), the scaled-up ink's line masks and
        ink mask, which field completion then uses as well (the rulings of a faint row are
        too faint for the unscaled masks).
    """
    sigma = noise_sigma(ink)
    low = max(FAINT_MIN_LEVEL, 5.0 * sigma / np.sqrt(max(3, length // 3)))
    if low >= FAINT_MAX_LEVEL:
        return _Faint([], None, None)
    gain = 0.08 / low
    boosted = np.clip(ink * gain, 0.0, 1.0)
    # holes only, and without the strokes-across pass: the band finder costs seconds on the
    # scaled-up paper noise of some pages. (At half size the pass cost a quarter but found
    # half the faint cells of seed-13001 holdout_052 and holdout_007.)
    fpl = page_lines(boosted, length, cross=False)
    fmask = ink_mask(boosted)
    faint = [c for c in _candidate_cells(fpl.both, fmask, length, s) if _frame_ink(ink, c) < FAINT_MAX_FRAME and _ruled_sides(ink, c, sigma)]
    new = [c for c in faint if all(_overlap(c, f) < 0.1 * min(c.w * c.h, f.w * f.h) for f in found)]
    # a faint field is a row of cells: a lone faint cell is more likely a phantom of the noise
    new = [c for c in new if any(_same_row(c, d, s) for d in new + found if d is not c)]
    # the masks serve completion wherever faint cells show, found at full contrast as well
    # (a faint comb that the band finder found in part still needs them for the rest)
    shows = any(_same_row(c, d, s) for c in faint for d in faint + found if d is not c)
    return _Faint(new, fpl, fmask) if shows else _Faint([], None, None)


@dataclass(frozen=True, slots=True)
class _Faint:
    cells: list[_Cell]  # cells on faint rulings (aligned-page pixels)
    lines: _Lines | None  # line masks of the scaled-up ink, when cells were found
    mask: np.ndarray | None  # (H, W) uint8 0/255 ink mask of the scaled-up ink, likewise


def _same_row(a: _Cell, b: _Cell, s: BoxSettings) -> bool:
    """Whether cells ``a`` and ``b`` are neighbours of one field: heights within 15%, rows overlapping 60%, gap under ``max_gap`` widths."""
    overlap = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    gap = max(b.x - (a.x + a.w), a.x - (b.x + b.w))
    return abs(a.h - b.h) <= 0.15 * max(a.h, b.h) and overlap >= 0.6 * min(a.h, b.h) and gap <= s.max_gap * max(a.w, b.w)


def _side_contrast(ink: np.ndarray, c: _Cell) -> list[float]:
    """Darkness of each side's ruling over the paper beside it, ink units: (top, bottom, left, right).

    Per position along the side's middle 80%, the darkest pixel within the ruling's band
    (border/2 + 2 px either side of the edge) less the lighter of the darkest pixels in equally
    wide bands just outside and just inside it (a digit stroke or a neighbour's digit darkens
    one of them); the mean over the positions. A phantom hole of scaled-up paper noise gives
    about 0.
    """
    H, W = ink.shape
    b = int(round(c.border / 2)) + 2
    out = []
    for side in ("top", "bottom", "left", "right"):
        vertical = side in ("left", "right")
        e = {"top": c.y, "bottom": c.y + c.h, "left": c.x, "right": c.x + c.w}[side]
        lo, n = (c.y, c.h) if vertical else (c.x, c.w)
        a0, a1 = lo + int(0.1 * n), lo + int(0.9 * n)
        f0, f1 = e - 3 * b - 1, e + 3 * b + 2
        if f0 < 0 or f1 > (W if vertical else H) or a1 <= a0:
            out.append(0.0)
            continue
        strip = ink[a0:a1, f0:f1].T if vertical else ink[f0:f1, a0:a1]  # rows across the side
        before = strip[: 2 * b].max(axis=0)
        edge = strip[2 * b + 1 : 4 * b + 2].max(axis=0)
        after = strip[4 * b + 3 :].max(axis=0)
        out.append(float((edge - np.minimum(before, after)).mean()))
    return out


# Least side contrast of a faint cell (ink units): 2 sigma of the paper noise, never below 0.015.
# Measured on the development forms (seeds 200, 300, 11001-13001): the faint grids found gave
# 0.032-0.17 on their weakest side; phantom holes in scaled-up noise 0.017-0.023 at sigma 0.012.
# The max-of-band statistic is biased upward by about 1 sigma, hence the 2.
FAINT_MIN_SIDE = 0.015
FAINT_SIDE_SIGMA = 2.0


def _ruled_sides(ink: np.ndarray, c: _Cell, sigma: float) -> bool:
    """Whether all four sides of cell ``c`` are darker than the paper just outside them (``_side_contrast``)."""
    need = max(FAINT_MIN_SIDE, FAINT_SIDE_SIGMA * sigma)
    con = _side_contrast(ink, c)
    log.debug("faint cell %s side contrast %s need %.3f", (c.x, c.y, c.w, c.h), [round(v, 3) for v in con], need)
    return min(con) >= need


# Most of a faint cell's outline is paper-light in the unscaled ink; the bowl of a printed
# letter ("O" of a title) that the scaled pass also takes for a cell is drawn at full contrast.
FAINT_MAX_FRAME = 0.3


def _frame_ink(ink: np.ndarray, c: _Cell) -> float:
    """Share of the outline of cell ``c`` (its ruling, border/2 outside the hole) whose unscaled ink is above 0.22."""
    H, W = ink.shape
    o = max(1, int(round(c.border / 2)))
    x0, y0, x1, y1 = max(0, c.x - o), max(0, c.y - o), min(W - 1, c.x + c.w + o), min(H - 1, c.y + c.h + o)
    if x1 <= x0 or y1 <= y0:
        return 1.0
    ring = np.concatenate([ink[y0, x0:x1], ink[y1, x0:x1], ink[y0:y1, x0], ink[y0:y1, x1]])
    return float((ring > 0.22).mean())


TEXT_HEIGHT = (0.75, 1.33)  # a letter's height over the cell frame's (_in_text_line)
TEXT_GAP = 0.35  # largest gap between letters of a word, in frame heights
TEXT_LETTERS = 2  # letters chained on one side that make a word


def _in_text_line(mask: np.ndarray, c: _Cell) -> bool:
    """Whether a single cell's frame stands in a line of printed letters of its own height.

    The bowl of a bold capital ("D", "O") or the gap between two letters of a title can pass
    for a box, and the letter's stem then reads as a confident "1". The cell's frame is the
    ink components touching its border (3 px band); letters are other components 0.75-1.33
    times the frame's height (``TEXT_HEIGHT``), their top within 0.2 of that height of the
    frame's, at most 1.5 heights wide and not themselves box frames (inked along 60% of their
    bounding box's border). The cell is in a text line when at least ``TEXT_LETTERS`` such
    letters follow one another on one side, each within ``TEXT_GAP`` frame heights of the
    last. A box between labels ("Q2 [ ] Q3") is not: its labels are smaller and stand apart.
    Measured on the synthetic forms' stored images (16 development sets and seeds
    24000/24001, 1,397 single-cell fields): 39 false cells (6 of them unflagged digits) and
    9 real cells (6 of them unflagged digits) meet the test. In ``digitform process`` (on the
    aligned pages) it flagged 3 more digits on the 16 sets, all read on title letters, and
    no correct digit.

    Args:
        mask: (H, W) uint8 0/255 ink mask of the aligned page. c: the cell (aligned px).

    Returns:
        True when the cell is taken for part of a printed word.
    """
    H, W = mask.shape
    x0, y0, x1, y1 = max(0, c.x - 6 * c.w), max(0, c.y - c.h), min(W, c.x + 7 * c.w), min(H, c.y + 2 * c.h)
    win = (mask[y0:y1, x0:x1] > 0).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(win, connectivity=8)
    cx, cy = c.x - x0, c.y - y0
    band = np.zeros_like(win)
    band[max(0, cy - 3) : cy + c.h + 3, max(0, cx - 3) : cx + c.w + 3] = 1
    band[cy + 3 : cy + c.h - 3, cx + 3 : cx + c.w - 3] = 0
    walls = {int(i) for i in np.unique(lab[(band > 0) & (win > 0)]) if i}
    if not walls:
        return False
    fx0 = min(int(st[i, 0]) for i in walls)
    fx1 = max(int(st[i, 0] + st[i, 2]) for i in walls)
    fy0 = min(int(st[i, 1]) for i in walls)
    fh = max(int(st[i, 1] + st[i, 3]) for i in walls) - fy0

    def box_frame(i: int) -> bool:
        a, b, cw, ch = (int(v) for v in st[i, :4])
        sub = lab[b : b + ch, a : a + cw] == i
        return cw >= 0.5 * fh and float(np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]]).mean()) >= 0.6

    letters = [
        i for i in range(1, n)
        if i not in walls and TEXT_HEIGHT[0] * fh <= st[i, 3] <= TEXT_HEIGHT[1] * fh and abs(int(st[i, 1]) - fy0) <= 0.2 * fh
        and st[i, 2] <= 1.5 * fh and st[i, cv2.CC_STAT_AREA] >= 10 and not box_frame(i)
    ]

    def chained(left: bool) -> int:
        edge, k = (fx0, 0) if left else (fx1, 0)
        for i in sorted(letters, key=lambda i: -(st[i, 0] + st[i, 2]) if left else st[i, 0]):
            a, b = int(st[i, 0]), int(st[i, 0] + st[i, 2])
            gap = edge - b if left else a - edge
            if gap > TEXT_GAP * fh:
                break
            if gap >= -0.1 * fh:
                k += 1
                edge = a if left else b
        return k

    return max(chained(True), chained(False)) >= TEXT_LETTERS


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
    ink = aligned.ink if aligned.ink is not None else normalise_ink(aligned.image)
    mask = ink_mask(ink)
    length = line_length(mask.shape)
    pl = page_lines(ink, length)
    lines = pl.both
    cells = _cells_of(ink, mask, pl, length, s)
    faint = _faint_cells(ink, length, s, cells)
    if faint.cells:
        log.debug("%d cells on faint rulings", len(faint.cells))
        cells = cells + faint.cells
    if s.walled_boxes:
        cells = cells + walled_boxes(pl.vert, ink, pl.level, mask, cells, s, pl.max_thick)
    if s.ignore_qr and cells:
        cells = _outside(cells, _qr_codes(aligned.image))
    cells = _drop_containers(cells)
    if s.fill_gaps and cells:
        cells = restore_heights(cells, pl.horiz_raw, s)
        # on a page with faint cells, completion also sees the scaled-up ink's rulings and walls
        hr, mk, vt = pl.horiz_raw, mask, pl.vert
        if faint.lines is not None and faint.mask is not None:
            hr, mk, vt = hr | faint.lines.horiz_raw, mk | faint.mask, vt | faint.lines.vert
        cells = fill_gaps([regularise(_merge_split_cells(g, s, mask)) for g in _group(cells, loose(s))], hr, mk, vert=vt, ink=ink)
        cells = split_stacked(fill_rows(cells, _group(cells, s), hr, mk, vt))
    groups = _drop_shadow_singles([_trim_walled_cells(_widen_cut_cells(_merge_split_cells(g, s, mask), mask), mask) for g in _group(cells, s)])
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
        in_text = kind == "single" and _in_text_line(mask, g[0])
        fields.append(
            FieldBoxes(
                index=fi, name=f"field_{fi + 1}", box=aligned.box_to_source((x0, y0, x1 - x0, y1 - y0)), cells=digit_boxes, kind=kind,
                in_text=in_text,
            )
        )
    line_width = float(np.median([c.border for c in cells])) if cells else 1.0
    log.debug("%s p%d: %d cells in %d fields", aligned.page.source, aligned.page.number, len(cells), len(fields))
    return PageLayout(aligned=aligned, fields=tuple(fields), ink=ink, lines=lines, line_width=line_width)

