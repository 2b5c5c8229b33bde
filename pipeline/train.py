"""Training: MNIST IDX files (+ augmentation) -> a checkpoint with calibration metadata."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment_batch
from .classify.checkpoint import DEFAULT_PREPROCESS, LoadedModel, save_checkpoint
from .classify.model import DigitNet
from .classify.predictor import resolve_device
from .config import AugmentConfig, TrainConfig
from .data import load_mnist, validation_split
from .nondigits import make_nondigits

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int, dict[str, float]], None]  # (phase, done, total, metrics)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for augmentation draws."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def to_input(x: torch.Tensor, preprocess: dict[str, Any]) -> torch.Tensor:
    """(N, 1, 28, 28) ink-in-[0, 1] crops -> network input (mean/std normalised)."""
    return (x - float(preprocess["mean"])) / float(preprocess["std"])


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo, Pleiss, Sun & Weinberger, ICML 2017).

    Finds T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``.

    Args:
        logits: (N, C) float32 held-out logits. labels: (N,) int64.

    Returns:
        The temperature T.
    """
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


@torch.no_grad()
def predict_logits(net: DigitNet, images: torch.Tensor, preprocess: dict[str, Any], device: torch.device, batch: int = 1000) -> torch.Tensor:
    """Logits for (N, 1, 28, 28) float crops in [0, 1]; returns (N, C) float32 on the CPU."""
    net.eval()
    out = []
    for i in range(0, len(images), batch):
        out.append(net(to_input(images[i : i + batch].to(device), preprocess)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 10)


def train_step(
    net: DigitNet,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    xb: torch.Tensor,
    yb: torch.Tensor,
    preprocess: dict[str, Any],
    device: torch.device,
    augment: AugmentConfig,
    gen: torch.Generator,
) -> float:
    """One optimiser step on an augmented batch; returns the batch's mean cross-entropy.

    Args:
        xb: (N, 1, 28, 28) float32 crops in [0, 1] on the CPU (augmented here).
        yb: (N,) int64 labels (10 = not a digit for 11-class models).
    """
    x = augment_batch(xb.clone(), augment, gen).to(device)
    loss = F.cross_entropy(net(to_input(x, preprocess)), yb.to(device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, float]]
    val_accuracy: float
    temperature: float
    seconds: float


def _plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train (augmented)")
    a.plot(ep, [h["val_loss"] for h in history], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.legend(), a.set_title("loss")
    b.plot(ep, [100 * (1 - h["val_acc"]) for h in history], label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("error %"), b.set_title("validation error"), b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig, *, resume: bool = False, progress: ProgressFn | None = None) -> TrainResult:
    """Train the digit CNN on MNIST with augmentation; write the checkpoint ``cfg.out``.

    The last ``cfg.val_size`` images of a seeded permutation of the MNIST training set are
    held out for choosing the epoch and fitting the temperature; the test set is not read.

    Args:
        cfg: settings (``configs/train.yaml``).
        resume: continue from ``cfg.work_dir / "last.pt"`` if present.
        progress: called as ``progress(phase, done, total, metrics)``.

    Returns:
        Where the checkpoint went, per-epoch history, best validation accuracy, temperature.

    Raises:
        ConfigError: bad data folder or device. InputError: corrupt IDX files.
    """
    t0 = time.time()
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    images, labels = load_mnist(cfg.data, "train")
    tr_idx, val_idx = validation_split(len(images), cfg.val_seed, cfg.val_size)
    x_all = torch.from_numpy(images).float().div_(255).unsqueeze(1)
    y_all = torch.from_numpy(labels)
    x_tr, y_tr, x_val, y_val = x_all[tr_idx], y_all[tr_idx], x_all[val_idx], y_all[val_idx]
    pre = dict(DEFAULT_PREPROCESS)
    n_classes = 11 if cfg.reject_class else 10
    if cfg.reject_class:
        # non-digit marks: a training bank and a separate validation bank (other seed)
        nd_tr = torch.from_numpy(make_nondigits(cfg.nondigits, cfg.seed + 1, images[tr_idx[:2000]])).unsqueeze(1)
        nd_val = torch.from_numpy(make_nondigits(max(100, cfg.val_size // 5), cfg.seed + 2, images[val_idx[:500]])).unsqueeze(1)
        extra = max(1, int(round(cfg.batch_size * cfg.nondigit_fraction / (1 - cfg.nondigit_fraction))))
    net = DigitNet(num_classes=n_classes, width=cfg.width, dropout=cfg.dropout).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = len(x_tr) // cfg.batch_size
    if cfg.max_batches:
        steps = min(steps, cfg.max_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps)
    history: list[dict[str, float]] = []
    best_acc, best_state, start_epoch = -1.0, None, 0
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    last = work / "last.pt"
    if resume and last.is_file():
        st = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"]), opt.load_state_dict(st["opt"]), sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        history, best_acc, best_state, start_epoch = st["history"], st["best_acc"], st["best_state"], st["epoch"]
        log.info("resumed from %s at epoch %d", last, start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        order = torch.randperm(len(x_tr), generator=gen)
        tot_loss, seen = 0.0, 0
        for b in range(steps):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.reject_class:
                j = torch.randint(0, len(nd_tr), (extra,), generator=gen)
                xb = torch.cat([xb, nd_tr[j]])
                yb = torch.cat([yb, torch.full((extra,), 10, dtype=yb.dtype)])
            loss = train_step(net, opt, sched, xb, yb, pre, device, cfg.augment, gen)
            tot_loss += loss * len(idx)
            seen += len(idx)
            if progress and (b % 20 == 0 or b == steps - 1):
                progress("train", epoch * steps + b + 1, cfg.epochs * steps, {"epoch": epoch + 1, "loss": tot_loss / seen})
        logits = predict_logits(net, x_val, pre, device)
        val_loss = float(F.cross_entropy(logits, y_val))
        val_acc = float((logits[:, :10].argmax(1) == y_val).float().mean())  # digits: argmax over 0-9
        row = {"epoch": epoch + 1, "train_loss": tot_loss / max(seen, 1), "val_loss": val_loss, "val_acc": val_acc}
        if cfg.reject_class:
            row["val_reject"] = float((predict_logits(net, nd_val, pre, device).argmax(1) == 10).float().mean())
        history.append(row)
        log.info("epoch %d/%d train_loss %.4f val_loss %.4f val_err %.3f%%", epoch + 1, cfg.epochs, tot_loss / max(seen, 1), val_loss, 100 * (1 - val_acc))
        if progress:
            progress("epoch", epoch + 1, cfg.epochs, history[-1])
        if val_acc >= best_acc:
            best_acc, best_state = val_acc, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        torch.save(
            {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
             "history": history, "best_acc": best_acc, "best_state": best_state, "epoch": epoch + 1},
            last,
        )
        _plot_curves(history, work / "curves.png")

    assert best_state is not None
    net.load_state_dict(best_state)
    logits, labels_val = predict_logits(net, x_val, pre, device), y_val
    if cfg.reject_class:
        logits = torch.cat([logits, predict_logits(net, nd_val, pre, device)])
        labels_val = torch.cat([y_val, torch.full((len(nd_val),), 10, dtype=y_val.dtype)])
    temperature = fit_temperature(logits, labels_val)
    model = LoadedModel(
        net=net.cpu().eval(),
        preprocess=pre,
        temperature=temperature,
        classes=tuple(str(d) for d in range(10)) + (("reject",) if cfg.reject_class else ()),
        metrics={"val_accuracy": best_acc, "val_size": cfg.val_size, "epochs": cfg.epochs, "seed": cfg.seed, "split_seed": cfg.val_seed, "width": cfg.width,
                 "val_reject": history[-1].get("val_reject"), "train_seconds": round(time.time() - t0, 1)},
    )
    save_checkpoint(cfg.out, model)
    return TrainResult(Path(cfg.out), history, best_acc, temperature, time.time() - t0)
