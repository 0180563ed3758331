"""The patched model as three ONNX graphs with dynamic height and width.

The logic of stage `onnx`; its entry point is stages/onnx.py.

encoder.onnx: image [1, 3, H, W] -> relu4_1, relu5_1
transform.onnx: content4_1, style4_1, content5_1, style5_1 -> features
decoder.onnx: features -> image [1, 3, 8 * ceil(H / 8), 8 * ceil(W / 8)]

Exported with the TorchScript exporter (`dynamo=False`): onnx-tf 1.10 handles opset 10 well,
where pads are attributes; from opset 11 the pads become a tensor and onnx-tf wraps every
reflection pad in a `tf.cond` that TensorFlow.js then fails on (see the toolchain notes).
Every file passes `onnx.checker`, and ONNX Runtime must match PyTorch (parity.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .architecture import FEATURE_INPUTS
from .files import atomic_output

ONNX_FILES = ("encoder.onnx", "transform.onnx", "decoder.onnx")


def _spatial(*names: str) -> dict[str, dict[int, str]]:
    return {name: {2: f"{name}_height", 3: f"{name}_width"} for name in names}


def _export(module: torch.nn.Module, args: tuple, dest: Path, inputs, outputs, opset, folding):
    import onnx

    with atomic_output(dest) as staged, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            module,
            args,
            str(staged),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=_spatial(*inputs, *outputs),
            opset_version=opset,
            do_constant_folding=folding,
            dynamo=False,
        )
        onnx.checker.check_model(onnx.load(str(staged)), full_check=True)


def export_onnx(model, out_dir: Path, opset: int, constant_folding: bool) -> None:
    """Write the three ONNX files of `model` (a PatchedSANet) into `out_dir`."""
    out_dir = Path(out_dir)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 64, 48, generator=generator)
    style = torch.rand(1, 3, 48, 64, generator=generator)
    with torch.no_grad():
        c4, c5 = model.encoder(content)
        s4, s5 = model.encoder(style)
        features = model.transform(c4, s4, c5, s5)
    _export(
        model.encoder, (content,), out_dir / "encoder.onnx", ["image"],
        ["relu4_1", "relu5_1"], opset, constant_folding,
    )  # fmt: skip
    _export(
        model.transform, (c4, s4, c5, s5), out_dir / "transform.onnx", FEATURE_INPUTS,
        ["features"], opset, constant_folding,
    )  # fmt: skip
    _export(
        model.decoder, (features,), out_dir / "decoder.onnx", ["features"], ["image"],
        opset, constant_folding,
    )  # fmt: skip
