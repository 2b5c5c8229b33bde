"""pipeline.config: precedence defaults < YAML < overrides, unknown keys named by their path,
the shipped configs/*.yaml valid, and configs/schema/*.json in step with the pydantic models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pydantic
import pytest
import yaml

from pipeline.config import AugmentConfig, RunSettings, TrainConfig, build, load_yaml
from pipeline.errors import ConfigError, ExitCode

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- precedence


def test_defaults_without_file_or_overrides():
    assert build(RunSettings) == RunSettings()
    assert build(TrainConfig) == TrainConfig()


def test_yaml_overrides_defaults_and_flags_override_yaml(tmp_path: Path):
    p = write(tmp_path, "device: cpu\nbatch_size: 64\nmin_confidence: 0.8\n")
    s = build(RunSettings, p, batch_size=32)
    assert s.batch_size == 32  # flag beats file
    assert s.device == "cpu" and s.min_confidence == 0.8  # file beats default
    assert s.max_megapixels == RunSettings().max_megapixels  # default where neither says
    assert s.pages_per_batch == 8 and s.orientation is True


def test_none_override_means_not_given(tmp_path: Path):
    p = write(tmp_path, "batch_size: 64\n")
    assert build(RunSettings, p, batch_size=None, device=None).batch_size == 64


def test_nested_yaml_keeps_other_defaults(tmp_path: Path):
    p = write(tmp_path, "epochs: 3\naugment:\n  rotate: 5\n")
    c = build(TrainConfig, p, epochs=2)
    assert c.epochs == 2
    assert c.augment.rotate == 5.0
    assert c.augment.shear == AugmentConfig().shear


def test_paths_become_paths(tmp_path: Path):
    p = write(tmp_path, "model: some/where.pt\n")
    assert build(RunSettings, p).model == Path("some/where.pt")


def test_settings_are_frozen():
    with pytest.raises(pydantic.ValidationError):
        RunSettings().batch_size = 3  # type: ignore[misc]


def test_empty_file_is_all_defaults(tmp_path: Path):
    assert build(RunSettings, write(tmp_path, "# nothing set\n")) == RunSettings()


# --------------------------------------------------------------------------- errors


def test_unknown_nested_key_names_its_path(tmp_path: Path):
    p = write(tmp_path, "augment:\n  rotat: 5\n")
    with pytest.raises(ConfigError, match=r"augment\.rotat") as info:
        build(TrainConfig, p)
    assert str(p) in str(info.value)
    assert info.value.exit_code is ExitCode.CONFIG


def test_unknown_top_level_key_names_it(tmp_path: Path):
    with pytest.raises(ConfigError, match="batchsize"):
        build(RunSettings, write(tmp_path, "batchsize: 3\n"))


def test_unknown_override_names_it():
    with pytest.raises(ConfigError, match="colour"):
        build(RunSettings, None, colour="red")


@pytest.mark.parametrize(
    ("text", "where"),
    [("epochs: 0\n", "epochs"), ("device: tpu\n", "device"), ("augment:\n  rotate: 90\n", "augment.rotate"), ("lr: fast\n", "lr")],
)
def test_bad_value_names_its_path(tmp_path: Path, text, where):
    with pytest.raises(ConfigError, match=rf"{where}\b"):
        build(TrainConfig, write(tmp_path, text))


def test_bad_override_value_is_config_error():
    with pytest.raises(ConfigError, match="min_confidence"):
        build(RunSettings, None, min_confidence=2.0)


def test_all_errors_reported_on_one_line(tmp_path: Path):
    p = write(tmp_path, "epochs: 0\nbatch_size: -1\nfoo: 1\n")
    with pytest.raises(ConfigError) as info:
        build(TrainConfig, p)
    line = info.value.one_line()
    assert "\n" not in line
    assert all(k in line for k in ("epochs", "batch_size", "foo"))


@pytest.mark.parametrize("text", ["device: [cpu\n", "a: b: c\n", "\tdevice: cpu\n"], ids=["unclosed", "nested-colon", "tab"])
def test_bad_yaml_is_config_error(tmp_path: Path, text):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        build(RunSettings, p)
    assert str(p) in str(info.value)
    assert "\n" not in info.value.one_line()


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text):
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(write(tmp_path, text))


def test_missing_file_is_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        build(RunSettings, tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- shipped configs


def test_run_yaml_lists_every_setting_at_its_default():
    path = CONFIGS / "run.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(data) == list(RunSettings.model_fields)  # every key, in the model's order
    assert build(RunSettings, path) == RunSettings()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert "#" in line, f"setting without a comment: {line!r}"


def test_train_yaml_is_valid():
    c = build(TrainConfig, CONFIGS / "train.yaml")
    assert isinstance(c, TrainConfig)
    data = yaml.safe_load((CONFIGS / "train.yaml").read_text(encoding="utf-8"))
    assert set(data["augment"]) == set(AugmentConfig.model_fields)


# --------------------------------------------------------------------------- JSON schemas


def _gen_schemas():
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts" / "gen_schemas.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_schemas_are_not_stale():
    expected = _gen_schemas().schemas()
    assert {p.name for p in expected} == {"run.schema.json", "train.schema.json"}
    for path, text in expected.items():
        assert path.is_file(), f"{path} missing: run python scripts/gen_schemas.py"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python scripts/gen_schemas.py"


@pytest.mark.parametrize("name", ["run", "train"])
def test_shipped_yaml_validates_against_its_schema(name):
    schema = json.loads((CONFIGS / "schema" / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_unknown_keys_like_the_model():
    schema = json.loads((CONFIGS / "schema" / "train.schema.json").read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError, match="rotat"):
        jsonschema.Draft202012Validator(schema).validate({"augment": {"rotat": 5}})
