"""Synthetic scanned forms with exact truth: MNIST test digits -> form images + ``truth.json`` (``digitform synth``).

Each page is drawn upright with no template (printed title and labels, comb fields, rows of
separate boxes, single cells, small grids, dashed or dropout-colour ruling, and distractors
that are not digit cells: text paragraphs, a QR-code look-alike, a wide-celled table, a logo,
a signature, rule lines), filled with MNIST **test** digits only, then "scanned": skew,
sometimes turned upside down, blur, uneven lighting, noise, specks, 1-bit binarisation or
JPEG, and sometimes a wrong dpi tag.

Styles:

* ``sample``: the forms the project develops against (``sample_forms/``). MNIST test images
  with an **even** index. 200-300 dpi, cells 6-8.5 mm, aspect 0.8-1.1, regular/semibold sans
  text, at most 5 fields, mild distortions, JPEGs kept under 280 KB.
* ``holdout``: forms the project has never seen, for honest measurement. MNIST test images
  with an **odd** index. 150-600 dpi, cells 5-9 mm with narrow (0.7-0.8) or wide (1.1-1.3)
  aspect, other line widths and fonts (serif-less "uni", black, light, italic; other Hershey
  fonts under OpenCV 4), 5-8 fields, combs up to 16 cells, tick boxes, thicker frames, more
  dashed and dropout ruling, stronger skew/blur/noise/lighting/specks, any binarisation level.

Writing: about 10% of fields are left wholly blank, 20% hold a left-aligned number shorter than
the field, the rest leave each cell blank with probability ``p_blank`` (0.15 sample, 0.2
holdout); ``p_stray`` (10% / 15%) of digits cross their cell's ruling. Each digit is an MNIST
image cropped to its ink, scaled to 45-90% of the cell height with aspect jitter, given a
pen-like stroke width and pressure, and laid on in a pen grey (0-80 / 0-100) or blue ink.

``truth.json`` has the shape of the product's JSON output; every box is in the pixel frame of
the saved image. Page ``skew`` and ``rotation`` are the *corrections* that make the saved image
upright (the product's convention: deskew applied, degrees, counter-clockwise positive), so
the generator's own rotation of the content was ``-skew``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import synth_draw as dr
from .data import load_mnist, validation_split
from .errors import ConfigError
from .synth_layout import DrawnField, PageCtx, draw_page

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PAPER_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}  # ISO 216 / ANSI
_EXT = {"png1": ".png", "png": ".png", "png_rgb": ".png", "tif1": ".tif", "jpg": ".jpg", "jpg_rgb": ".jpg"}
_SAMPLE_CYCLE = ("png1", "jpg", "jpg_rgb", "png", "tif1", "png1", "jpg")


@dataclass(frozen=True, slots=True)
class SynthStyle:
    """Ranges drawn from for one style of synthetic form (lengths in mm, levels in grey 0-255)."""

    name: str
    parity: int  # MNIST test images used: those whose index % 2 == parity
    dpi: tuple[int, int]  # true scan resolution, dots per inch
    cell_mm: tuple[float, float]  # cell height
    aspect: tuple[tuple[float, float], ...]  # cell width / height; one range picked per field
    line_mm: tuple[float, float]  # ruling thickness (then clipped to 1-4 px)
    fonts: tuple[dr.Font, ...]  # see ``synth_draw.Font``
    fields: tuple[int, int]  # digit fields per page
    comb_cells: tuple[int, int]
    kinds: tuple[tuple[str, float], ...]  # field kind, weight
    p_dashed: float
    p_dropout: float  # light grey / colour ruling (grey and RGB pages only)
    p_frame: float  # outer frame thicker than the dividers
    p_blank: float  # per cell
    p_stray: float  # the digit crosses its cell border
    digit_h: tuple[float, float]  # digit height / cell interior height
    ink: tuple[int, int]  # pen grey level
    skew: float  # max |skew|, degrees
    p_upside: float
    noise: tuple[float, float]  # gaussian sigma, grey levels
    noisy_png: bool  # lossless grey/RGB pages get noise too (large files)
    blur_mm: tuple[float, float]
    light: float  # darkest lighting factor of the paper
    specks: tuple[int, int]  # pepper specks per page
    threshold: tuple[int, int]  # binarisation level
    jpeg_q: tuple[int, int]
    p_wrong_dpi: float
    p_scan_edge: float  # dark scanner-lid bar along one edge
    p_checkbox: float
    row_gap_mm: tuple[float, float]  # blank space below a row of fields
    lossy_dpi_max: int  # JPEG pages drawn at no more than this dpi (file size)
    max_bytes: int  # JPEG quality is lowered until the file fits (0: no limit)
    formats: tuple[tuple[str, float], ...]  # empty: the fixed sample cycle


STYLES = {
    "sample": SynthStyle(
        name="sample", parity=0, dpi=(200, 300), cell_mm=(6.0, 8.5), aspect=((0.8, 1.1),), line_mm=(0.15, 0.3),
        fonts=((cv2.FONT_HERSHEY_SIMPLEX, "sans", 400), (cv2.FONT_HERSHEY_DUPLEX, "sans", 600)),
        fields=(3, 5), comb_cells=(4, 12),
        kinds=(("comb", 0.45), ("boxes", 0.2), ("single", 0.15), ("grid", 0.2)), p_dashed=0.15, p_dropout=0.2,
        p_frame=0.15, p_blank=0.15, p_stray=0.1, digit_h=(0.5, 0.85), ink=(0, 80), skew=2.0, p_upside=0.1,
        noise=(0.0, 2.0), noisy_png=False, blur_mm=(0.02, 0.06), light=0.85, specks=(20, 150),
        threshold=(130, 160), jpeg_q=(65, 85), p_wrong_dpi=0.35, p_scan_edge=0.1, p_checkbox=0.0,
        row_gap_mm=(6.0, 16.0), lossy_dpi_max=250, max_bytes=280_000, formats=(),
    ),
    "holdout": SynthStyle(
        name="holdout", parity=1, dpi=(150, 600), cell_mm=(5.0, 9.0), aspect=((0.7, 0.8), (1.1, 1.3)),
        line_mm=(0.1, 0.4),
        fonts=((cv2.FONT_HERSHEY_COMPLEX, "uni", 400), (cv2.FONT_HERSHEY_TRIPLEX, "sans", 800),
               (cv2.FONT_HERSHEY_PLAIN, "sans", 300), (cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC, "italic", 500)),
        fields=(5, 8), comb_cells=(4, 16),
        kinds=(("comb", 0.35), ("boxes", 0.25), ("single", 0.15), ("grid", 0.25)), p_dashed=0.25, p_dropout=0.35,
        p_frame=0.4, p_blank=0.2, p_stray=0.15, digit_h=(0.45, 0.9), ink=(0, 100), skew=3.0, p_upside=0.15,
        noise=(2.0, 12.0), noisy_png=True, blur_mm=(0.03, 0.12), light=0.7, specks=(100, 1500),
        threshold=(110, 175), jpeg_q=(60, 85), p_wrong_dpi=0.5, p_scan_edge=0.3, p_checkbox=0.5,
        row_gap_mm=(4.0, 12.0), lossy_dpi_max=600, max_bytes=0,
        formats=(("png1", 0.25), ("tif1", 0.15), ("jpg", 0.25), ("jpg_rgb", 0.1), ("png", 0.15), ("png_rgb", 0.1)),
    ),
}


# ---------------------------------------------------------------- scanning


def _page_affine(w: int, h: int, angle: float, rotation: int) -> np.ndarray:
    """(3, 3) map upright page px -> saved image px (pixel-edge frame): rotate ``angle`` deg CCW, then ``rotation``."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1.0]])  # CCW on screen, y down
    flip = np.diag([-1.0, -1.0, 1.0]) if rotation == 180 else np.eye(3)
    to_c, from_c = np.eye(3), np.eye(3)
    to_c[:2, 2], from_c[:2, 2] = (-w / 2, -h / 2), (w / 2, h / 2)
    return from_c @ flip @ rot @ to_c


def _turn(img: np.ndarray, angle: float, rotation: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the upright page ``angle`` degrees CCW about its centre, then by ``rotation`` (0 or 180); same size.

    Returns the turned image (white where the page moved away) and the (3, 3) map from upright
    to turned pixels in the pixel-edge frame (see ``_page_affine``).
    """
    h, w = img.shape[:2]
    a = _page_affine(w, h, angle, rotation)
    if angle != 0.0:
        half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])  # pixel-centre -> pixel-edge frame (cv2 uses centres)
        m = np.linalg.inv(half) @ a @ half
        img = cv2.warpAffine(img, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(255, 255, 255))
    elif rotation == 180:
        img = np.ascontiguousarray(img[::-1, ::-1])
    return img, a


def _scan(c: PageCtx, img: np.ndarray, fmt: str, rotation: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate the scanner: geometry, scanner edge, blur, lighting, noise, specks, binarisation."""
    st, rng = c.st, c.rng
    h, w = img.shape[:2]
    angle = c.u(-st.skew, st.skew) if c.chance(0.85) else 0.0
    img, a = _turn(img, angle, rotation)
    meta: dict = {"applied_skew": round(angle, 3)}
    if c.chance(st.p_scan_edge):
        bw = max(2, c.px(c.u(0.3, 1.5)))
        side = int(rng.integers(4))
        sl = [np.s_[:, :bw], np.s_[:, w - bw :], np.s_[:bw, :], np.s_[h - bw :, :]][side]
        img[sl] = int(rng.integers(0, 50))
        meta["scan_edge"] = ["left", "right", "top", "bottom"][side]
    if c.chance(0.7):
        sigma = c.u(*st.blur_mm) * c.dpi / 25.4
        if fmt in ("png1", "tif1"):
            # A bilevel scan whose blur leaves the thinnest box ruling paler than the threshold
            # erases the boxes (no template-free reader could find them): keep sigma below
            # t / 2.6, where a t-px line still reaches ~80% of its contrast (erf(t / (2 sqrt(2) sigma))).
            sigma = min(sigma, c.thinnest / 2.6)
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        meta["blur_px"] = round(sigma, 2)
    if c.chance(0.6):
        lo = c.u(st.light, 0.97)
        gy, gx = np.mgrid[0:1:16j, 0:1:16j]
        th = c.u(0, 2 * np.pi)
        ramp = (np.cos(th) * gx + np.sin(th) * gy).astype(np.float32)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        fac = cv2.resize((255 * (1 - (1 - lo) * ramp)).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        img = (img.astype(np.float32) * (fac[..., None] if img.ndim == 3 else fac) / 255).astype(np.uint8)
        meta["light_min"] = round(lo, 3)
    sigma = c.u(*st.noise)
    if sigma > 0 and (fmt not in ("png", "png_rgb") or st.noisy_png):
        noise = rng.standard_normal((h, w), dtype=np.float32) * sigma
        img = np.clip(img.astype(np.float32) + (noise[..., None] if img.ndim == 3 else noise), 0, 255).astype(np.uint8)
        meta["noise"] = round(sigma, 2)
    n = int(rng.integers(st.specks[0], st.specks[1] + 1))
    xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
    rs, vs = rng.integers(0, max(2, c.dpi // 150), n), rng.integers(0, 70, n)
    for x, y, r, v in zip(xs, ys, rs, vs):
        cv2.circle(img, (int(x), int(y)), int(r), dr.colour_for(img, int(v)), -1)
    meta["specks"] = n
    if fmt in ("png1", "tif1"):
        thr = int(rng.integers(st.threshold[0], st.threshold[1] + 1))
        img = np.where(img >= thr, 255, 0).astype(np.uint8)
        meta["threshold"] = thr
    return img, a, meta


def _box(a: np.ndarray, rect: dr.Rect, w: int, h: int) -> list[float]:
    """Axis-aligned bounding box [x, y, w, h] (saved-image px) of a transformed upright rectangle, clipped."""
    x0, y0, x1, y1 = rect
    pts = a @ np.array([[x0, x1, x0, x1], [y0, y0, y1, y1], [1.0, 1, 1, 1]])
    bx0, by0 = max(0.0, float(pts[0].min())), max(0.0, float(pts[1].min()))
    bx1, by1 = min(float(w), float(pts[0].max())), min(float(h), float(pts[1].max()))
    return [round(bx0, 2), round(by0, 2), round(bx1 - bx0, 2), round(by1 - by0, 2)]


_LUMA = np.float32([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B, as Pillow's mode "L"


def _grey(pixels: np.ndarray, rgb: bool) -> np.ndarray:
    """Grey levels (float32) of grey pixels, or of RGB pixels (last axis R, G, B) by ``_LUMA``."""
    return pixels.astype(np.float32) @ _LUMA if rgb else pixels.astype(np.float32)


def ink_kept(img: np.ndarray, a: np.ndarray, core: np.ndarray, cell: list[float], pen_grey: float) -> float:
    """Share of a written digit's stroke core that the scan kept at half contrast or more.

    The core's pixel centres (upright page px) are mapped into the scanned image by ``a``
    and sampled there. The paper level is the 90th percentile of grey inside the digit's
    cell (1-bit pages: white); the pen, as scanned, is its drawn grey times that level's
    share of white (lighting darkens both alike); a core pixel counts as kept where the scan
    is darker than the midpoint of the two. Blur, a 1-bit threshold above a faint pen,
    noise and lighting all lower it: a digit keeping under half its core is degraded past
    what a reader, human or not, can be sure of.

    Args:
        img: (H, W) grey or (H, W, 3) RGB scanned page, before file compression; only
            the sampled pixels and the cell's window are converted to grey.
        a: (3, 3) map from upright page px to scanned px (pixel-edge frame; ``_page_affine``).
        core: (N, 2) float64 x, y pixel centres of the digit's stroke core, upright page px.
        cell: [x, y, w, h] the digit's cell in scanned px (``_box``).
        pen_grey: the pen's grey level as drawn, 0-255.

    Returns:
        The share in [0, 1] (0 when the core is empty).
    """
    if len(core) == 0:
        return 0.0
    h, w = img.shape[:2]
    rgb = img.ndim == 3
    pts = a @ np.vstack([core.T, np.ones(len(core))])
    xs, ys = np.floor(pts[0]).astype(int), np.floor(pts[1]).astype(int)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    x, y, cw, ch = (int(round(v)) for v in cell)
    win = _grey(img[max(0, y) : max(0, y) + max(1, ch), max(0, x) : max(0, x) + max(1, cw)], rgb)
    paper = float(np.percentile(win, 90)) if win.size else 255.0
    level = 0.5 * (paper + pen_grey * paper / 255.0)
    return float((_grey(img[ys[inside], xs[inside]], rgb) < level).sum() / len(core))


def ink_outside(core: np.ndarray, rect: tuple[int, int, int, int]) -> float:
    """Share of a written digit's stroke core drawn outside its cell's interior (a digit
    straying over the ruling, ``SynthStyle.p_stray``), both in upright page px.

    Args:
        core: (N, 2) float64 x, y pixel centres of the stroke core. rect: (x0, y0, x1, y1)
            pixel edges of the cell interior.

    Returns:
        The share in [0, 1] (0 when the core is empty).
    """
    if len(core) == 0:
        return 0.0
    x0, y0, x1, y1 = rect
    inside = (core[:, 0] >= x0) & (core[:, 0] < x1) & (core[:, 1] >= y0) & (core[:, 1] < y1)
    return float(1.0 - inside.mean())


def _page_truth(fields: list[DrawnField], a: np.ndarray, w: int, h: int, rotation: int, angle: float,
                img: np.ndarray, pen_grey: float) -> dict:
    out = []
    for i, f in enumerate(fields):
        union = (min(r[0] for r in f.cells), min(r[1] for r in f.cells), max(r[2] for r in f.cells), max(r[3] for r in f.cells))
        digits = []
        for r, d, core in zip(f.cells, f.digits, f.cores):
            box = _box(a, r, w, h)
            cell = {"box": box, "digit": None if d is None else str(d), "blank": d is None}
            if core is not None:
                cell["ink_kept"] = round(ink_kept(img, a, core, box, pen_grey), 3)
                cell["ink_outside"] = round(ink_outside(core, r), 3)
            digits.append(cell)
        out.append({
            "name": f"field_{i + 1}",
            "box": _box(a, union, w, h),
            "value": "".join(str(d) for d in f.digits if d is not None),
            "digits": digits,
        })
    return {"source": "", "page": 1, "width": w, "height": h, "rotation": rotation,
            "skew": round(-angle, 3) + 0.0, "fields": out}


def _make_page(rng: np.random.Generator, st: SynthStyle, fmt: str, rotation: int,
               images: np.ndarray, labels: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """Draw and scan one page: (saved image (H, W) or (H, W, 3) uint8, page truth, generator notes)."""
    dpi = int(rng.integers(st.dpi[0], st.dpi[1] + 1))
    if fmt.startswith("jpg"):
        dpi = min(dpi, st.lossy_dpi_max)
    if fmt.endswith("rgb"):
        dpi = min(dpi, 300)  # colour pages stay small
    paper = str(rng.choice(list(PAPER_MM)))
    w, h = (int(round(mm * dpi / 25.4)) for mm in PAPER_MM[paper])
    rgb = fmt.endswith("rgb")
    canvas = np.full((h, w, 3) if rgb else (h, w), 255, np.uint8)
    ink = int(rng.integers(st.ink[0], st.ink[1] + 1))
    pen: dr.Colour = (ink // 3, ink // 2, 90 + ink) if rgb and rng.random() < 0.5 else ink
    font = st.fonts[int(rng.integers(len(st.fonts)))]
    c = PageCtx(rng=rng, st=st, canvas=canvas, dpi=dpi, font=font, pen=pen, colour_dropout=rgb,
                dropout_ok=fmt not in ("png1", "tif1"), images=images, labels=labels, pool=pool, x0=0, x1=0, y1=0)
    c.x0, c.x1, c.y1 = c.px(c.u(15, 22)), w - c.px(c.u(15, 22)), h - c.px(c.u(15, 20))
    draw_page(c)
    img, a, meta = _scan(c, canvas, fmt, rotation)
    pen_grey = float(np.float32(c.pen) @ _LUMA) if isinstance(c.pen, tuple) else float(c.pen)
    truth = _page_truth(c.fields, a, w, h, rotation, meta["applied_skew"], img, pen_grey)
    meta.update({"dpi": dpi, "paper": paper, "format": fmt, "font": list(c.font), "mnist_indices": c.mnist_used})
    return img, truth, meta


# ---------------------------------------------------------------- files


def _save(path: Path, imgs: list[np.ndarray], fmt: str, dpi_tag: int | None, quality: int, max_bytes: int) -> int:
    """Write the page(s) of one file; JPEG quality steps down by 10 (not below 50) while the file exceeds ``max_bytes``.

    PNGs are optimised (smaller, slower) only when a size limit is set.

    Returns the JPEG quality used (``quality`` for other formats).
    """
    kw: dict = {} if dpi_tag is None else {"dpi": (dpi_tag, dpi_tag)}
    if fmt in ("png1", "tif1"):
        pages = [Image.fromarray(i > 127) for i in imgs]  # mode "1"
    else:
        pages = [Image.fromarray(i) for i in imgs]
    if fmt == "tif1":
        pages[0].save(path, "TIFF", compression="group4", save_all=len(pages) > 1, append_images=pages[1:], **kw)
    elif fmt.startswith("jpg"):
        pages[0].save(path, "JPEG", quality=quality, **kw)
        while max_bytes and path.stat().st_size > max_bytes and quality > 50:
            quality = max(50, quality - 10)
            pages[0].save(path, "JPEG", quality=quality, **kw)
    else:
        pages[0].save(path, "PNG", optimize=bool(max_bytes), **kw)  # optimize: small files, slow on noisy pages
    return quality


def generate_forms(out_dir: Path, count: int, seed: int, mnist_dir: Path, *, style: str = "sample", split: str = "test") -> Path:
    """Write ``count`` synthetic scanned form pages and their ``truth.json`` into ``out_dir``.

    Digits come from the MNIST **test** split (LeCun et al., 1998; ``split="train"`` makes
    forms to train on instead): images with an even
    index for ``style="sample"``, an odd index for ``style="holdout"``, so the two never share a
    digit image and neither shares one with training. Output is deterministic for a given
    (seed, style, count, MNIST files, library versions): same truth, same image bytes.

    Files are ``{style}_{NNN}.{png,jpg,tif}``: 1-bit PNG / TIFF G4, grey or RGB JPEG, grey or
    RGB PNG. When ``count >= 4`` the last two pages share one 2-page TIFF. In sample style the
    formats follow a fixed cycle so that every kind appears (pages ~60-300 KB at 200-300 dpi).

    Args:
        out_dir: folder to write into (created if needed); existing files of the same name are replaced.
        count: number of pages, >= 1.
        seed: int >= 0; drives every random choice through ``np.random.default_rng``.
        mnist_dir: folder holding the MNIST IDX files (see ``pipeline.data.load_mnist``).
        style: "sample" or "holdout" (see the module docstring).
        split: "test" (the default: forms to measure on) or "train": forms to train on,
            drawn from the MNIST training digits that ``digitform train`` trained on (its
            held-out validation digits are left out, ``data.validation_split``), with the
            same parity rule per style.

    Returns:
        Path of ``truth.json``: ``{"schema_version": 1, "generator": {...}, "pages": [...]}``, each
        page ``{"source", "page", "width", "height", "rotation", "skew", "fields": [{"name", "box",
        "value", "digits": [{"box", "digit", "blank"}]}]}`` with boxes [x, y, w, h] of cell interiors
        in saved-image pixels and fields/cells in the reading order of the upright form.

    Raises:
        ConfigError: unknown style, count < 1, seed < 0, or MNIST files missing. InputError: MNIST files corrupt.

    >>> generate_forms(Path("/tmp/forms"), 2, seed=0, mnist_dir=Path("data/mnist"))  # doctest: +SKIP
    PosixPath('/tmp/forms/truth.json')
    """
    if style not in STYLES:
        raise ConfigError(f"unknown synth style {style!r}", hint=f"use one of: {', '.join(STYLES)}")
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}", hint="pass --count 1 or more")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}", hint="pass --seed 0 or more")
    st = STYLES[style]
    if split not in ("test", "train"):
        raise ConfigError(f"unknown MNIST split {split!r}", hint="use test or train")
    images, labels = load_mnist(Path(mnist_dir), split)
    pool = np.arange(st.parity, len(images), 2)
    if split == "train":
        trained, _ = validation_split(len(images))
        pool = np.intersect1d(pool, trained)
    rng = np.random.default_rng([int(seed), list(STYLES).index(style)])
    if st.formats:
        names = [f for f, _ in st.formats]
        probs = np.array([p for _, p in st.formats])
        fmts = [str(f) for f in rng.choice(names, size=count, p=probs / probs.sum())]
    else:
        fmts = [_SAMPLE_CYCLE[i % len(_SAMPLE_CYCLE)] for i in range(count)]
    if count >= 4:
        fmts[-2:] = ["tif1", "tif1"]
    upside = rng.random(count) < st.p_upside
    if count >= 5 and not upside.any():
        upside[int(rng.integers(count))] = True
    page_rngs = rng.spawn(count)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pages, notes = [], []
    groups = [[i] for i in range(count)] if count < 4 else [[i] for i in range(count - 2)] + [[count - 2, count - 1]]
    for group in groups:
        fmt, imgs = fmts[group[0]], []
        name = f"{style}_{group[0] + 1:03d}{_EXT[fmt]}"
        for k, i in enumerate(group):
            img, truth, meta = _make_page(page_rngs[i], st, fmt, 180 if upside[i] else 0, images, labels, pool)
            truth.update(source=name, page=k + 1)
            imgs.append(img)
            pages.append(truth)
            notes.append({"source": name, "page": k + 1, **meta})
        frng = page_rngs[group[0]]
        dpi_tag = int(frng.choice([72, 96, 0])) if frng.random() < st.p_wrong_dpi else notes[-len(group)]["dpi"]
        quality = int(frng.integers(st.jpeg_q[0], st.jpeg_q[1] + 1))
        quality = _save(out_dir / name, imgs, fmt, dpi_tag or None, quality, st.max_bytes)
        for n in notes[-len(group):]:
            n.update(dpi_tag=dpi_tag or None, **({"jpeg_quality": quality} if fmt.startswith("jpg") else {}))
        log.debug("wrote %s (%d page(s), %s)", name, len(group), fmt)
    truth_path = out_dir / "truth.json"
    doc = {"schema_version": SCHEMA_VERSION,
           "generator": {"style": style, "seed": int(seed), "count": count, "mnist_split": split,
                         "mnist_indices": "even" if st.parity == 0 else "odd", "pages": notes},
           "pages": pages}
    truth_path.write_text(json.dumps(doc, indent=1) + "\n")
    log.info("wrote %d synthetic %s page(s) and %s", count, style, truth_path)
    return truth_path
