"""The one module that chains the stages: scan paths -> FormResult per page (``process_batch``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .align import align_page
from .assemble import assemble_form
from .boxes import find_fields
from .classify.checkpoint import LoadedModel, load_checkpoint
from .classify.predictor import BasePredictor, Predictor, prediction_list
from .config import RunSettings
from .errors import ConfigError, DigitformError, InputError
from .io import find_scans, read_pages
from .orient import TextOrientation, text_orientation
from .segment import SegmentSettings, neighbours_strays, segment_cell, segment_cell_both, segment_without
from .classify.predictor import resolve_device
from .types import DigitCrop, DigitPrediction, FormResult, Page, PageLayout, PageStatus

log = logging.getLogger(__name__)

# Minimum gain in mean log-confidence for reading a page upside down; below it the page is
# read as stored. Symmetric digits (0, 1, 8) score alike both ways, so a margin is needed.
ORIENTATION_MARGIN = 0.1
REREAD_MARGIN = 0.45  # search margin of the wider re-reading of flagged digits, cell sides (SegmentSettings.margin: 0.3)

# Engine that ``engine: auto`` picks on the CPU. Measured with benchmarks/engine_speed.py on
# a 2-core machine (shipped model, batch sizes 1-1024): ONNX Runtime read 2.6-4.5x more crops
# per second than PyTorch eager with 1 thread (8,500-9,200 vs 1,900-3,500 crops/s) and 7-48x
# with 2 threads (7,500-10,800 vs 190-1,300 crops/s; the machine was shared with a training
# job, which hurts PyTorch's threads most), with the same probabilities to within 1e-6.
# On CUDA: torch.
CPU_DEFAULT_ENGINE = "onnx"


def resolve_engine(engine: str, device_setting: str, device_type: str) -> str:
    """Map the ``engine`` setting to "torch" | "onnx".

    Args:
        engine: "auto" | "torch" | "onnx" (``RunSettings.engine``).
        device_setting: "auto" | "cpu" | "cuda" as given (``RunSettings.device``).
        device_type: the resolved torch device type, "cpu" | "cuda".

    Raises:
        ConfigError: "onnx" asked for together with ``--device cuda`` (ONNX Runtime runs
            on the CPU here).
    """
    if engine == "auto":
        return "torch" if device_type == "cuda" else CPU_DEFAULT_ENGINE
    if engine == "onnx" and device_setting == "cuda":
        raise ConfigError("--engine onnx runs on the CPU only; it cannot be combined with --device cuda",
                          hint="use --engine torch for the GPU, or --device cpu")
    return engine


def load_predictor(settings: RunSettings, model: LoadedModel | None = None) -> BasePredictor:
    """Build the classifier the settings ask for (once per run).

    * ``settings.model`` ending in ``.onnx``: an exported model (``digitform export``) run by
      ONNX Runtime on the CPU, with the metadata beside it (``MODEL.onnx.json``).
    * otherwise a PyTorch checkpoint (``model``, or ``settings.model``, or the shipped
      weights), run by PyTorch or, for ``engine: onnx`` (the CPU default of ``auto``),
      exported to ONNX in memory and run by ONNX Runtime.

    Raises:
        ModelError: bad checkpoint or ONNX file. ConfigError: an engine/device/model
            combination that cannot work (``--engine torch`` with a ``.onnx`` model,
            ``--device cuda`` without a GPU or with ``--engine onnx``).
    """
    device = resolve_device(settings.device)
    path = settings.model
    if model is None and path is not None and Path(path).suffix.lower() == ".onnx":
        if settings.engine == "torch":
            raise ConfigError(f"--model {path}: an ONNX model cannot run with --engine torch",
                              hint="use --engine onnx or auto, or pass the .pt checkpoint")
        if settings.device == "cuda":
            raise ConfigError(f"--model {path}: ONNX models run on the CPU only", hint="use --device cpu or auto")
        from .export import load_onnx_predictor

        return load_onnx_predictor(Path(path), settings.batch_size)
    if model is None:
        model = load_checkpoint(path, device)
    engine = resolve_engine(settings.engine, settings.device, device.type)
    if engine == "onnx":
        try:
            from .export import onnx_predictor_for

            return onnx_predictor_for(model, settings.batch_size)
        except ImportError as exc:
            if settings.engine == "onnx":
                raise ConfigError(f"--engine onnx: {exc}", hint="pip install onnx onnxruntime, or use --engine torch") from exc
            log.warning("ONNX Runtime unavailable (%s); running PyTorch", exc)
    return Predictor(model, device, settings.batch_size)


@dataclass
class BatchSummary:
    """Counts over one ``process_batch`` run."""

    files: int = 0
    pages: int = 0
    ok: int = 0
    needs_review: int = 0
    failed: int = 0
    digits: int = 0
    flagged_digits: int = 0
    errors: list[str] = field(default_factory=list)  # one line per failed page

    def add(self, form: FormResult) -> None:
        self.pages += 1
        if form.status is PageStatus.FAILED:
            self.failed += 1
            self.errors.append(f"{form.source} page {form.page}: {form.error}")
            return
        if form.status is PageStatus.NEEDS_REVIEW:
            self.needs_review += 1
        else:
            self.ok += 1
        for f in form.fields:
            for d in f.digits:
                if not d.blank:
                    self.digits += 1
                    self.flagged_digits += int(d.flagged)


@dataclass
class _Prepared:
    layout: PageLayout
    crops: list[list[DigitCrop]]
    flipped: list[list[DigitCrop]] | None
    text: TextOrientation | None = None  # the printed text's verdict on orientation (None: not measured)


def prepare_page(page: Page, *, orientation: bool = True) -> _Prepared:
    """Align, find boxes and segment one page (the CPU-bound part, before classification)."""
    layout = find_fields(align_page(page))
    if not orientation:
        return _Prepared(layout, [[segment_cell(layout, c) for c in f.cells] for f in layout.fields], None)
    pairs = [[segment_cell_both(layout, c) for c in f.cells] for f in layout.fields]
    crops = [[up for up, _ in fp] for fp in pairs]
    flipped = [[turned for _, turned in fp] for fp in pairs]
    inked = any(not c.blank for fc in crops for c in fc)
    return _Prepared(layout, crops, flipped if inked else None, text_orientation(layout) if inked else None)


def _vote(c: DigitCrop) -> np.ndarray:
    """The (28, 28) crop that votes on the page's orientation."""
    return c.pixels if c.vote_pixels is None else c.vote_pixels


def classify_pages(items: Sequence[_Prepared], predictor: BasePredictor, threshold: float) -> list[FormResult]:
    """Classify the crops of several pages in shared batches, then regroup and assemble per page.

    Orientation: the printed text decides where it is clear (``orient.text_orientation``);
    elsewhere, when a page's crops read upside down give a mean log-confidence higher by
    more than ``ORIENTATION_MARGIN``, the page is read upside down. Flagged digits are then
    read a second time (``reread_doubtful``).
    """
    stacks: list[np.ndarray] = []
    spans = []
    for it in items:
        flat = [c for fc in it.crops for c in fc]
        idx = [i for i, c in enumerate(flat) if not c.blank]
        flat_f = [c for fc in it.flipped for c in fc] if it.flipped is not None else []
        by_text = bool(flat_f) and it.text is not None and it.text.decided
        if by_text:  # the printed text decides: no vote, only the crops of its orientation are read
            flat, flat_f = (flat_f if it.text.upside_down else flat), []
        stacks += [_vote(flat[i]) for i in idx] + [_vote(flat_f[i]) for i in idx if flat_f]
        spans.append((flat, idx, flat_f, by_text and it.text.upside_down))
    # crops whose reading differs from their vote crop (speckled strokes) are read again,
    # in each orientation voted on, after the vote
    again = [fl[i] for flat, idx, flat_f, _ in spans for fl in (flat, flat_f) if fl for i in idx if fl[i].vote_pixels is not None]
    stacks += [c.pixels for c in again]
    probs_all = predictor.probabilities(np.stack(stacks)) if stacks else np.zeros((0, 10), np.float32)
    reread = {id(c): probs_all[len(stacks) - len(again) + j] for j, c in enumerate(again)}
    pages, pos = [], 0
    for it, (flat, idx, flat_f, upside_down) in zip(items, spans):
        p0 = probs_all[pos : pos + len(idx)]
        pos += len(idx)
        if flat_f:
            p1 = probs_all[pos : pos + len(idx)]
            pos += len(idx)
            s0 = float(np.log(p0[:, :10].max(1) + 1e-9).mean())  # digit classes only, not "reject"
            s1 = float(np.log(p1[:, :10].max(1) + 1e-9).mean())
            upside_down = s1 > s0 + ORIENTATION_MARGIN
            log.debug("orientation by the digits: %.3f vs %.3f -> %s", s0, s1, 180 if upside_down else 0)
            if upside_down:
                flat, p0 = flat_f, p1
        if any(flat[i].vote_pixels is not None for i in idx):
            p0 = np.stack([reread[id(flat[i])] if flat[i].vote_pixels is not None else p0[j] for j, i in enumerate(idx)])
        preds = prediction_list(flat, idx, p0)
        crops_pf, preds_pf, k = [], [], 0
        for f in it.layout.fields:
            n = len(f.cells)
            crops_pf.append(flat[k : k + n])
            preds_pf.append(preds[k : k + n])
            k += n
        pages.append((it.layout, crops_pf, preds_pf, upside_down))
    return reread_doubtful(pages, [assemble_form(lay, c, p, threshold=threshold, upside_down=u) for lay, c, p, u in pages], predictor, threshold)


# Read unflagged digits again with the ink of thickened walls kept (``reread_doubtful``).
WALL_CHECK = True
# Read flagged digits once more with the neighbours' strays taken off the page (segment.neighbours_strays).
NEIGHBOURS_ERASED = True
RULE_STROKES = True  # the wall reading keeps strokes on the top and bottom rulings too (SegmentSettings.rule_strokes)
# An unflagged digit that the wall reading reads as another digit with at least this
# confidence, less confidently than the first reading, is flagged ``readings_differ``
# (twenty-seventh session; chosen on the 18 development sets, README).
DISPUTE_LEVEL = 0.9


def reread_doubtful(
    pages: list[tuple[PageLayout, list[list[DigitCrop]], list[list[DigitPrediction]], bool]],
    forms: list[FormResult],
    predictor: BasePredictor,
    threshold: float,
) -> list[FormResult]:
    """Read each flagged digit again from a second segmentation, and keep the likelier verdict.

    The second segmentation removes the cell's own rulings as found in its raw ink
    (``SegmentSettings.own_walls``) instead of the page's line mask, which takes in the
    handwriting that touches a ruling: a digit drawn over its box keeps more of its strokes.
    Neither segmentation is better on every cell (used alone instead of the first, it read
    24 digits right that were wrong and 25 wrong that were right on the development forms),
    so it is tried only where the first reading was flagged, and its verdict is kept when
    the model gives it a higher confidence. A verdict taken from it stays flagged
    (``reread``): the more confident of two readings overstates its confidence. On the
    development forms (8 sets, 6,864 written digits, layouts fixed): 17 digits read right
    that were wrong, 5 read wrong that were right, the same digits flagged and the same
    errors left unflagged. Letting the chosen verdict's own confidence decide its flag
    instead left 3 more errors unflagged for 38 fewer flagged. Blank verdicts are not
    re-read.

    Two more segmentations are read too, and the likeliest of the verdicts is kept:
    one that leaves out a neighbour's stroke running into the cell from beyond the searched
    region, beside the cell's own digit (``SegmentSettings.drop_running_in``), and one that
    follows strokes ``REREAD_MARGIN`` cell sides out instead of 0.3, which sees more of a
    stroke crossing the ruling. On the 16 development sets the first read 5 more
    ``holdout``-style and 3 more ``sample``-style digits right (of 11,562 and 6,843) and
    the second 2 and 4 more again (10 gained and 8 lost on ``holdout``), with the same digits
    flagged and the same errors left unflagged. Applied to every cell in the first
    segmentation instead, ``drop_running_in`` read 3 and 2 more right and flagged 11 fewer,
    but left 4 more misreads unflagged (a digit's own stroke straying far over its wall was
    dropped as a neighbour's); the wider margin for every cell lost digits (see README).

    A fifth (twenty-second session) keeps the ink of the cell's walls where a stroke
    thickens them (``SegmentSettings.wall_strokes``): the stem of a "9" drawn along its right
    wall, removed with the wall, had left a "0". With ``WALL_CHECK`` it is also read for every
    digit left unflagged (its crop differs only where a wall is thickened), and where it
    reads another digit more confidently, that verdict is kept and flagged ``reread``: the
    "0" above was read at 0.984, over the threshold (seed 19000 ``sample_043``).

    Since the twenty-seventh session the wall reading also keeps a stroke lying on the
    cell's top or bottom ruling on the cell's side (``SegmentSettings.rule_strokes``,
    ``RULE_STROKES``): the foot of a "2" removed with the bottom ruling had left a "7" read
    at 0.99. And an unflagged digit that it reads as another digit at ``DISPUTE_LEVEL`` or
    more, less confidently, keeps its verdict and is flagged ``readings_differ``
    (``DigitCrop.disputed``). On the 18 development sets: 17 more digits read right (3
    ``sample``-style, 14 ``holdout``-style), unflagged errors 18 -> 16 and 65 -> 57, for 24
    more digits flagged of 26,120 read; on held-out seeds 33000-34001 about even on digits
    right (3 gained, 4 lost, all among digits flagged either way) with 1 fewer unflagged
    error (README, twenty-seventh session).

    A sixth (twenty-ninth session) segments a flagged digit's cell again after taking off
    the page's ink the strokes its neighbours keep as their own beyond their rulings
    (``segment.neighbours_strays``, ``segment.segment_without``; ``NEIGHBOURS_ERASED``): a
    neighbour's digit reaching into the cell and touching its digit had joined it in one
    component, and the crop held both. On 6 development sets (seeds 20000, 22000, 24000,
    21001, 23001, 25001) it read 18 more flagged digits right and 9 right ones wrong (all
    flagged either way): net +4 of 5,347 ``holdout``-style and +5 of 3,347 ``sample``-style
    written digits, no change in what is flagged.

    Args:
        pages: per page, its layout, crops and predictions per field and cell (layout
            order), and whether it was read upside down; where a second reading is kept,
            its crop and prediction replace the first in these lists.
        forms: the pages assembled from them (``assemble_form``), in the same order.
        predictor: the classifier. threshold: minimum confidence, in [0, 1].

    Returns:
        ``forms``, with the pages where a second reading was kept assembled again.
    """
    wall = SegmentSettings(wall_strokes=True, rule_strokes=RULE_STROKES)
    seconds = (SegmentSettings(own_walls=True), SegmentSettings(drop_running_in=True), SegmentSettings(margin=REREAD_MARGIN), wall)
    todo: list[tuple[int, int, int, DigitCrop, bool]] = []  # page, field, cell, second crop, whether the first was flagged
    for pi, ((layout, crops, preds, upside_down), form) in enumerate(zip(pages, forms)):
        flagged = {id(d.cell) for f in form.fields for d in f.digits if d.flagged and not d.blank}
        marks: dict = {}  # the neighbours' kept marks, segmented once per page
        for fi, fc in enumerate(crops):
            for ci, crop in enumerate(fc):
                doubtful = id(crop.cell) in flagged
                if crop.blank or not (doubtful or WALL_CHECK):
                    continue
                alts = []
                if doubtful and NEIGHBOURS_ERASED:  # first, so that of equally likely readings this one is kept
                    strays = neighbours_strays(layout, crop.cell, cache=marks)
                    if len(strays):
                        alts.append(segment_without(layout, crop.cell, strays, upside_down=upside_down))
                alts += [segment_cell(layout, crop.cell, upside_down=upside_down, settings=second) for second in (seconds if doubtful else (wall,))]
                for alt in alts:
                    if not alt.blank and float(np.abs(alt.pixels - crop.pixels).max()) > 0.05:
                        todo.append((pi, fi, ci, alt, doubtful))
    if not todo:
        return forms
    alts = [t[3] for t in todo]
    alt_preds = prediction_list(alts, range(len(alts)), predictor.probabilities(np.stack([c.pixels for c in alts])))
    changed, kept = set(), 0
    for (pi, fi, ci, alt, doubtful), pred in zip(todo, alt_preds):
        _, crops, preds, _ = pages[pi]
        first = preds[fi][ci]
        # an unflagged verdict gives way only to a different digit read more confidently
        if pred.digit is not None and pred.confidence > first.confidence and (doubtful or pred.digit != first.digit):
            crops[fi][ci] = replace(alt, reread=True)
            preds[fi][ci] = pred
            changed.add(pi)
            kept += 1
        elif not doubtful and pred.digit is not None and pred.digit != first.digit and pred.confidence >= DISPUTE_LEVEL:
            # two confident readings disagree: the first stands, flagged readings_differ
            crops[fi][ci] = replace(crops[fi][ci], disputed=True)
            changed.add(pi)
    log.debug("%d of %d flagged digit(s) read again: the second reading kept", kept, len(todo))
    return [assemble_form(*pages[pi][:3], threshold=threshold, upside_down=pages[pi][3]) if pi in changed else form for pi, form in enumerate(forms)]


def _classify_safely(items: list[_Prepared], predictor: BasePredictor, threshold: float) -> list[FormResult]:
    """``classify_pages`` on the whole chunk; if that fails, page by page, so that one bad
    page becomes a failed row instead of taking its chunk down with it."""
    if not items:
        return []
    try:
        return classify_pages(items, predictor, threshold)
    except Exception:
        log.exception("classifying a chunk of %d pages failed; retrying page by page", len(items))
    out = []
    for it in items:
        page = it.layout.aligned.page
        try:
            out.extend(classify_pages([it], predictor, threshold))
        except Exception as exc:
            log.exception("%s page %d: classification failed", page.source, page.number)
            out.append(FormResult.failed(page.source, page.number, f"classification failed: {type(exc).__name__}: {exc}", *page.size))
    return out


def process_batch(
    paths: Sequence[Path],
    settings: RunSettings,
    emit: Callable[[FormResult], None],
    *,
    model: LoadedModel | None = None,
    predictor: BasePredictor | None = None,
    on_file: Callable[[Path, int, int], None] | None = None,
) -> BatchSummary:
    """Read every page of every scan under ``paths`` and emit one ``FormResult`` per page.

    Pages are emitted in input order (files sorted, pages in file order). A page or file
    that cannot be read becomes a failed ``FormResult`` with a one-line error and the batch
    goes on; results are emitted as soon as their chunk of pages is classified, so a crash
    loses at most ``settings.pages_per_batch`` pages.

    Args:
        paths: files and folders (searched recursively).
        settings: run settings.
        emit: called once per page, in order (e.g. ``ResultWriter.add``).
        model: an already-loaded model (tests); default loads ``settings.model``.
        predictor: an already-built classifier (``load_predictor``); overrides ``model``
            and ``settings.engine``.
        on_file: progress callback ``(path, files_done, files_total)``.

    Returns:
        Counts of pages ok / needs_review / failed and of digits flagged.

    Raises:
        NoInputError: nothing to read under ``paths``. ModelError: bad checkpoint.
        ConfigError: ``--device cuda`` without a GPU; an impossible engine choice.
    """
    files = find_scans([Path(p) for p in paths])
    if predictor is None:
        predictor = load_predictor(settings, model)
    threshold = settings.min_confidence if settings.min_confidence is not None else predictor.threshold
    max_pixels = int(settings.max_megapixels * 1_000_000)
    summary = BatchSummary(files=len(files))
    pending: list[_Prepared | FormResult] = []

    def flush() -> None:
        todo = [p for p in pending if isinstance(p, _Prepared)]
        results = _classify_safely(todo, predictor, threshold)
        done = iter(results)
        for p in pending:
            form = next(done) if isinstance(p, _Prepared) else p
            summary.add(form)
            emit(form)
        pending.clear()

    for n, path in enumerate(files, 1):
        page_no = 1
        try:
            for page in read_pages(path, max_pixels=max_pixels):
                page_no = page.number
                try:
                    pending.append(prepare_page(page, orientation=settings.orientation))
                except DigitformError as exc:
                    pending.append(FormResult.failed(path, page.number, exc.one_line(), *page.size))
                except Exception as exc:  # a bug on one page must not stop the night's batch
                    log.exception("%s page %d: internal error", path, page.number)
                    pending.append(FormResult.failed(path, page.number, f"internal error: {type(exc).__name__}: {exc}", *page.size))
                if sum(isinstance(p, _Prepared) for p in pending) >= settings.pages_per_batch:
                    flush()
        except InputError as exc:
            pending.append(FormResult.failed(path, getattr(exc, "page_index", page_no - 1) + 1, exc.one_line()))
        except Exception as exc:
            log.exception("%s: internal error while reading", path)
            pending.append(FormResult.failed(path, page_no, f"internal error: {type(exc).__name__}: {exc}"))
        if on_file:
            on_file(path, n, len(files))
    flush()
    return summary
