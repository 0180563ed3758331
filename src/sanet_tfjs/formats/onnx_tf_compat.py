"""Makes onnx-tf 1.10.0 (2022, unmaintained, its newest release) import against today's stack.

What it patches, and why:
1. `onnx.mapping` was removed from onnx (1.16+); onnx-tf reads four of its tables, as
   `onnx.mapping` and as `onnx.helper.mapping`. They are rebuilt here from `onnx.helper`'s
   public dtype functions.
2. `tensorflow_addons` (only for the Hardmax op) does not import under Keras 3, and
   `tensorflow_probability` (only for Bernoulli) is not installed. onnx-tf imports every op
   handler eagerly, so both names get stand-in modules whose attributes fail only when called:
   a model that used Hardmax or Bernoulli would fail with a clear message. SANet uses neither.

`install()` is idempotent and changes nothing that is already importable.

`trace_without_autograph()` is for speed, not compatibility: onnx-tf's module traces the ONNX
graph in a `tf.function` with autograph on, so TensorFlow first rewrites the source of every
op handler it calls (849 functions for the encoder). That took 7.3 of the encoder's 9.7 s of
conversion here. The handlers branch on Python values only, so without autograph the trace
runs the same code and gives the same graph: the SavedModels are byte-identical (tested), and
converting the three tiny parts takes 2.6 s instead of 10.8. A handler that branched on a
tensor would now fail loudly at conversion, not convert differently.
tests/test_conversion.py fails if the patch is no longer needed (onnx-tf imports without it) or
no longer enough.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from typing import Any

OPTIONAL_MODULES = {
    "tensorflow_addons": "the ONNX Hardmax op",
    "tensorflow_probability": "the ONNX Bernoulli op",
}


class _Unavailable:
    """Stands in for any attribute of a missing optional module; fails when called."""

    def __init__(self, module: str, purpose: str, path: str) -> None:
        self._module, self._purpose, self._path = module, purpose, path

    def __getattr__(self, name: str) -> _Unavailable:
        _refuse_dunder(name)
        return _Unavailable(self._module, self._purpose, f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{self._path} is unavailable: onnx-tf needs {self._module} for {self._purpose}, "
            f"which this pipeline does not install (it does not import with Keras 3)"
        )


def _refuse_dunder(name: str) -> None:
    # Tools that scan sys.modules (hypothesis, inspect) ask for __file__ and friends: a
    # stand-in has none, as a built-in module has none.
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)


def _stand_in_module(name: str, purpose: str) -> types.ModuleType:
    module = types.ModuleType(name, f"stand-in installed by {__name__}")

    def stand_in(attr: str) -> _Unavailable:
        _refuse_dunder(attr)
        return _Unavailable(name, purpose, f"{name}.{attr}")

    module.__getattr__ = stand_in  # type: ignore[method-assign]
    return module


def _mapping_module() -> types.ModuleType:
    import numpy as np
    import onnx.helper as helper

    types_ = [t for t in helper.get_all_tensor_dtypes() if t != 0]
    module = types.ModuleType("onnx.mapping", f"rebuilt by {__name__}")
    module.TENSOR_TYPE_TO_NP_TYPE = {t: helper.tensor_dtype_to_np_dtype(t) for t in types_}
    module.NP_TYPE_TO_TENSOR_TYPE = {
        np.dtype(helper.tensor_dtype_to_np_dtype(t)): t
        for t in reversed(types_)  # the first (canonical) ONNX type wins for shared numpy types
    }
    module.TENSOR_TYPE_TO_STORAGE_TENSOR_TYPE = {
        t: helper.tensor_dtype_to_storage_tensor_dtype(t) for t in types_
    }
    module.STORAGE_TENSOR_TYPE_TO_FIELD = {
        helper.tensor_dtype_to_storage_tensor_dtype(t): helper.tensor_dtype_to_field(t)
        for t in types_
    }
    return module


def missing_pieces() -> list[str]:
    """What onnx-tf needs that the environment lacks (empty: the patch is not needed)."""
    import onnx

    missing = [] if hasattr(onnx, "mapping") or "onnx.mapping" in sys.modules else ["onnx.mapping"]
    for name in OPTIONAL_MODULES:
        if name in sys.modules:
            continue
        try:
            importable = importlib.util.find_spec(name) is not None
            if importable:
                importlib.import_module(name)
        except Exception:  # tfa raises at import under Keras 3
            importable = False
        if not importable:
            missing.append(name)
    return missing


def install() -> None:
    """Patch what is missing, then import onnx_tf."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tensorflow_addons' end-of-life notice on import
        _install()


def trace_without_autograph() -> None:
    """Trace onnx-tf's graph module with autograph off (see the module docstring).
    Idempotent; needs onnx_tf importable (`install()` first)."""
    import tensorflow as tf
    from onnx_tf.backend_tf_module import BackendTFModule

    for name in ("__call__", "gen_tensor_dict"):
        traced = getattr(BackendTFModule, name)
        if getattr(traced, "_autograph", False):  # polymorphic_function.Function's flag
            setattr(BackendTFModule, name, tf.function(traced.python_function, autograph=False))


def _install() -> None:
    import onnx

    for piece in missing_pieces():
        if piece == "onnx.mapping":
            mapping = _mapping_module()
            sys.modules["onnx.mapping"] = mapping
            onnx.mapping = onnx.helper.mapping = mapping  # type: ignore[attr-defined]
        else:
            sys.modules[piece] = _stand_in_module(piece, OPTIONAL_MODULES[piece])
    import onnx_tf  # noqa: F401 - the import is what is being made to work
