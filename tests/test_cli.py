"""cli.py through typer.testing.CliRunner: exit codes (ExitCode members), outputs written, and
one-line error messages on stderr that name the file or option and say what to do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import jsonschema
import pandas as pd
import pytest
import torch
from pages import draw_page
from typer.testing import CliRunner

from cli import app
from pipeline.classify.checkpoint import load_checkpoint
from pipeline.errors import ExitCode
from pipeline.writer import CSV_COLUMNS, load_schema

MNIST_DIR = Path(os.environ.get("DIGITFORM_MNIST", Path(__file__).resolve().parents[2] / "shared/data/mnist"))
HAVE_MNIST = any(MNIST_DIR.glob("train-images-idx3-ubyte*")) and any(MNIST_DIR.glob("t10k-images-idx3-ubyte*"))
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST IDX files not found in {MNIST_DIR} (set DIGITFORM_MNIST)")


# --------------------------------------------------------------------------- helpers


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def error_line(result) -> str:
    """The one error message on stderr (asserts there is exactly one line and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("digitform: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def page_images():
    return [draw_page(seed=s).image for s in (0, 1)]


@pytest.fixture
def scans(tmp_path: Path, page_images) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    for k, img in enumerate(page_images):
        assert cv2.imwrite(str(folder / f"form_{k}.png"), img)
    return folder


# --------------------------------------------------------------------------- process


def test_process_success_writes_csv_and_json(scans: Path, tmp_path: Path):
    csv_out, json_out = tmp_path / "out" / "a.csv", tmp_path / "out" / "b.json"
    r = invoke("process", scans, "-o", csv_out, "-o", json_out, "--device", "cpu")
    assert r.exit_code == ExitCode.OK, r.stderr
    df = pd.read_csv(csv_out, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["source", "page", "field", "value", "confidence", "flagged", "flags", "status", "error"]
    assert tuple(df.columns) == CSV_COLUMNS
    assert sorted(set(df["source"])) == [str(scans / "form_0.png"), str(scans / "form_1.png")]
    assert set(df["status"]) <= {"ok", "needs_review"}
    assert (df["error"] == "").all()
    doc = json.loads(json_out.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert doc["schema_version"] == 1
    assert {"name", "arch", "file", "temperature", "threshold"} <= set(doc["model"])
    assert [(p["source"], p["page"]) for p in doc["pages"]] == [(str(scans / f"form_{k}.png"), 1) for k in range(2)]
    assert all(p["width"] == 1700 and p["height"] == 2200 for p in doc["pages"])
    # CSV and JSON hold the same fields
    assert [f["value"] for p in doc["pages"] for f in p["fields"]] == list(df["value"])
    assert not json_out.with_name(json_out.name + ".partial.jsonl").exists()
    assert "2 page(s) from 2 file(s)" in r.stderr


def test_process_jsonl_output(scans: Path, tmp_path: Path):
    out = tmp_path / "r.jsonl"
    r = invoke("process", scans / "form_0.png", "-o", out, "-q", "--device", "cpu")
    assert r.exit_code == ExitCode.OK
    assert r.stderr == ""  # --quiet
    (line,) = out.read_text().splitlines()
    page = json.loads(line)
    schema = load_schema()
    page_schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/page"}
    jsonschema.Draft202012Validator(page_schema).validate(page)
    assert page["schema_version"] == 1


def test_corrupt_file_exits_pages_failed_and_keeps_every_row(scans: Path, tmp_path: Path):
    (scans / "form_05.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    csv_out, json_out = tmp_path / "a.csv", tmp_path / "b.json"
    r = invoke("process", scans, "-o", csv_out, "-o", json_out, "--device", "cpu")
    assert r.exit_code == ExitCode.PAGES_FAILED
    df = pd.read_csv(csv_out, dtype=str, keep_default_na=False)
    sources = list(dict.fromkeys(df["source"]))
    assert [Path(s).name for s in sources] == ["form_0.png", "form_05.png", "form_1.png"]
    bad = df[df["source"].str.endswith("form_05.png")]
    assert len(bad) == 1 and bad.iloc[0]["status"] == "failed" and bad.iloc[0]["field"] == ""
    assert "form_05.png" in bad.iloc[0]["error"]
    assert set(df[~df["source"].str.endswith("form_05.png")]["status"]) <= {"ok", "needs_review"}
    doc = json.loads(json_out.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert [p["status"] == "failed" for p in doc["pages"]] == [False, True, False]
    failed = [line for line in r.stderr.splitlines() if line.startswith("digitform: failed:")]
    assert len(failed) == 1 and "form_05.png" in failed[0]
    assert "1 failed" in r.stderr


def test_empty_folder_is_no_input(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    r = invoke("process", tmp_path / "empty", "-o", tmp_path / "o.csv")
    assert r.exit_code == ExitCode.NO_INPUT
    assert str(tmp_path / "empty") in error_line(r)


def test_min_confidence_out_of_range_is_config(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--min-confidence", "2")
    assert r.exit_code == ExitCode.CONFIG
    assert "min_confidence" in error_line(r)
    assert not (tmp_path / "o.csv").exists()


def test_unknown_key_in_config_file_is_config_and_named(scans: Path, tmp_path: Path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("device: cpu\nbatchsize: 64\n")
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--config", cfg)
    assert r.exit_code == ExitCode.CONFIG
    line = error_line(r)
    assert "batchsize" in line and str(cfg) in line


def test_bad_yaml_is_config(scans: Path, tmp_path: Path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("device: [cpu\n")
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--config", cfg)
    assert r.exit_code == ExitCode.CONFIG
    assert str(cfg) in error_line(r)


def test_missing_config_file_is_config(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--config", tmp_path / "nope.yaml")
    assert r.exit_code == ExitCode.CONFIG
    assert "nope.yaml" in error_line(r)


def test_unknown_device_is_config(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--device", "tpu")
    assert r.exit_code == ExitCode.CONFIG
    assert "device" in error_line(r)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_device_cuda_without_gpu_is_config(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--device", "cuda")
    assert r.exit_code == ExitCode.CONFIG
    line = error_line(r)
    assert "cuda" in line and "--device cpu" in line


def test_missing_model_is_model_error(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--model", "/nonexistent.pt")
    assert r.exit_code == ExitCode.MODEL
    line = error_line(r)
    assert "/nonexistent.pt" in line and "--model" in line


@pytest.mark.parametrize("content", [b"\x00\x01 definitely not a checkpoint", "torch-dict"], ids=["garbage", "foreign-torch-file"])
def test_corrupt_model_is_model_error(scans: Path, tmp_path: Path, content):
    bad = tmp_path / "bad.pt"
    if content == "torch-dict":
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        bad.write_bytes(content)
    r = invoke("process", scans, "-o", tmp_path / "o.csv", "--model", bad)
    assert r.exit_code == ExitCode.MODEL
    assert str(bad) in error_line(r)


def test_unknown_output_suffix_is_output_error(scans: Path, tmp_path: Path):
    r = invoke("process", scans, "-o", tmp_path / "out.txt", "--device", "cpu")
    assert r.exit_code == ExitCode.OUTPUT
    line = error_line(r)
    assert "out.txt" in line and ".csv" in line
    assert not (tmp_path / "out.txt").exists()


def test_output_path_is_a_folder_is_output_error(scans: Path, tmp_path: Path):
    (tmp_path / "out.csv").mkdir()
    r = invoke("process", scans, "-o", tmp_path / "out.csv", "--device", "cpu")
    assert r.exit_code == ExitCode.OUTPUT
    assert "out.csv" in error_line(r)


def test_missing_output_option_is_usage(scans: Path):
    r = invoke("process", scans)
    assert r.exit_code == ExitCode.USAGE


def test_version():
    r = invoke("--version")
    assert r.exit_code == ExitCode.OK
    assert r.stdout.startswith("digitform ")


# --------------------------------------------------------------------------- train, synth, score


@pytest.mark.slow
@needs_mnist
def test_train_smoke(tmp_path: Path):
    small = tmp_path / "small.yaml"  # a tiny network and validation split, to keep the smoke test quick
    small.write_text("width: 8\nval_size: 500\nbatch_size: 32\nseed: 1\nsplit_seed: 0\n")
    r = invoke(
        "train", "--config", small, "--epochs", 1, "--max-batches", 3, "--out", tmp_path / "m.pt",
        "--work-dir", tmp_path / "run", "--data", MNIST_DIR, "--device", "cpu", "-q",
    )
    assert r.exit_code == ExitCode.OK, r.stderr
    model = load_checkpoint(tmp_path / "m.pt")
    assert model.temperature > 0
    assert model.metrics["epochs"] == 1
    assert (model.metrics["seed"], model.metrics["split_seed"]) == (1, 0)  # a variant: own seed, the shipped split
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert (tmp_path / "run" / "last.pt").is_file()


def test_train_unknown_key_is_config(tmp_path: Path):
    bad = tmp_path / "t.yaml"
    bad.write_text("augment:\n  rotat: 5\n")
    r = invoke("train", "--config", bad, "--data", tmp_path)
    assert r.exit_code == ExitCode.CONFIG
    assert "augment.rotat" in error_line(r)


def test_train_without_data_is_config(tmp_path: Path):
    r = invoke("train", "--data", tmp_path / "nothing", "--out", tmp_path / "m.pt", "--work-dir", tmp_path / "run", "--epochs", 1)
    assert r.exit_code == ExitCode.CONFIG
    assert "nothing" in error_line(r)
    assert not (tmp_path / "m.pt").exists()


@needs_mnist
def test_synth_then_process_then_score(tmp_path: Path):
    forms = tmp_path / "forms"
    r = invoke("synth", forms, "--count", 2, "--seed", 3, "--data", MNIST_DIR)
    assert r.exit_code == ExitCode.OK, r.stderr
    truth = json.loads((forms / "truth.json").read_text())
    assert len(truth["pages"]) == 2
    images = sorted(p.name for p in forms.iterdir() if p.name != "truth.json")
    assert len(images) == 2
    out = tmp_path / "out.json"
    r = invoke("process", forms, "-o", out, "--device", "cpu", "-q")
    assert r.exit_code == ExitCode.OK, r.stderr
    r = invoke("score", out, forms / "truth.json")
    assert r.exit_code == ExitCode.OK, r.stderr
    report = json.loads(r.stdout)
    assert isinstance(report, dict) and report


def test_synth_bad_style_is_config(tmp_path: Path):
    r = invoke("synth", tmp_path / "f", "--style", "fancy")
    assert r.exit_code == ExitCode.CONFIG
    assert "fancy" in error_line(r)


def test_score_missing_truth_names_it(tmp_path: Path):
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"schema_version": 1, "model": {}, "pages": []}))
    r = invoke("score", res, tmp_path / "truth.json")
    assert r.exit_code == ExitCode.PAGES_FAILED  # InputError's code
    assert "truth.json" in error_line(r)


# --------------------------------------------------------------------------- docs in step with the code

ROOT = Path(__file__).resolve().parents[1]


def test_every_exit_code_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in readme, f"README misses exit code {int(code)} {code.name}"


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    blocks = readme.split("```bash\n")
    install = blocks[1].split("```")[0].strip()
    tests = next(b for b in blocks if b.startswith("pytest")).split("```")[0].strip()
    assert install == 'pip install -e ".[test]"'
    assert tests == "pytest -q"
    commands = [ln.split("#")[0].strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert install in commands and tests in commands
    assert commands[-1] == tests
    assert [c for c in commands if "pip " in c] == [install]  # nothing else installs packages
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
