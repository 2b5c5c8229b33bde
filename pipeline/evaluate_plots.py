"""``Evaluated`` digits -> PNG figures of ``digitform evaluate``: confusion matrix, error-reject curve, worst errors.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from .evaluate import Evaluated, error_reject_curve, threshold_metrics


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(10, 10) int64 counts: row = true digit, column = digit read; digits read as blank
    (predicted -1) are not counted."""
    m = np.zeros((10, 10), np.int64)
    ok = (predicted >= 0) & (predicted <= 9)
    np.add.at(m, (labels[ok], predicted[ok]), 1)
    return m


def plot_confusion(ev: Evaluated, path: Path) -> Path:
    """Draw the 10x10 confusion matrix with its counts (log colour scale, so that the few
    errors show next to the large diagonal).

    Args:
        ev: per-digit outcomes.
        path: PNG file to write.

    Returns:
        ``path``.
    """
    m = confusion_matrix(ev.labels, ev.predicted)
    fig = Figure(figsize=(6.4, 5.8))
    ax = fig.add_subplot()
    shown = np.where(m > 0, m, np.nan)
    im = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(2, int(m.max()))))
    fig.colorbar(im, ax=ax, shrink=0.8, label="digits (log scale)")
    big = max(1, int(m.max()))
    for i in range(10):
        for j in range(10):
            if m[i, j]:
                dark = np.log(m[i, j]) > 0.6 * np.log(big) if big > 1 else False
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8 if m[i, j] < 1000 else 7,
                        color="white" if dark else ("black" if i == j else "firebrick"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("digit read")
    ax.set_ylabel("true digit")
    ax.set_xticks(np.arange(-0.5, 10), minor=True)
    ax.set_yticks(np.arange(-0.5, 10), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    n, correct = len(ev.labels), int(ev.correct.sum())
    title = f"Confusion matrix: {correct}/{n} right ({100 * correct / n:.2f}%)" if n else "Confusion matrix: no digits"
    blank = int((ev.predicted < 0).sum())
    if blank:
        title += f"\n{blank} digit(s) read as blank (not shown)"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_error_reject(
    ev: Evaluated, threshold: float, path: Path, *, recommended: float | None = None, target_error: float | None = None
) -> Path:
    """Draw the error rate among accepted (unflagged) digits against the share flagged for
    review, sweeping the threshold; mark the current threshold (and the recommended one).

    Two panels: the whole curve, and a zoom on the low reject rates where a threshold is
    usually chosen. The error axis is logarithmic; no error is drawn on its bottom edge,
    labelled 0.

    Args:
        ev: per-digit outcomes.
        threshold: the current threshold, in [0, 1].
        path: PNG file to write.
        recommended: a recommended threshold to mark, or None.
        target_error: the target error rate to draw as a horizontal line, or None.

    Returns:
        ``path``.
    """
    thr, rej, er = error_reject_curve(ev.confidence, ev.correct)
    fig = Figure(figsize=(10, 4.6))
    n = len(ev.labels)
    # zero error is drawn on the bottom edge of the log axis, well below any real value
    lows = [1.0 / max(n, 1)] + ([float(er[er > 0].min())] if (er > 0).any() else []) + ([target_error] if target_error else [])
    floor = min(lows) / 4
    top = max(float(er.max()) if n else 0.0, target_error or 0.0, 10 * floor) * 1.6
    cur = threshold_metrics(ev.confidence, ev.correct, threshold)
    zoom_x = max(0.02, 3 * cur["flag_rate"], 1.5 * threshold_metrics(ev.confidence, ev.correct, recommended)["flag_rate"] if recommended is not None else 0.0)
    zoom_x = min(1.0, zoom_x)
    for k, ax in enumerate((fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2))):
        if n:
            ax.step(100 * rej, np.maximum(100 * er, 100 * floor), where="post", color="tab:blue", linewidth=1.4, label="error among accepted")
        ax.set_yscale("log")
        ax.set_ylim(100 * floor, 100 * top)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v <= 100 * floor * 1.001 else f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        decades = [10.0**e for e in range(-7, 3) if floor < 10.0**e / 100 < top]
        subs = (1, 2, 5) if len(decades) < 3 else (1,)
        ax.set_yticks(sorted({100 * floor, *[s * 10.0**e for e in range(-7, 3) for s in subs if floor * 1.5 < s * 10.0**e / 100 < top]}))
        ax.set_xlabel("digits flagged for review (%)")
        ax.set_ylabel("error rate among unflagged digits (%)")
        ax.grid(True, which="both", color="0.9", linewidth=0.6)
        pts = [(threshold, "tab:red", "current", "o", 9)]
        if recommended is not None:
            pts.append((recommended, "tab:green", "recommended", "D", 5))
        for t, colour, name, marker, size in pts:
            m = threshold_metrics(ev.confidence, ev.correct, t)
            x, y = 100 * m["flag_rate"], 100 * max(m["error_rate_unflagged"], floor)
            ax.plot([x], [y], marker, color=colour, markersize=size, zorder=5, clip_on=False,
                    label=f"{name} threshold {t:g}: {x:.2f}% flagged, {100 * m['error_rate_unflagged']:.3f}% error")
        if target_error is not None and target_error > 0:
            ax.axhline(100 * target_error, color="tab:green", linestyle="--", linewidth=1, label=f"target error {100 * target_error:g}%")
        if k == 0:
            if n and (er == 0).any():
                x0 = 100 * float(rej[np.argmax(er == 0)])
                ax.annotate("no error left", (x0, 100 * floor), xytext=(4, 6), textcoords="offset points", fontsize=7, color="0.3")
            ax.set_xlim(0, 100)
            ax.set_title("all thresholds", fontsize=10)
        else:
            ax.set_xlim(0, 100 * zoom_x)
            ax.set_title(f"zoom: up to {100 * zoom_x:.1f}% flagged", fontsize=10)
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Error-reject curve ({n} digits; error with nothing flagged {100 * (1 - ev.correct.mean()) if n else 0:.3f}%)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_worst_errors(ev: Evaluated, path: Path, count: int = 24) -> Path:
    """Draw the most confident wrong digits: the crops the classifier saw, ink dark, with the
    true digit, the digit read and its confidence.

    Args:
        ev: per-digit outcomes.
        path: PNG file to write.
        count: at most this many errors, most confident first.

    Returns:
        ``path``.
    """
    wrong = np.nonzero(~ev.correct)[0]
    wrong = wrong[np.argsort(-ev.confidence[wrong], kind="stable")][:count]
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig = Figure(figsize=(cols * 1.35, rows * 1.65 + 0.6))
    if len(wrong) == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, f"no errors among {len(ev.labels)} digits", ha="center", va="center", fontsize=12)
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(ev.crops[i], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        read = "blank" if ev.predicted[i] < 0 else str(ev.predicted[i])
        ax.set_title(f"true {ev.labels[i]} read {read}\np={ev.confidence[i]:.3f}", fontsize=8, color="firebrick")
        src = ev.sources[i]
        ax.set_xlabel(src if len(src) <= 22 else "…" + src[-21:], fontsize=5.5)
    fig.suptitle(f"Most confident errors ({len(wrong)} of {int((~ev.correct).sum())})", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
