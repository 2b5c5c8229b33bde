"""Every dataclass that crosses a stage boundary (read this file first).

The chain, one page at a time::

    Page -> AlignedPage -> FieldBoxes[DigitBox] -> DigitCrop -> DigitPrediction
         -> DigitResult -> FieldResult -> FormResult

Coordinate frames:

* **source pixels**: pixels of the image as stored on disk (x to the right, y down,
  origin at the top-left corner of the top-left pixel). Every box that leaves the
  pipeline (``DigitBox.box``, ``FieldResult.box``, the JSON/CSV output) is in this frame,
  whatever rotation or deskew was applied inside.
* **aligned pixels**: pixels of ``AlignedPage.image`` (the page after orientation
  correction and deskew). ``AlignedPage.to_source`` maps aligned -> source.

All dataclasses are frozen with slots; arrays inside them must not be mutated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h


class PageStatus(str, enum.Enum):
    """Outcome of one page, as written in the ``status`` column/key."""

    OK = "ok"  # read; nothing flagged
    NEEDS_REVIEW = "needs_review"  # read; at least one field flagged
    FAILED = "failed"  # could not be read; ``error`` says why


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded page of one scan file."""

    source: Path  # the file as given/found on the command line
    index: int  # 0-based page number inside the file (multi-page TIFF)
    image: np.ndarray  # (H, W) uint8 grey, 0 = black ink, 255 = white paper; as stored
    dpi: tuple[float, float] | None  # (x, y) dots per inch from the file's tag; not trusted

    @property
    def number(self) -> int:
        """1-based page number, as written to the output."""
        return self.index + 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in source pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class AlignedPage:
    """A page after orientation correction and deskew."""

    page: Page
    image: np.ndarray  # (H', W') uint8 grey in aligned pixels, 0 = ink, 255 = paper
    to_source: np.ndarray  # (3, 3) float64 homography: aligned px -> source px
    rotation: int  # quarter-turn correction applied, degrees in {0, 90, 180, 270}, counter-clockwise
    skew: float  # deskew rotation applied, degrees, counter-clockwise positive
    score: float  # confidence of the alignment in [0, 1] (1 = sure)
    ink: np.ndarray | None = None  # (H', W') float32 morph.normalise_ink(image) when align already has it, else None

    def box_to_source(self, box: Box) -> Box:
        """Map an axis-aligned box from aligned pixels to its bounding box in source pixels.

        Args:
            box: (x, y, w, h) in aligned pixels.

        Returns:
            (x, y, w, h) in source pixels: the bounding box of the four mapped corners.
        """
        x, y, w, h = box
        pts = np.array([[x, y, 1.0], [x + w, y, 1.0], [x, y + h, 1.0], [x + w, y + h, 1.0]]).T
        m = self.to_source @ pts
        m = m[:2] / m[2]
        x0, y0 = m.min(axis=1)
        x1, y1 = m.max(axis=1)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


@dataclass(frozen=True, slots=True)
class DigitBox:
    """One printed digit cell, found on an aligned page."""

    field_index: int  # 0-based index of its field in reading order on the page
    position: int  # 0-based cell index inside the field, left to right
    box: Box  # x, y, w, h of the cell interior in source pixels
    aligned_box: tuple[int, int, int, int]  # x, y, w, h of the cell interior in aligned pixels


@dataclass(frozen=True, slots=True)
class FieldBoxes:
    """A field: a comb (adjacent cells sharing borders), a row of separate boxes, or one cell."""

    index: int  # 0-based, reading order (top to bottom, then left to right)
    name: str  # "field_1", ... when no template names it
    box: Box  # x, y, w, h of the union of its cells in source pixels
    cells: tuple[DigitBox, ...]  # left to right
    kind: str = "comb"  # "comb" | "boxes" | "single"
    in_text: bool = False  # a single cell whose frame stands in a line of printed letters of its height (boxes._in_text_line)


@dataclass(frozen=True, slots=True)
class PageLayout:
    """What box finding learned about an aligned page; segmentation reads its arrays."""

    aligned: AlignedPage
    fields: tuple[FieldBoxes, ...]  # reading order
    ink: np.ndarray  # (H', W') float32 in [0, 1], 1 = darkest ink, aligned pixels, lighting flattened
    lines: np.ndarray  # (H', W') uint8 0/255 mask of the ruling lines, aligned pixels
    line_width: float  # typical ruling-line thickness, aligned pixels


@dataclass(frozen=True, slots=True)
class DigitCrop:
    """One cell, segmented and normalised like MNIST (LeCun et al., 1998)."""

    cell: DigitBox
    pixels: np.ndarray  # (28, 28) float32 in [0, 1], ink = 1.0, paper = 0.0; digit in 20x20, CoM-centred
    blank: bool  # True when the cell holds no mark
    ink: float  # share of the cell interior covered by kept ink, in [0, 1]
    stray: float = 0.0  # share of the cell interior covered by ink judged to belong elsewhere (dropped marks), in [0, 1]
    on_line: float = 0.0  # longest stretch of a box line thickened by a stroke lying on it, in cell sides, in [0, 1]; measured for blank cells and digits read from that stroke, else 0
    extent: float = 1.0  # the kept mark's bounding box, longer side, in cell heights (1.0 when not measured)
    in_other: float = 0.0  # share of the kept mark's pixels lying inside another found cell, in [0, 1]
    run_on: float = 0.0  # kept mark's length along the edges of the searched region (strokes running on beyond it), in cell heights
    vote_pixels: np.ndarray | None = None  # (28, 28) float32 crop for the orientation vote when it differs from ``pixels`` (speckled strokes), else None
    outside: bool = False  # the mark read lies mostly outside the cell: nothing of the cell's own was found (segment._claim_straying_mark)
    reread: bool = False  # another segmentation (own walls, drop_running_in or a wider margin; run.reread_doubtful) read after the first reading was flagged; the verdict stays flagged
    disputed: bool = False  # the segmentation that keeps strokes on thickened box lines confidently reads another digit (run.reread_doubtful); the verdict is flagged


@dataclass(frozen=True, slots=True)
class DigitPrediction:
    """The classifier's verdict on one crop."""

    digit: int | None  # 0-9, or None for a blank cell
    confidence: float  # calibrated probability that ``digit`` is right, in [0, 1]
    margin: float  # top-1 minus top-2 probability, in [0, 1]
    alternatives: tuple[tuple[str, float], ...]  # runner-up (digit, probability), best first
    reject: float = 0.0  # probability that the mark is not a digit at all (letter, cross, scribble), in [0, 1]


@dataclass(frozen=True, slots=True)
class DigitResult:
    """One cell's crop and prediction, with the review flag decided by ``assemble``."""

    cell: DigitBox
    crop: DigitCrop
    prediction: DigitPrediction
    flagged: bool  # True when a person should look at this digit
    flags: tuple[str, ...] = ()  # why it is flagged (``assemble`` reason names, e.g. "low_confidence"); empty when not flagged

    @property
    def blank(self) -> bool:
        return self.crop.blank


@dataclass(frozen=True, slots=True)
class FieldResult:
    """One field read from one page."""

    index: int  # 0-based, reading order on the page
    name: str
    box: Box  # x, y, w, h in source pixels
    value: str  # the non-blank digits in reading order
    confidence: float  # probability that the whole value is right (product over cells), in [0, 1]
    flagged: bool  # any digit flagged, or a field-level flag raised
    flags: tuple[str, ...]  # machine-readable reasons, e.g. "low_confidence"
    digits: tuple[DigitResult, ...]  # one per cell, left to right (blank cells included)


@dataclass(frozen=True, slots=True)
class FormResult:
    """Everything read from one page; a failed page carries its error instead of fields."""

    source: Path
    page: int  # 1-based page number in the file
    status: PageStatus
    error: str | None  # one-line reason when status is FAILED, else None
    width: int  # source pixels; 0 when the page could not be decoded
    height: int  # source pixels; 0 when the page could not be decoded
    fields: tuple[FieldResult, ...] = field(default_factory=tuple)
    rotation: int = 0  # quarter-turn correction applied, degrees
    skew: float = 0.0  # deskew applied, degrees

    @classmethod
    def failed(cls, source: Path, page: int, error: str, width: int = 0, height: int = 0) -> FormResult:
        """A page that could not be read; it still gets a row in every output."""
        return cls(source=source, page=page, status=PageStatus.FAILED, error=error, width=width, height=height)


@dataclass(frozen=True, slots=True)
class ImagePrediction:
    """The verdict on one single-digit image (``digitform predict``); not part of a form."""

    source: Path  # the image file, as given or found on the command line
    page: int  # 1-based page number in the file (multi-page TIFF)
    digit: int | None  # 0-9, or None when the image is blank or could not be read
    confidence: float  # calibrated probability that ``digit`` is right, in [0, 1]; 0 when digit is None
    alternatives: tuple[tuple[str, float], ...]  # runner-up (digit, probability), best first
    flagged: bool  # confidence below the threshold, a blank image, or an unreadable file
    blank: bool = False  # the image holds no mark
    reject: float = 0.0  # probability that the mark is not a digit (11-class models), in [0, 1]
    error: str | None = None  # one-line reason when the file could not be read, else None
