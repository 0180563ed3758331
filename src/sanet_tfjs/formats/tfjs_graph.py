"""A TensorFlow.js graph-model bundle in memory, the rewrites that make it fast, quantization.

Why the rewrites (measured with `tf.profile` in TensorFlow.js 4.22, wasm backend, one
stylization at 256x256, full-width fixture model, before any rewrite):
- FusedConv2D 6.0 s: the convolutions themselves (XNNPACK, about 21 GFLOP/s on one thread);
- BatchMatMul 3.3 s: the two attention products per SANet block. The converter's graph
  optimiser folds their transposes into the matmul's `adj_x` / `adj_y` flags, and the wasm
  kernel runs a transposed operand with a strided loop: [1024, 512] x [512, 1024] takes
  52 ms plain, 650 ms with adj_y and 2.4 s with adj_x. `unfold_matmul_adjoints` puts the
  transposes back as Transpose nodes (about 3 ms each at that size);
- Transpose: onnx-tf keeps ONNX's NCHW and wraps every convolution, pooling and resize in
  NCHW -> NHWC -> NCHW transposes; the filters' (OIHW -> HWIO on every call) are folded into
  the weights, and `cancel_layout_transposes` removes the activations' pairs between layers,
  so the encoder and decoder run in NHWC with each Relu fused into its convolution.

And why memory (`tf.profile` in Node, wasm, full width, one stylization; `node
js/profile_model.mjs` lists the tensors alive at the peak). TensorFlow.js's executor frees a
tensor when its last reader has run, but never one that enters or leaves a control-flow op
(Enter, Switch, Merge, NextIteration: it cannot count their readers), and copies every tensor
passing one (`clone`, a real copy on wasm). Every weight reached its convolution through
several of them (`bypass_loop_plumbing`, `fold_constant_transposes`), and onnx-tf wraps every
pad in a `tf.cond` whose predicate freezing made constant (`eliminate_constant_conds`), so
every padded activation lived until the stylization ended. Wasm heap at 512x512: 3,629 MB
before these rewrites, 558 MB after (of which 269 MB are the weights and XNNPACK's packed copy
of them, present after any run); 628 MB on a second run since the graph also returns the
style's features (README, "Benchmark").

A bundle is loaded with every weight dequantized to its float value and written again with
the quantization asked for, so the rewrites and the quantization never depend on each other.
"""

from __future__ import annotations

import base64
import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np

from ..errors import PipelineError
from ..settings.tfjs import Quantization

QUANTIZATIONS = get_args(Quantization)  # the values pipeline.yaml accepts
# Only float tensors this large are quantized: the filters and biases that make the bundle's
# size. Scalars and small constants stay float32; some hold extremes (onnx-tf pads max
# pooling with float32's lowest value) that float16 cannot represent.
QUANTIZE_MIN_ELEMENTS = 64
MATMUL_ADJOINTS = {"BatchMatMul": ("adj_x", "adj_y"), "BatchMatMulV2": ("adj_x", "adj_y")}
# Ops that pass a tensor along the while loop's frames unchanged (Merge is handled apart).
LOOP_PLUMBING = {"Enter", "Exit", "Identity", "NextIteration", "Switch"}


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
        from tensorflowjs.read_weights import read_weights

        model = json.loads((Path(folder) / "model.json").read_text())
        manifest = model.pop("weightsManifest")
        entries = read_weights(manifest, str(folder), flatten=True)
        return cls(model, {entry["name"]: entry["data"] for entry in entries})

    def save(
        self,
        folder: Path,
        shard_bytes: int,
        quantization: str = "none",
        encodings: dict[str, str | dict] | None = None,
    ) -> None:
        """model.json and its shards into the existing, empty `folder`.

        `quantization` applies to every float tensor of QUANTIZE_MIN_ELEMENTS or more; for
        "auto", `encodings` says it per weight: "float16", or a pre-quantized manifest entry
        (sanet_tfjs.quantize), the others staying float32."""
        from tensorflowjs.write_weights import write_weights

        if quantization not in QUANTIZATIONS:
            raise GraphRewriteError(
                f"unknown quantization {quantization!r}: use one of {sorted(QUANTIZATIONS)}"
            )
        if (quantization == "auto") != (encodings is not None):
            raise GraphRewriteError("per-weight encodings go with quantization 'auto' only")
        encodings = encodings or {}
        group = [
            encodings[name]
            if isinstance(encodings.get(name), dict)
            else {"name": name, "data": data}
            for name, data in self.weights.items()
        ]
        quantizable = [
            name
            for name, data in self.weights.items()
            if data.dtype == np.float32 and data.size >= QUANTIZE_MIN_ELEMENTS
        ]
        if quantization == "auto":
            dtype_map = {"float16": [n for n in quantizable if encodings.get(n) == "float16"]}
        elif quantization != "none":
            dtype_map = {quantization: quantizable}
        else:
            dtype_map = None
        if dtype_map is not None:  # the converter's map takes fnmatch patterns
            dtype_map = {
                dtype: [glob.escape(n) for n in names] for dtype, names in dtype_map.items()
            }
        manifest = write_weights(
            [group],
            str(folder),
            shard_size_bytes=shard_bytes,
            write_manifest=False,
            quantization_dtype_map=dtype_map,
        )
        model = dict(self.model, weightsManifest=manifest)
        (Path(folder) / "model.json").write_text(json.dumps(model))

    def add_const(self, name: str, value: np.ndarray) -> str:
        """A Const node (its value is a weight, as the converter stores them); returns name."""
        if name not in self.weights:
            self.nodes.append({"name": name, "op": "Const", "attr": const_attr(value)})
            self.weights[name] = value
        return name


def const_attr(value: np.ndarray) -> dict:
    """The attributes of a Const node whose value (a weight) is `value`."""
    dtype = {np.dtype("int32"): "DT_INT32", np.dtype("float32"): "DT_FLOAT"}[value.dtype]
    dims = [{"size": str(size)} for size in value.shape]
    return {
        "dtype": {"type": dtype},
        "value": {"tensor": {"dtype": dtype, "tensorShape": {"dim": dims}}},
    }


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


def _split_ref(ref: str) -> tuple[str, int]:
    """'node:1' -> ('node', 1); 'node' -> ('node', 0)."""
    name, _, index = ref.partition(":")
    return name, int(index or 0)


def _data_inputs(node: dict) -> list[str]:
    return [ref for ref in node.get("input", []) if not ref.startswith("^")]


def constant_sources(bundle: GraphBundle) -> dict[str, str]:
    """Every tensor that is provably a weight passed along the loop's plumbing (Enter, Merge,
    Switch, NextIteration, Exit, Identity) -> that weight's Const node.

    A Merge is a weight when every input is that weight. Its inputs include its own loop's
    NextIteration, a cycle, so this is a greatest fixed point: each Merge starts as "any"
    and is narrowed to one weight, or to none, until nothing changes."""
    nodes = {node["name"]: node for node in bundle.nodes}
    any_weight, not_weight = object(), None
    merges = {name: any_weight for name, node in nodes.items() if node["op"] == "Merge"}

    def resolve(ref: str, seen: frozenset = frozenset()):
        name, index = _split_ref(ref)
        node = nodes.get(name)
        if node is None or name in seen:
            return not_weight
        op = node["op"]
        if op == "Const":
            return name if index == 0 and name in bundle.weights else not_weight
        if op == "Merge":
            return merges[name] if index == 0 else not_weight  # output 1: which input came
        if op in LOOP_PLUMBING and index <= (1 if op == "Switch" else 0):
            return resolve(_data_inputs(node)[0], seen | {name})
        return not_weight

    changed = True
    while changed:
        changed = False
        for name in merges:
            values = {resolve(ref) for ref in _data_inputs(nodes[name])} - {any_weight}
            value = values.pop() if len(values) == 1 else (any_weight if not values else None)
            if value != merges[name]:
                merges[name], changed = value, True
    sources = {}
    for node in bundle.nodes:
        for ref in _data_inputs(node):
            weight = resolve(ref)
            if isinstance(weight, str) and _split_ref(ref)[0] != weight:
                sources[ref] = weight
    return sources


def bypass_loop_plumbing(bundle: GraphBundle) -> int:
    """Feed every computation that reads a weight through the loop's plumbing from the
    weight's Const itself. TensorFlow.js's executor copies a tensor at each Enter, Merge,
    Switch, NextIteration and Identity (a `clone`, which the wasm backend makes a real copy),
    so each weight was copied several times per call: 844 MB of Identity at 64x64, most of the
    memory of a stylization. A Const is read from any frame of the loop. Returns how many
    inputs were rewired."""
    sources = constant_sources(bundle)
    rewired = 0
    for node in bundle.nodes:
        if node["op"] in LOOP_PLUMBING or node["op"] == "Merge":
            continue
        inputs = node.get("input", [])
        for position, ref in enumerate(inputs):
            if ref in sources:
                inputs[position] = sources[ref]
                rewired += 1
    return rewired


def fold_constant_transposes(bundle: GraphBundle) -> int:
    """Replace each Transpose of a weight by a Const holding the transposed weight (onnx-tf
    turns every OIHW filter into HWIO on every call: a copy per convolution per call, and a
    new filter that XNNPACK packs again each time). One Const per (weight, permutation), so
    weights stay stored once. Returns how many Transposes were folded."""
    folded_names: dict[tuple[str, tuple[int, ...]], str] = {}
    renamed: dict[str, str] = {}
    for node in bundle.nodes:
        if node["op"] != "Transpose":
            continue
        data, perm = _data_inputs(node)
        if data not in bundle.weights or perm not in bundle.weights:
            continue
        key = (data, tuple(int(axis) for axis in bundle.weights[perm]))
        if key in folded_names:  # the same transposed weight exists: read that one
            renamed[node["name"]] = folded_names[key]
            continue
        value = np.ascontiguousarray(np.transpose(bundle.weights[data], key[1]))
        node.update(op="Const", input=[], attr=const_attr(value))
        bundle.weights[node["name"]] = value
        folded_names[key] = node["name"]
    for node in bundle.nodes:
        node["input"] = [renamed.get(ref, ref) for ref in node.get("input", [])]
    return len(folded_names) + len(renamed)


def _canonical(ref: str) -> str:
    """'node' -> 'node:0', control prefix dropped: one spelling per tensor."""
    name, index = _split_ref(ref.lstrip("^"))
    return f"{name}:{index}"


def eliminate_constant_conds(bundle: GraphBundle) -> int:
    """Resolve every `tf.cond` whose predicate is a constant: the taken branch's Switch
    outputs become the Switch's data input, the other branch is removed, and each Merge
    left with one live input becomes that input.

    onnx-tf wraps every Pad in `cond(all(paddings >= 0), pad, slice)` with paddings that
    freezing made constant. TensorFlow.js's executor never disposes a tensor that enters or
    leaves a control-flow op (it cannot count their consumers), so each padded activation,
    its padded copy and the cond's clone of it stayed alive until the whole stylization
    ended: most of the remaining memory. Returns how many Switches were resolved."""
    nodes = {node["name"]: node for node in bundle.nodes}
    alias: dict[str, str] = {}  # canonical output -> the tensor it always passes on
    dead_refs: set[str] = set()  # outputs that never carry a value: the untaken branch
    for node in bundle.nodes:
        if node["op"] != "Switch":
            continue
        data, pred = _data_inputs(node)
        value = bundle.weights.get(_split_ref(pred)[0])
        if nodes[_split_ref(pred)[0]]["op"] != "Const" or value is None or value.dtype != bool:
            continue
        taken = int(bool(value.reshape(())))
        alias[f"{node['name']}:{taken}"] = _canonical(data)
        dead_refs.add(f"{node['name']}:{1 - taken}")

    def resolve(ref: str) -> str:
        ref = _canonical(ref)
        for _ in range(len(nodes)):  # alias chains are acyclic; bounded all the same
            if ref not in alias:
                return ref
            ref = alias[ref]
        raise GraphRewriteError(f"a cycle of constant conds through {ref}")

    def control_target(name: str) -> str:
        """The node a control edge on `name` waits for, once conds are resolved."""
        taken = f"{name}:1" if f"{name}:1" in alias else f"{name}:0"
        return _split_ref(resolve(taken))[0]

    dead_nodes: set[str] = set()

    def is_dead(ref: str) -> bool:
        if ref.startswith("^"):
            return control_target(ref[1:]) in dead_nodes
        target = resolve(ref)
        return target in dead_refs or _split_ref(target)[0] in dead_nodes

    resolved = {_split_ref(ref)[0] for ref in alias}
    changed = True
    while changed:  # deadness to a fixed point (loops make the graph cyclic)
        changed = False
        for node in bundle.nodes:
            name = node["name"]
            if name in dead_nodes or name in resolved:
                continue
            if node["op"] == "Merge":
                live = [ref for ref in _data_inputs(node) if not is_dead(ref)]
                if len(live) <= 1:
                    if live:
                        alias[f"{name}:0"] = _canonical(live[0])
                        resolved.add(name)
                    else:
                        dead_nodes.add(name)
                    changed = True
            elif any(is_dead(ref) for ref in node.get("input", [])):
                dead_nodes.add(name)
                changed = True

    removed = dead_nodes | resolved
    kept = []
    for node in bundle.nodes:
        if node["name"] in removed:
            continue
        rewired = []
        for ref in node.get("input", []):
            if ref.startswith("^"):
                rewired.append("^" + control_target(ref[1:]))
                continue
            name, index = _split_ref(ref)
            if name in resolved and nodes[name]["op"] == "Merge" and index == 1:
                raise GraphRewriteError(
                    f"{node['name']} reads which branch of a constant cond ran ({ref})"
                )
            rewired.append(resolve(ref) if name in resolved else ref)
        if "input" in node:
            node["input"] = rewired
        kept.append(node)
    bundle.model["modelTopology"]["node"] = kept
    bundle.weights = {name: data for name, data in bundle.weights.items() if name not in removed}
    return sum(nodes[name]["op"] == "Switch" for name in resolved)


# Ops that commute with a transpose: y = op(x) gives transpose(y) = op'(transpose(x)), where
# op' is op with its per-axis paddings (input 1) permuted. Relu has none.
LAYOUT_FREE = {"Relu": None, "MirrorPad": 1, "PadV2": 1}


def _consumers(bundle: GraphBundle) -> dict[str, list[dict]]:
    """Node name -> the nodes that read any of its outputs (data or control)."""
    consumers: dict[str, list[dict]] = {node["name"]: [] for node in bundle.nodes}
    for node in bundle.nodes:
        for ref in node.get("input", []):
            consumers.setdefault(_split_ref(ref.lstrip("^"))[0], []).append(node)
    return consumers


def _only_reader(consumers: dict[str, list[dict]], node: dict, reader: dict) -> bool:
    readers = consumers[node["name"]]
    return len(readers) == 1 and readers[0] is reader


def _perm(bundle: GraphBundle, node: dict) -> tuple[int, ...] | None:
    if node["op"] != "Transpose":
        return None
    perm = bundle.weights.get(_data_inputs(node)[1])
    return None if perm is None else tuple(int(axis) for axis in perm)


def cancel_layout_transposes(bundle: GraphBundle) -> int:
    """Remove each pair of activation transposes that undo each other across ops that do
    not care about the layout: onnx-tf keeps the ONNX graph's NCHW and wraps every
    convolution, pooling and resize in NCHW -> NHWC -> NCHW transposes, so between two
    convolutions the activation went back to NCHW for a Relu and a reflection pad and was
    transposed again: two full copies per layer, as much time as memory. A chain
    `Transpose(p) -> Relu / MirrorPad / PadV2 ... -> Transpose(inverse of p)` in which every
    tensor has that one reader becomes the chain alone, run in the outer layout, with each
    pad's paddings permuted (a permuted constant, or a Gather of computed paddings).
    Returns how many Transposes were removed."""
    consumers = _consumers(bundle)
    nodes = {node["name"]: node for node in bundle.nodes}
    removed: set[str] = set()
    for last in list(bundle.nodes):
        perm = _perm(bundle, last)
        if perm is None or last["name"] in removed:
            continue
        chain = []  # the layout-free ops between the two transposes, last one first
        shapes = []  # Shape ops reading a tensor of the chain
        source = nodes[_split_ref(_data_inputs(last)[0])[0]]
        reader = last
        while source["op"] in LAYOUT_FREE:
            readers = consumers[source["name"]]
            others = [node for node in readers if node is not reader]
            if len(others) == len(readers) or any(node["op"] != "Shape" for node in others):
                break  # `reader` is not among them, or something else reads the layout
            chain.append(source)
            shapes += others
            reader = source
            source = nodes[_split_ref(_data_inputs(source)[0])[0]]
        first_perm = _perm(bundle, source)
        if first_perm is None or source["name"] in removed or len(first_perm) != len(perm):
            continue
        if any(first_perm[perm[axis]] != axis for axis in range(len(perm))):
            continue  # they do not undo each other
        # Each pad now sees the tensor before the first transpose: axis k there is axis
        # perm[k] of the layout its paddings were written for.
        for op in chain:
            paddings_at = LAYOUT_FREE[op["op"]]
            if paddings_at is not None:
                op["input"][paddings_at] = _permuted_rows(bundle, op["input"][paddings_at], perm)
        for shape in shapes:  # the shape in the old layout, from the new one
            new_layout = dict(shape, name=f"{shape['name']}/sanet_tfjs_outer_layout")
            bundle.nodes.append(new_layout)
            shape.update(
                op="GatherV2", input=[new_layout["name"], *_gather_args(bundle, first_perm)]
            )
            shape["attr"] = _GATHER_ATTR
        outer = _data_inputs(source)[0]
        if chain:
            chain[-1]["input"][0] = outer
            replacement = chain[0]["name"]
        else:
            replacement = outer
        for node in consumers[last["name"]]:  # its readers read the chain's end instead
            node["input"] = [
                _rename_ref(ref, last["name"], replacement) for ref in node.get("input", [])
            ]
        removed.add(last["name"])
        consumers[source["name"]] = [c for c in consumers[source["name"]] if c is not reader]
        if not consumers[source["name"]]:
            removed.add(source["name"])
        consumers = _consumers(bundle)
    bundle.model["modelTopology"]["node"] = [n for n in bundle.nodes if n["name"] not in removed]
    return len(removed)


def _rename_ref(ref: str, old: str, new: str) -> str:
    """`ref` (data or control) with node `old`'s output 0 replaced by the tensor `new`."""
    if ref == f"^{old}":
        return "^" + _split_ref(new)[0]
    return new if ref in (old, f"{old}:0") else ref


def _permuted_rows(bundle: GraphBundle, ref: str, perm: tuple[int, ...]) -> str:
    """A tensor whose row k is row perm[k] of `ref`: a new Const when `ref` is a weight,
    else a GatherV2 of it."""
    suffix = "x".join(map(str, perm))
    if ref in bundle.weights:
        return bundle.add_const(f"{ref}/sanet_tfjs_rows_{suffix}", bundle.weights[ref][list(perm)])
    name = f"{_split_ref(ref)[0]}/sanet_tfjs_rows_{suffix}"
    if not any(node["name"] == name for node in bundle.nodes):
        bundle.nodes.append(
            {
                "name": name,
                "op": "GatherV2",
                "input": [ref, *_gather_args(bundle, perm)],
                "attr": _GATHER_ATTR,
            }
        )
    return name


_GATHER_ATTR = {
    "Tparams": {"type": "DT_INT32"},
    "Tindices": {"type": "DT_INT32"},
    "Taxis": {"type": "DT_INT32"},
    "batch_dims": {"i": "0"},
}


def _gather_args(bundle: GraphBundle, order: tuple[int, ...]) -> list[str]:
    """The indices and axis inputs of a GatherV2 taking rows `order` of axis 0."""
    suffix = "x".join(map(str, order))
    return [
        bundle.add_const(f"sanet_tfjs/rows_{suffix}", np.array(order, np.int32)),
        bundle.add_const("sanet_tfjs/axis_0", np.array(0, np.int32)),
    ]


def fuse_conv_relu(bundle: GraphBundle) -> int:
    """Fold each Relu that is a convolution's only reader into the convolution (its
    `fused_ops` BiasAdd, Relu): one pass over the activation instead of two, one tensor
    instead of two. Possible once `cancel_layout_transposes` took the transposes from
    between them. Returns how many Relus were fused."""
    consumers = _consumers(bundle)
    nodes = {node["name"]: node for node in bundle.nodes}
    fused: dict[str, str] = {}
    for relu in bundle.nodes:
        if relu["op"] != "Relu":
            continue
        conv = nodes[_split_ref(_data_inputs(relu)[0])[0]]
        ops = conv.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
        if conv["op"] != "_FusedConv2D" or ops != [_b64("BiasAdd")]:
            continue
        if not _only_reader(consumers, conv, relu):
            continue
        conv["attr"]["fused_ops"]["list"]["s"] = [_b64("BiasAdd"), _b64("Relu")]
        fused[relu["name"]] = conv["name"]
    for node in bundle.nodes:
        node["input"] = [
            ("^" if ref.startswith("^") else "") + fused[_split_ref(ref.lstrip("^"))[0]]
            if _split_ref(ref.lstrip("^"))[0] in fused
            else ref
            for ref in node.get("input", [])
        ]
    bundle.model["modelTopology"]["node"] = [n for n in bundle.nodes if n["name"] not in fused]
    return len(fused)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


# The custom op js/sanet.mjs registers (TILED_CHAIN_OP there): a chain of layers run in exact
# strips of rows. Its attr "layers" lists the chain's layers, each "conv_relu" or "conv" (a
# reflection pad of 1 then a 3x3 VALID convolution, with or without its Relu), "pool" (2x2
# stride-2 ceil-mode max pooling) or "up" (nearest x2); its inputs are the chain's input then each
# convolution's filter and bias, in order. Attrs "input_layout" and "output_layout": NHWC, or
# NCHW where the graph holds that tensor so (the op transposes each strip, not the whole);
# "image_stride": image pixels per pixel of the chain's largest resolution.
TILED_CHAIN_OP = "SanetTiledChain"
# The chains it replaces, input to output (architecture.py VGG_LAYERS and DECODER_LAYERS),
# every layer whose activations grow with the photo but the transform's: the encoder from the
# image to relu4_1 (NCHW, as the transform reads it), from relu4_1 to the fourth max pool, and
# the decoder from the transform's output to the image.
ENCODER_CHAIN = (
    *("conv_relu", "conv_relu", "pool"),
    *("conv_relu", "conv_relu", "pool"),
    *("conv_relu", "conv_relu", "conv_relu", "conv_relu", "pool"),
    "conv_relu",
)
ENCODER_DEEP_CHAIN = ("conv_relu", "conv_relu", "conv_relu", "pool")
DECODER_CHAIN = (
    *("conv_relu", "up", "conv_relu", "conv_relu", "conv_relu", "conv_relu"),
    *("up", "conv_relu", "conv_relu"),
    *("up", "conv_relu", "conv"),
)
_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)


def _attr_s(node: dict, key: str) -> str | None:
    value = node.get("attr", {}).get(key, {}).get("s")
    return None if value is None else _unb64(value)


def _attr_list(node: dict, key: str) -> list[str]:
    return node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])


def _attr_ints(node: dict, key: str) -> list[int]:
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


class _ChainWalk:
    """One chain of layers, found by walking data inputs back from its last node."""

    def __init__(self, bundle: GraphBundle) -> None:
        self.bundle = bundle
        self.nodes = {node["name"]: node for node in bundle.nodes}
        self.consumers = _consumers(bundle)

    def source(self, node: dict) -> dict:
        return self.nodes[_split_ref(_data_inputs(node)[0])[0]]

    def reflection_pad(self, node: dict, spatial: tuple[int, int]) -> bool:
        """A MirrorPad REFLECT of 1 on the two `spatial` axes only, paddings a weight."""
        if node["op"] != "MirrorPad" or _attr_s(node, "mode") != "REFLECT":
            return False
        paddings = self.bundle.weights.get(_data_inputs(node)[1])
        if paddings is None or paddings.shape != (4, 2):
            return False
        expected = np.zeros((4, 2), np.int64)
        expected[list(spatial)] = 1
        return bool((paddings == expected).all())

    def conv(self, node: dict) -> tuple[str, list[str], str, dict | None] | None:
        """A reflection pad of 1 and a 3x3 VALID convolution (+ Relu) ending at `node`: its
        kind, [filter, bias], the tensor it reads, and a Transpose to reuse (the encoder's
        first pad runs on the NCHW image: MirrorPad -> Transpose to NHWC -> conv)."""
        if node["op"] != "_FusedConv2D":
            return None
        _, filter_ref, bias_ref = _data_inputs(node)
        weight = self.bundle.weights.get(filter_ref)
        fused = [
            _unb64(op) for op in node["attr"].get("fused_ops", {}).get("list", {}).get("s", [])
        ]
        if (
            weight is None
            or weight.shape[:2] != (3, 3)
            or bias_ref not in self.bundle.weights
            or _attr_s(node, "padding") != "VALID"
            or _attr_s(node, "data_format") not in (None, "NHWC")
            or _attr_ints(node, "strides") != [1, 1, 1, 1]
            or _attr_ints(node, "dilations") not in ([], [1, 1, 1, 1])
            or fused not in (["BiasAdd"], ["BiasAdd", "Relu"])
        ):
            return None
        kind = "conv_relu" if fused[-1] == "Relu" else "conv"
        pad = self.source(node)
        if self.reflection_pad(pad, (1, 2)):
            return kind, [filter_ref, bias_ref], _data_inputs(pad)[0], None
        if _perm(self.bundle, pad) == _NCHW_TO_NHWC and _only_reader(self.consumers, pad, node):
            inner = self.source(pad)
            if self.reflection_pad(inner, (2, 3)) and _only_reader(self.consumers, inner, pad):
                return kind, [filter_ref, bias_ref], _data_inputs(inner)[0], pad
        return None

    def pool(self, node: dict) -> str | None:
        """A 2x2 stride-2 max pool in ceil mode (onnx-tf: a PadV2 of the lowest float, then a
        VALID MaxPool): the tensor it reads."""
        if (
            node["op"] != "MaxPool"
            or _attr_s(node, "padding") != "VALID"
            or _attr_ints(node, "ksize") != [1, 2, 2, 1]
            or _attr_ints(node, "strides") != [1, 2, 2, 1]
            or _attr_s(node, "data_format") not in (None, "NHWC")
        ):
            return None
        pad = self.source(node)
        if pad["op"] != "PadV2":
            return None
        fill = self.bundle.weights.get(_data_inputs(pad)[2])
        if fill is None or fill.size != 1 or float(fill.reshape(())) > -1e38:
            return None
        return _data_inputs(pad)[0]

    def upsample(self, node: dict) -> str | None:
        """A nearest-neighbour resize (x2, js/sanet.mjs checks the size): the tensor it reads."""
        if node["op"] != "ResizeNearestNeighbor" or node["attr"].get("align_corners", {}).get("b"):
            return None
        return _data_inputs(node)[0]

    def nchw_relu(self, relu: dict) -> tuple[dict, list[str]] | None:
        """Relu(Transpose to NCHW(conv)) with nothing else reading the two: the conv, and the
        names of the conv and the Transpose (the chain's last layer, its output NCHW)."""
        if relu["op"] != "Relu":
            return None
        transpose = self.source(relu)
        if _perm(self.bundle, transpose) != _NHWC_TO_NCHW:
            return None
        conv = self.source(transpose)
        if not (
            _only_reader(self.consumers, transpose, relu)
            and _only_reader(self.consumers, conv, transpose)
        ):
            return None
        return conv, [conv["name"], transpose["name"]]

    def walk(self, last: dict, expected: tuple[str, ...], nchw_output: bool = False) -> dict | None:
        """The chain `expected` (input to output) ending at `last`: {input, weights, nodes,
        transpose, resize}, or None where the graph differs. `nchw_output`: `last` is the
        Relu of the last convolution, after a Transpose to NCHW."""
        node, weights, transpose, resize = last, [], None, None
        reader = None  # the chain's node that reads `node`
        inner = []  # the nodes that only the chain needs: gone once it is replaced
        if nchw_output:
            found = self.nchw_relu(last)
            if found is None or expected[-1] != "conv_relu":
                return None
            node, inner = found[0], found[1]
        for position, kind in enumerate(reversed(expected)):
            if reader is not None:
                inner.append(node["name"])
                # a Shape reading a tensor of the chain (a pool's or a resize's size) dies
                # with the chain; any other reader would keep the chain running whole
                if any(
                    r is not reader and r["op"] != "Shape" for r in self.consumers[node["name"]]
                ):
                    return None
            if kind == "pool":
                ref = self.pool(node)
                if ref is None:
                    return None
                reader = self.source(node)
                inner.append(reader["name"])
            elif kind == "up":
                ref, resize, reader = self.upsample(node), node, node
            else:
                found = self.conv(node)
                # the NCHW output's last convolution has its Relu after the Transpose
                wanted = "conv" if nchw_output and position == 0 else kind
                if found is None or found[0] != wanted:
                    return None
                _, pair, ref, pad_transpose = found
                weights[:0] = pair
                reader = self.source(node)
                if pad_transpose is not None:
                    if position != len(expected) - 1:
                        return None
                    transpose, reader = pad_transpose, self.source(pad_transpose)
                inner.append(reader["name"])
            if ref is None:
                return None
            if position < len(expected) - 1:
                node = self.nodes[_split_ref(ref)[0]]
        return {
            "input": ref,
            "weights": weights,
            "transpose": transpose,
            "resize": resize,
            "inner": inner,
        }


def tile_resolution_chains(bundle: GraphBundle) -> int:
    """Replace three chains of layers by one SanetTiledChain node each (js/sanet.mjs), which
    runs them in exact strips of rows when the image is large: the encoder's from the image to
    relu4_1, its next from relu4_1 to the fourth max pool, and the decoder's from its first
    convolution to its output. Their activations are most of a stylization's memory (268 MB
    per 64-channel tensor at 1024x1024; 403 MB per relu4_1-level one at 4096x3072). Each node
    takes its last node's name, so its readers are unchanged; what only the chain read is
    pruned. Returns how many chains were replaced (3); raises GraphRewriteError naming the
    chain it cannot find."""
    walk = _ChainWalk(bundle)

    def starts_at_image(chain: dict) -> bool:  # not at a pool or a conv of a longer chain
        source = walk.nodes[_split_ref(chain["input"])[0]]
        return walk.pool(source) is None and walk.conv(source) is None

    # label, layers, the last node's op, output NCHW, image stride, which matches to keep
    chains = (
        ("encoder", ENCODER_CHAIN, "Relu", True, 1, starts_at_image),
        # relu4_1 (NCHW) -> pool4: the one whose first convolution reads an NCHW tensor
        ("deep encoder", ENCODER_DEEP_CHAIN, "MaxPool", False, 8, lambda c: c["transpose"]),
        ("decoder", DECODER_CHAIN, "_FusedConv2D", False, 1, lambda _: True),
    )
    found = []
    for label, expected, last_op, nchw_output, stride, wanted in chains:
        matches = [
            (node, chain)
            for node in bundle.nodes
            if node["op"] == last_op
            and (chain := walk.walk(node, expected, nchw_output)) is not None
            and wanted(chain)
        ]
        if len(matches) != 1:
            raise GraphRewriteError(
                f"tile_resolution_chains: found {len(matches)} {label} chains "
                f"{' -> '.join(expected)} ending at a {last_op} (expected one)"
            )
        found.append((*matches[0], expected, nchw_output, stride))
    for last, chain, expected, nchw_output, stride in found:
        if chain["transpose"] is not None:  # NCHW in: the op transposes each strip
            chain["inner"].append(chain["transpose"]["name"])
        attr = {
            "T": {"type": "DT_FLOAT"},
            "layers": {"list": {"s": [_b64(kind) for kind in expected]}},
            "input_layout": {"s": _b64("NCHW" if chain["transpose"] is not None else "NHWC")},
            "output_layout": {"s": _b64("NCHW" if nchw_output else "NHWC")},
            "image_stride": {"i": str(stride)},
        }
        if chain["resize"] is not None:
            resize_attr = chain["resize"]["attr"]
            for key in ("align_corners", "half_pixel_centers"):
                attr[key] = {"b": bool(resize_attr.get(key, {}).get("b", False))}
        name = last["name"]
        last.clear()
        last.update(
            name=name, op=TILED_CHAIN_OP, input=[chain["input"], *chain["weights"]], attr=attr
        )
    needed = _reachable(bundle)
    for last, chain, expected, _, _ in found:
        if still := sorted(set(chain["inner"]) & needed):
            raise GraphRewriteError(
                f"tile_resolution_chains: the chain {' -> '.join(expected)} is also read "
                f"outside itself (through {', '.join(still)}): it would still run whole"
            )
        last["attr"]["release_input"] = {"b": _input_read_only_by(bundle, needed, last)}
    return len(found)


# Ops that read a tensor's shape, never its data.
SHAPE_READERS = {"Shape", "ShapeN", "Size", "Rank"}


def _input_read_only_by(bundle: GraphBundle, needed: set[str], node: dict) -> bool:
    """Whether the data of `node`'s first input is read by `node` alone, in every iteration:
    every tensor sharing it along the loop's plumbing (the Enter, Merge, Switch, NextIteration
    and Identity that carry it, and the op that made it) is read by nothing but that plumbing,
    ops that read only its shape, and an Exit behind the loop's condition (it takes the value
    of the iteration whose condition failed, which no body ran on). Then js/sanet.mjs may free
    the data once `node` read it, although tfjs-converter keeps tensors that passed control
    flow until the run ends: the encoder's image (150 MB at 4096x3072), read by the encoder
    alone, each pass of the loop."""
    nodes = {n["name"]: n for n in bundle.nodes}
    consumers = _consumers(bundle)
    sharing = LOOP_PLUMBING | {"Merge"}
    component: set[str] = set()
    stack = [_split_ref(_data_inputs(node)[0])[0]]
    while stack:
        name = stack.pop()
        if name in component:
            continue
        component.add(name)
        if nodes[name]["op"] in sharing:  # the same data as its input (a Switch's first)
            refs = _data_inputs(nodes[name])
            stack += [
                _split_ref(ref)[0] for ref in (refs[:1] if nodes[name]["op"] == "Switch" else refs)
            ]
        for reader in consumers[name]:
            reads = [ref for ref in _data_inputs(reader) if _split_ref(ref)[0] == name]
            if reader is node or reader["name"] not in needed or not reads:
                continue
            op = reader["op"]
            if op in SHAPE_READERS:
                continue
            if op == "Exit" and nodes[name]["op"] == "Switch" and _loop_condition(nodes, name):
                continue
            if op in sharing and (op != "Switch" or _data_inputs(reader)[0] in reads):
                stack.append(reader["name"])
                continue
            return False
    return True


def _loop_condition(nodes: dict[str, dict], switch: str) -> bool:
    """Whether the Switch `switch` is a while loop's: its predicate is a LoopCond."""
    predicate = _split_ref(_data_inputs(nodes[switch])[1])[0]
    return nodes[predicate]["op"] == "LoopCond"


# The transform as one op (js/sanet.mjs runs it in bands of relu4_1 rows): inputs, per SANet
# block (relu4_1's, then relu5_1's), the block's content features (NCHW), their mean (the
# graph computes it: a reduction, no copy), the style's keys [1, C, Ns], key bias [1, 1, Ns]
# and values [1, C, Ns], and the output bias [1, C, 1, 1]; then the merge convolution's
# filter and bias. Output: the merge convolution's (NHWC), as the node it replaces. Attrs:
# `epsilon` (added to the unbiased variance, which the op computes band by band: the graph's
# squared differences would be a whole copy of the features), the relu5_1 upsample's
# align_corners / half_pixel_centers, and `activation` (the merge convolution's fused ops).
TRANSFORM_OP = "SanetTransform"
TRANSFORM_BLOCK_INPUTS = ("content", "mean", "keys", "key_bias", "values", "out_bias")
_SWAP_LAST_TWO = (0, 2, 1)


def _adjoint(node: dict) -> bool:
    """Not a MatMul of its operands as they are (another op, or one with an adjoint flag)."""
    flags = MATMUL_ADJOINTS.get(node["op"])
    return flags is None or any(node["attr"].get(flag, {}).get("b") for flag in flags)


class _TransformWalk(_ChainWalk):
    """The transform's nodes, walked back from the merge convolution (model.py Transform and
    FoldedSANet, as onnx-tf and the rewrites above leave them)."""

    def input_node(self, node: dict, index: int, op: str) -> dict | None:
        inputs = _data_inputs(node)
        if index >= len(inputs):
            return None
        found = self.nodes.get(_split_ref(inputs[index])[0])
        return found if found is not None and found["op"] == op else None

    def attention_product(self, product: dict) -> dict | None:
        """values @ softmax(queries[slice] @ keys + key_bias)^T: {values, keys, key_bias,
        queries, nodes}, or None."""
        if _adjoint(product):
            return None
        weights_t = self.input_node(product, 1, "Transpose")
        if weights_t is None or _perm(self.bundle, weights_t) != _SWAP_LAST_TWO:
            return None
        softmax = self.input_node(weights_t, 0, "Softmax")
        scores = softmax and self.input_node(softmax, 0, "AddV2")
        product_qk = scores and self.source(scores)
        if product_qk is None or _adjoint(product_qk):
            return None
        rows = self.input_node(product_qk, 0, "StridedSlice")
        if rows is None:
            return None
        return {
            "values": _data_inputs(product)[0],
            "keys": _data_inputs(product_qk)[1],
            "key_bias": _data_inputs(scores)[1],
            "queries": _data_inputs(rows)[0],
            "nodes": [weights_t, softmax, scores, product_qk, rows],
        }

    def spatial_mean(self, node: dict | None, of: str | None = None) -> bool:
        """A Mean over axes 2 and 3 (NCHW's height and width), dimensions kept (of `of`)."""
        if node is None or node["op"] != "Mean" or not node["attr"].get("keep_dims", {}).get("b"):
            return False
        tensor, axes = _data_inputs(node)
        axes = self.bundle.weights.get(axes)
        return (
            axes is not None
            and sorted(int(a) for a in axes.ravel()) == [2, 3]
            and (of is None or tensor == of)
        )

    def unbiased_variance(self, normalized: dict, content: str) -> dict | None:
        """normalized's scale: rsqrt(mean((content - mean)^2) * n / (n - 1) + epsilon) (model.py
        mean_variance_norm): {epsilon, nodes}, or None."""
        rsqrt = self.input_node(normalized, 1, "Rsqrt")
        with_eps = rsqrt and self.input_node(rsqrt, 0, "AddV2")
        unbiased = with_eps and self.input_node(with_eps, 0, "RealDiv")
        scaled = unbiased and self.input_node(unbiased, 0, "Mul")
        average = scaled and self.input_node(scaled, 0, "Mean")
        squares = average and self.input_node(average, 0, "SquaredDifference")
        epsilon = with_eps and self.bundle.weights.get(_data_inputs(with_eps)[1])
        if squares is None or epsilon is None or epsilon.size != 1:
            return None
        first, second = _data_inputs(squares)
        if first != content or not self.spatial_mean(average):
            return None
        if not self.spatial_mean(self.nodes.get(_split_ref(second)[0]), content):
            return None
        return {
            "epsilon": float(epsilon.reshape(())),
            "nodes": [rsqrt, with_eps, unbiased, scaled, average, squares],
        }

    def block(self, end: dict) -> dict | None:
        """One SANet block ending at `end` = (reshape(attention) + out_bias) + content."""
        if end["op"] != "AddV2":
            return None
        with_bias = self.input_node(end, 0, "AddV2")
        reshaped = with_bias and self.input_node(with_bias, 0, "Reshape")
        if reshaped is None:
            return None
        attention = self.source(reshaped)
        if attention["op"] == "ConcatV2":
            axis = self.bundle.weights.get(_data_inputs(attention)[-1])
            if axis is None or int(axis.reshape(())) != 2:
                return None
            products = [self.nodes[_split_ref(ref)[0]] for ref in _data_inputs(attention)[:-1]]
        else:
            products = [attention]
        parts = [self.attention_product(product) for product in products]
        if not parts or None in parts:
            return None
        keys = ("values", "keys", "key_bias", "queries")
        shared = {key: {part[key] for part in parts} for key in keys}
        if any(len(refs) != 1 for refs in shared.values()):
            return None
        queries = self.nodes[_split_ref(parts[0]["queries"])[0]]
        if _perm(self.bundle, queries) != _SWAP_LAST_TWO:
            return None
        flat = self.input_node(queries, 0, "Reshape")
        normalized = flat and self.input_node(flat, 0, "Mul")
        centred = normalized and self.input_node(normalized, 0, "Sub")
        content = _data_inputs(end)[1]
        if centred is None or _data_inputs(centred)[0] != content:
            return None
        mean = _data_inputs(centred)[1]
        variance = self.unbiased_variance(normalized, content)
        if variance is None or not self.spatial_mean(self.nodes[_split_ref(mean)[0]], content):
            return None
        inner = [end, with_bias, reshaped, *products, queries, flat, normalized, centred]
        inner += variance["nodes"]
        if attention is not products[0]:
            inner.append(attention)
        for part in parts:
            inner += part["nodes"]
        return {
            "content": content,
            "mean": mean,
            "epsilon": variance["epsilon"],
            "keys": next(iter(shared["keys"])),
            "key_bias": next(iter(shared["key_bias"])),
            "values": next(iter(shared["values"])),
            "out_bias": _data_inputs(with_bias)[1],
            "inner": [node["name"] for node in inner],
        }

    def transform(self, conv: dict) -> dict | None:
        """merge_conv(reflect_pad(block4_1 + crop(upsample(block5_1)))), NHWC at the conv."""
        if conv["op"] != "_FusedConv2D":
            return None
        weight = self.bundle.weights.get(_data_inputs(conv)[1])
        fused = [_unb64(op) for op in _attr_list(conv, "fused_ops")]
        if (
            weight is None
            or weight.shape[:2] != (3, 3)
            or _data_inputs(conv)[2] not in self.bundle.weights
            or _attr_s(conv, "padding") != "VALID"
            or _attr_ints(conv, "strides") != [1, 1, 1, 1]
            or _attr_ints(conv, "dilations") not in ([], [1, 1, 1, 1])
            or fused not in (["BiasAdd"], ["BiasAdd", "Relu"])
        ):
            return None
        to_nhwc = self.source(conv)
        if _perm(self.bundle, to_nhwc) != _NCHW_TO_NHWC:
            return None
        pad = self.source(to_nhwc)
        if not self.reflection_pad(pad, (2, 3)):
            return None
        merge = self.input_node(pad, 0, "AddV2")
        crop = merge and self.input_node(merge, 1, "StridedSlice")
        crop_first = crop and self.input_node(crop, 0, "StridedSlice")
        to_nchw = crop_first and self.input_node(crop_first, 0, "Transpose")
        if to_nchw is None or _perm(self.bundle, to_nchw) != _NHWC_TO_NCHW:
            return None
        resize = self.source(to_nchw)
        if self.upsample(resize) is None:
            return None
        to_nhwc_5 = self.source(resize)
        if _perm(self.bundle, to_nhwc_5) != _NCHW_TO_NHWC:
            return None
        block4 = self.block(self.source(merge))
        block5 = self.block(self.source(to_nhwc_5))
        if block4 is None or block5 is None:
            return None
        resize_attr = resize["attr"]
        return {
            "blocks": (block4, block5),
            "weights": _data_inputs(conv)[1:3],
            "activation": "relu" if fused[-1] == "Relu" else "linear",
            "align_corners": bool(resize_attr.get("align_corners", {}).get("b", False)),
            "half_pixel_centers": bool(resize_attr.get("half_pixel_centers", {}).get("b", False)),
            "inner": [
                *block4["inner"],
                *block5["inner"],
                *(
                    node["name"]
                    for node in (to_nhwc, pad, merge, crop, crop_first, to_nchw, resize, to_nhwc_5)
                ),
            ],
        }


def band_transform(bundle: GraphBundle) -> int:
    """Replace the transform (two SANet blocks and the merge convolution, from the blocks'
    normalized content to the merge convolution's output) by one SanetTransform node, which
    js/sanet.mjs runs over bands of relu4_1 rows and slices of the attention sized to its
    memory budget: at 4096x3072 each relu4_1-level tensor is 403 MB, and the graph holds
    several at once (features, normalized copy, queries, attention output, sums). The
    content statistics (global) stay in the graph and are the op's inputs. The node takes the
    merge convolution's name. Returns 1; raises GraphRewriteError where the transform differs."""
    walk = _TransformWalk(bundle)
    found = [(node, t) for node in bundle.nodes if (t := walk.transform(node)) is not None]
    if len(found) != 1:
        raise GraphRewriteError(
            f"band_transform: found {len(found)} transforms (two SANet blocks merged by a "
            "reflection-padded 3x3 convolution), expected one"
        )
    conv, transform = found[0]
    epsilons = {block["epsilon"] for block in transform["blocks"]}
    if len(epsilons) != 1:
        raise GraphRewriteError(f"band_transform: the blocks' epsilons differ ({sorted(epsilons)})")
    inputs = [block[key] for block in transform["blocks"] for key in TRANSFORM_BLOCK_INPUTS]
    name = conv["name"]
    conv.clear()
    conv.update(
        name=name,
        op=TRANSFORM_OP,
        input=[*inputs, *transform["weights"]],
        attr={
            "T": {"type": "DT_FLOAT"},
            "epsilon": {"f": epsilons.pop()},
            "activation": {"s": _b64(transform["activation"])},
            "align_corners": {"b": transform["align_corners"]},
            "half_pixel_centers": {"b": transform["half_pixel_centers"]},
        },
    )
    needed = _reachable(bundle)
    if still := sorted(set(transform["inner"]) & needed):
        raise GraphRewriteError(
            f"band_transform: the transform is also read outside itself (through "
            f"{', '.join(still[:5])}): it would still run whole"
        )
    contents = [block["content"] for block in transform["blocks"]]
    conv["attr"]["release_features"] = {"b": _read_before(bundle, needed, conv, contents)}
    # the op reads each block's values once, at its start, and transposes them in their own
    # memory where nothing else reads them (js/sanet.mjs transposedInPlace)
    values = [block["values"] for block in transform["blocks"]]
    conv["attr"]["release_values"] = {"b": _read_before(bundle, needed, conv, values)}
    return 1


def _read_before(bundle: GraphBundle, needed: set[str], node: dict, refs: list[str]) -> bool:
    """Whether every reader of `refs`, and of the tensors they pass unchanged through Identity
    and Switch nodes (whose data the executor shares), runs before `node` (is among its
    inputs' ancestors) or is control flow: then nothing reads them once `node` ran, and
    js/sanet.mjs may free them there, although tfjs-converter keeps tensors that passed
    control flow until the run ends."""
    nodes = {n["name"]: n for n in bundle.nodes}
    ancestors: set[str] = set()
    stack = [_split_ref(ref.lstrip("^"))[0] for ref in node["input"]]
    while stack:
        name = stack.pop()
        if name not in ancestors and name in nodes:
            ancestors.add(name)
            stack += [_split_ref(ref.lstrip("^"))[0] for ref in nodes[name].get("input", [])]
    consumers = _consumers(bundle)
    shared = set()
    stack = [_split_ref(ref)[0] for ref in refs]
    while stack:  # the tensors sharing the features' data, up to where they are made
        name = stack.pop()
        if name in shared:
            continue
        shared.add(name)
        if nodes[name]["op"] in ("Identity", "Switch"):
            stack.append(_split_ref(_data_inputs(nodes[name])[0])[0])
    for name in shared:
        for reader in consumers[name]:
            if reader["name"] in needed and reader is not node and reader["name"] not in ancestors:
                if reader["op"] not in LOOP_PLUMBING | {"Merge"}:
                    return False
    return True


def decode_in_bands(bundle: GraphBundle) -> int:
    """Merge the decoder's tiled chain into the banded transform that is its only input: one
    SanetTransform node (taking the chain's name, inputs and attrs prefixed `decoder_`) that
    js/sanet.mjs runs band by band, each band of the decoder's output from the transform's
    rows it needs, so the transform's output (512 channels at an eighth of the side: 403 MB at
    4096x3072) never exists whole. Returns 1; raises GraphRewriteError where the decoder's
    chain does not read the transform alone."""
    needed = _reachable(bundle)  # the chains' replaced nodes are not pruned yet
    consumers = {
        name: [reader for reader in readers if reader["name"] in needed]
        for name, readers in _consumers(bundle).items()
    }
    transforms = [node for node in bundle.nodes if node["op"] == TRANSFORM_OP]
    chains = [
        reader
        for transform in transforms
        for reader in consumers[transform["name"]]
        if reader["op"] == TILED_CHAIN_OP and _data_inputs(reader)[0] == transform["name"]
    ]
    if len(transforms) != 1 or len(chains) != 1 or len(consumers[transforms[0]["name"]]) != 1:
        raise GraphRewriteError(
            f"decode_in_bands: found {len(transforms)} {TRANSFORM_OP} nodes and {len(chains)} "
            f"tiled chains reading one (expected one, its only reader)"
        )
    transform, chain = transforms[0], chains[0]
    attr = dict(transform["attr"])
    for key, value in chain["attr"].items():
        if key != "T":
            attr[f"decoder_{key}"] = value
    inputs = [*transform["input"], *chain["input"][1:]]  # then the decoder's weights
    name = chain["name"]
    chain.clear()
    chain.update(name=name, op=TRANSFORM_OP, input=inputs, attr=attr)
    bundle.model["modelTopology"]["node"] = [node for node in bundle.nodes if node is not transform]
    return 1


def _reachable(bundle: GraphBundle) -> set[str]:
    """The nodes the signature's outputs need, following data and control inputs."""
    nodes = {node["name"]: node for node in bundle.nodes}
    outputs = [spec["name"] for spec in bundle.model["signature"]["outputs"].values()]
    needed: set[str] = set()
    stack = [_split_ref(ref)[0] for ref in outputs]
    while stack:
        name = stack.pop()
        if name in needed or name not in nodes:
            continue
        needed.add(name)
        stack += [_split_ref(ref.lstrip("^"))[0] for ref in nodes[name].get("input", [])]
    return needed


def prune_unreachable(bundle: GraphBundle) -> int:
    """Drop every node the signature's outputs do not need (following data and control
    inputs), and the weights of dropped Consts. Returns how many nodes were dropped."""
    needed = _reachable(bundle)
    inputs = {_split_ref(spec["name"])[0] for spec in bundle.model["signature"]["inputs"].values()}
    kept = [node for node in bundle.nodes if node["name"] in needed | inputs]
    dropped = len(bundle.nodes) - len(kept)
    bundle.model["modelTopology"]["node"] = kept
    bundle.weights = {name: data for name, data in bundle.weights.items() if name in needed}
    return dropped


def shorten_node_names(bundle: GraphBundle) -> int:
    """Name each node the signature does not name by its position ("n" and base 36): the
    converter's names (scope paths up to 120 characters) and the inputs repeating them were
    380 kB of the full-width model.json's 667 kB. Loop frames are attributes, not names, and
    stay. Returns how many nodes were renamed."""
    signature = bundle.model["signature"]
    kept = {_split_ref(spec["name"])[0] for part in signature.values() for spec in part.values()}
    new = {
        node["name"]: f"n{np.base_repr(index, 36).lower()}"
        for index, node in enumerate(bundle.nodes)
        if node["name"] not in kept
    }
    if kept & set(new.values()):
        raise GraphRewriteError(f"a signature name looks like a short node name: {sorted(kept)}")

    def renamed(ref: str) -> str:
        control = "^" if ref.startswith("^") else ""
        name, colon, index = ref.lstrip("^").partition(":")
        return f"{control}{new.get(name, name)}{colon}{index}"

    for node in bundle.nodes:
        node["name"] = new.get(node["name"], node["name"])
        if "input" in node:
            node["input"] = [renamed(ref) for ref in node["input"]]
    bundle.weights = {new.get(name, name): data for name, data in bundle.weights.items()}
    return len(new)


# Signature outputs (tfstyle.py) that a caller may feed back to skip encoding the same style.
STYLE_FEATURES = ("style4_1", "style5_1")
STYLE_FEATURE_INPUTS_KEY = "style_feature_inputs"  # in model.json's userDefinedMetadata


def _loop_initial_value(nodes: dict[str, dict], output_ref: str) -> dict:
    """The Enter node that brings the initial value of the loop variable leaving as
    `output_ref`: up through Identity, Exit and Switch to the variable's Merge."""
    name = _split_ref(output_ref)[0]
    for _ in range(len(nodes)):  # bounded: a chain of pass-through nodes, then the Merge
        node = nodes.get(name)
        if node is None or node["op"] not in {"Identity", "Exit", "Switch", "Merge"}:
            break
        if node["op"] == "Merge":
            enters = [
                nodes[_split_ref(ref)[0]]
                for ref in _data_inputs(node)
                if nodes[_split_ref(ref)[0]]["op"] == "Enter"
            ]
            if len(enters) == 1:
                return enters[0]
            break
        name = _split_ref(_data_inputs(node)[0])[0]
    raise GraphRewriteError(
        f"output {output_ref} does not leave the while loop as a loop variable: "
        "cannot name the place to feed it back"
    )


def expose_style_features(bundle: GraphBundle) -> dict[str, str]:
    """Name the place where a caller feeds the style features of an earlier run: one Identity
    node per feature, between the while loop's initial value (empty features) and its Enter.
    TensorFlow.js accepts any node as a feed, so `executeAsync({..., [name]: features})` runs
    the loop with the style already encoded (tfstyle.py). Returns signature output -> node
    name, also written to model.json's userDefinedMetadata for the page."""
    nodes = {node["name"]: node for node in bundle.nodes}
    outputs = bundle.model["signature"]["outputs"]
    exposed = {}
    for key in STYLE_FEATURES:
        if key not in outputs:
            raise GraphRewriteError(
                f"the signature has no output {key!r}: rebuild the tfstyle stage"
            )
        enter = _loop_initial_value(nodes, outputs[key]["name"])
        name = f"style_features/{key}"
        bundle.nodes.append(
            {"name": name, "op": "Identity", "input": [enter["input"][0]],
             "attr": {"T": {"type": "DT_FLOAT"}}}
        )  # fmt: skip
        enter["input"][0] = name
        exposed[key] = name
    bundle.model.setdefault("userDefinedMetadata", {})[STYLE_FEATURE_INPUTS_KEY] = exposed
    return exposed


# Winograd convolutions (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
# F(2x2, 3x3) computes a 2x2 block of a 3x3 convolution's output from a 4x4 tile of its input
# with 16 products per input-output channel pair instead of 36 (2.25 x fewer multiplications);
# F(4x4, 3x3) a 4x4 block from a 6x6 tile with 36 instead of 144 (4 x fewer), exact but for
# rounding (its larger constants round more: about 2e-6 of a layer's output in float32, against
# 5e-7 for F(2x2)). tfjs-backend-wasm has no such kernel; js/sanet.mjs `winogradConv` spells it
# in ops on XNNPACK's kernels, inside the strips of the ops that run every 3x3 convolution but
# relu5_1's (SanetTiledChain, SanetTransform), where a strip bounds what its transformed tiles
# hold. The graph says which convolutions use it: each op's attr "winograd" lists a variant per
# convolution, in the order of its filters ("direct" or one of WINOGRAD_VARIANTS). The
# convolution left in the graph (relu5_1's) runs direct.
WINOGRAD_VARIANTS = ("f2x2", "f4x4")
WINOGRAD_ATTR = "winograd"
# Where each op's filter and bias pairs start among its inputs.
_OP_WEIGHTS_START = {TILED_CHAIN_OP: 1, TRANSFORM_OP: 2 * len(TRANSFORM_BLOCK_INPUTS)}


def _filter_channels(bundle: GraphBundle, ref: str, where: str) -> tuple[int, int]:
    value = bundle.weights.get(_split_ref(ref)[0])
    if value is None or value.ndim != 4 or value.shape[:2] != (3, 3):
        raise GraphRewriteError(f"{where}: expected a 3x3 filter from a Const, got {ref!r}")
    return int(value.shape[2]), int(value.shape[3])


def winograd_convolutions(bundle: GraphBundle, choices: dict[tuple[int, int], str]) -> list[dict]:
    """Mark each 3x3 convolution of the strip ops whose (in, out) channels `choices` names a
    variant (WINOGRAD_VARIANTS) for as running it (the op's attr "winograd"); the others stay
    direct. Returns one record per 3x3 convolution, in graph order: its channels, its variant
    ("direct" when none) and where it runs (the op's kind, or "graph")."""
    unknown = set(choices.values()) - set(WINOGRAD_VARIANTS)
    if unknown:
        raise GraphRewriteError(f"winograd_convolutions: unknown variants {sorted(unknown)}")
    records = []
    for node in bundle.nodes:
        if node["op"] in _OP_WEIGHTS_START:
            weights = _data_inputs(node)[_OP_WEIGHTS_START[node["op"]] :]
            variants = []
            for filter_ref in weights[::2]:
                cin, cout = _filter_channels(bundle, filter_ref, node["name"])
                variants.append(choices.get((cin, cout), "direct"))
                records.append({"in_channels": cin, "out_channels": cout,
                                "variant": variants[-1], "runs_in": node["op"]})  # fmt: skip
            node.setdefault("attr", {})[WINOGRAD_ATTR] = {
                "list": {"s": [_b64(variant) for variant in variants]}
            }
        elif node["op"] == "_FusedConv2D":
            value = bundle.weights.get(_split_ref(_data_inputs(node)[1])[0])
            if value is not None and value.shape[:2] == (3, 3):
                cin, cout = int(value.shape[2]), int(value.shape[3])
                records.append({"in_channels": cin, "out_channels": cout,
                                "variant": "direct", "runs_in": "graph"})  # fmt: skip
    return records


def _winograd_count(records: list[dict], convolutions: list[dict] | None) -> int:
    if convolutions is not None:
        convolutions.extend(records)
    return sum(record["variant"] != "direct" for record in records)


def _counts(bundle: GraphBundle) -> tuple[int, int]:
    return len(bundle.nodes), sum(node["op"] == "Transpose" for node in bundle.nodes)


def optimize(
    bundle: GraphBundle,
    matmul_rank: int,
    winograd: dict[tuple[int, int], str],
    convolutions: list[dict] | None = None,
) -> dict[str, int]:
    """Every rewrite, in order; what each changed, and the node and Transpose counts.
    `winograd`: (in, out) channels -> Winograd variant (winograd_convolutions); each 3x3
    convolution's record is appended to `convolutions`."""
    nodes_before, transposes_before = _counts(bundle)
    changes = {
        "constant_switches_resolved": eliminate_constant_conds(bundle),
        "weight_inputs_bypassing_loop_plumbing": bypass_loop_plumbing(bundle),
        "weight_transposes_folded": fold_constant_transposes(bundle),
        "matmul_adjoints_unfolded": unfold_matmul_adjoints(bundle, matmul_rank),
        "layout_transposes_removed": cancel_layout_transposes(bundle),
        "relus_fused_into_convolutions": fuse_conv_relu(bundle),
        "transforms_banded": band_transform(bundle),
        "resolution_chains_tiled": tile_resolution_chains(bundle),
        "decoders_in_bands": decode_in_bands(bundle),
        "nodes_pruned": prune_unreachable(bundle),
        "convolutions_made_winograd": _winograd_count(
            winograd_convolutions(bundle, winograd), convolutions
        ),
    }
    changes["nodes_renamed"] = shorten_node_names(bundle)
    nodes_after, transposes_after = _counts(bundle)
    return {
        **changes,
        "nodes_before": nodes_before,
        "nodes_after": nodes_after,
        "transposes_before": transposes_before,
        "transposes_after": transposes_after,
    }
