"""``pipeline.evaluate`` and ``digitform evaluate``: metrics (ECE, threshold recommendation), the three
input kinds (MNIST IDX, crop folders, forms with truth), plots, and storing a threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from digit_images import HAVE_MNIST, MNIST_DIR, pick, render_digit, write_mnist_subset
from typer.testing import CliRunner

from cli import app
from pipeline.classify.checkpoint import default_checkpoint_path, load_checkpoint
from pipeline.data import load_mnist
from pipeline.errors import ExitCode
from pipeline.evaluate import ece, error_reject_curve, recommend_threshold, threshold_metrics

needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST IDX files not found in {MNIST_DIR} (set DIGITFORM_MNIST)")
PNGS = ("confusion.png", "error_reject.png", "worst_errors.png")
KEYS = {"n", "accuracy", "error_rate", "ece", "flag_rate", "caught", "threshold", "errors", "unflagged_errors_per_1000"}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_pngs(folder: Path) -> None:
    for name in PNGS:
        img = cv2.imread(str(folder / name))
        assert img is not None and img.shape[0] > 150 and img.shape[1] > 300, name


@pytest.fixture(scope="module")
def mnist_test():
    if not HAVE_MNIST:
        pytest.skip("MNIST not available")
    return load_mnist(MNIST_DIR, "test")


@pytest.fixture(scope="module")
def mnist_500(tmp_path_factory, mnist_test) -> Path:
    """The first 500 MNIST test digits as a small IDX folder (fast)."""
    images, labels = mnist_test
    return write_mnist_subset(tmp_path_factory.mktemp("mnist500"), images[:500], labels[:500])


# --------------------------------------------------------------------------- metrics


def test_ece_is_zero_when_calibrated_and_positive_when_overconfident():
    rng = np.random.default_rng(0)
    conf = np.repeat([0.55, 0.65, 0.75, 0.85, 0.95], 1000)
    correct = np.concatenate([np.arange(1000) < 1000 * c for c in (0.55, 0.65, 0.75, 0.85, 0.95)])
    assert ece(conf, correct) == pytest.approx(0.0, abs=1e-9)
    # sampled: right with probability = confidence
    conf = rng.uniform(0.1, 1.0, 200_000)
    assert ece(conf, rng.random(conf.size) < conf) < 0.01
    # overconfident: says 0.99, right 70% of the time
    conf = np.full(1000, 0.99)
    assert ece(conf, np.arange(1000) < 700) == pytest.approx(0.29)
    assert ece(np.zeros(0), np.zeros(0, bool)) == 0.0
    assert ece(np.array([0.0]), np.array([False])) == 0.0  # confidence 0 is in the first bin


def test_recommend_threshold_known_answers():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 0, 1, 1, 0, 1], bool)
    # no error allowed: flag everything from 0.8 down; midway between 0.9 (accepted) and 0.8 (flagged)
    assert recommend_threshold(conf, correct, 0.0) == pytest.approx(0.85)
    # 1 error in 6 accepted (0.1667) meets 0.2; accepting 0.5 too would give 2/7 = 0.286
    assert recommend_threshold(conf, correct, 0.2) == pytest.approx(0.55)
    # 2 errors in all 8 = 0.25: nothing needs flagging
    assert recommend_threshold(conf, correct, 0.25) == 0.0
    m = threshold_metrics(conf, correct, 0.55)
    assert m["flag_rate"] == pytest.approx(2 / 8) and m["caught"] == pytest.approx(0.5)
    assert m["error_rate_unflagged"] == pytest.approx(1 / 6) and m["unflagged_errors_per_1000"] == pytest.approx(125.0)
    # the lowest threshold wins even when a higher one is worse (non-monotone error rate)
    conf2 = np.array([0.9, 0.8, 0.7, 0.6])
    assert recommend_threshold(conf2, np.array([0, 1, 1, 1], bool), 0.25) == 0.0
    # ties are never split; no threshold at all when the most confident digits are wrong
    assert recommend_threshold(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1], bool), 0.0) is None
    assert recommend_threshold(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 0], bool), 0.5) == pytest.approx(0.7)


def test_error_reject_curve():
    conf = np.array([0.9, 0.8, 0.8, 0.3])
    correct = np.array([1, 1, 0, 0], bool)
    thr, rej, er = error_reject_curve(conf, correct)
    assert thr.tolist() == [0.0, 0.8, 0.9]
    assert rej.tolist() == pytest.approx([0.0, 0.25, 0.75])
    assert er.tolist() == pytest.approx([0.5, 1 / 3, 0.0])


# --------------------------------------------------------------------------- digitform evaluate


@needs_mnist
def test_evaluate_mnist_idx(mnist_500: Path, tmp_path: Path):
    out = tmp_path / "eval"
    r = invoke("evaluate", "--data", mnist_500, "--device", "cpu", "--out-dir", out, "--json")
    assert r.exit_code == ExitCode.OK, r.stderr
    s = json.loads(r.stdout)  # nothing but the JSON on stdout
    assert KEYS <= set(s)
    assert s["kind"] == "mnist" and s["split"] == "test" and s["n"] == 500
    assert 0.97 <= s["accuracy"] <= 1.0 and s["error_rate"] == pytest.approx(1 - s["accuracy"])
    assert s["errors"] == round(500 * s["error_rate"])
    for k in ("ece", "flag_rate", "caught"):
        assert 0.0 <= s[k] <= 1.0, k
    assert s["ece"] < 0.05
    assert s["threshold"] == load_checkpoint(None).threshold
    assert 0.0 <= s["unflagged_errors_per_1000"] <= 1000 * s["error_rate"]
    assert any(row["threshold"] == s["threshold"] for row in s["threshold_table"])
    assert_pngs(out)
    assert json.loads((out / "summary.json").read_text()) == s
    # without --json: a short report, then the same JSON
    r2 = invoke("evaluate", "--data", mnist_500, "--device", "cpu", "--out-dir", out, "--threshold", "0.5")
    assert r2.exit_code == ExitCode.OK, r2.stderr
    head, _, tail = r2.stdout.partition("\n{")
    assert "500 digits" in head and "threshold 0.5" in head
    assert json.loads("{" + tail)["threshold"] == 0.5


@needs_mnist
def test_evaluate_crop_folder(mnist_test, tmp_path: Path):
    images, labels = mnist_test
    root = tmp_path / "crops"
    sizes = (28, 40, 64, 96, 130)
    for k, i in enumerate(pick(labels, 4, skip=20)):
        d = root / str(int(labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        img = render_digit(images[i], sizes[k % len(sizes)], border=k % 3 == 0, pad=0.1 + 0.05 * (k % 4))
        assert cv2.imwrite(str(d / f"{k:03d}.png"), img)
    (root / "3" / "broken.png").write_bytes(b"not an image")  # skipped with a warning
    out = tmp_path / "eval"
    r = invoke("evaluate", "--crops", root, "--device", "cpu", "--out-dir", out, "--json")
    assert r.exit_code == ExitCode.OK, r.stderr
    s = json.loads(r.stdout)
    assert s["kind"] == "crops" and s["n"] == 40
    assert s["accuracy"] > 0.9
    assert_pngs(out)


@needs_mnist
@pytest.mark.slow
def test_evaluate_forms(tmp_path: Path):
    from pipeline.synth import generate_forms

    forms = tmp_path / "forms"
    generate_forms(forms, 2, 5, MNIST_DIR)
    out = tmp_path / "eval"
    r = invoke("evaluate", "--forms", forms, "--device", "cpu", "--out-dir", out, "--json", "--target-error", "0.01")
    assert r.exit_code == ExitCode.OK, r.stderr
    s = json.loads(r.stdout)
    assert KEYS <= set(s)
    assert s["kind"] == "forms" and s["n"] > 20
    for k in ("cell_recall", "cell_precision", "digit_accuracy", "field_accuracy"):
        assert 0.0 <= s[k] <= 1.0, k
    assert s["cell_recall"] > 0.9 and s["accuracy"] > 0.85
    assert s["n"] <= s["digits_truth"] and s["pages_failed"] == 0
    from pipeline.assemble import _DIGIT_FLAGS, FLAG_IN_TEXT

    assert set(s["flag_reasons"]) <= {*_DIGIT_FLAGS, FLAG_IN_TEXT}
    assert all(t["right_alone"] <= t["right"] and t["wrong_alone"] <= t["wrong"] for t in s["flag_reasons"].values())
    assert s["recommended_threshold"] is None or 0.0 <= s["recommended_threshold"] <= 1.0
    assert_pngs(out)


@needs_mnist
def test_target_error_and_write_threshold(mnist_500: Path, tmp_path: Path):
    model = tmp_path / "copy.pt"
    shutil.copy(default_checkpoint_path(), model)
    before = load_checkpoint(model)
    r = invoke("evaluate", "--data", mnist_500, "--device", "cpu", "--out-dir", tmp_path / "eval", "--json",
               "--model", model, "--target-error", "0.002", "--write-threshold")
    assert r.exit_code == ExitCode.OK, r.stderr
    s = json.loads(r.stdout)
    rec = s["recommended_threshold"]
    assert 0.0 <= rec <= 1.0 and 0.0 <= s["recommended_flag_rate"] <= 1.0
    assert s["recommended_error_rate_unflagged"] <= 0.002
    after = load_checkpoint(model)
    assert after.threshold == pytest.approx(rec) and after.threshold != before.threshold
    assert after.temperature == before.temperature and after.classes == before.classes
    assert after.preprocess == before.preprocess
    assert after.metrics["threshold_choice"]["target_error"] == 0.002
    def _drop(m: dict) -> dict:
        return {k: v for k, v in m.items() if k != "threshold_choice"}

    assert _drop(after.metrics) == _drop(before.metrics)
    for k, v in before.net.state_dict().items():
        assert torch.equal(v, after.net.state_dict()[k]), k
    # evaluating again uses the stored threshold
    r = invoke("evaluate", "--data", mnist_500, "--device", "cpu", "--out-dir", tmp_path / "eval", "--json", "--model", model)
    assert json.loads(r.stdout)["threshold"] == pytest.approx(rec)


def test_write_threshold_refuses_the_shipped_model(tmp_path: Path):
    shipped = default_checkpoint_path()
    mtime = shipped.stat().st_mtime_ns
    r = invoke("evaluate", "--crops", tmp_path, "--target-error", "0.01", "--write-threshold", "--out-dir", tmp_path / "e")
    assert r.exit_code == ExitCode.CONFIG
    assert "--model" in r.stderr
    r = invoke("evaluate", "--crops", tmp_path, "--write-threshold", "--model", tmp_path / "m.pt", "--out-dir", tmp_path / "e")
    assert r.exit_code == ExitCode.CONFIG and "--target-error" in r.stderr
    assert shipped.stat().st_mtime_ns == mtime


def test_evaluate_usage_errors(tmp_path: Path):
    assert invoke("evaluate", "--out-dir", tmp_path / "e").exit_code == ExitCode.CONFIG
    assert invoke("evaluate", "--data", tmp_path, "--crops", tmp_path, "--out-dir", tmp_path / "e").exit_code == ExitCode.CONFIG
    assert invoke("evaluate", "--data", tmp_path, "--threshold", "2", "--out-dir", tmp_path / "e").exit_code == ExitCode.CONFIG
    assert invoke("evaluate", "--data", tmp_path, "--out-dir", tmp_path / "e", "--device", "cpu").exit_code == ExitCode.CONFIG  # no IDX files
    assert invoke("evaluate", "--crops", tmp_path, "--out-dir", tmp_path / "e", "--device", "cpu").exit_code == ExitCode.CONFIG  # no crops
    assert invoke("evaluate", "--data", tmp_path, "--model", tmp_path / "no.pt", "--out-dir", tmp_path / "e").exit_code == ExitCode.MODEL
    assert invoke("evaluate", "--forms", tmp_path, "--out-dir", tmp_path / "e", "--device", "cpu").exit_code == ExitCode.CONFIG  # no truth.json
    (tmp_path / "truth.json").write_text("{not json")
    assert invoke("evaluate", "--forms", tmp_path, "--out-dir", tmp_path / "e", "--device", "cpu").exit_code == ExitCode.PAGES_FAILED
