"""Checkpoints are opened safely and checked tensor by tensor, every problem named."""

from __future__ import annotations

import pytest
import torch

from sanet_tfjs.architecture import DECODER_FILE, TRANSFORM_FILE
from sanet_tfjs.checkpoints import CheckpointError, load_checkpoint
from tests.conftest import TINY
from tests.hardening import malicious_pickles


def test_malicious_pickles_are_refused_without_running(tmp_path):
    marker = tmp_path / "payload-ran"
    for path in malicious_pickles(tmp_path, marker):
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path, TINY)
        assert str(path) in str(error.value)
        assert not marker.exists(), f"the payload in {path} ran"


def _save(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_every_problem_is_named(tmp_path, tiny_states):
    state = dict(tiny_states[TRANSFORM_FILE])
    del state["sanet4_1.f.weight"]
    state["sanet4_1.extra.weight"] = torch.zeros(1)
    state["merge_conv.bias"] = torch.zeros(3)
    state["sanet5_1.h.bias"] = state["sanet5_1.h.bias"].double()
    nan = state["sanet5_1.g.weight"].clone()
    nan[0, 0, 0, 0] = float("nan")
    state["sanet5_1.g.weight"] = nan
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(_save(tmp_path, TRANSFORM_FILE, state), TINY)
    message = str(error.value)
    assert "5 problem(s)" in message
    for expected in (
        "missing tensor 'sanet4_1.f.weight'",
        "unexpected tensor 'sanet4_1.extra.weight'",
        "'merge_conv.bias' has shape [3], expected [64]",
        "'sanet5_1.h.bias' has dtype torch.float64",
        "'sanet5_1.g.weight' contains NaN or Inf",
    ):
        assert expected in message


def test_width_mismatch_points_at_the_setting(tmp_path, tiny_states):
    path = _save(tmp_path, DECODER_FILE, tiny_states[DECODER_FILE])
    with pytest.raises(CheckpointError, match="width_divisor"):
        load_checkpoint(path, 1)


def test_truncated_file_is_rejected(tmp_path, tiny_states):
    path = _save(tmp_path, DECODER_FILE, tiny_states[DECODER_FILE])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path, TINY)


def test_non_dict_checkpoint_is_rejected(tmp_path):
    path = _save(tmp_path, DECODER_FILE, [torch.zeros(2)])
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_checkpoint(path, TINY)


def test_legacy_format_loads(tmp_path, tiny_states):
    # Upstream's files date from 2019; the pre-zip torch.save format must load too.
    path = tmp_path / DECODER_FILE
    torch.save(tiny_states[DECODER_FILE], path, _use_new_zipfile_serialization=False)
    assert set(load_checkpoint(path, TINY)) == set(tiny_states[DECODER_FILE])
