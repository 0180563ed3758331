"""The TFStyle SavedModel to a TensorFlow.js graph model, checked in Node.

The logic of stage `tfjs`; its entry point is stages/tfjs.py.

tensorflowjs's converter freezes the serving signature into model.json plus weight shards.
The graph is then rewritten for TensorFlow.js's kernels (tfjs_graph.py, `tfjs.optimize`), the
weights written again with the quantization asked for (`tfjs.quantization`; `auto`: each
tensor as the plan stage chose, quantize.load_plan, the plan in the report), and model.json
written with sorted keys so that the same graph always gives the same bytes.
TensorFlow.js has no Assert op, so the converter strips the signature's input checks
(`strip_debug_ops`); web code validates inputs before calling the model (see js/). The stage
then runs the bundle with TensorFlow.js in Node (wasm backend) on the parity pairs against the
PyTorch reference, and checks the bundle size: weights that appear twice in the frozen graph
(one copy per call site) would show as a bundle well over the parameters' float32 size.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from .errors import PipelineError
from .formats.tfjs_graph import GraphBundle, expose_style_features
from .formats.tfjs_graph import optimize as optimize_graph
from .parity import compare_stylizations, reference_results, stylization_runs
from .quantize import QuantizationPlan, bundle_encodings
from .reports import NodeTimings, TfjsParityReport, WinogradReport
from .runtimes.node import run_in_node

# SANet's attention products multiply [batch, positions, channels] tensors (model.py).
ATTENTION_MATMUL_RANK = 3


class ConversionError(PipelineError):
    """tensorflowjs's converter or the Node check failed."""


UNSTABLE_NODE_ATTR = "_has_manual_control_dependencies"


def run_converter(saved_model: Path, out_dir: Path) -> None:
    """tensorflowjs's converter: the serving signature frozen into a float32 graph model.

    Run in this process, not as `tensorflowjs_converter`: the same bytes without a second
    TensorFlow import (at full width 7.6 s instead of 15.6). Its chatter (a print for each
    int64 weight it narrows) is kept out of the log and shown only if it fails. Not stderr:
    a logging handler made inside the redirect would keep writing to it afterwards."""
    from tensorflowjs.converters.tf_saved_model_conversion_v2 import convert_tf_saved_model

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            convert_tf_saved_model(
                str(saved_model),
                str(out_dir),
                signature_def="serving_default",
                saved_model_tags="serve",
                strip_debug_ops=True,
            )
    except Exception as error:  # any converter failure: named, with what it printed
        tail = "\n".join(chatter.getvalue().strip().splitlines()[-15:])
        raise ConversionError(
            f"tensorflowjs's converter failed on {saved_model}: {error}\n{tail}"
        ) from error
    restore_output_names(saved_model, Path(out_dir) / "model.json")


def restore_output_names(saved_model: Path, model_json: Path) -> None:
    """Key model.json's signature outputs by the SavedModel's output names.

    tensorflowjs's converter finds an output's name by its dtype and static shape
    (`_find_signature_def_name`), and keys it by its frozen tensor name when another output
    has the same ones: style4_1 and style5_1 (both [?, ?, ?, ?] float32) came out as
    "Identity_1:0" and "Identity_2:0". Both sides follow the signature's flat output order:
    the SavedModel's i-th output is `StatefulPartitionedCall:i`, the frozen graph's is
    `Identity` (i = 0) or `Identity_i`."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(saved_model) / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    model = json.loads(model_json.read_text())
    outputs = model["signature"]["outputs"]
    for key, info in signature.outputs.items():
        if key in outputs:
            continue
        index = int(info.name.rpartition(":")[2])
        frozen = f"Identity_{index}:0" if index else "Identity:0"
        if frozen not in outputs:
            raise ConversionError(
                f"the converted model has no output {key!r} (looked for {frozen}); its "
                f"outputs: {sorted(outputs)}"
            )
        outputs[key] = outputs.pop(frozen)
    model_json.write_text(json.dumps(model))


def finish_bundle(
    raw_dir: Path,
    out_dir: Path,
    shard_bytes: int,
    quantization: str,
    optimize: bool,
    plan: QuantizationPlan | None = None,
    winograd: dict[tuple[int, int], str] | None = None,
) -> tuple[dict[str, int], list[dict]]:
    """The converter's bundle, rewritten (if `optimize`) and quantized, into `out_dir`;
    quantization "auto" follows `plan` (sanet_tfjs.quantize); `winograd`: (in, out) channels
    -> the Winograd variant of the 3x3 convolutions of those channels (`winograd_choices`;
    none: all direct). Always: the style features' feed points named
    (tfjs_graph.expose_style_features), for the same style again.

    Returns what each graph rewrite changed, and each 3x3 convolution's variant."""
    bundle = GraphBundle.load(raw_dir)
    convolutions: list[dict] = []
    rewrites = (
        optimize_graph(bundle, ATTENTION_MATMUL_RANK, winograd or {}, convolutions)
        if optimize
        else {}
    )
    expose_style_features(bundle)
    encodings = None
    if quantization == "auto":
        if plan is None:
            raise ConversionError("quantization 'auto' needs a plan: the plan stage's (load_plan)")
        encodings, unmatched = bundle_encodings(bundle.weights, plan)
        if unmatched:
            print(f"  auto quantization: {len(unmatched)} tensors match no parameter, kept float32")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    bundle.save(Path(out_dir), shard_bytes, quantization, encodings)
    normalize_model_json(Path(out_dir) / "model.json")
    return rewrites, convolutions


def winograd_record(convolutions: list[dict], enabled: bool) -> WinogradReport:
    """What the report says of the 3x3 convolutions: each one's variant, and the timings
    that chose them (when, where, the full-width choice)."""
    from .formats.winograd_timings import CHOICES, MEASURED

    return {
        "winograd": enabled,
        "layers": convolutions,
        "chosen_by": MEASURED,
        "full_width_choices": {f"{cin}x{cout}": v for (cin, cout), v in CHOICES.items()},
    }


def normalize_model_json(path: Path) -> None:
    """Rewrite model.json so that the same graph always gives the same bytes.

    - Keys are sorted: the converter writes protobuf maps (node attrs) in varying order.
    - `_has_manual_control_dependencies`, a private marker of tf.function's automatic control
      dependencies, is dropped: the converter's graph optimisation sometimes leaves it on the
      while loop's Merge node and sometimes not (seen under CPU load). TensorFlow.js does not
      read it.

    Lists (nodes, weights) keep their order; TensorFlow.js reads keys in any order.
    """
    data = json.loads(path.read_text())
    for node in data["modelTopology"].get("node", []):
        node.get("attr", {}).pop(UNSTABLE_NODE_ATTR, None)
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")))


def bundle_bytes(model_dir: Path) -> dict[str, int]:
    manifest = json.loads((Path(model_dir) / "model.json").read_text())["weightsManifest"]
    shards = [Path(model_dir) / path for group in manifest for path in group["paths"]]
    return {
        "shards": len(shards),
        "weights": sum(path.stat().st_size for path in shards),
        "model_json": (Path(model_dir) / "model.json").stat().st_size,
    }


def compare_in_node(
    model_dir: Path, model, result_max_abs: float | None
) -> tuple[TfjsParityReport, NodeTimings]:
    """TFJS (Node, wasm) against the PyTorch reference on the parity runs: the report (what
    the report stage reads; the same bytes for the same bundle) and the run times apart."""
    runs = stylization_runs()
    node = run_in_node(model_dir, [run[1:] for run in runs])
    for (name, *_), entry in zip(runs, node["results"], strict=True):
        if "error" in entry:
            raise ConversionError(f"TensorFlow.js failed on {name}: {entry['error']}")
    references = reference_results(model, runs)  # one PyTorch run each, for both checks
    results = [entry["result"] for entry in node["results"]]
    report: TfjsParityReport = compare_stylizations(
        "tfjs", runs, results, model, result_max_abs, references
    )
    restyled = [entry["restyled"] for entry in node["results"]]
    report["style_features_fed_back"] = compare_stylizations(
        "tfjs, style features fed back", runs, restyled, model, result_max_abs, references
    )
    report["backend"] = node["backend"]
    timings: NodeTimings = {
        "backend": node["backend"],
        "pairs": [
            {"pair": name, "ms": entry["ms"], "restyled_ms": entry["restyledMs"]}
            for (name, *_), entry in zip(runs, node["results"], strict=True)
        ],
    }
    return report, timings
