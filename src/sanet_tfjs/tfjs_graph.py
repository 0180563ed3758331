"""A TensorFlow.js graph-model bundle in memory, the rewrites that make it fast, quantization.

Why the rewrites (measured with `tf.profile` in TensorFlow.js 4.22, wasm backend, one
stylization at 256x256, full-width fixture model, before any rewrite):
- FusedConv2D 6.0 s: the convolutions themselves (XNNPACK, about 21 GFLOP/s on one thread);
- BatchMatMul 3.3 s: the two attention products per SANet block. The converter's graph
  optimiser folds their transposes into the matmul's `adj_x` / `adj_y` flags, and the wasm
  kernel runs a transposed operand with a strided loop: [1024, 512] x [512, 1024] takes
  52 ms plain, 650 ms with adj_y and 2.4 s with adj_x. `unfold_matmul_adjoints` puts the
  transposes back as Transpose nodes (about 3 ms each at that size);
- Transpose 0.4 s: onnx-tf's NCHW <-> NHWC wrapping of every convolution (4 % of the time).
  They are left alone: removing them means moving layouts through the loop's control flow.

A bundle is loaded with every weight dequantized to its float value and written again with
the quantization asked for, so the rewrites and the quantization never depend on each other.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np

from .config import Quantization
from .errors import PipelineError

QUANTIZATIONS = get_args(Quantization)  # the values pipeline.yaml accepts
# Only float tensors this large are quantized: the filters and biases that make the bundle's
# size. Scalars and small constants stay float32; some hold extremes (onnx-tf pads max
# pooling with float32's lowest value) that float16 cannot represent.
QUANTIZE_MIN_ELEMENTS = 64
MATMUL_ADJOINTS = {"BatchMatMul": ("adj_x", "adj_y"), "BatchMatMulV2": ("adj_x", "adj_y")}


def _quiet_tensorflowjs_import() -> None:
    # tensorflowjs imports tensorflow_decision_forests, which takes any captured stdout (pytest,
    # doit) for a notebook and imports IPython (not installed) to greet it. This turns that off.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")


class GraphRewriteError(PipelineError):
    """A rewrite met a graph it cannot handle safely."""


@dataclass
class GraphBundle:
    """model.json without its weights manifest, and the weights as float arrays by name."""

    model: dict
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nodes(self) -> list[dict]:
        return self.model["modelTopology"]["node"]

    @classmethod
    def load(cls, folder: Path) -> GraphBundle:
        _quiet_tensorflowjs_import()
        from tensorflowjs.read_weights import read_weights

        model = json.loads((Path(folder) / "model.json").read_text())
        manifest = model.pop("weightsManifest")
        entries = read_weights(manifest, str(folder), flatten=True)
        return cls(model, {entry["name"]: entry["data"] for entry in entries})

    def save(self, folder: Path, shard_bytes: int, quantization: str = "none") -> None:
        """model.json and its shards into the existing, empty `folder`."""
        _quiet_tensorflowjs_import()
        from tensorflowjs.write_weights import write_weights

        if quantization not in QUANTIZATIONS:
            raise GraphRewriteError(
                f"unknown quantization {quantization!r}: use one of {sorted(QUANTIZATIONS)}"
            )
        group = [{"name": name, "data": data} for name, data in self.weights.items()]
        quantized = [
            glob.escape(name)  # the converter's map takes fnmatch patterns
            for name, data in self.weights.items()
            if data.dtype == np.float32 and data.size >= QUANTIZE_MIN_ELEMENTS
        ]
        manifest = write_weights(
            [group],
            str(folder),
            shard_size_bytes=shard_bytes,
            write_manifest=False,
            quantization_dtype_map=None if quantization == "none" else {quantization: quantized},
        )
        model = dict(self.model, weightsManifest=manifest)
        (Path(folder) / "model.json").write_text(json.dumps(model))

    def add_const(self, name: str, value: np.ndarray) -> str:
        """A Const node (its value is a weight, as the converter stores them); returns name."""
        if name not in self.weights:
            dtype = {np.dtype("int32"): "DT_INT32", np.dtype("float32"): "DT_FLOAT"}[value.dtype]
            dims = [{"size": str(size)} for size in value.shape]
            self.nodes.append(
                {
                    "name": name,
                    "op": "Const",
                    "attr": {
                        "dtype": {"type": dtype},
                        "value": {"tensor": {"dtype": dtype, "tensorShape": {"dim": dims}}},
                    },
                }
            )
            self.weights[name] = value
        return name


def unfold_matmul_adjoints(bundle: GraphBundle, rank: int) -> int:
    """Replace each batch matmul's adjoint flags by a Transpose of that operand.

    `rank` is the rank of the matmul operands: the converted graph does not record it, and
    TensorFlow.js needs a full permutation. (A wrong rank fails loudly at run time, in the
    stage's own parity check.) Returns how many flags were unfolded.
    """
    if rank < 2:
        raise GraphRewriteError(f"a matmul operand has rank >= 2, got {rank}")
    perm = np.array([*range(rank - 2), rank - 1, rank - 2], np.int32)
    perm_name = bundle.add_const(f"sanet_tfjs/swap_last_two_of_rank{rank}", perm)
    unfolded = 0
    for node in list(bundle.nodes):
        for operand, flag in enumerate(MATMUL_ADJOINTS.get(node["op"], ())):
            if not node.get("attr", {}).get(flag, {}).get("b", False):
                continue
            transpose = f"{node['name']}/sanet_tfjs_{flag}"
            bundle.nodes.append(
                {
                    "name": transpose,
                    "op": "Transpose",
                    "input": [node["input"][operand], perm_name],
                    "attr": {"T": node["attr"]["T"], "Tperm": {"type": "DT_INT32"}},
                }
            )
            node["input"][operand] = transpose
            node["attr"][flag] = {"b": False}
            unfolded += 1
    return unfolded


def matmul_adjoints(bundle: GraphBundle) -> int:
    """How many batch-matmul adjoint flags are set (0 after `unfold_matmul_adjoints`)."""
    return sum(
        bool(node.get("attr", {}).get(flag, {}).get("b", False))
        for node in bundle.nodes
        for flag in MATMUL_ADJOINTS.get(node["op"], ())
    )


def optimize(bundle: GraphBundle, matmul_rank: int) -> dict[str, int]:
    """Every rewrite, in order; what each changed."""
    return {"matmul_adjoints_unfolded": unfold_matmul_adjoints(bundle, matmul_rank)}
