"""The onnx and tf stages at tiny width: exports that check out and match PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from sanet_tfjs.files import sha256_file
from sanet_tfjs.parity import ParityError
from sanet_tfjs.stages.onnx import run_onnx_stage
from sanet_tfjs.stages.tf import run_tf_stage
from sanet_tfjs.tf_convert import UnsupportedOnnxOp, convert_onnx_file
from tests.conftest import ROOT, TINY, TOLERANCES


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, patched_dir):
    folder = tmp_path_factory.mktemp("build") / "onnx"
    run_onnx_stage(str(patched_dir), str(folder), TINY, 10, False, **TOLERANCES)
    return folder


def test_onnx_files_check_out_with_dynamic_sizes(onnx_dir):
    for name in ("encoder", "transform", "decoder"):
        model = onnx.load(str(onnx_dir / f"{name}.onnx"))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version == 10
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            assert dims[2].dim_param and dims[3].dim_param  # height and width are dynamic


def test_onnx_runtime_matches_pytorch(onnx_dir):
    report = json.loads((onnx_dir / "parity.json").read_text())
    assert report["passed"] and len(report["pairs"]) == 3
    for row in report["pairs"]:
        for key in ("relu4_1", "relu5_1", "transform"):
            assert row[key]["rel_l2"] <= 1e-5
        assert row["image"]["max_abs"] <= 1e-4


def test_saved_models_match_pytorch(onnx_dir, patched_dir, tmp_path):
    out = tmp_path / "tf"
    run_tf_stage(str(onnx_dir), str(patched_dir), str(out), TINY, **TOLERANCES)
    report = json.loads((out / "parity.json").read_text())
    assert report["passed"]
    assert all(row["image"]["max_abs"] <= 1e-4 for row in report["pairs"])
    assert all((out / part / "saved_model.pb").is_file() for part in ("encoder", "decoder"))


def test_out_of_tolerance_export_is_not_installed(patched_dir, tmp_path):
    out = tmp_path / "onnx"
    with pytest.raises(ParityError, match="relu4_1 rel_l2"):
        run_onnx_stage(str(patched_dir), str(out), TINY, 10, False, 1e-12, 1e-12)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind either


def test_unsupported_op_is_named_with_its_opset(tmp_path):
    # Unsqueeze-13 takes its axes as an input; onnx-tf 1.10 has no handler for it.
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["x", "axes"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("axes", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    path = tmp_path / "unsqueeze.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(UnsupportedOnnxOp) as error:
        convert_onnx_file(path, tmp_path / "saved")
    assert "Unsqueeze (opset 13" in str(error.value)
    assert not (tmp_path / "saved").exists()


def test_onnx_tf_compat_is_needed_and_enough():
    plain = subprocess.run(
        [sys.executable, "-c", "import onnx_tf"], capture_output=True, text=True, timeout=300
    )
    assert plain.returncode != 0, "onnx-tf imports without the patch: remove onnx_tf_compat"
    assert "mapping" in plain.stderr
    patched = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sanet_tfjs.formats import onnx_tf_compat; onnx_tf_compat.install();"
            "from onnx_tf.backend import prepare; print('ok')",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert patched.returncode == 0, patched.stderr[-2000:]
    assert patched.stdout.strip().endswith("ok")


AUTOGRAPH_EXPERIMENT = """
import sys
from pathlib import Path

import onnx
from sanet_tfjs.formats import onnx_tf_compat
from sanet_tfjs.tf_convert import fix_fingerprint_uuid

onnx_tf_compat.install()
from onnx_tf.backend import prepare

onnx_dir, out, tracing = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if tracing == "plain":  # as the tf stage runs onnx-tf; "autograph": as shipped
    onnx_tf_compat.trace_without_autograph()
for part in ("encoder", "transform", "decoder"):
    dest = out / part
    prepare(onnx.load(str(onnx_dir / f"{part}.onnx"))).export_graph(str(dest))
    fix_fingerprint_uuid(dest)
"""


@pytest.mark.slow
def test_tracing_without_autograph_gives_the_same_saved_models(onnx_dir, tmp_path):
    """onnx_tf_compat.trace_without_autograph makes the tf stage faster, not different. Each
    way in a process of its own, as the stage runs: TensorFlow numbers the functions it
    traces per process, so two conversions in one process differ anyway."""
    sums = {}
    for tracing in ("autograph", "plain"):
        done = subprocess.run(
            [sys.executable, "-c", AUTOGRAPH_EXPERIMENT, str(onnx_dir), str(tmp_path / tracing),
             tracing],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        folder = tmp_path / tracing
        sums[tracing] = {
            str(path.relative_to(folder)): sha256_file(path)
            for path in folder.rglob("*")
            if path.is_file()
        }
    assert len(sums["plain"]) >= 9  # saved_model.pb, fingerprint.pb and variables, each part
    assert sums["plain"] == sums["autograph"]
