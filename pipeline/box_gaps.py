"""Field completion: cells missing from a row of evenly spaced cells are put back, uneven cuts re-cut.

Both cell finders can lose one cell of a comb or row of boxes: a digit written across the
ruling breaks the hole of finder 1 and the band walls of finder 2, a long "1" passes for a
wall. The printed row around it is regular, though: its neighbours give the pitch and the
spacing, and the rulings above and below run on through the missing cell. ``regularise``
re-cuts cells merged over a missed wall or split at a stroke, ``fill_gaps`` puts back cells
lost between two cells of a row or at its ends (where walls must close them), and
``fill_rows`` puts back the rows of a grid next to a row that was found, and
``split_stacked`` cuts a grid cell found two rows tall at the rows' shared ruling. This is the
field-level regularity that template-free forms readers use to recover fields (cf. the comb
fields of Casey & Ferguson, "Intelligent forms processing", IBM Systems J. 29(3), 1990).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property

import cv2
import numpy as np

from .box_cells import BoxSettings, _Cell, _inked_column, _inked_corners, _iou, _overlap, _ruled_share, _ruling_rows, dash_bridge

log = logging.getLogger(__name__)


def _both_ruled(top: float, bot: float, min_ruled: float, min_each: float | None) -> bool:
    """Ruled shares above and below a cell averaging ``min_ruled``, each at least ``min_each`` (default ``min_ruled``)."""
    return min(top, bot) >= (min_ruled if min_each is None else min_each) and top + bot >= 2 * min_ruled


def _framed(c: _Cell, horiz_raw: np.ndarray, min_ruled: float, min_each: float | None = None) -> bool:
    """Whether rulings run above and below cell ``c`` over ``min_ruled`` of its width (10% inset)
    on average, and each over ``min_each`` (default ``min_ruled``: both over ``min_ruled``).
    Dashes lost from a thin ruling count as ruled (``box_cells.dash_bridge``), at the cell's
    ends too: the cell is placed by its row's pitch or its neighbour's rulings, not found
    between walls. (Bridging only the end next to the row's found cells beyond a row's end
    kept 2 letters of labels from passing as cells, but lost 5 written digits of 2 rows on
    the development forms.)"""
    inset = max(1, int(0.1 * c.w))
    lost = dash_bridge(c.border, c.h)  # dashes lost from a thin ruling (box_cells.DASH_LOST)
    top, bot = (_ruled_share(horiz_raw, *_ruling_rows(c, t), c.x + inset, c.x + c.w - inset, 0, lost, ends=True) for t in (True, False))
    log.debug("  candidate cell %s ruled top %.2f bottom %.2f", (c.x, c.y, c.w, c.h), top, bot)
    return _both_ruled(top, bot, min_ruled, min_each)


# The ruling test from the ink itself (``_RulingInk``, twenty-second session): a faint dashed
# dropout ruling under 0.1 of full contrast reaches the line masks only in pieces, while along
# the row of found cells its smoothed ink stands clear of the paper (seed 26001
# ``holdout_047``: column maxima 0.09-0.10 on the ruling, 0.02 beyond the row's end).
INK_SMOOTH = 9  # px, box filter along the ruling before the column maxima are taken
INK_MIN_CONTRAST = 0.03  # least ruling-minus-paper level of the reference cells for the test to apply


class _RulingInk:
    """Rulings measured in the ink: for each column over a cell's width, the darkest smoothed
    ink in the band of its top (or bottom) ruling, compared with the same of reference cells
    found in its row.

    Args:
        ink: (H, W) float32 ink darkness in [0, 1] (``morph.normalise_ink``), aligned page.
    """

    def __init__(self, ink: np.ndarray) -> None:
        self.ink = ink
        self._levels: dict[tuple[tuple[int, int, int, int, float], ...], float | None] = {}

    @cached_property
    def sm(self) -> np.ndarray:
        # smoothed only when a candidate cell first asks (most pages never do)
        return cv2.blur(self.ink.astype(np.float32), (INK_SMOOTH, 1))

    def _band(self, c: _Cell, top: bool, inner: bool = False) -> np.ndarray:
        H, W = self.sm.shape
        inset = max(1, int(0.1 * c.w))
        if inner:  # paper: a band across the middle of the cell, as tall as a ruling's band
            reach = int(c.border) + 3
            y0, y1 = c.y + c.h // 2 - reach, c.y + c.h // 2 + reach
        else:
            y0, y1 = _ruling_rows(c, top)
        y0, y1, x0, x1 = max(0, y0), min(H, y1), max(0, c.x + inset), min(W, c.x + c.w - inset)
        if y1 <= y0 or x1 <= x0:
            return np.zeros(1, np.float32)
        return self.sm[y0:y1, x0:x1].max(axis=0)

    def level(self, refs: list[_Cell]) -> float | None:
        """The threshold from reference cells: halfway between their rulings' median column
        maximum and the paper's (20th percentile across their middles); None when the
        rulings stand less than ``INK_MIN_CONTRAST`` above the paper. Kept per set of
        reference cells: a row's end is the reference of up to ``END_CELLS`` candidates."""
        key = tuple((r.x, r.y, r.w, r.h, r.border) for r in refs)
        if key not in self._levels:
            ruled = float(np.median(np.concatenate([self._band(r, t) for r in refs for t in (True, False)])))
            paper = float(np.percentile(np.concatenate([self._band(r, True, inner=True) for r in refs]), 20))
            self._levels[key] = None if ruled - paper < INK_MIN_CONTRAST else paper + 0.5 * (ruled - paper)
        return self._levels[key]

    def framed(self, c: _Cell, refs: list[_Cell], min_ruled: float, min_each: float | None = None) -> bool:
        """``_framed`` from the ink: the share of columns above (below) ``c`` over the
        reference cells' threshold, averaging ``min_ruled``, each at least ``min_each``."""
        lv = self.level(refs)
        if lv is None:
            return False
        top, bot = (float((self._band(c, t) >= lv).mean()) for t in (True, False))
        log.debug("  candidate cell %s ink-ruled top %.2f bottom %.2f (level %.3f)", (c.x, c.y, c.w, c.h), top, bot, lv)
        return _both_ruled(top, bot, min_ruled, min_each)


def _wall(mask: np.ndarray, x: float, c: _Cell, min_cover: float = 0.8) -> bool:
    """Whether a vertical line runs down column ``x`` (within the border plus 3 px) over
    ``min_cover`` of cell ``c``'s middle 80% of height; dashes are bridged by a vertical closing
    a quarter of the cell's height long (a sixth until the thirteenth session: the dashed walls
    of seed 12001 ``holdout_029``, 18 px dashes and 10 px gaps on 53 px cells, covered 55%)."""
    H, W = mask.shape
    half = int(c.border / 2) + 3
    x0, x1 = max(0, int(round(x)) - half), min(W, int(round(x)) + half + 1)
    y0, y1 = max(0, int(c.y + 0.1 * c.h)), min(H, int(c.y + 0.9 * c.h))
    if x1 <= x0 or y1 <= y0:
        return False
    k = max(3, c.h // 4)
    patch = cv2.morphologyEx(mask[y0:y1, x0:x1], cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k)))
    return float((patch > 0).mean(axis=0).max()) >= min_cover


def _pitch(g: list[_Cell], need_spacing: bool = True) -> tuple[float, float, float] | None:
    """(cell width, spacing, height) shared by a row of at least 3 cells, pixels: the median
    width, the median of the gaps under 0.6 widths and the median height. None when the widths
    do not agree (fewer than 3 within 10% of the median) or, with ``need_spacing``, when no gap
    is that small (without it the spacing is then 0)."""
    if len(g) < 3:
        return None
    w = float(np.median([c.w for c in g]))
    if sum(abs(c.w - w) <= 0.1 * w for c in g) < 3:
        return None
    gaps = [b.x - (a.x + a.w) for a, b in zip(g, g[1:])]
    small = [q for q in gaps if q < 0.6 * w]
    if not small and need_spacing:
        return None
    sp = max(0.0, float(np.median(small))) if small else 0.0
    return w, sp, float(np.median([c.h for c in g]))


def _pair_pitch(g: list[_Cell]) -> tuple[float, float, float] | None:
    """(cell width, spacing, height) of two cells side by side that agree on width (10%) and
    height (15%) and lie a wall's width apart (gap under 0.2 widths, at least -2 px): a
    comb's two found cells; None otherwise."""
    a, b = g
    w, h = (a.w + b.w) / 2, (a.h + b.h) / 2
    gap = b.x - (a.x + a.w)
    if abs(a.w - b.w) > 0.1 * w or abs(a.h - b.h) > 0.15 * h or not -2 <= gap < 0.2 * w:
        return None
    return w, max(0.0, float(gap)), h


# Widest space (in cell widths) between boxes of one size that ``fill_gaps`` takes as a
# row's spacing to extend it by boxes ruled on all four sides: a pair of separate boxes whose
# third, holding a heavy digit, neither finder returned (seed 21001 ``holdout_032``).
BOXES_GAP = 1.0


def _boxes_pitch(g: list[_Cell]) -> tuple[float, float, float] | None:
    """(cell width, spacing, height) of a row of at least 2 separate boxes of one size: every
    width within 10% of the median and every height within 15%; the spacing is the row's
    narrowest gap, which must lie between 0 and ``BOXES_GAP`` widths. None otherwise."""
    if len(g) < 2:
        return None
    w, h = float(np.median([c.w for c in g])), float(np.median([c.h for c in g]))
    if any(abs(c.w - w) > 0.1 * w or abs(c.h - h) > 0.15 * h for c in g):
        return None
    sp = min(b.x - (a.x + a.w) for a, b in zip(g, g[1:]))
    return (w, float(sp), h) if 0 <= sp < BOXES_GAP * w else None


# Least share of a gap cell's width ruled on its weaker side, the two sides averaging
# ``min_ruled_gap`` (twenty-first session; until then each side had to reach it): a digit
# straying over a faint dropout ruling left 0.65 of one side of a comb cell lost between
# two found ones (seed 25001 ``holdout_036``, a gap of three cells).
GAP_RULED_EACH = 0.5
# Cells added at one end of a row (``fill_gaps``), each needing rulings, both walls and clean
# corners. 3 (``max_missing``) until the twenty-second session: a row of 10 whose finders saw
# 3 cells could not be completed.
END_CELLS = 10


def fill_gaps(
    groups: list[list[_Cell]], horiz_raw: np.ndarray, mask: np.ndarray, max_missing: int = 3, min_ruled: float = 0.85,
    min_ruled_gap: float = 0.7, vert: np.ndarray | None = None, max_end: int = END_CELLS, ink: np.ndarray | None = None,
) -> list[_Cell]:
    """Cells of the rows of ``groups`` plus those missing between two of their cells or at their ends.

    A gap between neighbours ``a`` and ``b`` of one row is filled when it holds a whole number
    k (1..``max_missing``) of cells at the row's own spacing: cell width the mean of ``a`` and
    ``b``, spacing the smallest gap next to them (the wall of a comb, the space between
    separate boxes) or, when neither gap next to it is under 0.6 widths (every other cell
    lost), the median of the row's gaps that are, within 12% of a pitch. Each new cell must have a ruling above and below
    it over at least ``min_ruled_gap`` of its width (``horiz_raw``, within its border plus 3 px;
    0.7, lower than at the row's ends, since the two cells around the gap already fix the
    row: a dashed dropout ruling reached 0.78-0.80 over a digit cell of seed-200 holdout_015)
    and must not have ink in two corners (a bowl of print). The solid-blob test of the finders
    is not applied: a heavy "1" or a filled-in digit is what loses the cell in the first place.
    In a row of separate boxes (no gap under 0.6 widths) the spacing is the row's narrowest
    gap, or for a pair half of what one box leaves of their gap (at most a width), and each
    new box must also show both its walls (``_wall``): a heavy "0" over a faint box between
    two found ones (seed 22001 ``holdout_003``).

    A row of at least 3 cells that agree on width and spacing, or two cells of one size a
    wall's width apart (``_pair_pitch``: two cells of a comb whose others a faint ruling
    under heavy digits hid; seed 300 ``holdout_018``), or separate boxes of one size
    (``_boxes_pitch``: a pair of boxes whose third a heavy "7" hid, seed 21001
    ``holdout_032``), is also extended, up to
    ``max_end`` cells at each end (``max_missing`` until the twenty-second session), one
    pitch at a time, while the next cell is ruled above and below, has a wall on both sides
    (``mask`` or ``vert`` columns inked over 80% of its height) and overlaps no cell already
    found. Since the twenty-second session a cell whose rulings the line mask misses may
    show them in the ink (``ink``, ``_RulingInk``), measured against the found cells beside
    it (the two around a gap, the end cell of a row), with the same shares asked. Since the
    twenty-third session a break of a thin ruling of up to ``box_cells.DASH_LOST`` cell
    heights, inside the cell or at its ends, counts as ruled where half of the width is (dashes
    a 1-bit scan lost: seed 27001 ``holdout_007``). Since the
    twenty-first session the two sides of a gap left over half a cell wider than the spacing
    are ends too (a label between two parts of a row: the first cell of a two-cell comb after
    it, seed 11001 ``holdout_008``), and a lone cell is extended the same way to neighbours a
    wall's width (its border) apart.

    Args:
        groups: rows of cells, each sorted left to right (candidate fields, grouped loosely).
        horiz_raw: (H, W) uint8 0/255 horizontal-line mask before thick runs were removed.
        mask: (H, W) uint8 0/255 ink mask.
        max_missing: most cells put back in one gap. max_end: most cells added at one end.
            min_ruled: least share of the width ruled at the row's ends. min_ruled_gap: the
            same inside a gap.
        vert: (H, W) uint8 0/255 vertical-line mask, or None; walls are looked for in it and
            in ``mask`` together (a faint wall reaches the line masks, not the ink mask:
            seed 22001 ``holdout_007``).
        ink: (H, W) float32 ink darkness in [0, 1] of the aligned page, or None: rulings are
            then looked for in ``horiz_raw`` only.

    Returns:
        All cells of ``groups`` followed by the new ones (aligned-page pixels).
    """
    out = [c for g in groups for c in g]
    walls = mask if vert is None else cv2.bitwise_or(mask, vert)
    ri = _RulingInk(ink) if ink is not None else None
    for g in groups:
        pitch = _pitch(g) if len(g) >= 3 else _pair_pitch(g) if len(g) == 2 else None
        pitch = pitch or _boxes_pitch(g)
        if pitch is None and len(g) == 1:
            # a lone cell: its comb neighbours, a wall's width away, if rulings and walls show them
            pitch = (float(g[0].w), float(max(1, round(g[0].border))), float(g[0].h))
        gaps = [b.x - (a.x + a.w) for a, b in zip(g, g[1:])]
        row = list(g)
        for i, (a, b) in enumerate(zip(g, g[1:])):
            w = (a.w + b.w) / 2
            h = (a.h + b.h) / 2
            if gaps[i] < 0.6 * w or max(a.w, b.w) > 1.25 * min(a.w, b.w) or max(a.h, b.h) > 1.15 * min(a.h, b.h):
                continue
            near = [gaps[j] for j in (i - 1, i + 1) if 0 <= j < len(gaps) and gaps[j] < 0.6 * w]
            small = [q for q in gaps if q < 0.6 * w]
            others = [q for j, q in enumerate(gaps) if j != i]
            boxes = not small  # separate boxes: their spacing is less sure, so new cells must show their walls
            if small:
                # the smaller wall-width gap beside this one or, with none (every other cell lost), the row's
                sp = max(0.0, float(min(near) if near else np.median(small)))
            elif others:
                sp = float(min(others))  # the row's narrowest space between boxes
            else:
                sp = (gaps[i] - w) / 2  # a pair of boxes: one box lost between them, evenly spaced
            if not 0 <= sp <= w:
                continue
            n = (gaps[i] - sp) / (w + sp)
            k = int(round(n))
            log.debug("gap %s-%s n %.2f sp %.1f w %.1f", (a.x, a.y), (b.x, b.y), n, sp, w)
            if not 1 <= k <= max_missing or abs(n - k) * (w + sp) > 0.12 * (w + sp):
                continue
            cw = (gaps[i] - (k + 1) * sp) / k
            border = (a.border + b.border) / 2
            new = []
            for m in range(k):
                x = a.x + a.w + sp + m * (cw + sp)
                f = (x + cw / 2 - a.cx) / (b.cx - a.cx)
                y = a.y + f * (b.y - a.y)
                c = _Cell(int(round(x)), int(round(y)), int(round(cw)), int(round(h)), border)
                ruled = _framed(c, horiz_raw, min_ruled_gap, GAP_RULED_EACH) or (ri is not None and ri.framed(c, [a, b], min_ruled_gap, GAP_RULED_EACH))
                if not ruled or _inked_corners(mask, c.x, c.y, c.w, c.h) >= 2:
                    break
                if boxes and not (_wall(walls, c.x - border / 2 - 0.5, c) and _wall(walls, c.x + c.w + border / 2, c)):
                    break
                new.append(c)
            else:
                out.extend(new)
                row.extend(new)
        if pitch is None:
            continue
        w, sp, h = pitch
        row.sort(key=lambda c: c.x)
        first, last = row[0], row[-1]
        slope = (last.cy - first.cy) / (last.cx - first.cx) if last.cx > first.cx else 0.0
        border = float(np.median([c.border for c in row]))
        # the row's ends, and the two sides of every gap left over half a cell wider than its
        # spacing (a label between two parts of a row, cells lost beside it)
        ends = [(last, 1), (first, -1)]
        for a, b in zip(row, row[1:]):
            if b.x - (a.x + a.w) > sp + 0.5 * w:
                ends += [(a, 1), (b, -1)]
        for end, step in ends:
            for m in range(1, max_end + 1):
                x = end.x + step * m * (w + sp) + (end.w - w if step == 1 else 0)
                cx = x + w / 2
                c = _Cell(int(round(x)), int(round(end.cy + slope * (cx - end.cx) - h / 2)), int(round(w)), int(round(h)), border)
                if any(_iou(c, d) > 0.1 for d in out):
                    break
                if not (
                    (_framed(c, horiz_raw, min_ruled) or (ri is not None and ri.framed(c, [end], min_ruled)))
                    and _wall(walls, c.x - border / 2 - 0.5, c)
                    and _wall(walls, c.x + c.w + border / 2, c)
                    and _inked_corners(mask, c.x, c.y, c.w, c.h) < 2
                ):
                    break
                log.debug("  end cell %s", (c.x, c.y, c.w, c.h))
                out.append(c)
    return out


def regularise(group: list[_Cell], tol: float = 0.12, max_run: int = 3) -> list[_Cell]:
    """Re-cut cells of a comb that a missed or misplaced wall has merged or split unevenly.

    In a row of at least 3 cells that agree on a width ``w`` (within 10% of the row's median;
    or, failing that, of at least 3 cells two of which are neighbours of one size a wall's
    width apart, ``_pair_pitch``: a comb of three whose last two cells a faint wall merged,
    seed 25001 ``holdout_036``), a run of up to ``max_run`` neighbouring cells that do not,
    lying edge to edge at the row's
    spacing ``sp``, is cut again into k even cells when its span is k pitches (k >= 2, within
    ``tol`` of a pitch ``w + sp``): two cells merged over a wall that was not found, or two
    cells split at a digit's stroke instead of at their wall.

    Args:
        group: one row of cells, sorted left to right (aligned-page pixels).
        tol: largest misfit of the span, in pitches. max_run: longest run re-cut.

    Returns:
        The row with such runs re-cut, sorted left to right.
    """
    pitch = _pitch(group, need_spacing=False)
    if pitch is None and len(group) >= 3:
        pitch = next((p for p in map(_pair_pitch, zip(group, group[1:])) if p is not None), None)
    if pitch is None:
        return group
    w, sp, _ = pitch
    good = [abs(c.w - w) <= 0.1 * w for c in group]
    gaps = [b.x - (a.x + a.w) for a, b in zip(group, group[1:])]
    out: list[_Cell] = []
    i = 0
    while i < len(group):
        if good[i]:
            out.append(group[i])
            i += 1
            continue
        done = False
        for r in range(1, max_run + 1):
            j = i + r - 1
            if j >= len(group) or any(gaps[q] >= 0.6 * w for q in range(i, j)):
                break
            a, b = group[i], group[j]
            span = b.x + b.w - a.x
            n = (span + sp) / (w + sp)
            k = int(round(n))
            if k >= 2 and k >= r and abs(n - k) <= tol:
                cw = (span - (k - 1) * sp) / k
                for m in range(k):
                    x = a.x + m * (cw + sp)
                    f = (m + 0.5) / k
                    out.append(_Cell(int(round(x)), int(round(a.y + f * (b.y - a.y))), int(round(cw)), max(a.h, b.h), (a.border + b.border) / 2))
                i = j + 1
                done = True
                break
        if not done:
            out.append(group[i])
            i += 1
    return out


def loose(s: BoxSettings, max_missing: int = 3) -> BoxSettings:
    """Settings that group cells across a gap of up to ``max_missing`` cells (for ``fill_gaps``)."""
    return replace(s, max_gap=max_missing + 1.0)


# Least share of a candidate row cell's wall (its middle 80%, dashes closed over a quarter
# of its height) that must be inked (``_wall``). A row next to a found row is also fixed by
# that row's columns and by rulings above and below, so less is asked than of a cell added
# at a row's end (0.8): the faint 1 px walls of a 1-bit grid broken into pieces (seed 19001
# ``holdout_007``) covered 0.70-0.77 in its second row. On the 10 development sets this
# row and that page's every-other-cell gaps (the spacing rule of ``fill_gaps``) gave 11 more
# cells and 8 more digits, and nothing else changed.
ROW_WALL = 0.65


def fill_rows(
    cells: list[_Cell], groups: list[list[_Cell]], horiz_raw: np.ndarray, mask: np.ndarray, vert: np.ndarray | None = None,
    max_rows: int = 6, min_ruled: float = 0.85, min_share: float = 0.7,
) -> list[_Cell]:
    """``cells`` plus the rows of a grid that neither finder returned.

    A grid's rows share their rulings and their walls, so a row found in full says where
    the rows above and below it must be: the same columns, shifted by one cell height plus
    one ruling. Heavy handwriting over a row can hide it from both finders (strokes merged
    with the walls, every hole broken) while the row next to it is found. For a row of at
    least 3 cells with regular pitch (``_pitch``), the row one step up and one step down is
    tried, and repeated from each row added (up to ``max_rows`` each way). A candidate cell
    counts when it overlaps no cell already found, is ruled above and below over
    ``min_ruled`` of its width (``horiz_raw``), has a wall on both sides (``mask`` or
    ``vert``, inked over ``ROW_WALL`` of it) and none down its middle (a column within 0.2 widths of its centre inked over
    95% of its height in ``mask``; a handwritten "1" seldom runs from ruling to ruling, and a
    row of double cells would otherwise repeat itself) and not ink in two corners; a
    candidate that matches a found cell (IoU at least 0.7) confirms the row. The row is
    added when at least ``min_share`` of its cells, and at least 3, count or are confirmed,
    and then only the new cells are added. A found cell that is a block of
    grid cells (a new cell at least 80% inside it, and it at least 1.6 times that cell's
    area: a ruling hidden under heavy digits joins two rows) does not stop a candidate, and
    is dropped when a row is added through it.

    Args:
        cells: the cells found. groups: the same cells as rows, each sorted left to right.
        horiz_raw: (H, W) uint8 0/255 horizontal-line mask before thick runs were removed.
        mask: (H, W) uint8 0/255 ink mask.
        vert: (H, W) uint8 0/255 vertical-line mask, or None; walls are looked for in it and
            in ``mask`` together (a faint ruling reaches the line masks, not the ink mask).

    Returns:
        ``cells`` in their order, less the blocks a new row went through, followed by the
        new cells (aligned-page pixels).
    """
    out = list(cells)
    walls = mask if vert is None else cv2.bitwise_or(mask, vert)
    new: list[_Cell] = []
    todo = [(g, step) for g in groups if _pitch(g, need_spacing=False) is not None for step in (-1, 1)]
    for _ in range(2 * max_rows * max(1, len(todo))):
        if not todo:
            break
        g, step = todo.pop()
        border = float(np.median([c.border for c in g]))
        cand = [_Cell(c.x, int(round(c.y + step * (c.h + border))), c.w, c.h, c.border) for c in g]
        seen = [d for c in cand for d in out if _iou(c, d) >= 0.7]
        ok = [
            c for c in cand
            if not any(_iou(c, d) > 0.1 for d in out if not _holds(d, c))
            and _framed(c, horiz_raw, min_ruled)
            and _wall(walls, c.x - border / 2 - 0.5, c, ROW_WALL)
            and _wall(walls, c.x + c.w + border / 2, c, ROW_WALL)
            and not _inked_column(mask, int(c.cx - 0.2 * c.w), int(c.cx + 0.2 * c.w) + 1, c.y, c.y + c.h, 0.95)  # a wall halving it
            and _inked_corners(mask, c.x, c.y, c.w, c.h) < 2
        ]
        log.debug("row %s step %d: %d new and %d found of %d cells", (g[0].x, g[0].y), step, len(ok), len(seen), len(cand))
        if ok and len(ok) + len(seen) >= max(3, min_share * len(cand)):
            out.extend(ok)
            new.extend(ok)
            todo.append((sorted(ok + seen, key=lambda c: c.x), step))
    return [d for d in out if not any(_holds(d, c) for c in new)]


def _holds(d: _Cell, c: _Cell) -> bool:
    """Whether cell ``d`` is a block of grid cells around ``c``: ``c`` at least 80% inside it, ``d`` at least 1.6 times its area."""
    return d.w * d.h >= 1.6 * c.w * c.h and _overlap(c, d) >= 0.8 * c.w * c.h


# A cell cut short by a handwritten bar is restored to its neighbour's height when rulings
# frame the restored cell over this share of its width (as ``fill_gaps`` asks of a cell it adds).
MIN_RULED_HEIGHT = 0.85
# Least ratio of the whole neighbour's height to the short cell's (1.2 until the twenty-first
# session): the bottom bowl of a "6" drawn along the ruling cut a comb cell of a faint 1-bit
# grid 7 px short of 50 (seed 25001 ``holdout_033``), which then kept its lost neighbours
# from being put back (``fill_gaps`` fills gaps only between cells of one height).
SHORT_CELL = 1.1


def restore_heights(cells: list[_Cell], horiz_raw: np.ndarray, s: BoxSettings, min_ruled: float = MIN_RULED_HEIGHT) -> list[_Cell]:
    """Cells that a straight handwritten bar cut short, put back to the height of their row.

    The bar of a "7" or "5" drawn wall to wall across a box is a line for both finders, so
    the cell found runs from that bar to one ruling and the digit is read without its bar (a
    "7" read "1" at full confidence, seed 22001 ``holdout_059``). Its neighbour in the row
    is whole: a cell of the same width (15%), beside it (gap within ``s.max_gap`` widths),
    ``SHORT_CELL`` to 2.5 times as tall, with one edge level with the short cell's (border + 3 px).
    The short cell is extended to the neighbour's other edge when rulings run along the
    extended cell's top and bottom (``_framed``, ``min_ruled`` of its width) and it then
    overlaps no other cell by more than 10% of its area. Inside the restored cell the bar is
    handwriting: segmentation keeps line-mask pixels of the interior (``segment._box_lines``).

    Args:
        cells: cells of both finders, aligned-page pixels. horiz_raw: (H, W) uint8 0/255
            horizontal-line mask (``page_lines``). s: cell limits (``max_gap``).
        min_ruled: least ruled share of the restored cell's top and bottom.

    Returns:
        ``cells`` in their order, short cells replaced by the restored ones.
    """
    out = list(cells)
    for i, c in enumerate(cells):
        for d in cells:
            if d is c or abs(d.w - c.w) > 0.15 * max(c.w, d.w) or not SHORT_CELL * c.h <= d.h <= 2.5 * c.h:
                continue
            if max(d.x - (c.x + c.w), c.x - (d.x + d.w)) > s.max_gap * max(c.w, d.w):
                continue
            tol = max(c.border, d.border) + 3
            if abs((c.y + c.h) - (d.y + d.h)) <= tol:
                new = _Cell(c.x, d.y, c.w, c.y + c.h - d.y, c.border)
            elif abs(c.y - d.y) <= tol:
                new = _Cell(c.x, c.y, c.w, d.y + d.h - c.y, c.border)
            else:
                continue
            if not _framed(new, horiz_raw, min_ruled):
                continue
            if any(_overlap(new, e) > 0.1 * new.w * new.h for j, e in enumerate(cells) if j != i):
                continue
            log.debug("cell %s cut short, restored to %s", (c.x, c.y, c.w, c.h), (new.x, new.y, new.w, new.h))
            out[i] = new
            break
    return out


# A grid cell found as a block of two rows: a digit written large across the ruling between
# two rows of a grid hides that ruling from both finders over one column, which is then found
# as one cell of twice the rows' height (seed 31001 ``holdout_040``: two 116 x 192 px cells
# beside two rows of 115 x 94 px cells; seed 27000 ``sample_024``). A block two columns wide
# with no row cell beside it (seed 24001 ``holdout_020``, the next column lost too) is not cut.
STACK_HEIGHT = (0.35, 0.65)  # a row cell's height, in the block's height
STACK_REACH = 0.5  # largest gap between the block and a row cell beside it, in row cell widths
STACK_WIDTH_TOL = 0.15  # largest misfit of the block's width, in row pitches


def split_stacked(cells: list[_Cell], passes: int = 3) -> list[_Cell]:
    """Cells that are blocks of two grid rows, cut at the rows' shared ruling.

    A cell is such a block when, on one side of it (within ``STACK_REACH`` widths), a cell
    of the top row stands level with its top and a cell of the bottom row level with its
    bottom (edges within border + 3 px), each ``STACK_HEIGHT`` of its height and both of one
    width. It is cut into a top cell reaching down to the top row's bottom and a bottom cell
    from the bottom row's top; when its width is k >= 2 row pitches (within
    ``STACK_WIDTH_TOL``), each is cut again into k even columns at the row's spacing. A cut
    cell matching a cell already found (IoU at least 0.5) is not added again: completion
    may have put back the rows inside the block (seed 23001 ``holdout_052``). The
    search is repeated (up to ``passes`` times) while blocks are cut: the cells cut from one
    block are the row cells beside the next (two neighbouring columns merged, ``holdout_040``).

    Args:
        cells: cells found on the page, aligned-page pixels.
        passes: most rounds of cutting.

    Returns:
        ``cells`` in their order with each block replaced by its cells.
    """
    for _ in range(passes):
        out = _split_stacked_once(cells)
        if out == cells:
            break
        cells = out
    return cells


def _split_stacked_once(cells: list[_Cell]) -> list[_Cell]:
    """One round of ``split_stacked``."""
    out: list[_Cell] = []
    for c in cells:
        tol = c.border + 3

        def beside(d: _Cell) -> bool:
            if d is c or not STACK_HEIGHT[0] * c.h <= d.h <= STACK_HEIGHT[1] * c.h:
                return False
            return max(d.x - (c.x + c.w), c.x - (d.x + d.w)) <= STACK_REACH * d.w and min(c.x + c.w, d.x + d.w) - max(c.x, d.x) <= 0.3 * d.w

        side = [d for d in cells if beside(d)]
        pair = next(
            (
                (t, b) for t in side if abs(t.y - c.y) <= tol
                for b in side if abs(b.y + b.h - (c.y + c.h)) <= tol and (b.x > c.x) == (t.x > c.x)
                and abs(b.w - t.w) <= 0.15 * t.w and b.y >= t.y + t.h - tol
            ),
            None,
        )
        if pair is None:
            out.append(c)
            continue
        t, b = pair
        pitch = t.w + max(c.border, t.border)
        n = (c.w + max(c.border, t.border)) / pitch
        k = int(round(n)) if round(n) >= 2 and abs(n - round(n)) <= STACK_WIDTH_TOL else 1
        cw = (c.w - (k - 1) * (pitch - t.w)) / k
        rows = ((c.y, t.y + t.h - c.y), (b.y, c.y + c.h - b.y))
        parts = [_Cell(int(round(c.x + m * pitch)), y, int(round(cw)), h, c.border) for y, h in rows for m in range(k)]
        parts = [p for p in parts if not any(_iou(p, d) >= 0.5 for d in cells if d is not c)]  # cells found already
        log.debug("cell %s is a block of grid cells: %d new", (c.x, c.y, c.w, c.h), len(parts))
        out.extend(parts)
    return out
