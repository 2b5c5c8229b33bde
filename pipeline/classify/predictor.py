"""(N, 28, 28) crops -> calibrated class probabilities -> DigitPrediction, in batches on GPU or CPU."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..types import DigitCrop, DigitPrediction
from .checkpoint import LoadedModel

log = logging.getLogger(__name__)

N_ALTERNATIVES = 2  # runner-up digits reported per cell


class Predictor:
    """Batched inference with temperature-scaled softmax.

    Args:
        model: a loaded checkpoint (network + preprocessing + temperature).
        device: torch device the network is on.
        batch_size: crops per forward pass.
    """

    def __init__(self, model: LoadedModel, device: torch.device, batch_size: int = 256) -> None:
        self.model = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.model.net.to(device).eval()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities for a stack of crops.

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], ink = 1 (``DigitCrop.pixels`` stacked).

        Returns:
            (N, C) float32 calibrated probabilities (softmax of logits / temperature), rows sum to 1.
        """
        if len(pixels) == 0:
            return np.zeros((0, len(self.model.classes)), np.float32)
        mean, std = float(self.model.preprocess["mean"]), float(self.model.preprocess["std"])
        out = []
        with torch.inference_mode():
            for i in range(0, len(pixels), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(pixels[i : i + self.batch_size], np.float32)).unsqueeze(1)
                x = ((x - mean) / std).to(self.device, non_blocking=True)
                logits = self.model.net(x).float() / self.model.temperature
                out.append(torch.softmax(logits, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def predict(self, crops: Sequence[DigitCrop]) -> list[DigitPrediction]:
        """Predictions for crops; blank crops are not sent to the network.

        A blank cell's confidence is 1 when it holds no ink at all and falls towards 0.5
        as stray ink approaches the blank limit, so faint marks get reviewed.

        Returns:
            One ``DigitPrediction`` per crop, in order.
        """
        idx = [i for i, c in enumerate(crops) if not c.blank]
        probs = self.probabilities(np.stack([crops[i].pixels for i in idx])) if idx else np.zeros((0, 10), np.float32)
        return prediction_list(crops, idx, probs)


def prediction_from_probs(p: np.ndarray) -> DigitPrediction:
    """DigitPrediction from one (C,) probability vector.

    The digit is the argmax over the ten digit classes; with an 11th "not a digit" class
    its probability is ``reject`` and it lowers every digit's confidence, so non-digit
    marks come out with low confidence and are flagged.
    """
    pd = p[:10]
    order = np.argsort(-pd)
    top = int(order[0])
    second = float(pd[order[1]])
    alts = tuple((str(int(k)), round(float(pd[k]), 4)) for k in order[1 : 1 + N_ALTERNATIVES])
    reject = float(p[10]) if len(p) > 10 else 0.0
    return DigitPrediction(digit=top, confidence=float(pd[top]), margin=float(pd[top]) - second, alternatives=alts, reject=reject)


def blank_prediction(crop: DigitCrop, blank_ink: float = 0.006) -> DigitPrediction:
    """The prediction for a blank cell (digit None); see ``Predictor.predict``."""
    conf = 1.0 - 0.5 * min(1.0, crop.ink / blank_ink)
    return DigitPrediction(digit=None, confidence=conf, margin=conf, alternatives=())


def prediction_list(crops: Sequence[DigitCrop], idx: Sequence[int], probs: np.ndarray) -> list[DigitPrediction]:
    """Merge network outputs for the non-blank crops ``idx`` with blank predictions for the rest."""
    out: list[DigitPrediction] = [blank_prediction(c) if c.blank else None for c in crops]  # type: ignore[misc]
    for j, i in enumerate(idx):
        out[i] = prediction_from_probs(probs[j])
    return out
