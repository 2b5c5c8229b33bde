"""pipeline.export and the ONNX Runtime engine: exported ONNX / TorchScript models give PyTorch's
probabilities (max abs diff <= 1e-5), carry their metadata, the CLI exports, and
``process_batch`` reads the same digits and confidences with either engine."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from pages import draw_page
from typer.testing import CliRunner

from cli import app
from pipeline.classify.checkpoint import DEFAULT_PREPROCESS, LoadedModel, load_checkpoint
from pipeline.classify.model import DigitNet
from pipeline.classify.predictor import OnnxPredictor, Predictor
from pipeline.config import RunSettings
from pipeline.errors import ConfigError, ExitCode, ModelError
from pipeline.export import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    check_parity,
    export_metadata,
    export_model,
    load_onnx_predictor,
    metadata_path_for,
    onnx_bytes,
    parity_crops,
    torchscript_module,
)
from pipeline.run import load_predictor, process_batch, resolve_engine
from pipeline.types import FormResult

TOL = 1e-5
META_KEYS = {
    "format", "format_version", "model_format", "digitform_version", "name", "arch", "classes", "temperature",
    "threshold", "preprocess", "input_name", "output_name", "input", "output", "source_checkpoint", "source_sha256",
}


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_checkpoint(None, "cpu")  # the shipped weights


@pytest.fixture(scope="module")
def model11() -> LoadedModel:
    """An 11-class model ("reject" = not a digit) with random weights and non-trivial BN statistics."""
    torch.manual_seed(0)
    net = DigitNet(num_classes=11, width=8)
    net.train()
    with torch.no_grad():
        net(torch.randn(64, 1, 28, 28))  # move the running statistics away from 0 / 1
    return LoadedModel(net=net.eval(), preprocess=dict(DEFAULT_PREPROCESS), temperature=1.7, threshold=0.8,
                       classes=tuple(str(d) for d in range(10)) + ("reject",))


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """64 crops: 32 uniform noise + 32 Hershey-font digits, MNIST-normalised."""
    x = parity_crops(64, seed=3)
    assert x.shape == (64, 28, 28) and x.dtype == np.float32
    return x


def torch_probs(m: LoadedModel, x: np.ndarray) -> np.ndarray:
    return Predictor(m, torch.device("cpu"), batch_size=64).probabilities(x)


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("which", ["model", "model11"])
def test_onnx_parity(which: str, request, crops: np.ndarray):
    m = request.getfixturevalue(which)
    blob = onnx_bytes(m)
    report = check_parity(m, blob, crops)
    assert report.ok and report.max_abs_diff <= TOL and report.argmax_agree == 1.0
    assert report.n == 64 and report.engine == "onnxruntime"
    # dynamic batch axis: batches of 1, 7 and 64 give the same rows
    ref = torch_probs(m, crops)
    for bs in (1, 7, 64):
        got = OnnxPredictor(blob, export_metadata(m, "onnx"), batch_size=bs).probabilities(crops)
        assert got.shape == (64, len(m.classes)) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("which", ["model", "model11"])
def test_torchscript_parity(which: str, request, crops: np.ndarray):
    m = request.getfixturevalue(which)
    ts = torchscript_module(m)
    report = check_parity(m, ts, crops)
    assert report.ok and report.max_abs_diff <= TOL and report.engine == "torchscript"
    with torch.inference_mode():
        out = ts(torch.from_numpy(crops[:5, None]))
    assert out.shape == (5, len(m.classes)) and out.dtype == torch.float32


def test_exported_model_includes_normalisation_and_softmax(model: LoadedModel):
    """Raw [0, 1] crops in, probabilities out: not logits, not normalised-input logits."""
    x = parity_crops(8)
    got = OnnxPredictor(onnx_bytes(model), export_metadata(model, "onnx")).probabilities(x)
    with torch.inference_mode():
        logits = model.net(torch.from_numpy(x[:, None])).numpy()  # without normalisation: different
    assert np.all(got >= 0) and np.allclose(got.sum(1), 1, atol=1e-5)
    assert not np.allclose(got, torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-3)


def test_empty_batch(model: LoadedModel):
    p = OnnxPredictor(onnx_bytes(model), export_metadata(model, "onnx")).probabilities(np.zeros((0, 28, 28), np.float32))
    assert p.shape == (0, len(model.classes))


# --------------------------------------------------------------------------- files and metadata


def test_onnx_export_writes_model_and_metadata(model: LoadedModel, tmp_path: Path):
    out = tmp_path / "sub" / "digitnet.onnx"
    r = export_model(model, out, "onnx")
    assert r.path == out and out.is_file()
    assert r.metadata_path == metadata_path_for(out) == tmp_path / "sub" / "digitnet.onnx.json"
    meta = json.loads(r.metadata_path.read_text())
    assert META_KEYS | {"opset"} <= set(meta)
    assert meta["model_format"] == "onnx" and meta["input_name"] == INPUT_NAME and meta["output_name"] == OUTPUT_NAME
    assert meta["preprocess"] == {"size": 28, "box": 20, "centre": "mass", "ink": "1.0", "mean": 0.1307, "std": 0.3081}
    assert meta["classes"] == list(model.classes) and meta["classes"][:10] == list("0123456789")
    assert meta["temperature"] == pytest.approx(model.temperature) and meta["threshold"] == model.threshold
    assert meta["input"]["shape"] == ["N", 1, 28, 28] and meta["output"]["shape"] == ["N", len(model.classes)]
    assert len(meta["source_sha256"]) == 64 and meta["source_checkpoint"] == str(model.path)
    proto = onnx.load(str(out))
    assert json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY]) == meta
    (inp,), (outp,) = proto.graph.input, proto.graph.output
    assert inp.name == INPUT_NAME and outp.name == OUTPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert r.parity.ok and check_parity(model, out).max_abs_diff <= TOL


def test_torchscript_export_embeds_metadata(model: LoadedModel, tmp_path: Path):
    out = tmp_path / "digitnet.ts.pt"
    r = export_model(model, out, "torchscript")
    meta = json.loads(r.metadata_path.read_text())
    assert META_KEYS <= set(meta) and meta["model_format"] == "torchscript"
    extra = {METADATA_KEY + ".json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; it still loads
        torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra[METADATA_KEY + ".json"]) == meta
    assert check_parity(model, out).max_abs_diff <= TOL


def test_onnx_metadata_falls_back_to_the_embedded_copy(model: LoadedModel, tmp_path: Path):
    out = tmp_path / "m.onnx"
    export_model(model, out, "onnx")
    metadata_path_for(out).unlink()
    pred = load_onnx_predictor(out)
    assert pred.classes == model.classes and pred.describe()["engine"] == "onnxruntime"


def test_corrupt_onnx_file_is_model_error(model: LoadedModel, tmp_path: Path):
    out = tmp_path / "m.onnx"
    export_model(model, out, "onnx")
    out.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        load_onnx_predictor(out)
    metadata_path_for(out).unlink()
    with pytest.raises(ModelError, match="m.onnx"):
        load_onnx_predictor(out)
    with pytest.raises(ModelError, match="not found"):
        load_onnx_predictor(tmp_path / "missing.onnx")


def test_metadata_of_another_format_is_model_error(model: LoadedModel, tmp_path: Path):
    out = tmp_path / "m.onnx"
    export_model(model, out, "onnx")
    metadata_path_for(out).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="format"):
        load_onnx_predictor(out)


# --------------------------------------------------------------------------- CLI


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("fmt,name", [("onnx", "m.onnx"), ("torchscript", "m.pt")])
def test_cli_export(fmt: str, name: str, tmp_path: Path):
    r = invoke("export", "--format", fmt, "-o", tmp_path / name)
    assert r.exit_code == ExitCode.OK, r.stderr
    assert (tmp_path / name).is_file() and (tmp_path / (name + ".json")).is_file()
    assert "max abs diff" in r.stderr


def test_cli_export_unknown_format_is_config(tmp_path: Path):
    r = invoke("export", "--format", "tflite", "-o", tmp_path / "m.tflite")
    assert r.exit_code == ExitCode.CONFIG
    assert "--format tflite" in r.stderr and not (tmp_path / "m.tflite").exists()


def test_cli_export_missing_model_is_model_error(tmp_path: Path):
    r = invoke("export", "-o", tmp_path / "m.onnx", "--model", tmp_path / "nope.pt")
    assert r.exit_code == ExitCode.MODEL


# --------------------------------------------------------------------------- engines in process_batch


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    for s in (0, 1):
        assert cv2.imwrite(str(folder / f"form_{s}.png"), draw_page(seed=s).image)
    return folder


def run(scans: Path, loaded: LoadedModel | None = None, **settings) -> list[FormResult]:
    out: list[FormResult] = []
    process_batch([scans], RunSettings(device="cpu", **settings), out.append, model=loaded)
    return out


def digits_of(forms: list[FormResult]) -> list[tuple]:
    return [(d.prediction.digit, d.prediction.confidence, d.prediction.margin, d.flagged)
            for f in forms for fr in f.fields for d in fr.digits]


def test_onnx_engine_reads_the_same_as_torch(scans: Path, model: LoadedModel, tmp_path: Path):
    torch_forms = run(scans, model, engine="torch")
    onnx_forms = run(scans, model, engine="onnx")
    export_model(model, tmp_path / "m.onnx", "onnx")
    file_forms = run(scans, None, model=tmp_path / "m.onnx")  # engine auto with a .onnx file
    ref = digits_of(torch_forms)
    assert sum(d is not None for d, *_ in ref) >= 10  # the pages hold digits
    for other in (digits_of(onnx_forms), digits_of(file_forms)):
        assert [d for d, *_ in other] == [d for d, *_ in ref]
        assert [fl for *_, fl in other] == [fl for *_, fl in ref]
        np.testing.assert_allclose([c for _, c, _, _ in other], [c for _, c, _, _ in ref], rtol=0, atol=TOL)
        np.testing.assert_allclose([m for _, _, m, _ in other], [m for _, _, m, _ in ref], rtol=0, atol=TOL)
    assert [[f.value for f in p.fields] for p in onnx_forms] == [[f.value for f in p.fields] for p in torch_forms]


def test_engine_resolution():
    assert resolve_engine("auto", "auto", "cpu") == "onnx"
    assert resolve_engine("auto", "auto", "cuda") == "torch"
    assert resolve_engine("torch", "cpu", "cpu") == "torch"
    assert resolve_engine("onnx", "auto", "cuda") == "onnx"  # asked for: runs on the CPU
    with pytest.raises(ConfigError, match="--engine onnx") as info:
        resolve_engine("onnx", "cuda", "cuda")
    assert info.value.exit_code is ExitCode.CONFIG


def test_load_predictor_picks_the_engine(model: LoadedModel, tmp_path: Path):
    assert isinstance(load_predictor(RunSettings(device="cpu"), model), OnnxPredictor)  # auto on the CPU
    assert isinstance(load_predictor(RunSettings(device="cpu", engine="torch"), model), Predictor)
    export_model(model, tmp_path / "m.onnx", "onnx")
    with pytest.raises(ConfigError, match="engine torch"):
        load_predictor(RunSettings(device="cpu", engine="torch", model=tmp_path / "m.onnx"))


def test_cli_process_engine_option(scans: Path, tmp_path: Path):
    out = tmp_path / "r.json"
    r = invoke("process", scans / "form_0.png", "-o", out, "--engine", "onnx", "--device", "cpu", "-q")
    assert r.exit_code == ExitCode.OK, r.stderr
    assert json.loads(out.read_text())["model"]["engine"] == "onnxruntime"
    r = invoke("process", scans / "form_0.png", "-o", out, "--engine", "tensorrt", "--device", "cpu")
    assert r.exit_code == ExitCode.CONFIG and "engine" in r.stderr
