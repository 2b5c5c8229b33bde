"""Fine-tuning: a checkpoint + a folder of labelled crops (DIR/<digit>/*.png) -> a new checkpoint, before/after accuracy.

For a writer or a form whose digits the shipped model reads less well (a pen, a slant, a
scanner): a few dozen labelled crops per digit are split per class into a fine-tuning part
and a held-out part (seeded), the network is trained a few epochs from the start checkpoint
at a low learning rate with light augmentation (optionally mixed with MNIST training digits,
so that it does not forget them, and with synthetic non-digit marks for an 11-class model),
and the temperature is refitted on the held-out part. Accuracy on the held-out crops before
and after is returned.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .classify.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from .config import FinetuneConfig
from .data import load_crop_folder, load_mnist, validation_split
from .errors import ConfigError, DigitformError
from .io import read_pages
from .nondigits import make_nondigits
from .single import normalise_digit_image
from .classify.predictor import resolve_device
from .train import ProgressFn, predict_logits, seed_everything, train_step

log = logging.getLogger(__name__)

REJECT = 10  # index of the "not a digit" class of an 11-class model


@dataclass(frozen=True, slots=True)
class FinetuneResult:
    """What ``finetune`` did; ``to_dict`` is what ``digitform train --finetune`` prints."""

    checkpoint: Path  # the fine-tuned checkpoint written
    before_accuracy: float  # start model on the held-out crops (argmax over the 10 digits), in [0, 1]
    after_accuracy: float  # fine-tuned model on the same crops, in [0, 1]
    before_nll: float  # mean negative log-likelihood of the held-out labels, start model and temperature, nats
    after_nll: float  # the same for the fine-tuned model with its refitted temperature, nats
    n_finetune: int  # crops trained on
    n_held_out: int  # crops measured on
    skipped: int  # files that could not be read or held no mark
    temperature_before: float  # start model's temperature
    temperature: float  # refitted temperature
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, held-out accuracy
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checkpoint"] = str(self.checkpoint)
        return d


def load_labelled_crops(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Read ``ROOT/<digit>/*.png`` and normalise every image like MNIST.

    Each file's first page is decoded (``pipeline.io.read_pages``: any size, grey or colour)
    and normalised with ``pipeline.single.normalise_digit_image`` (polarity detected, a
    printed box removed, bounding box scaled into 20x20, centred by centre of mass).

    Args:
        root: folder with sub-folders ``0`` ... ``9``.

    Returns:
        (crops, labels, skipped): (N, 28, 28) float32 in [0, 1] with ink = 1, (N,) int64, and
        the number of files skipped because they could not be read or held no mark.

    Raises:
        ConfigError: no labelled image, or none usable.
    """
    paths, labels = load_crop_folder(root)
    crops, keep, skipped = [], [], 0
    for path, label in zip(paths, labels):
        pages = read_pages(path)
        try:
            page = next(pages)
        except (DigitformError, StopIteration) as exc:
            log.warning("%s: skipped (%s)", path, exc or "no image")
            skipped += 1
            continue
        finally:
            pages.close()
        crop = normalise_digit_image(page.image)
        if not crop.any():
            log.warning("%s: skipped (no mark found)", path)
            skipped += 1
            continue
        crops.append(crop)
        keep.append(label)
    if not crops:
        raise ConfigError(f"{root}: none of the {len(paths)} images holds a readable digit", hint="expected DIR/<digit>/*.png")
    return np.stack(crops).astype(np.float32), np.asarray(keep, np.int64), skipped


def split_per_class(labels: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of each class into fine-tune / held-out indices.

    A class with n >= 2 crops gives ``max(1, round(held_out * n))`` of them (at most n - 1)
    to the held-out part; a class with one crop is trained on only.

    Returns:
        (finetune_idx, held_idx), each sorted, int64.

    Raises:
        ConfigError: no class has two crops (nothing to measure on).
    """
    rng = np.random.default_rng(seed)
    tr, ho = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = min(len(idx) - 1, max(1, int(round(held_out * len(idx))))) if len(idx) >= 2 else 0
        ho.append(idx[:k])
        tr.append(idx[k:])
    tr_idx, ho_idx = np.sort(np.concatenate(tr)), np.sort(np.concatenate(ho))
    if len(ho_idx) == 0:
        raise ConfigError("fine-tuning needs at least 2 crops of some digit (one is held out to measure on)")
    return tr_idx.astype(np.int64), ho_idx.astype(np.int64)


def fit_temperature_prior(logits: torch.Tensor, labels: torch.Tensor, prior: float, prior_std: float) -> float:
    """Temperature scaling (Guo et al., ICML 2017) with a log-normal prior, for small held-out sets.

    Minimises ``sum NLL(softmax(logits / T)) + (log T - log prior)^2 / (2 prior_std^2)``: the
    maximum a posteriori T. With a few dozen crops that are all read right, plain
    temperature scaling drives T towards 0 (over-confidence); the prior keeps T near the
    start model's until the held-out data say otherwise.

    Args:
        logits: (N, C) float32 held-out logits. labels: (N,) int64.
        prior: the start model's temperature. prior_std: std of log T under the prior.

    Returns:
        The temperature T > 0.
    """
    log_t = torch.tensor([math.log(prior)], requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels, reduction="sum")
        loss = loss + (log_t - math.log(prior)).pow(2).sum() / (2 * prior_std**2)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def _freeze_batchnorm(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _accuracy_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> tuple[float, float]:
    acc = float((logits[:, :10].argmax(1) == labels).float().mean())
    nll = float(F.cross_entropy(logits / temperature, labels))
    return acc, nll


def finetune(
    cfg: FinetuneConfig,
    *,
    model: LoadedModel | None = None,
    progress: ProgressFn | None = None,
    crops: tuple[np.ndarray, np.ndarray] | None = None,
) -> FinetuneResult:
    """Fine-tune a checkpoint on labelled crops and write the result to ``cfg.out``.

    Seeded: the same settings, crops and start checkpoint give the same checkpoint on the
    same machine and device.

    Args:
        cfg: settings (``FinetuneConfig``).
        model: the start model; default loads ``cfg.model`` (None = the shipped weights).
            It is not modified. 10- and 11-class models are both handled; an 11-class model
            also sees synthetic non-digit marks (``pipeline.nondigits``), so that it keeps
            rejecting them.
        progress: called as ``progress(phase, done, total, metrics)`` ("train" per batch,
            "epoch" per epoch).
        crops: already-normalised crops to use instead of reading ``cfg.crops``:
            ((N, 28, 28) float32 in [0, 1], ink = 1; (N,) int64 labels 0-9), e.g. the
            pipeline's own crops of training forms (``scripts/form_finetune.py``).

    Returns:
        Before/after accuracy and NLL on the held-out crops, counts, temperatures, history.

    Raises:
        ConfigError: bad crop folder, MNIST folder or device. ModelError: bad checkpoint.
    """
    t0 = time.time()
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    start = model if model is not None else load_checkpoint(cfg.model, "cpu")
    n_classes = len(start.classes)
    if crops is None:
        crops, labels, skipped = load_labelled_crops(cfg.crops)
    else:
        (crops, labels), skipped = crops, 0
    tr_idx, ho_idx = split_per_class(labels, cfg.held_out, cfg.seed)
    x_tr = torch.from_numpy(crops[tr_idx]).unsqueeze(1)
    y_tr = torch.from_numpy(labels[tr_idx])
    x_ho = torch.from_numpy(crops[ho_idx]).unsqueeze(1)
    y_ho = torch.from_numpy(labels[ho_idx])
    pre = dict(start.preprocess)
    log.info("fine-tuning on %d crops, %d held out, %d skipped", len(x_tr), len(x_ho), skipped)

    mnist_x = None
    if cfg.data is not None and cfg.mnist_share > 0:
        images, mlabels = load_mnist(cfg.data, "train")
        # only the digits training used: the held-out ones stay held out for the threshold
        # (scripts/choose_threshold.py) of the fine-tuned model
        keep = np.sort(validation_split(len(images))[0])
        mnist_x, mnist_y = torch.from_numpy(images[keep]), torch.from_numpy(mlabels[keep])
    nd_tr = nd_ho = None
    if n_classes > 10 and cfg.nondigit_share > 0:
        ink = (crops[tr_idx] * 255).astype(np.uint8)
        nd_tr = torch.from_numpy(make_nondigits(max(200, 2 * len(x_tr)), cfg.seed + 1, ink)).unsqueeze(1)
        nd_ho = torch.from_numpy(make_nondigits(max(20, len(x_ho) // 5), cfg.seed + 2, ink)).unsqueeze(1)

    net = copy.deepcopy(start.net).to(device)
    before_logits = predict_logits(net, x_ho, pre, device)
    before_acc, before_nll = _accuracy_nll(before_logits, y_ho, start.temperature)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(x_tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    n_mnist = int(round(cfg.batch_size * cfg.mnist_share / (1 - cfg.mnist_share))) if mnist_x is not None else 0
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        net.train()
        if cfg.freeze_batchnorm:
            _freeze_batchnorm(net)
        order = torch.randperm(len(x_tr), generator=gen)
        tot, seen = 0.0, 0
        for b in range(steps):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            if n_mnist:
                j = torch.randint(0, len(mnist_x), (n_mnist,), generator=gen)
                xb = torch.cat([xb, mnist_x[j].float().div(255).unsqueeze(1)])
                yb = torch.cat([yb, mnist_y[j]])
            if nd_tr is not None:
                k = max(1, int(round(len(xb) * cfg.nondigit_share / (1 - cfg.nondigit_share))))
                j = torch.randint(0, len(nd_tr), (k,), generator=gen)
                xb = torch.cat([xb, nd_tr[j]])
                yb = torch.cat([yb, torch.full((k,), REJECT, dtype=yb.dtype)])
            loss = train_step(net, opt, sched, xb, yb, pre, device, cfg.augment, gen)
            tot += loss * len(xb)
            seen += len(xb)
            if progress:
                progress("train", epoch * steps + b + 1, cfg.epochs * steps, {"epoch": epoch + 1, "loss": tot / seen})
        acc, nll = _accuracy_nll(predict_logits(net, x_ho, pre, device), y_ho, start.temperature)
        history.append({"epoch": epoch + 1, "train_loss": tot / max(seen, 1), "held_out_acc": acc, "held_out_nll": nll})
        log.info("epoch %d/%d loss %.4f held-out accuracy %.4f", epoch + 1, cfg.epochs, tot / max(seen, 1), acc)
        if progress:
            progress("epoch", epoch + 1, cfg.epochs, history[-1])

    net.eval()
    logits = predict_logits(net, x_ho, pre, device)
    cal_logits, cal_labels = logits, y_ho
    if nd_ho is not None:
        cal_logits = torch.cat([logits, predict_logits(net, nd_ho, pre, device)])
        cal_labels = torch.cat([y_ho, torch.full((len(nd_ho),), REJECT, dtype=y_ho.dtype)])
    temperature = fit_temperature_prior(cal_logits, cal_labels, start.temperature, cfg.temperature_prior)
    after_acc, after_nll = _accuracy_nll(logits, y_ho, temperature)
    info = {
        "start_checkpoint": str(start.path) if start.path else None,
        "crops": str(cfg.crops),
        "n_finetune": int(len(x_tr)),
        "n_held_out": int(len(x_ho)),
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "mnist_mixed": mnist_x is not None,
        "before_accuracy": before_acc,
        "after_accuracy": after_acc,
        "temperature_before": start.temperature,
    }
    out_model = LoadedModel(
        net=net.cpu().eval(),
        preprocess=pre,
        temperature=temperature,
        threshold=start.threshold,
        classes=tuple(start.classes),
        metrics={"finetune": info, "base": dict(start.metrics)},
        name=start.name if start.name.endswith("-ft") else f"{start.name}-ft",
    )
    save_checkpoint(cfg.out, out_model)
    return FinetuneResult(
        checkpoint=Path(cfg.out), before_accuracy=before_acc, after_accuracy=after_acc, before_nll=before_nll,
        after_nll=after_nll, n_finetune=int(len(x_tr)), n_held_out=int(len(x_ho)), skipped=skipped,
        temperature_before=float(start.temperature), temperature=temperature, history=history, seconds=time.time() - t0,
    )
