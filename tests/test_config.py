"""pipeline.yaml validation: each bad value gives one clear error naming its key path."""

from __future__ import annotations

import copy

import pytest
import yaml

from sanet_tfjs.config import ConfigError, load_config, parse_config
from tests.conftest import ROOT, executed_tasks

DEFAULT = yaml.safe_load((ROOT / "pipeline.yaml").read_text())


def with_change(path: str, value):
    """DEFAULT with the value at `path` replaced; path keys are split on "/"."""
    data = copy.deepcopy(DEFAULT)
    *parents, last = path.split("/")
    node = data
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()
VGG = "fetch/checkpoints/vgg_normalised.pth"
VGG_KEY = "fetch.checkpoints.vgg_normalised.pth"


def test_repository_config_is_valid():
    config = load_config(ROOT / "pipeline.yaml")
    assert config.fetch.profile == "fixture"
    assert config.model.width_divisor == 1


@pytest.mark.parametrize(
    ("path", "value", "key_path", "words"),
    [
        ("fetch/retrys", 3, "fetch.retrys", "unknown key"),
        ("modell", {}, "modell", "unknown key"),
        ("fetch/retries", "three", "fetch.retries", "valid integer"),
        ("fetch/retries", -1, "fetch.retries", "greater than or equal to 0"),
        ("fetch/read_timeout_s", 0, "fetch.read_timeout_s", "greater than 0"),
        ("fetch/profile", "trained", "fetch.profile", "'fixture' or 'upstream'"),
        ("fetch/yandex_api", "ftp://example.org/api", "fetch.yandex_api", "http:// or https://"),
        ("fetch/mirror", "gopher://host/x", "fetch.mirror", "http:// or https://"),
        (f"{VGG}/yandex", "file:///etc/passwd", f"{VGG_KEY}.yandex", "http:// or https://"),
        (f"{VGG}/github", 42, f"{VGG_KEY}.github", "valid string"),
        ("model/width_divisor", 3, "model.width_divisor", "must be one of"),
        ("model/width_divisor", True, "model.width_divisor", "valid integer"),
        ("fixture/seed", 1.5, "fixture.seed", "valid integer"),
        ("fetch/checkpoints/other.pth", {}, "fetch.checkpoints.other.pth", "vgg_normalised.pth"),
        ("fetch/checkpoints", {}, "fetch.checkpoints", "missing"),
        ("fetch", DELETE, "fetch", "required key is missing"),
    ],
)
def test_bad_value_names_its_key_path(path, value, key_path, words):
    with pytest.raises(ConfigError) as error:
        parse_config(with_change(path, value))
    message = str(error.value)
    assert "1 problem(s)" in message
    assert f"  - {key_path}: " in message
    assert words in message


def test_several_problems_are_listed_together():
    data = with_change("fetch/retries", "x")
    data["model"]["colour"] = "blue"
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert "2 problem(s)" in str(error.value)


def test_unreadable_files_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("fetch: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    broken.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(broken)


def test_doit_refuses_an_invalid_config_and_builds_nothing(scratch_pipeline):
    scratch_pipeline.config["fetch"]["retries"] = "many"
    scratch_pipeline.save()
    result = scratch_pipeline.doit()
    assert result.returncode != 0
    assert "fetch.retries" in result.stderr and "Traceback" not in result.stderr
    assert executed_tasks(result) == []
    assert not (scratch_pipeline.artifacts / "checkpoints").exists()
