"""Cell finder 2: bands between pairs of horizontal rulings, split at the walls that cross them (comb fields)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .box_cells import (
    BoxSettings,
    _Cell,
    _inked_corners,
    _iou,
    _merge_split_cells,
    _ruled_share,
    _solid_blob,
    dash_bridge,
)

log = logging.getLogger(__name__)


# Least coverage of the band by a faint or dashed wall of an empty comb (``_empty_faint_comb``):
# dashes of 0.8-1.6 mm with 0.4-0.9 mm gaps at 11% of full contrast, the faintest the
# synthetic holdout style prints, cover 35-50% of the band after smoothing.
FAINT_WALL = 0.3


@dataclass(slots=True)
class _Seg:
    x0: int
    x1: int
    y: float  # centre row
    t: float  # thickness
    solid: bool = False  # inked over most of its columns on the raw ink mask (not faint, not dashed)


def _ink_profile(
    ink_mask: np.ndarray, yc: float, x0: int, x1: int, reach: float, min_share: float = 0.8,
) -> tuple[float, float, float] | None:
    """Centre row and thickness of a ruling measured on the unsmoothed ink mask.

    The line mask is smoothed along rows, which smears a row of handwritten digits resting on
    the ruling into one blob that shifts its centre and thickens it; on the raw ink a digit
    touches the line in a few columns only. The ruling is the row nearest ``yc``, within
    ``reach`` pixels, of those inked at least 80% as much as the most inked one (so a double
    ruling keeps both its lines) and over at least ``min_share`` of the columns; its thickness is the median over columns of the vertical
    ink run through that row.

    Args:
        ink_mask: (H, W) uint8 0/255 ink mask (``morph.ink_mask``).
        yc: approximate centre row, pixels. x0, x1: column range (x1 exclusive).
        reach: how far from ``yc`` to look for the ruling row, pixels.
        min_share: least share of the columns inked on that row. At the default 0.8 a solid
            ruling passes; faint or dashed lines, which only the smoothed mask shows, and a
            row of bold print on its baseline (about 70%) do not.

    Returns:
        (centre row, thickness, share of the columns inked on that row): pixels, pixels,
        ratio; or None where no row within reach is inked over ``min_share``.
    """
    H = ink_mask.shape[0]
    r = int(round(reach))
    win = 2 * r + 2
    y = int(round(yc))
    r0, r1 = max(0, y - win), min(H, y + win + 1)
    sub = ink_mask[r0:r1, x0:x1] > 0
    lo, hi = max(0, y - r - r0), min(sub.shape[0], y + r + 1 - r0)
    if hi <= lo:
        return None
    counts = sub[lo:hi].sum(axis=1)
    # rows solid enough to be a ruling (a handwritten bar nearer ``yc``, inked over less of
    # the width, is passed over rather than ending the search)
    rows = lo + np.nonzero((counts >= 0.8 * counts.max()) & (counts >= min_share * sub.shape[1]))[0]
    if rows.size == 0:
        return None
    c = int(rows[np.argmin(np.abs(rows - (y - r0)))])
    row = sub[c]
    up = np.cumprod(sub[c::-1], axis=0).sum(axis=0)[row]
    down = np.cumprod(sub[c:], axis=0).sum(axis=0)[row]
    return r0 + c + (float(np.median(down)) - float(np.median(up))) / 2, float(np.median(up + down - 1)), float(row.mean())


def _stroke_gap(ink_mask: np.ndarray | None, a: _Seg, b: _Seg, max_gap: int) -> bool:
    """Whether the gap between two collinear ruling pieces (``a`` left of ``b``) is a ruling
    hidden under handwriting: a heavy stroke crossing the line is cut out of the line mask as
    a blob, but on the raw ink the row stays inked in every column of the gap."""
    if ink_mask is None or b.x0 <= a.x1 or b.x0 - a.x1 > max_gap:
        return False
    # the two pieces are one printed line: the same row and thickness
    if abs(a.y - b.y) > max(1.5, 0.5 * min(a.t, b.t)) or abs(a.t - b.t) > max(2.0, 0.5 * max(a.t, b.t)):
        return False
    y = (a.y + b.y) / 2
    half = max(a.t, b.t) / 2 + 1
    rows = ink_mask[max(0, int(y - half)) : int(y + half) + 1, a.x1 : b.x0] > 0
    return bool(rows.size) and float(rows.any(axis=0).mean()) >= 0.95


def _segments(horiz: np.ndarray, min_len: int, max_thick: float, bridge: int, ink_mask: np.ndarray | None = None) -> list[_Seg]:
    """Horizontal ruling segments (connected components of the line mask), collinear pieces joined.

    Pieces are joined across a gap of up to ``bridge`` pixels (dashes), or across a longer
    one (up to ``4 * min_len``) that is inked all along the ruling's row on ``ink_mask``: a
    digit written over the line."""
    max_gap = 4 * min_len
    n, labels, stats, _ = cv2.connectedComponentsWithStats(horiz, connectivity=8)
    segs = []
    for i in range(1, n):
        x, y, w, h, _ = stats[i]
        if w < bridge:
            continue
        # median thickness and centre row over its columns: strokes that cross the line (a
        # heavy digit merged into its component pulls the centroid off the ruling) do not count;
        # a connected component has pixels in every column of its bounding box
        comp = labels[y : y + h, x : x + w] == i
        counts = comp.sum(axis=0)
        t = float(np.median(counts))
        yc = y + float(np.median((comp * np.arange(h)[:, None]).sum(axis=0) / counts))
        # handwriting resting on the line (a row of digits touching their bottom ruling) can
        # smear over most columns of the smoothed mask; where the line is solid on the raw
        # ink, its row and thickness are measured there. A thick (smeared) component is
        # searched up to max_thick and to its own edges; a thin one is a ruling by itself and
        # only its own rows are searched (a solid rule just above a row of dashed boxes is
        # another ruling). Columns are read inside the component's ends: row smoothing
        # stretches a line by about half its window, length // 6 = bridge // 3, at each end.
        own = max(yc - y, y + h - yc) + 2
        reach = max(t / 2 + 3, max(max_thick, own) if t > max_thick / 4 else own)
        trim = max(1, bridge // 3) if w > 4 * bridge else 0
        prof = _ink_profile(ink_mask, yc, int(x) + trim, int(x + w) - trim, reach) if ink_mask is not None else None
        if prof is not None:
            yc, t = prof[0], prof[1]
        if t <= max_thick:
            segs.append(_Seg(int(x), int(x + w), yc, float(t), prof is not None))
    segs.sort(key=lambda g: (round(g.y), g.x0))
    joined: list[_Seg] = []
    for g in sorted(segs, key=lambda g: g.x0):
        for j in joined:
            if abs(j.y - g.y) <= max(2.0, j.t) and (g.x0 - j.x1 <= bridge or _stroke_gap(ink_mask, j, g, max_gap)):
                if g.x1 > j.x1:
                    # the longer piece's thickness: a short piece is often a stroke on the line
                    if j.x1 - j.x0 < g.x1 - g.x0:
                        j.t, j.solid = g.t, g.solid
                        if g.x0 - j.x1 > bridge:
                            j.y = g.y  # joined over a stroke: the longer piece has the line's row
                    j.x1 = g.x1
                    break
                if abs(j.y - g.y) <= 1.0:
                    break  # a piece of a line already joined (handwriting on it, measured on the raw ink)
        else:
            joined.append(_Seg(g.x0, g.x1, g.y, g.t, g.solid))
    return [g for g in joined if g.x1 - g.x0 >= min_len]


def _ruled(
    horiz_raw: np.ndarray, y: float, x0: int, x1: int, bridge: int = 0, lost: int = 0, walls: tuple[int, int] | None = None,
) -> float:
    """Mean over columns x0..x1 (exclusive) of the horizontal-line mask's maximum within 3 px
    of row ``y``: 255 when a ruling runs along the whole stretch, 0 when none does. Breaks of
    up to ``bridge`` columns between two ruled columns (the gaps of a dashed line) count as
    ruled, and lost dashes of up to ``lost`` (``box_cells._ruled_share``)."""
    return 255.0 * _ruled_share(horiz_raw, int(y) - 3, int(y) + 4, x0, x1, bridge, lost, walls)


def _gap_ruled(horiz_raw: np.ndarray, a: _Seg, b: _Seg, x0: int, x1: int) -> bool:
    """Whether both rulings of the band (``a`` above, ``b`` below) run over most of columns
    x0..x1 (exclusive): the stretch between two walls is inside a comb, not a gap between
    separate boxes (a dashed top ruling, bridged, can run across such a gap; both must)."""
    return min(_ruled(horiz_raw, a.y, x0, x1), _ruled(horiz_raw, b.y, x0, x1)) > 0.5 * 255


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


def _weak_lattice(
    strong: list[tuple[int, int]], cov: np.ndarray, offset: int, hb: float, lo: int, hi: int, s: BoxSettings, level: float = 0.5,
) -> list[tuple[int, int]] | None:
    """Walls of a comb whose printed walls are faint or dashed, recovered on its lattice.

    A faint or dashed wall seldom covers 90% of the band; a few do, and they fix the comb's
    pitch: any whole fraction of the distance between two of them (cell width/height within
    the aspect limits). Every lattice point between ``lo`` and ``hi`` is then a wall where
    the coverage makes a narrow peak of ``level`` or more within 8% of a pitch (lower by
    0.15 on at least one side: a stroke is a broad plateau). A lattice's score is its
    supported points less twice the unsupported ones between its first and last supported
    point; lattices scoring under 3 are dropped, and the one kept has the most strong walls
    on it, then the best score, then the wider pitch. A lattice whose strong walls all fall
    on every other point is the half of a wider one (strokes in the cells' middles), and is
    skipped. No lattice is returned where a second one at the same pitch, shifted, is
    supported at 80% of its points: a row of separate boxes has two walls per pitch, and
    cells cut at one of them would span the gaps.

    Args:
        strong: walls found at full coverage, (start, end) page columns, exclusive end.
        cov: coverage of each column of the band (``offset`` is the page column of cov[0]).
        hb: band height, pixels. lo, hi: page columns the lattice may span.
        s: cell limits (aspect). level: least peak coverage of a wall.

    Returns:
        The walls, (start, end) page columns, or None when fewer than 3 strong walls or
        fewer lattice points than strong walls are supported.
    """
    if len(strong) < 3:
        return None
    centres = np.array([(a + b) / 2 for a, b in strong], float)
    n = cov.size
    half = max(1, int(round(np.median([b - a for a, b in strong]) / 2)))

    def support(x: float, tol: float) -> tuple[int, int] | None:
        # a printed wall is a narrow peak of coverage; a stroke is a broad plateau
        i0, i1 = max(0, int(x - tol - offset)), min(n, int(x + tol - offset) + 1)
        if i1 <= i0:
            return None
        j = i0 + int(np.argmax(cov[i0:i1]))
        v = float(cov[j])
        if v < level:
            return None
        left, right = cov[max(0, j - half - 4) : max(0, j - half - 1)], cov[j + half + 2 : j + half + 5]
        if min(float(left.max(initial=0.0)), float(right.max(initial=0.0))) > v - 0.15:
            return None  # not lower on either side: inside a stroke
        return offset + j - half, offset + j + half + 1

    best: tuple[int, int, float, list[tuple[int, int]], float, int] | None = None
    seen: set[tuple[int, int]] = set()
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            d = centres[j] - centres[i]
            for m in range(1, 16):
                p = d / m
                if p < s.min_aspect * hb:
                    break
                if p > s.max_aspect * hb:
                    continue
                key = (int(round(centres[i])) % max(1, int(round(p))), int(round(p)))
                if key in seen:
                    continue
                seen.add(key)
                tol = max(2.0, 0.08 * p)
                k0, k1 = int(np.ceil((lo - centres[i]) / p)), int(np.floor((hi - centres[i]) / p))
                pts = [support(centres[i] + k * p, tol) for k in range(k0, k1 + 1)]
                on = [q for q in range(len(pts)) if pts[q] is not None]
                if len(on) < 3:
                    continue
                inner = pts[on[0] : on[-1] + 1]
                sup = sum(q is not None for q in inner)
                score = sup - 2 * (len(inner) - sup)
                if score < 3:
                    continue
                x_lo, x_hi = centres[i] + (k0 + on[0]) * p - tol, centres[i] + (k0 + on[-1]) * p + tol
                r = (centres - centres[i]) / p
                on_lat = (np.abs(r - np.round(r)) * p <= tol) & (centres >= x_lo) & (centres <= x_hi)
                n_strong = int(on_lat.sum())
                parity = set(np.round(r[on_lat]).astype(int) % 2)
                if n_strong >= 2 and len(parity) == 1 and 2 * p <= s.max_aspect * hb:
                    continue  # the strong walls are every other point: half the pitch, strokes between
                if best is None or (n_strong, score, p) > best[:3]:
                    best = (n_strong, score, p, [q for q in inner if q is not None], centres[i] + (k0 + on[0]) * p, len(inner))
    if best is None or len(best[3]) <= len(strong):
        return None
    # separate boxes have two walls per pitch: a second lattice, shifted, is supported as well
    _, _, p, found, x_first, count = best
    tol = max(2.0, 0.08 * p)
    for o in range(int(2 * tol), int(p - 2 * tol) + 1):
        if sum(support(x_first + o + k * p, tol) is not None for k in range(count)) >= 0.8 * count:
            return None
    walls = sorted(set(found))
    return [w for w in walls if w[1] - w[0] <= 0.5 * hb]


def _empty_faint_comb(walls: list[tuple[int, int]], cov: np.ndarray, offset: int, hb: float, s: BoxSettings) -> list[tuple[int, int]] | None:
    """The walls of an empty comb printed faint or dashed, or None.

    Every wall covers well under 90% of the band (dashes, dropout colour), so no strong wall
    fixes the pitch. Accepted only when nothing else is in the band: at least 4 walls, all
    evenly spaced (within 8% of the pitch) at a cell aspect within limits, and the coverage
    between them stays under 0.1 (no handwriting, no print)."""
    if len(walls) < 4:
        return None
    centres = np.array([(a + b) / 2 for a, b in walls], float)
    gaps = np.diff(centres)
    p = float(np.median(gaps))
    if not (s.min_aspect * hb <= p <= s.max_aspect * hb) or np.abs(gaps - p).max() > max(2.0, 0.08 * p):
        return None
    for (_, e0), (s1, _) in zip(walls, walls[1:]):
        inner = cov[e0 - offset + 2 : s1 - offset - 2]
        if inner.size and float(inner.max()) >= 0.1:
            return None
    return walls


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
    A cell between two walls needs both rulings over 85% of its width; on a thin ruling that
    is not solid on the raw ink, dashes lost by a 1-bit scan count as ruled
    (``box_cells.dash_bridge``, ``DASH_LOST``; twenty-third session).
    """
    H, W = ink.shape
    min_side = max(8, 2 * length)
    max_side = min(s.max_side_fraction * max(H, W), 0.95 * min(H, W))
    k = max(3, length // 3)
    vsmooth = (cv2.blur(ink, (1, k)) > level) | (vert > 0)  # vertical lines, dashes bridged
    bridge = max(2, length // 2)
    segs = _segments(horiz, min_side, max_thick, bridge, mask)
    segs.sort(key=lambda g: g.y)
    cells: list[_Cell] = []
    for i, a in enumerate(segs):
        # the stretches of this ruling already closed by a band below it: a bottom ruling
        # broken by a stroke that crosses it closes the band piece by piece
        closed = np.zeros(a.x1 - a.x0, bool)
        for b in segs[i + 1 :]:
            dy = b.y - a.y
            if dy < min_side:
                continue
            if dy > max_side or closed.mean() > 0.95:
                break
            under = closed[max(0, b.x0 - a.x0) : max(0, b.x1 - a.x0)]
            if under.size and under.mean() > 0.8:
                continue
            bx0, bx1 = max(a.x0, b.x0), min(a.x1, b.x1)
            if bx1 - bx0 < min_side * s.min_aspect:
                continue
            if abs(b.t - a.t) > max(3.0, 0.5 * max(a.t, b.t)):
                continue  # rulings of one band are printed alike; a thick handwritten bar is no ruling
            # a ruling line across the band in between makes it two bands (table rows)
            reach = min(2 * max_thick, 0.1 * (bx1 - bx0))
            t_rule = (a.t + b.t) / 2
            if any(
                a.y + a.t < m.y < b.y - b.t and m.x0 <= bx0 + reach and m.x1 >= bx1 - reach and abs(m.t - t_rule) <= max(2.0, 0.5 * t_rule)
                and (m.solid or not (a.solid and b.solid))  # a table's rulings are printed alike; a heavy stroke is not solid
                for m in segs
            ):
                continue
            ty, by = int(round(a.y + a.t / 2)) + 1, int(round(b.y - b.t / 2))
            hb = by - ty
            if hb < 2:
                continue
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
                    if g1 > g0 and _gap_ruled(horiz_raw, a, b, g0, g1):
                        if cov[wall[0] - c0 : wall[1] - c0].mean() > cov[kept[-1][0] - c0 : kept[-1][1] - c0].mean():
                            kept[-1] = wall
                        continue
                kept.append(wall)
            # a comb (every interval ruled, no gaps between boxes): keep its evenly spaced walls
            comb = all(v[0] <= u[1] or _gap_ruled(horiz_raw, a, b, u[1], v[0]) for u, v in zip(kept, kept[1:]))
            walls = _comb_lattice(kept, hb, s) if comb else kept
            if comb and not (a.solid or b.solid):
                # too few strong walls to fix the pitch: perhaps an empty comb printed faint or dashed
                weak = (
                    _weak_lattice(kept, cov, c0, hb, c0, c1, s) if len(kept) >= 3
                    else _empty_faint_comb([(c0 + u, c0 + v) for u, v in _walls(cov, FAINT_WALL, max_thick)], cov, c0, hb, s)
                )
                if weak is not None and len(weak) > len(walls):
                    walls = weak
            found = []
            lost = dash_bridge(max(a.t, b.t), hb)  # a thin ruling's break where a dash was lost
            wide = 0  # framed boxes too wide for one digit: table cells, free-text boxes
            for (s0, e0), (s1, e1) in zip(walls, walls[1:]):
                w = s1 - e0
                if w < 0.15 * hb:
                    continue
                top = _ruled(horiz_raw, a.y, e0, s1, bridge, 0 if a.solid else lost, (s0, e1)) if w > 0 else 0
                bot = _ruled(horiz_raw, b.y, e0, s1, bridge, 0 if b.solid else lost, (s0, e1)) if w > 0 else 0
                if min(top, bot) < 0.85 * 255:
                    log.debug("  cell %d-%d ruled top %.0f bottom %.0f", e0, s1, top / 2.55, bot / 2.55)
                    continue
                if w / hb > s.max_aspect:
                    wide += 1
                    continue
                found.append(_Cell(e0, ty, w, hb, max(a.t, b.t)))
            log.debug("band y %.0f-%.0f t %.1f/%.1f walls %s cells %s", a.y, b.y, a.t, b.t, walls, [(c.x, c.w) for c in found])
            if found and wide >= len(found):
                break  # a table row, not a row of digit cells
            found = [
                c for c in _merge_split_cells(found, s, mask)
                if c.border <= s.max_border_ratio_comb * min(c.w, c.h)
                and _solid_blob(mask, c.x, c.y, c.w, c.h) <= s.max_solid_fill
                and _inked_corners(mask, c.x, c.y, c.w, c.h) < 2  # not a letter's bowl ("o" of bold print)
                and c.w / c.h >= s.min_aspect
            ]
            found = _heavy_ruled(found, s)
            if found:
                cells.extend(found)
                closed[max(0, bx0 - a.x0) : max(0, bx1 - a.x0)] = True
    return _dedupe(cells)


def _heavy_ruled(found: list[_Cell], s: BoxSettings) -> list[_Cell]:
    """Cells of one band whose ruling is heavy for their size (border above ``max_border_ratio``
    of the shorter side, up to ``max_border_ratio_comb``) kept only in a comb: at least
    ``comb_min_cells`` cells in the band within 25% of their median width."""
    heavy = [c.border > s.max_border_ratio * min(c.w, c.h) for c in found]
    if not any(heavy):
        return found
    med = float(np.median([c.w for c in found]))
    alike = [abs(c.w - med) <= 0.25 * med for c in found]
    comb = sum(alike) >= s.comb_min_cells
    return [c for c, h, a in zip(found, heavy, alike) if not h or (comb and a)]


def _dedupe(cells: list[_Cell], overlap: float = 0.5) -> list[_Cell]:
    """Drop cells that overlap an earlier one (IoU > overlap): a ruling can close two bands."""
    out: list[_Cell] = []
    for c in cells:
        if all(_iou(c, d) <= overlap for d in out):
            out.append(c)
    return out

