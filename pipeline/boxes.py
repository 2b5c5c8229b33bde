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

from .morph import ink_mask, line_length, normalise_ink, ruling_lines
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
    """Share of the hole's bounding-box outline (1 px outside it) that lies on ruling lines."""
    H, W = lines.shape
    x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(W - 1, x + w), min(H - 1, y + h)
    ring = np.concatenate([lines[y0, x0:x1 + 1], lines[y1, x0:x1 + 1], lines[y0:y1 + 1, x0], lines[y0:y1 + 1, x1]])
    return float((ring > 0).mean())


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


def _merge_split_cells(group: list[_Cell]) -> list[_Cell]:
    """Merge two narrow neighbours that together make one cell of the comb.

    A handwritten stroke that runs from the top border to the bottom border (a long "1")
    is straight and long enough to enter the vertical-line mask and split the hole in two.
    """
    if len(group) < 3:
        return group
    med = float(np.median([c.w for c in group]))
    out: list[_Cell] = []
    i = 0
    while i < len(group):
        c = group[i]
        if i + 1 < len(group):
            d = group[i + 1]
            span = d.x + d.w - c.x
            if c.w < 0.75 * med and d.w < 0.75 * med and 0.8 * med <= span <= 1.25 * med:
                y0, y1 = min(c.y, d.y), max(c.y + c.h, d.y + d.h)
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


def page_lines(mask: np.ndarray, length: int) -> np.ndarray:
    """Ruling-line mask of a page: horizontal and vertical lines, dashes bridged, ends extended.

    Args:
        mask: (H, W) uint8 0/255 ink mask. length: minimum line run, pixels (``morph.line_length``).

    Returns:
        (H, W) uint8 0/255.
    """
    bridge = max(2, length // 2)
    horiz, vert = ruling_lines(mask, length, bridge=bridge)
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
    return lines


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
    lines = page_lines(mask, length)
    cells = _candidate_cells(lines, mask, length, s)
    groups = [_merge_split_cells(g) for g in _group(cells, s)]
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
