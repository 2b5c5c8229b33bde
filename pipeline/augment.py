"""Training augmentation: MNIST batches -> batches that look like digitform's own crops from real scans.

Everything runs on whole batches as tensor ops (``F.grid_sample`` for the geometry), so it
costs little next to the network and runs on the GPU when training does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def _rand(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _mask(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) < p).view(n, 1, 1, 1)


def _geometry(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random affine (rotation, slant, scale, shift) plus smooth elastic distortion.

    Elastic distortion after Simard, Steinkraus & Platt (ICDAR 2003), approximated by a
    random coarse displacement grid upsampled bilinearly (smooth like their Gaussian-filtered field).
    """
    n, dev = x.shape[0], x.device
    ang = _rand(n, -cfg.rotate, cfg.rotate, g, dev) * math.pi / 180
    shear = _rand(n, -cfg.shear, cfg.shear, g, dev)
    s = _rand(n, 1 - cfg.scale, 1 + cfg.scale, g, dev)
    sx = s * _rand(n, 1 - cfg.aspect, 1 + cfg.aspect, g, dev)
    sy = s
    tx = _rand(n, -cfg.shift, cfg.shift, g, dev) * 2 / 28
    ty = _rand(n, -cfg.shift, cfg.shift, g, dev) * 2 / 28
    cos, sin = torch.cos(ang), torch.sin(ang)
    # theta maps output coords -> input coords; inverse-ish of the forward warp, fine for random draws
    a = torch.stack([cos / sx, (-sin + shear) / sx, tx], 1)
    b = torch.stack([sin / sy, cos / sy, ty], 1)
    theta = torch.stack([a, b], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if cfg.elastic_p > 0:
        coarse = torch.randn(n, 2, 4, 4, generator=g, device=dev) * (cfg.elastic_alpha * 2 / 28)
        on = (torch.rand(n, generator=g, device=dev) < cfg.elastic_p).view(n, 1, 1, 1)
        disp = F.interpolate(coarse * on, size=(28, 28), mode="bicubic", align_corners=False)
        grid = grid + disp.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    k = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    w = torch.exp(-(k.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    w = w / w.sum(1, keepdim=True)  # (N, 5)
    n = x.shape[0]
    xr = x.view(1, n, 28, 28)
    xr = F.conv2d(F.pad(xr, (2, 2, 0, 0), mode="replicate"), w.view(n, 1, 1, 5), groups=n)
    xr = F.conv2d(F.pad(xr, (0, 0, 2, 2), mode="replicate"), w.view(n, 1, 5, 1), groups=n)
    return xr.view(n, 1, 28, 28)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment a batch of MNIST-normalised crops.

    Imitates what segmentation makes of real scans: pen slant and size (affine), writer
    variation (elastic), stroke width (grey dilation/erosion), pen pressure (intensity),
    1-bit scanners (binarisation), scanner blur and noise, leftover box-line fragments at
    the crop's edge, and strokes cut off at the cell border.

    Args:
        x: (N, 1, 28, 28) float32 in [0, 1], ink = 1.
        cfg: probabilities and ranges.
        g: random generator on ``x.device`` (seeded by the caller for reproducibility).

    Returns:
        (N, 1, 28, 28) float32 in [0, 1].
    """
    n, dev = x.shape[0], x.device
    x = _geometry(x, cfg, g)
    # stroke width: blend with grey dilation / erosion
    dil = F.max_pool2d(x, 3, 1, 1)
    ero = -F.max_pool2d(-x, 3, 1, 1)
    alpha = _rand(n, 0.3, 1.0, g, dev).view(n, 1, 1, 1)
    x = torch.where(_mask(n, cfg.thicken_p, g, dev), x + alpha * (dil - x), x)
    x = torch.where(_mask(n, cfg.thin_p, g, dev), x + alpha * (ero - x), x)
    # pen pressure
    x = torch.where(_mask(n, cfg.pressure_p, g, dev), x * _rand(n, 0.55, 1.0, g, dev).view(n, 1, 1, 1), x)
    # binarised scan, then the smoothing of resampling to 20x20
    peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    thr = _rand(n, 0.25, 0.6, g, dev).view(n, 1, 1, 1) * peak
    binar = _mask(n, cfg.binarize_p, g, dev)
    x = torch.where(binar, (x > thr).to(x.dtype), x)
    sig = _rand(n, 0.3, 0.8, g, dev)
    x = torch.where(_mask(n, cfg.blur_p, g, dev) | (binar & _mask(n, 0.5, g, dev)), _blur(x, sig), x)
    # leftover box-line fragment along one edge
    frag = _mask(n, cfg.line_p, g, dev).view(n)
    if frag.any():
        idx = frag.nonzero().view(-1)
        lines = torch.zeros(len(idx), 1, 28, 28, device=dev)
        for j in range(len(idx)):
            pos = int(torch.randint(0, 3, (1,), generator=g, device=dev))
            side = int(torch.randint(0, 4, (1,), generator=g, device=dev))
            length = int(torch.randint(6, 29, (1,), generator=g, device=dev))
            start = int(torch.randint(0, 29 - length, (1,), generator=g, device=dev))
            val = float(_rand(1, 0.5, 1.0, g, dev))
            if side == 0:
                lines[j, 0, pos, start : start + length] = val
            elif side == 1:
                lines[j, 0, 27 - pos, start : start + length] = val
            elif side == 2:
                lines[j, 0, start : start + length, pos] = val
            else:
                lines[j, 0, start : start + length, 27 - pos] = val
        x[idx] = torch.maximum(x[idx], lines)
    # a stroke cut off at the cell border: blank a band on one side of the digit
    cut = _mask(n, cfg.cut_p, g, dev)
    if cut.any():
        band = int(torch.randint(1, 4, (1,), generator=g, device=dev))
        m = torch.ones(1, 1, 28, 28, device=dev)
        m[..., 4 : 4 + band, :] = 0
        x = torch.where(cut, x * m, x)
    # sensor noise and speckle
    noise = torch.randn(x.shape, generator=g, device=dev) * _rand(n, 0.02, 0.1, g, dev).view(n, 1, 1, 1)
    x = torch.where(_mask(n, cfg.noise_p, g, dev), x + noise, x)
    speck = (torch.rand(x.shape, generator=g, device=dev) < 0.004).to(x.dtype)
    x = torch.where(_mask(n, cfg.speckle_p, g, dev), torch.maximum(x, speck), x)
    return x.clamp_(0.0, 1.0)
