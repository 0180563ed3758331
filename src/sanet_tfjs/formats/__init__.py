"""Other tools' formats, as far as this pipeline must know them: onnx-tf's import shim
(`onnx_tf_compat`) and the TensorFlow.js graph-model JSON with its rewrites (`tfjs_graph`)."""
