"""Page layout for ``pipeline.synth``: an empty upright page -> printed form with handwritten digits and its fields.

No template: each page draws a header (title, form code, maybe a logo and a QR-code
look-alike), rows of digit fields (combs, separate boxes, single cells, small grids) with
printed labels, distractors that are not digit cells (paragraphs, a wide-celled table, rule
lines, tick boxes, a signature) and a footer, in a random order. Every cell interior is
recorded in upright page pixels together with the MNIST digit written in it (or None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import synth_draw as dr

if TYPE_CHECKING:
    from .synth import SynthStyle

TITLES = ("APPLICATION FORM", "Examination Cover Sheet", "Customer Registration", "Order Form",
          "Survey Response Card", "Claim Form", "ENROLMENT RECORD", "Delivery Note", "Tax Return Summary")
LABELS = ("Student Number", "Account No.", "Phone", "Postcode", "Amount", "ID", "Reference", "Code",
          "Customer No.", "Date", "Qty", "Order Number", "Member ID", "PIN", "Year", "Total")


@dataclass
class DrawnField:
    """One digit field as drawn: its cells left to right and what was written in each."""

    cells: list[dr.Rect]  # cell interiors, upright page px (x0, y0, x1, y1 pixel edges)
    digits: list[int | None] = field(default_factory=list)  # MNIST label per cell, None = left blank
    cores: list[np.ndarray | None] = field(default_factory=list)  # per cell: (N, 2) float64 x, y pixel centres of the digit's stroke core (coverage >= 0.5), upright page px; None = blank


@dataclass
class PageCtx:
    """Everything one page's drawing needs; ``fields`` and ``mnist_used`` fill up while drawing."""

    rng: np.random.Generator
    st: SynthStyle
    canvas: np.ndarray
    dpi: int
    font: dr.Font
    pen: dr.Colour
    colour_dropout: bool  # RGB page: dropout ruling in light red/blue
    dropout_ok: bool  # the page stays grey/RGB, so faint ruling survives the scan
    images: np.ndarray
    labels: np.ndarray
    pool: np.ndarray
    x0: int
    x1: int
    y1: int
    thinnest: int = 99  # thinnest digit-box ruling drawn so far, px (the scan keeps it visible)
    fields: list[DrawnField] = field(default_factory=list)
    mnist_used: list[int] = field(default_factory=list)

    def px(self, mm: float) -> int:
        """Millimetres on paper -> whole pixels at the page's dpi."""
        return int(round(mm * self.dpi / 25.4))

    def u(self, lo: float, hi: float) -> float:
        """A uniform draw in [lo, hi)."""
        return float(self.rng.uniform(lo, hi))

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return bool(self.rng.random() < p)


def _header(c: PageCtx, y: int) -> int:
    bottom, x = y, c.x0
    if c.chance(0.6):
        n, module = int(c.rng.choice([21, 25, 29])), max(2, c.px(c.u(0.6, 0.9)))
        dr.qr_pattern(c.canvas, c.rng, c.x1 - n * module, y, module, n)
        bottom = max(bottom, y + n * module)
    if c.chance(0.4):
        size = c.px(c.u(10, 16))
        dr.logo(c.canvas, c.rng, x, y, size)
        bottom, x = max(bottom, y + size), x + size + c.px(4)
    cap = c.px(c.u(4.0, 6.0))
    dr.put_text(c.canvas, str(c.rng.choice(TITLES)), x, y + cap, c.font, cap)
    sub = c.px(2.6)
    form, letter = int(c.rng.integers(10, 999)), "ABCDX"[int(c.rng.integers(5))]
    code = f"Form {form}-{letter}  Rev. {int(c.rng.integers(1, 13)):02d}/{int(c.rng.integers(1995, 2030))}"
    dr.put_text(c.canvas, code, x, y + 2 * cap + sub, c.font, sub)
    return max(bottom, y + 2 * cap + 2 * sub) + c.px(c.u(5, 10))


def _ruling(c: PageCtx) -> tuple[dr.Colour, tuple[int, int] | None]:
    colour: dr.Colour = int(c.rng.integers(0, 60))
    if c.dropout_ok and c.chance(0.7 if c.colour_dropout else c.st.p_dropout):
        if c.colour_dropout:
            lo, hi = int(c.rng.integers(120, 175)), int(c.rng.integers(200, 256))
            colour = (255, lo, lo) if c.chance(0.5) else (lo, hi, 255)
        else:
            colour = int(c.rng.integers(150, 201))
    dash = (max(2, c.px(c.u(0.8, 1.6))), max(2, c.px(c.u(0.4, 0.9)))) if c.chance(c.st.p_dashed) else None
    return colour, dash


def _write_digits(c: PageCtx, f: DrawnField, t: int) -> None:
    """Fill a field's cells with MNIST digits (or leave them blank) and record the truth."""
    n, r = len(f.cells), c.rng.random()
    if r < 0.1:
        written = [False] * n  # an unused field
    elif r < 0.3 and n > 2:
        k = int(c.rng.integers(1, n + 1))
        written = [i < k for i in range(n)]  # left-aligned number, rest of the comb empty
    else:
        written = [not c.chance(c.st.p_blank) for _ in range(n)]
    for (x0, y0, x1, y1), w in zip(f.cells, written):
        if not w:
            f.digits.append(None)
            f.cores.append(None)
            continue
        idx = int(c.rng.choice(c.pool))
        cw, ch = x1 - x0, y1 - y0
        alpha = dr.digit_alpha(c.images[idx], int(ch * c.u(*c.st.digit_h)), c.u(0.8, 1.25), c.u(0.05, 0.45), c.rng)
        if alpha.shape[1] > 0.9 * cw:
            scale = 0.9 * cw / alpha.shape[1]
            alpha = cv2.resize(alpha, (max(2, int(alpha.shape[1] * scale)), max(4, int(alpha.shape[0] * scale))))
        dh, dw = alpha.shape
        px = x0 + (cw - dw) / 2 + c.u(-0.8, 0.8) * max(0, cw - dw) / 2
        py = y0 + (ch - dh) / 2 + c.u(-0.8, 0.8) * max(0, ch - dh) / 2
        if c.chance(c.st.p_stray):  # a stroke crosses the ruling
            frac = c.u(0.1, 0.35)  # share of the digit's height (or width) beyond the ruling
            side = c.rng.choice(["down", "right", "up", "left"], p=[0.4, 0.25, 0.2, 0.15])
            ov, oh = t + frac * dh, t + frac * dw
            px, py = {"down": (px, y1 - dh + ov), "up": (px, y0 - ov), "right": (x1 - dw + oh, py),
                      "left": (x0 - oh, py)}[str(side)]
        dr.paste_ink(c.canvas, alpha, int(round(px)), int(round(py)), c.pen)
        cy, cx = np.nonzero(alpha >= 0.5)
        f.cores.append(np.stack([cx + int(round(px)) + 0.5, cy + int(round(py)) + 0.5], 1).astype(np.float64))
        f.digits.append(int(c.labels[idx]))
        c.mnist_used.append(idx)


def _field_row(c: PageCtx, y: int, wanted: int) -> int | None:
    """Draw one row of digit fields (label + comb / boxes / singles / grid); None when it does not fit."""
    st, rng = c.st, c.rng
    kind = str(rng.choice([k for k, _ in st.kinds], p=np.array([w for _, w in st.kinds]) / sum(w for _, w in st.kinds)))
    h = c.px(c.u(*st.cell_mm))
    lo, hi = st.aspect[int(rng.integers(len(st.aspect)))]
    w = max(4, int(round(h * c.u(lo, hi))))
    t = int(np.clip(round(c.u(*st.line_mm) * c.dpi / 25.4), 1, 4))
    tf = min(4, t + int(rng.integers(1, 3))) if c.chance(st.p_frame) else t
    c.thinnest = min(c.thinnest, t)
    colour, dash = _ruling(c)
    cap = c.px(c.u(2.5, 3.8))
    label = str(rng.choice(LABELS))
    if c.chance(0.25):
        label = f"{int(rng.integers(1, 20))}. {label}"
    rows = int(rng.integers(2, 4)) if kind == "grid" else 1
    above = c.chance(0.3)
    lw = dr.text_width(label + ":", c.font, cap) + c.px(3)
    if not above and (c.x1 - c.x0 - lw) < 4 * w + 2 * tf:
        above = True
    top = y + (cap + cap // 2 + c.px(1.5) if above else 0)
    if top + rows * h + 2 * tf >= c.y1:
        return None
    if above:
        dr.put_text(c.canvas, label, c.x0, y + cap, c.font, cap)
        fx = c.x0 + tf
    else:
        dr.put_text(c.canvas, label + ":", c.x0, top + (rows * h + cap) // 2, c.font, cap)
        fx = c.x0 + lw + tf
    avail = c.x1 - fx - tf
    ys = [top + tf // 2 + j * h for j in range(rows + 1)]  # horizontal rulings of this row (a grid has several)
    new: list[DrawnField] = []
    if kind in ("comb", "grid"):
        n = min(int(rng.integers(st.comb_cells[0], st.comb_cells[1] + 1)), max(1, avail // w))
        if kind == "grid":
            n = min(n, 10)
        xs = [fx + i * w for i in range(n + 1)]
        tx = [tf] + [t] * (n - 1) + [tf]
        ty = [tf] + [t] * (rows - 1) + [tf]
        inner = dr.draw_grid(c.canvas, xs, ys, tx, ty, colour, dash)
        new += [DrawnField(list(row)) for row in inner]
        right = xs[-1]
    elif kind == "boxes":
        n, gap = int(rng.integers(2, 9)), max(tf + 2, c.px(c.u(1.0, 3.0)))
        groups = [n]
        if c.chance(0.35):
            groups = [list(g) for g in ([2, 2, 4], [2, 2], [3, 3], [4, 4], [2, 2, 2])][int(rng.integers(5))]
        sep = str(rng.choice(["/", "-", " "]))
        cells, x = [], fx
        for gi, g in enumerate(groups):
            for _ in range(g):
                if x + w > c.x1:
                    break
                cells += dr.draw_grid(c.canvas, [x, x + w], ys, [tf, tf], [tf, tf], colour, dash)[0]
                x += w + gap
            if gi < len(groups) - 1 and x + 3 * gap + w <= c.x1:
                dr.put_text(c.canvas, sep, x, top + (h + cap) // 2, c.font, cap)
                x += 3 * gap
        if cells:
            new.append(DrawnField(cells))
        right = x
    else:  # single cells, each its own field, each with a short printed label
        x = fx
        for k in range(int(rng.integers(1, 5))):
            if k:
                tag = f"Q{k + 1}"
                if x + c.px(4) + dr.text_width(tag, c.font, cap) + c.px(3) + w + tf > c.x1:
                    break
                x += c.px(4)
                x += dr.put_text(c.canvas, tag, x, top + (h + cap) // 2, c.font, cap) + c.px(3)
            new.append(DrawnField(dr.draw_grid(c.canvas, [x, x + w], ys, [tf, tf], [tf, tf], colour, dash)[0]))
            x += w
        right = x
    if kind in ("comb", "boxes") and c.x1 - right > c.px(45) and c.chance(0.35) and len(new) < wanted:
        lab2 = str(rng.choice(LABELS)) + ":"
        x = right + c.px(8) + dr.text_width(lab2, c.font, cap) + c.px(3)
        n2 = min(int(rng.integers(1, 7)), (c.x1 - x - tf) // w)
        if n2 >= 1:
            dr.put_text(c.canvas, lab2, right + c.px(8), top + (h + cap) // 2, c.font, cap)
            xs = [x + i * w for i in range(n2 + 1)]
            tx = [tf] + [t] * (n2 - 1) + [tf]
            new.append(DrawnField(dr.draw_grid(c.canvas, xs, ys, tx, [tf, tf], colour, dash)[0]))
    for f in new:
        _write_digits(c, f, t)
    c.fields += new
    return top + rows * h + tf + c.px(c.u(*c.st.row_gap_mm))


def _distractor(c: PageCtx, kind: str, y: int) -> int:
    """Draw one non-digit element (paragraph, table, rule, tick boxes); returns the new y (unchanged if no room)."""
    width = c.x1 - c.x0
    if kind == "paragraph":
        cap, n = c.px(c.u(2.2, 3.2)), int(c.rng.integers(2, 7))
        if y + n * int(cap * 2.1) >= c.y1:
            return y
        return dr.paragraph(c.canvas, c.rng, c.x0, y, width, n, c.font, cap) + c.px(c.u(4, 8))
    if kind == "rule":
        if y + c.px(6) >= c.y1:
            return y
        dr.hline(c.canvas, c.x0, c.x1, y + c.px(2), int(c.rng.integers(1, 6)), 0)
        return y + c.px(c.u(5, 8))
    if kind == "checkbox":
        size, cap, x = c.px(c.u(3.0, 4.2)), c.px(2.8), c.x0
        if y + size + c.px(6) >= c.y1:
            return y
        for word in ("Yes", "No", "Other")[: int(c.rng.integers(2, 4))]:
            dr.checkbox(c.canvas, x, y, size, max(1, c.px(0.2)), c.chance(0.4))
            x += size + c.px(2)
            x += dr.put_text(c.canvas, word, x, y + (size + cap) // 2, c.font, cap) + c.px(8)
        return y + size + c.px(c.u(5, 9))
    # table: wide cells (aspect > 3) holding printed words and numbers
    rh, n_rows = c.px(c.u(6.0, 9.0)), int(c.rng.integers(3, 6))
    if y + rh * n_rows + c.px(8) >= c.y1:
        return y
    t = int(np.clip(c.px(0.25), 1, 4))
    n_cols = int(min(c.rng.integers(2, 5), width // (3.4 * rh)))
    if n_cols < 1:
        return y
    cw = max(int(3.4 * rh), int(width * c.u(0.6, 1.0)) // n_cols)
    xs = [c.x0 + i * cw for i in range(n_cols + 1)]
    ys = [y + j * rh for j in range(n_rows + 1)]
    inner = dr.draw_grid(c.canvas, xs, ys, [t] * len(xs), [t] * len(ys), 0)
    cap = int(rh * 0.4)
    for r, row in enumerate(inner):
        for col, (x0, y0, x1, y1) in enumerate(row):
            if r == 0 or col == 0 or c.chance(0.4):
                txt = dr.random_words(c.rng, 1)[0] if r == 0 or col == 0 else str(int(c.rng.integers(0, 100)))
                dr.put_text(c.canvas, txt.capitalize()[:14], x0 + c.px(1.5), (y0 + y1 + cap) // 2, c.font, cap)
    return ys[-1] + c.px(c.u(6, 10))


def _signature(c: PageCtx, y: int) -> int:
    cap, lw = c.px(3.0), c.px(c.u(55, 80))
    if y + c.px(18) >= c.y1:
        return y
    base = y + c.px(14)
    x = c.x0 + dr.put_text(c.canvas, "Signature:", c.x0, base, c.font, cap) + c.px(3)
    dr.hline(c.canvas, x, x + lw, base, max(1, c.px(0.2)), 0)
    dr.scribble(c.canvas, c.rng, x + c.px(3), y, lw - c.px(6), base - y, c.pen, max(1, c.px(0.35)))
    return base + c.px(6)


def _footer(c: PageCtx) -> int:
    """Small print at the bottom margin (printed digits included); returns the new bottom limit."""
    cap = c.px(c.u(2.0, 2.6))
    text = f"Page {int(c.rng.integers(1, 4))} of {int(c.rng.integers(4, 9))}   " + " ".join(dr.random_words(c.rng, 8))
    dr.put_text(c.canvas, text, c.x0, c.y1, c.font, cap)
    return c.y1 - cap - c.px(4)


def draw_page(c: PageCtx) -> None:
    """Lay out and draw one upright form on ``c.canvas``; its digit fields go to ``c.fields`` in reading order.

    Fields are placed top to bottom, several side by side only within one row (left to
    right), so the order of ``c.fields`` is the reading order of the upright page.
    """
    rng = c.rng
    if c.chance(0.7):
        c.y1 = _footer(c)
    y = _header(c, c.px(c.u(12, 18)))
    wanted = int(rng.integers(c.st.fields[0], c.st.fields[1] + 1))
    blocks = [b for b, p in (("paragraph", 0.8), ("table", 0.55), ("rule", 0.6), ("paragraph", 0.3),
                             ("rule", 0.3), ("checkbox", c.st.p_checkbox)) if rng.random() < p]
    rng.shuffle(blocks)
    while len(c.fields) < wanted:
        if blocks and c.chance(0.45):
            y = _distractor(c, blocks.pop(), y)
        ny = _field_row(c, y, wanted - len(c.fields))
        if ny is None:
            break
        y = ny
    for b in blocks:
        y = _distractor(c, b, y)
    if c.chance(0.6):
        _signature(c, y)


