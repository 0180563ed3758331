"""The three ONNX graphs to TensorFlow SavedModels with onnx-tf.

The logic of stage `tf`; its entry point is stages/tf.py.

onnx-tf 1.10 is imported through `onnx_tf_compat`. Before converting, every node is checked
against onnx-tf's handler table, so an op it cannot convert stops the build with the op's name
and opset rather than a trace from deep inside the converter. The SavedModels must match
PyTorch (parity.py) before the folder is moved into place.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PipelineError


class UnsupportedOnnxOp(PipelineError):
    """The ONNX graph uses an op (at that opset) that onnx-tf has no handler for."""


def _onnx_tf():
    from .formats import onnx_tf_compat

    onnx_tf_compat.install()
    onnx_tf_compat.trace_without_autograph()
    import onnx_tf.backend
    import onnx_tf.common.handler_helper

    return onnx_tf


def unsupported_ops(model) -> list[str]:
    """`Op (opset N)` for every op of an ONNX model that onnx-tf cannot convert."""
    from onnx import defs

    onnx_tf = _onnx_tf()
    coverage = onnx_tf.common.handler_helper.get_backend_coverage()[0]
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    problems = set()
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        opset = opsets.get(domain, opsets.get("ai.onnx", 0))
        supported = coverage.get(domain, {}).get(node.op_type, [])
        try:
            since = defs.get_schema(node.op_type, opset, domain).since_version
        except defs.SchemaError:
            since = None
        if since is None or since not in supported:
            problems.add(f"{node.op_type} (opset {opset}, op version {since})")
    return sorted(problems)


def convert_onnx_file(onnx_path: Path, dest: Path) -> None:
    """One ONNX file to a SavedModel directory at `dest`."""
    import onnx

    onnx_tf = _onnx_tf()
    model = onnx.load(str(onnx_path))
    problems = unsupported_ops(model)
    if problems:
        raise UnsupportedOnnxOp(
            f"onnx-tf 1.10 cannot convert {onnx_path.name}: no handler for "
            f"{', '.join(problems)}. Export with an opset onnx-tf supports (pipeline.yaml "
            f"onnx.opset; 10 is known to work) or avoid that op in the model."
        )
    onnx_tf.backend.prepare(model).export_graph(str(dest))
    fix_fingerprint_uuid(dest)


def fix_fingerprint_uuid(saved_model_dir: Path) -> None:
    """Replace the random uuid TensorFlow writes into fingerprint.pb with the model's own
    checksum, so that the same model gives the same bytes."""
    from tensorflow.core.protobuf import fingerprint_pb2

    path = Path(saved_model_dir) / "fingerprint.pb"
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.uuid = str(fingerprint.saved_model_checksum)
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))
