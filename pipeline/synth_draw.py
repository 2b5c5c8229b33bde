"""Drawing primitives for ``pipeline.synth``: ink onto a page canvas ((H, W) grey or (H, W, 3) RGB uint8).

Coordinates are integer pixels of the upright page, x to the right, y down. A line of
thickness ``t`` centred on position ``p`` covers pixels ``[p - t // 2, p - t // 2 + t)``.
Colours are grey levels (int, 0 = black) or RGB triples; each function converts them to
the canvas's kind. Nothing here draws at random unless it is handed a ``np.random.Generator``.
"""

from __future__ import annotations

import cv2
import numpy as np

Colour = int | tuple[int, int, int]  # grey level, or (r, g, b); 0 = black ink, 255 = white paper
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 pixel edges in upright page pixels (x1, y1 exclusive)
# (Hershey font id, TrueType face name, weight 100-1000): OpenCV 4 draws the Hershey font (weight sets
# the stroke), OpenCV >= 5 draws its built-in TrueType face ("sans", "italic", "uni") at that weight.
Font = tuple[int, str, int]

WORDS = (
    "the of and to in for is on that by this with you it not or be are from at as your all have "
    "new more an was we will home can us about if page my has search free but our one other do no "
    "information time they site he up may what which their news out use any there see only so his "
    "when contact here business who web also now help get form date name number please write each "
    "digit box block capitals office use only signature applicant section total amount account "
    "reference code postal address telephone return before following complete instructions"
).split()


def colour_for(canvas: np.ndarray, colour: Colour) -> int | tuple[int, int, int]:
    """The colour as the canvas stores it: a grey int for (H, W), an RGB triple for (H, W, 3)."""
    if canvas.ndim == 2:
        if isinstance(colour, tuple):
            r, g, b = colour
            return int(round(0.299 * r + 0.587 * g + 0.114 * b))  # ITU-R BT.601 luma, as Pillow's "L"
        return int(colour)
    if isinstance(colour, tuple):
        return tuple(int(c) for c in colour)
    return (int(colour),) * 3


def _segments(a0: int, a1: int, dash: tuple[int, int] | None) -> list[tuple[int, int]]:
    if dash is None:
        return [(a0, a1)]
    on, off = max(1, dash[0]), max(1, dash[1])
    out, a = [], a0
    while a < a1:
        out.append((a, min(a + on, a1)))
        a += on + off
    return out


def hline(canvas: np.ndarray, x0: int, x1: int, y: int, t: int, colour: Colour, dash: tuple[int, int] | None = None) -> None:
    """Horizontal line over columns [x0, x1), rows [y - t // 2, y - t // 2 + t); dashed when ``dash`` = (on, off) px."""
    c, top = colour_for(canvas, colour), y - t // 2
    for a, b in _segments(x0, x1, dash):
        canvas[max(top, 0) : max(top + t, 0), max(a, 0) : max(b, 0)] = c


def vline(canvas: np.ndarray, y0: int, y1: int, x: int, t: int, colour: Colour, dash: tuple[int, int] | None = None) -> None:
    """Vertical line over rows [y0, y1), columns [x - t // 2, x - t // 2 + t); dashed when ``dash`` = (on, off) px."""
    c, left = colour_for(canvas, colour), x - t // 2
    for a, b in _segments(y0, y1, dash):
        canvas[max(a, 0) : max(b, 0), max(left, 0) : max(left + t, 0)] = c


def draw_grid(
    canvas: np.ndarray,
    xs: list[int],
    ys: list[int],
    tx: list[int],
    ty: list[int],
    colour: Colour,
    dash: tuple[int, int] | None = None,
) -> list[list[Rect]]:
    """Draw a ruled grid (a comb is a grid with one row) and return its cell interiors.

    Args:
        canvas: page, modified in place.
        xs: x of the n + 1 vertical lines (line centres), increasing.
        ys: y of the r + 1 horizontal lines, increasing.
        tx, ty: thickness in px of each vertical / horizontal line.
        colour: line colour. dash: (on, off) px for dashed lines, None for solid.

    Returns:
        interiors[row][col] = (x0, y0, x1, y1): the unruled inside of each cell, pixel edges.
    """
    x_lo, x_hi = xs[0] - tx[0] // 2, xs[-1] - tx[-1] // 2 + tx[-1]
    y_lo, y_hi = ys[0] - ty[0] // 2, ys[-1] - ty[-1] // 2 + ty[-1]
    for y, t in zip(ys, ty):
        hline(canvas, x_lo, x_hi, y, t, colour, dash)
    for x, t in zip(xs, tx):
        vline(canvas, y_lo, y_hi, x, t, colour, dash)
    return [
        [
            (xs[c] - tx[c] // 2 + tx[c], ys[r] - ty[r] // 2 + ty[r], xs[c + 1] - tx[c + 1] // 2, ys[r + 1] - ty[r + 1] // 2)
            for c in range(len(xs) - 1)
        ]
        for r in range(len(ys) - 1)
    ]


def _face(font: Font) -> cv2.FontFace | None:
    return cv2.FontFace(font[1]) if hasattr(cv2, "FontFace") else None


def _hershey(font: Font, cap_px: float) -> tuple[float, int]:
    """(fontScale, thickness) giving capitals ``cap_px`` tall in a Hershey font (OpenCV 4)."""
    scale = cap_px / cv2.getTextSize("H", font[0], 1.0, 1)[0][1]
    return scale, max(1, round(cap_px / 9 * font[2] / 500))


def text_width(text: str, font: Font, cap_px: float) -> int:
    """Width in px of ``text`` printed in ``font`` with capitals ``cap_px`` tall."""
    face = _face(font)
    if face is not None:
        return int(cv2.getTextSize((0, 0), text, (0, 0), face, max(1, round(cap_px / 0.72)), font[2])[2])
    scale, th = _hershey(font, cap_px)
    return int(cv2.getTextSize(text, font[0], scale, th)[0][0])


def put_text(canvas: np.ndarray, text: str, x: int, y: int, font: Font, cap_px: float, colour: Colour = 0) -> int:
    """Print ``text`` with its baseline starting at (x, y), capitals ``cap_px`` tall; returns its width in px."""
    face, c = _face(font), colour_for(canvas, colour)
    if face is not None:
        cv2.putText(canvas, text, (int(x), int(y)), c, face, max(1, round(cap_px / 0.72)), font[2])
    else:
        scale, th = _hershey(font, cap_px)
        cv2.putText(canvas, text, (int(x), int(y)), font[0], scale, c, th, cv2.LINE_AA)
    return text_width(text, font, cap_px)


def random_words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` words from a small vocabulary, some of them printed numbers (distractor digits)."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.06:
            out.append(str(int(rng.integers(1, 2030))))
        elif r < 0.09:
            out.append(f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1990, 2030))}")
        else:
            out.append(str(WORDS[int(rng.integers(len(WORDS)))]))
    return out


def paragraph(
    canvas: np.ndarray, rng: np.random.Generator, x: int, y: int, width: int, n_lines: int, font: Font, cap_px: float
) -> int:
    """Print ``n_lines`` of random words, wrapped to ``width`` px, top of first line at ``y``; returns the bottom y."""
    line_h = int(cap_px * 2.1)
    for i in range(n_lines):
        words = random_words(rng, 40)
        if i == 0:
            words[0] = words[0].capitalize()
        line, limit = "", width if i < n_lines - 1 else int(width * rng.uniform(0.3, 0.9))
        for w in words:
            cand = f"{line} {w}".strip()
            if text_width(cand, font, cap_px) > limit:
                break
            line = cand
        put_text(canvas, line + ("." if i == n_lines - 1 else ""), x, y + int(cap_px) + i * line_h, font, cap_px)
    return y + n_lines * line_h


def qr_pattern(canvas: np.ndarray, rng: np.random.Generator, x: int, y: int, module: int, n: int) -> Rect:
    """A QR-code look-alike: random modules plus the three 7x7 finder squares (ISO/IEC 18004 layout)."""
    grid = rng.random((n, n)) < 0.5
    finder = np.zeros((9, 9), bool)
    finder[1:8, 1:8] = True
    finder[2:7, 2:7] = False
    finder[3:6, 3:6] = True
    grid[:8, :8] = finder[1:, 1:]  # top-left finder and its white separator
    grid[:8, n - 8 :] = finder[1:, :8]  # top-right
    grid[n - 8 :, :8] = finder[:8, 1:]  # bottom-left
    big = np.kron(grid, np.ones((module, module), bool))
    h, w = big.shape
    region = canvas[y : y + h, x : x + w]
    region[big[: region.shape[0], : region.shape[1]]] = colour_for(canvas, 0)
    return x, y, x + w, y + h


def logo(canvas: np.ndarray, rng: np.random.Generator, x: int, y: int, size: int) -> Rect:
    """A filled company-logo shape (disc, square or triangle) with a white cut-out."""
    black, white, r = colour_for(canvas, 0), colour_for(canvas, 255), size // 2
    cx, cy = x + r, y + r
    kind = int(rng.integers(3))
    if kind == 0:
        cv2.circle(canvas, (cx, cy), r, black, -1, cv2.LINE_AA)
    elif kind == 1:
        canvas[y : y + size, x : x + size] = black
    else:
        pts = np.array([[cx, y], [x + size, y + size], [x, y + size]], np.int32)
        cv2.fillPoly(canvas, [pts], black, cv2.LINE_AA)
    cv2.circle(canvas, (cx, cy + r // 4), max(1, r // 3), white, -1, cv2.LINE_AA)
    return x, y, x + size, y + size


def scribble(canvas: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int, colour: Colour, t: int) -> None:
    """A signature-like pen scribble in the box (x, y, w, h): a smooth curve with loops."""
    s = np.linspace(0.0, 1.0, 400)
    loops = rng.uniform(4, 10)
    px = x + s * w + 0.08 * w * np.sin(2 * np.pi * loops * s + rng.uniform(0, 6))
    py = y + h / 2 + 0.35 * h * np.sin(2 * np.pi * (loops + rng.uniform(-1, 1)) * s) * np.sin(np.pi * s * rng.uniform(1, 3))
    pts = np.stack([px, py], 1).round().astype(np.int32)
    cv2.polylines(canvas, [pts], False, colour_for(canvas, colour), t, cv2.LINE_AA)


def checkbox(canvas: np.ndarray, x: int, y: int, size: int, t: int, ticked: bool) -> Rect:
    """A small tick box (a distractor, not a digit cell), crossed when ``ticked``."""
    draw_grid(canvas, [x, x + size], [y, y + size], [t, t], [t, t], 0)
    if ticked:
        ink = colour_for(canvas, 30)
        cv2.line(canvas, (x, y), (x + size, y + size), ink, max(1, t), cv2.LINE_AA)
        cv2.line(canvas, (x + size, y), (x, y + size), ink, max(1, t), cv2.LINE_AA)
    return x, y, x + size, y + size


def digit_alpha(img28: np.ndarray, height: int, width_scale: float, thin: float, rng: np.random.Generator) -> np.ndarray:
    """Turn one MNIST digit into pen ink coverage at page resolution.

    Args:
        img28: (28, 28) uint8 MNIST image, ink = 255.
        height: wanted height of the ink in px.
        width_scale: aspect jitter, multiplies the digit's own width/height ratio.
        thin: in [0, 0.6]; higher cuts the soft edge deeper, giving a thinner stroke.
        rng: for the pen-pressure variation along the strokes.

    Returns:
        (height, w) float32 coverage in [0, 1] (1 = full ink), cropped to the digit.
    """
    ys, xs = np.nonzero(img28 > 20)
    if len(ys) == 0:
        return np.zeros((max(height, 1), 1), np.float32)
    crop = img28[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255.0
    ch, cw = crop.shape
    height = max(int(height), 4)
    w = max(2, int(round(height * cw / ch * width_scale)))
    a = cv2.resize(crop, (w, height), interpolation=cv2.INTER_LINEAR)
    a = cv2.GaussianBlur(a, (0, 0), max(0.5, 0.45 * height / ch))
    a = np.clip((a - thin) / 0.3, 0.0, 1.0)
    pressure = cv2.resize(rng.uniform(0.7, 1.0, (3, 3)).astype(np.float32), (w, height), interpolation=cv2.INTER_CUBIC)
    return (a * np.clip(pressure, 0.6, 1.0)).astype(np.float32)


def paste_ink(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, colour: Colour) -> None:
    """Lay ink of coverage ``alpha`` ((h, w) float in [0, 1]) at top-left (x, y); never lightens the page."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    c = np.asarray(colour_for(canvas, colour), np.float32)
    if canvas.ndim == 3:
        a = a[..., None]
    canvas[y0:y1, x0:x1] = np.minimum(region, region * (1 - a) + c * a).round().astype(np.uint8)
