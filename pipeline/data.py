"""Training/evaluation data on disk -> arrays: MNIST IDX files and folders of labelled crops."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import ConfigError, InputError

log = logging.getLogger(__name__)

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not), the format of the MNIST distribution.

    Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype byte,
    a byte giving the number of dimensions, then each dimension as a big-endian uint32,
    then the data in C order.

    Args:
        path: ``*.gz`` or raw IDX file.

    Returns:
        Array of the stored dtype and shape (e.g. (60000, 28, 28) uint8 for images).

    Raises:
        InputError: missing file, bad magic or truncated data.
    """
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read IDX file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) - offset < count * dtype.itemsize:
        raise InputError(f"{path}: truncated IDX file ({len(raw)} bytes for shape {dims})")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).exists():
            return data_dir / name
    raise ConfigError(
        f"{data_dir}: no {stem}[.gz] here",
        hint="point --data at a folder holding the four MNIST IDX files",
    )


def load_mnist(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images and labels from the standard IDX files.

    Args:
        data_dir: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
        split: "train" (60000) or "test" (10000).

    Returns:
        images (N, 28, 28) uint8 with ink = 255 (MNIST convention), labels (N,) int64.

    Raises:
        ConfigError: a file is missing. InputError: a file is corrupt or the counts differ.
    """
    img_stem, lab_stem = MNIST_FILES[split]
    data_dir = Path(data_dir)
    if not data_dir.is_dir() or not any(data_dir.glob(img_stem + "*")):
        if (data_dir / "MNIST" / "raw").is_dir():
            data_dir = data_dir / "MNIST" / "raw"  # where torchvision's download puts them
    images = read_idx(_find(data_dir, img_stem))
    labels = read_idx(_find(data_dir, lab_stem)).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise InputError(f"{data_dir}: MNIST {split} images {images.shape} do not match labels {labels.shape}")
    return images, labels


def validation_split(n: int, seed: int | None = None, val_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training images ``digitform train`` trains on and the ones it holds out.

    The last ``val_size`` of a permutation seeded by ``seed`` are held out (choosing the epoch,
    fitting the temperature, choosing the threshold); everything else that trains on MNIST
    training digits (fine-tuning replay, training forms) must leave them alone.

    Args:
        n: number of MNIST training images (60,000). seed, val_size: those of the training
            run; None = ``TrainConfig``'s defaults (the shipped weights' run).

    Returns:
        (train indices, validation indices), int64 arrays.
    """
    defaults = TrainConfig()
    seed = defaults.val_seed if seed is None else seed
    val_size = defaults.val_size if val_size is None else val_size
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:-val_size], perm[-val_size:]


def load_crop_folder(root: Path) -> tuple[list[Path], np.ndarray]:
    """List a folder of labelled crops laid out as ``ROOT/<digit>/*.png``.

    Args:
        root: folder with sub-folders named ``0`` ... ``9``.

    Returns:
        (paths, labels): image paths in sorted order and their labels, (N,) int64.

    Raises:
        ConfigError: the folder is missing or holds no labelled images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder", hint="expected DIR/<digit>/*.png")
    paths: list[Path] = []
    labels: list[int] = []
    for d in range(10):
        sub = root / str(d)
        if not sub.is_dir():
            continue
        for p in sorted(sub.iterdir()):
            if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}:
                paths.append(p)
                labels.append(d)
    if not paths:
        raise ConfigError(f"{root}: no labelled crops found", hint="expected DIR/<digit>/*.png")
    return paths, np.asarray(labels, dtype=np.int64)


def ensure_mnist(data_dir: Path, *, download: bool = False) -> Path:
    """Check that the MNIST IDX files are in ``data_dir``; optionally let torchvision fetch them.

    torchvision's ``MNIST(download=True)`` stores the files under ``data_dir/MNIST/raw``,
    which ``load_mnist`` also accepts.

    Returns:
        The folder that holds the files.

    Raises:
        ConfigError: the files are missing and ``download`` is False (or the download failed).
    """
    data_dir = Path(data_dir)
    for cand in (data_dir, data_dir / "MNIST" / "raw"):
        try:
            _find(cand, MNIST_FILES["train"][0])
            return cand
        except ConfigError:
            pass
    if not download:
        raise ConfigError(
            f"{data_dir}: MNIST IDX files not found",
            hint="pass --data DIR holding train-images-idx3-ubyte.gz etc., or add --download",
        )
    try:
        from torchvision.datasets import MNIST

        MNIST(str(data_dir), train=True, download=True)
        MNIST(str(data_dir), train=False, download=True)
    except Exception as exc:  # network errors come in many types
        raise ConfigError(f"{data_dir}: MNIST download failed: {exc}", hint="download the IDX files by hand and pass --data") from exc
    return data_dir / "MNIST" / "raw"
