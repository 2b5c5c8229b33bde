"""Scan files on disk -> ``Page``: find the scans, decode every page to (H, W) uint8 grey.

Boxes downstream are reported in *source pixels*: pixels as stored on disk. EXIF orientation
tags are therefore ignored on purpose (the page is not rotated on decode); ``align`` finds
the page orientation from the content instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, NoInputError
from .types import Page

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DEFAULT_MAX_PIXELS = 200_000_000  # ~ an A3 page at 1200 dpi; ``--max-megapixels`` raises it

_FORMATS_TEXT = "PNG, JPEG, BMP or TIFF"

# What Pillow raises on damaged data besides OSError: PngImagePlugin raises SyntaxError,
# several plugins ValueError / EOFError / struct.error / IndexError on short or bad headers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)


def find_scans(paths: Sequence[Path]) -> list[Path]:
    """List the scan files to process, in a stable order.

    Each argument is taken in command-line order. A folder is searched recursively for
    files whose suffix is in ``SUPPORTED_SUFFIXES`` (case-insensitive), skipping hidden
    files and folders (name starting with ``.``) below it, and sorted by path string. A
    file named explicitly is always kept, even with an unknown suffix or when it does not
    exist: ``read_pages`` then raises an ``InputError`` for it, so the user sees it as a
    failed page in the output instead of it being silently dropped. A file reached twice
    (same absolute path) is kept once, at its first position.

    Args:
        paths: files and/or folders, as given on the command line.

    Returns:
        The files, as found (relative paths stay relative).

    Raises:
        NoInputError: nothing at all was found.

    >>> find_scans([Path("missing.png")])  # named explicitly: kept, fails later
    [PosixPath('missing.png')]
    """
    found: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            found.append(p)

    for arg in paths:
        arg = Path(arg)
        if arg.is_dir():
            files = _scan_folder(arg)
            if not files:
                log.warning("no %s files under %s", "/".join(sorted(SUPPORTED_SUFFIXES)), arg)
            for p in files:
                add(p)
        else:
            add(arg)
    if not found:
        named = ", ".join(str(p) for p in paths) or "(no paths given)"
        raise NoInputError(f"no image files found in: {named}")
    return found


def _scan_folder(folder: Path) -> list[Path]:
    """Supported, non-hidden files below ``folder`` (recursive), sorted by path string."""

    def on_error(err: OSError) -> None:
        log.warning("cannot list %s: %s", err.filename, err.strerror or err)

    files: list[Path] = []
    for root, dirs, names in os.walk(folder, onerror=on_error):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES:
                files.append(Path(root) / name)
    files.sort(key=str)
    return files


def read_pages(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Page]:
    """Decode every page of one scan file.

    Every page of a TIFF is read (multi-page scans); other formats give their first frame
    only (a JPEG's MPO preview or a GIF's animation frames are not pages). Each page is
    converted to grey:

    * ``1`` (1-bit, e.g. CCITT Group 4 TIFF from document scanners): 0 / 255;
    * ``L``: as stored;
    * ``RGB`` / ``CMYK`` / ``P`` / other colour modes: the mean of luma (ITU-R 601-2) and
      the darkest of R, G, B per pixel. Box rulings printed in a light "dropout colour" (red,
      blue) absorb one channel strongly: luma alone leaves a light blue ruling at ~80%
      white, too faint to find on a noisy scan; the darkest channel alone keeps it at ~60%
      but also brings out the colour noise of JPEG chroma subsampling. The mean was chosen
      by measurement on synthetic forms (cells found, luma / mean / darkest: holdout style
      seed 200, 88.8% / 92.9% / 92.9%; sample style seed 7000, 98.8% / 98.6% / 97.7%).
      Black and blue pen ink stay dark;
    * ``RGBA`` / ``LA`` / ``PA`` / ``P`` with transparency: composited onto white, so a
      transparent background is paper;
    * ``I;16*`` (16-bit): scaled by 255 / 65535; ``I`` (32-bit int): the same when its values
      lie in [0, 65535], else stretched min..max; ``F``: [0, 1] or [0, 255] taken as such,
      else stretched min..max.

    The EXIF orientation tag is ignored: the image is returned as stored on disk, so every
    box in the output is in source pixels of the file.

    The image size is checked against ``max_pixels`` from the header, before any pixel is
    decoded (decompression bombs). Pillow's own ``MAX_IMAGE_PIXELS`` check is switched off
    while this function calls into Pillow (it is restored before each page is yielded), so
    ``max_pixels`` is the only limit; this is not safe against other threads changing
    ``PIL.Image.MAX_IMAGE_PIXELS`` at the same time.

    This is a generator: errors are raised when the page concerned is reached. For a
    multi-page TIFF whose page k is corrupt, pages 0..k-1 are yielded first.

    Args:
        path: the scan file.
        max_pixels: largest accepted width * height of one page, pixels.

    Yields:
        ``Page`` objects, ``index`` 0-based; ``image`` is (H, W) uint8, 0 = ink, 255 = paper;
        ``dpi`` is the file's (x, y) dots-per-inch tag as floats, or None when absent or not
        positive.

    Raises:
        InputError: one-line message naming the file (and page): file not found, a
            directory, empty (0 bytes), not a supported image, corrupt or truncated data,
            zero-size, or larger than ``max_pixels``. The 0-based page it concerns is in the
            exception's ``page_index`` attribute (0 for errors about the whole file).
    """
    path = Path(path)
    _check_file(path)
    try:
        with _pillow_limit_off():
            im = Image.open(path)
    except UnidentifiedImageError:
        what = "a PDF, which is not supported" if path.suffix.lower() == ".pdf" else "not a supported image"
        raise _input_error(path, None, f"{what} (expected {_FORMATS_TEXT})") from None
    except PermissionError:
        raise _input_error(path, None, "cannot read: permission denied") from None
    except _DECODE_ERRORS as e:
        raise _input_error(path, None, f"corrupt image header ({_reason(e)})") from e

    with im:
        multi = im.format == "TIFF"
        index = 0
        while True:
            if index > 0:
                if not multi:
                    return
                try:
                    with _pillow_limit_off():
                        im.seek(index)
                except EOFError:
                    return
                except _DECODE_ERRORS as e:
                    raise _input_error(path, index, f"corrupt page directory ({_reason(e)})") from e
            page_no = index if multi else None
            image = _decode(im, path, page_no, max_pixels)
            yield Page(source=path, index=index, image=image, dpi=_dpi(im.info.get("dpi")))
            index += 1


def _check_file(path: Path) -> None:
    """Raise ``InputError`` for a missing path, a folder or an empty file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _input_error(path, None, "file not found") from None
    except OSError as e:
        raise _input_error(path, None, f"cannot access ({e.strerror or e})") from None
    if path.is_dir():
        raise _input_error(path, None, "is a directory, not an image file")
    if st.st_size == 0:
        raise _input_error(path, None, "empty file (0 bytes)")


def _decode(im: Image.Image, path: Path, page: int | None, max_pixels: int) -> np.ndarray:
    """Size checks, full decode and grey conversion of the current frame of ``im``."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise _input_error(path, page, f"image has zero size ({w} x {h} pixels)")
    if w * h > max_pixels:
        raise _input_error(
            path,
            page,
            f"image too large: {w} x {h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f} megapixels (raise it with --max-megapixels)",
            hint="raise the limit only for a trusted file; else re-scan at a lower resolution (300 dpi is plenty)",
        )
    try:
        with _pillow_limit_off():
            im.load()
            return _to_grey(im)
    except MemoryError:
        raise _input_error(path, page, f"not enough memory to decode {w} x {h} pixels") from None
    except _DECODE_ERRORS as e:
        raise _input_error(path, page, f"corrupt or truncated image data ({_reason(e)})") from e


def _to_grey(im: Image.Image) -> np.ndarray:
    """(H, W) uint8 grey of a loaded frame, 0 = ink, 255 = paper (see ``read_pages``)."""
    mode = im.mode
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if mode in ("LA", "La"):
            la = np.asarray(im.convert("LA"), dtype=np.float32)
            grey, alpha = la[..., 0], la[..., 1] / 255.0
        else:
            rgba = im.convert("RGBA")
            grey = _colour_grey(rgba).astype(np.float32)
            alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        out = 255.0 - (255.0 - grey) * alpha  # "over" a white background
        return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    if mode.startswith("I;16"):
        return _scale16(np.asarray(im))
    if mode == "I":
        a = np.asarray(im)
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return _scale16(a)
        return _stretch(a)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            return np.clip(np.rint(np.nan_to_num(a) * 255.0), 0, 255).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
        return _stretch(np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo))
    if mode == "L":
        return np.array(im, dtype=np.uint8)
    if mode == "1":
        return np.array(im.convert("L"), dtype=np.uint8)
    return _colour_grey(im)  # RGB, P, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _colour_grey(im: Image.Image) -> np.ndarray:
    """(H, W) uint8 mean of a colour frame's darkest R, G, B channel and its luma, rounded
    (see ``read_pages``); any alpha channel is ignored."""
    rgb = im.convert("RGB")
    darkest = np.asarray(rgb, dtype=np.uint8).min(axis=2).astype(np.uint16)
    luma = np.asarray(rgb.convert("L"), dtype=np.uint16)
    return ((darkest + luma + 1) // 2).astype(np.uint8)


def _scale16(a: np.ndarray) -> np.ndarray:
    """16-bit values in [0, 65535] -> uint8, rounded (65535 -> 255)."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(a: np.ndarray) -> np.ndarray:
    """Linear min..max -> 0..255 (a flat image becomes white paper)."""
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if hi <= lo:
        return np.full(a.shape, 255, dtype=np.uint8)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _dpi(value: object) -> tuple[float, float] | None:
    """The (x, y) dpi tag as floats; None when absent, malformed or not positive."""
    if value is None:
        return None
    try:
        if isinstance(value, (tuple, list)):
            x, y = (float(value[0]), float(value[1])) if len(value) >= 2 else (float(value[0]),) * 2
        else:
            x = y = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    return x, y


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Switch off Pillow's decompression-bomb check; ``max_pixels`` is checked instead."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _reason(e: BaseException) -> str:
    """An exception as a short one-line reason."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _input_error(path: Path, page: int | None, what: str, *, hint: str | None = None) -> InputError:
    """``InputError`` with a one-line message naming the file and, for multi-page files, the page."""
    where = f"{path}" if page is None else f"{path} page {page + 1}"
    message = f"{where}: {what}".replace("\r", " ").replace("\n", " ")
    err = InputError(message, hint=hint)
    err.page_index = 0 if page is None else page
    return err
