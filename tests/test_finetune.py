"""pipeline.finetune and ``digitform train --finetune``: a crop folder in, a loadable checkpoint and
before/after held-out accuracy out; seeded split, reproducible runs, 10- and 11-class models,
the temperature prior, unreadable crops skipped, bad options refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from pipeline.classify.checkpoint import DEFAULT_PREPROCESS, LoadedModel, load_checkpoint
from pipeline.classify.model import DigitNet
from pipeline.config import FinetuneConfig
from pipeline.data import load_mnist
from pipeline.errors import ConfigError, ExitCode
from pipeline.finetune import finetune, fit_temperature_prior, load_labelled_crops, split_per_class

MNIST_DIR = Path(os.environ.get("DIGITFORM_MNIST", Path(__file__).resolve().parents[2] / "shared/data/mnist"))
HAVE_MNIST = any(MNIST_DIR.glob("t10k-images-idx3-ubyte*"))
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST IDX files not found in {MNIST_DIR} (set DIGITFORM_MNIST)")
RESULT_KEYS = {"checkpoint", "before_accuracy", "after_accuracy", "before_nll", "after_nll", "n_finetune", "n_held_out",
               "skipped", "temperature_before", "temperature", "history", "seconds"}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def mnist_crops(tmp_path_factory) -> Path:
    """DIR/<digit>/*.png: 20 MNIST test digits per class written with a thick marker
    (dilated), as dark ink on white at 3x MNIST size."""
    if not HAVE_MNIST:
        pytest.skip("MNIST absent")
    root = tmp_path_factory.mktemp("mnist_crops")
    images, labels = load_mnist(MNIST_DIR, "test")
    for d in range(10):
        (root / str(d)).mkdir()
        for k, i in enumerate(np.flatnonzero(labels == d)[:20]):
            big = cv2.resize(images[i], (84, 84), interpolation=cv2.INTER_LINEAR)
            big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17)))
            assert cv2.imwrite(str(root / str(d) / f"{k:03d}.png"), 255 - big)
    return root


@pytest.fixture(scope="module")
def drawn_crops(tmp_path_factory) -> Path:
    """DIR/<digit>/*.png: 8 digits per class in Hershey fonts, white on black (MNIST polarity), 40x40."""
    root = tmp_path_factory.mktemp("drawn_crops")
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX)
    for d in range(10):
        (root / str(d)).mkdir()
        for k in range(8):
            img = np.zeros((40, 40), np.uint8)
            cv2.putText(img, str(d), (9, 32), fonts[k % 4], 1.0 + 0.05 * k, 255, 2 + k % 3, cv2.LINE_AA)
            assert cv2.imwrite(str(root / str(d) / f"{k}.png"), img)
    return root


@pytest.fixture(scope="module")
def small11() -> LoadedModel:
    """An 11-class model (10 digits + "reject"), narrow and randomly initialised: fast to fine-tune."""
    torch.manual_seed(0)
    return LoadedModel(net=DigitNet(num_classes=11, width=8).eval(), preprocess=dict(DEFAULT_PREPROCESS), temperature=1.3,
                       threshold=0.85, classes=tuple(str(d) for d in range(10)) + ("reject",), name="tiny")


# --------------------------------------------------------------------------- CLI, shipped model


@needs_mnist
@pytest.mark.slow
def test_cli_finetune_writes_a_loadable_checkpoint_and_reports_accuracy(mnist_crops: Path, tmp_path: Path):
    out = tmp_path / "ft.pt"
    r = invoke("train", "--finetune", mnist_crops, "--epochs", 1, "--out", out, "--device", "cpu", "-q")
    assert r.exit_code == ExitCode.OK, r.stderr
    report = json.loads(r.stdout)
    assert RESULT_KEYS <= set(report)
    assert report["n_finetune"] == 160 and report["n_held_out"] == 40 and report["skipped"] == 0
    assert 0 <= report["before_accuracy"] <= 1 and 0 <= report["after_accuracy"] <= 1
    assert report["after_accuracy"] >= report["before_accuracy"] - 0.1  # one epoch at a low rate does no harm
    assert len(report["history"]) == 1
    m = load_checkpoint(out, "cpu")
    assert m.classes == load_checkpoint(None, "cpu").classes and m.name.endswith("-ft")
    assert m.temperature == pytest.approx(report["temperature"])
    ft = m.metrics["finetune"]
    assert ft["before_accuracy"] == report["before_accuracy"] and ft["after_accuracy"] == report["after_accuracy"]
    assert ft["n_held_out"] == 40 and "base" in m.metrics


def test_cli_finetune_missing_folder_is_config(tmp_path: Path):
    r = invoke("train", "--finetune", tmp_path / "nope", "--out", tmp_path / "ft.pt", "--device", "cpu")
    assert r.exit_code == ExitCode.CONFIG
    assert "nope" in r.stderr and not (tmp_path / "ft.pt").exists()


def test_cli_model_without_finetune_is_config(tmp_path: Path):
    r = invoke("train", "--model", tmp_path / "x.pt")
    assert r.exit_code == ExitCode.CONFIG and "--finetune" in r.stderr


def test_cli_finetune_refuses_full_training_options(drawn_crops: Path, tmp_path: Path):
    r = invoke("train", "--finetune", drawn_crops, "--resume")
    assert r.exit_code == ExitCode.CONFIG and "--resume" in r.stderr


# --------------------------------------------------------------------------- API


def test_split_is_per_class_seeded_and_disjoint():
    counts = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))
    tr, ho = split_per_class(labels, 0.2, seed=1)
    assert len(np.intersect1d(tr, ho)) == 0 and len(tr) + len(ho) == len(labels)
    for c, n in enumerate(counts):
        assert int((labels[ho] == c).sum()) == max(1, round(0.2 * n))
    tr2, ho2 = split_per_class(labels, 0.2, seed=1)
    assert np.array_equal(ho, ho2) and np.array_equal(tr, tr2)
    assert not np.array_equal(ho, split_per_class(labels, 0.2, seed=2)[1])
    tr1, ho1 = split_per_class(np.array([0, 1, 1]), 0.5, seed=0)  # a lone crop is trained on
    assert list(tr1) == [0, 1] or list(tr1) == [0, 2]
    with pytest.raises(ConfigError, match="at least 2 crops"):
        split_per_class(np.array([0, 1, 2]), 0.2, seed=0)


def test_temperature_prior_keeps_t_when_every_crop_is_right():
    logits = torch.zeros(30, 10)
    labels = torch.arange(30) % 10
    logits[torch.arange(30), labels] = 4.0  # all right, moderately confident
    t_map = fit_temperature_prior(logits, labels, prior=1.2, prior_std=0.5)
    assert 0.3 < t_map < 1.2  # pulled down by the data, held up by the prior
    assert fit_temperature_prior(logits, labels, prior=1.2, prior_std=0.01) == pytest.approx(1.2, rel=0.02)


def test_load_labelled_crops_normalises_and_skips_unreadable(drawn_crops: Path, tmp_path: Path):
    crops, labels, skipped = load_labelled_crops(drawn_crops)
    assert crops.shape == (80, 28, 28) and crops.dtype == np.float32 and skipped == 0
    assert 0 <= crops.min() and crops.max() <= 1 and (crops.reshape(80, -1).max(1) > 0.5).all()
    assert np.array_equal(np.bincount(labels), np.full(10, 8))
    bad = tmp_path / "bad"
    for d in (0, 1):
        (bad / str(d)).mkdir(parents=True)
        cv2.imwrite(str(bad / str(d) / "ok.png"), cv2.imread(str(drawn_crops / str(d) / "0.png"), cv2.IMREAD_GRAYSCALE))
    (bad / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cv2.imwrite(str(bad / "0" / "blank.png"), np.full((30, 30), 255, np.uint8))
    crops, labels, skipped = load_labelled_crops(bad)
    assert len(crops) == 2 and list(labels) == [0, 1] and skipped == 2


@pytest.mark.slow
def test_finetune_11_class_model_is_reproducible(drawn_crops: Path, small11: LoadedModel, tmp_path: Path):
    before = {k: v.clone() for k, v in small11.net.state_dict().items()}
    results, states = [], []
    for k in range(2):
        cfg = FinetuneConfig(crops=drawn_crops, out=tmp_path / f"ft{k}.pt", epochs=1, device="cpu", seed=7, batch_size=16)
        results.append(finetune(cfg, model=small11))
        states.append(load_checkpoint(cfg.out, "cpu"))
    a, b = results
    assert (a.before_accuracy, a.after_accuracy, a.temperature) == (b.before_accuracy, b.after_accuracy, b.temperature)
    assert a.n_finetune + a.n_held_out == 80 and a.n_held_out == 20
    assert states[0].classes[-1] == "reject" and len(states[0].classes) == 11
    for k, v in states[0].net.state_dict().items():
        assert torch.equal(v, states[1].net.state_dict()[k]), k
    assert not torch.equal(states[0].net.state_dict()["head.5.weight"], small11.net.state_dict()["head.5.weight"])
    for k, v in small11.net.state_dict().items():  # the start model is not modified
        assert torch.equal(v, before[k]), k


@needs_mnist
def test_finetune_mixes_mnist_when_data_is_given(drawn_crops: Path, small11: LoadedModel, tmp_path: Path):
    cfg = FinetuneConfig(crops=drawn_crops, out=tmp_path / "ft.pt", epochs=1, device="cpu", data=MNIST_DIR, batch_size=16)
    r = finetune(cfg, model=small11)
    assert load_checkpoint(cfg.out, "cpu").metrics["finetune"]["mnist_mixed"] is True
    assert r.history and r.history[0]["train_loss"] > 0


def test_finetune_takes_crops_given_as_arrays_unchanged(drawn_crops: Path, small11: LoadedModel, tmp_path: Path):
    x, y, _ = load_labelled_crops(drawn_crops)
    x = x.copy()
    x[:, :, :3] = 1.0  # a box-line fragment down the left edge: the folder loader would not keep it so
    cfg = FinetuneConfig(crops=tmp_path / "unused", out=tmp_path / "ft.pt", epochs=1, device="cpu", seed=7, batch_size=16)
    r = finetune(cfg, model=small11, crops=(x, y))
    assert r.n_finetune + r.n_held_out == len(y) and r.skipped == 0
    # the held-out accuracy before is the start model's on these very arrays
    _, ho = split_per_class(y, cfg.held_out, cfg.seed)
    from pipeline.train import predict_logits

    logits = predict_logits(small11.net, torch.from_numpy(x[ho]).unsqueeze(1), dict(small11.preprocess), torch.device("cpu"))
    assert r.before_accuracy == pytest.approx(float((logits[:, :10].argmax(1).numpy() == y[ho]).mean()))


def test_validation_split_is_a_seeded_partition_of_the_training_images():
    from pipeline.data import validation_split

    tr, val = validation_split(60_000, seed=0, val_size=5000)
    assert len(val) == 5000 and len(tr) == 55_000
    assert len(np.union1d(tr, val)) == 60_000 and not np.intersect1d(tr, val).size
    tr2, val2 = validation_split(60_000, seed=0, val_size=5000)
    assert np.array_equal(val, val2) and np.array_equal(tr, tr2)
    assert not np.array_equal(val, validation_split(60_000, seed=1, val_size=5000)[1])
